"""The best searched network against TVN-1, and against TVN-1 scaled down to its latency.

    python tools/bench_against_tvn1.py        # after tools/bench_search.py (with --retrain)

Reads BENCH_DIR/bench_search.json: the overall best network of the searches,
which tools/bench_search.py retrained with each training seed in
STUDY/retrain/trialN/seedT. Against it, with the same recipe (`--flagfile_train`,
`flags/motion.cfg`), the same data and split (the search flagfile's, as
bench_search's retrainings) and the same training seeds:

- TVN-1 (the recipe's --model at its --image_size), with the recipe's auxiliary
  heads and slow first block, into OUTPUT_DIR/tvn1/seedT;
- TVN-1 scaled down to the searched network's latency: the recipe's TVN-1
  scaled by the compound coefficient phi <= 0 (`scaling.scale_architecture`:
  depth 1.2^phi, width 1.1^phi, resolution 1.15^phi), the largest phi on a grid
  of --phi_step down to --lowest_phi whose float32 TFLite runs no slower than
  the searched network's (bisection; each step times the two in alternating
  rounds). It trains with the recipe's auxiliary heads on the blocks it still
  has, into OUTPUT_DIR/tvn1_scaled/seedT; its network is chosen once and kept in
  OUTPUT_DIR/tvn1_scaled/architecture.json, so a rerun trains what it chose.

The searched network trains without auxiliary heads (the recipe's name TVN-1's
blocks), as bench_search retrains it. A training with a `metrics.json` is not
run again; an unfinished one resumes from its checkpoints.

Latency: each network with random weights (the weights do not change the time)
as float32 and as full-integer int8 TFLite (every op in int8, calibrated on
random clips), batch 1 on --threads threads, the six models timed one after
the other in --latency_rounds rounds of --latency_runs runs; a model's figure is
the median of its rounds' medians.

Prints a markdown table (one column per network: input, blocks, parameters,
FLOPs, both latencies, held-out video accuracy per training seed and min / mean
/ max, classes never right) and writes OUTPUT_DIR/bench_against_tvn1.json, the
object also printed as the last line: {"bench_dir", "flagfile_train",
"training_seeds", "threads", "networks", "phi", "phi_matched", "machine"}; each
network ("searched", "tvn1", "tvn1_scaled") has "name", "frames",
"frame_stride", "image_size", "blocks", "params", "flops", "latency_ms"
({"float32", "int8"}), "test_video_accuracy" (per training seed) and its
"_min", "_mean", "_max", and "classes_missed" (per training seed: classes with
no test video right). "phi_matched" is false when even --lowest_phi is slower
than the searched network.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
from absl import app
from absl import flags

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(TOOLS))
sys.path.insert(0, TOOLS)  # bench_search, whose retraining this shares.

from tvn_tf import cli  # noqa: E402  (the repository root is on the path now)

cli.start()

import bench_search  # noqa: E402  (after cli.start)

from tvn_tf import atomic  # noqa: E402
from tvn_tf import model_flags  # noqa: E402
from tvn_tf import perf  # noqa: E402
from tvn_tf.deploy import tflite  # noqa: E402
from tvn_tf.models import architecture as arch_lib  # noqa: E402
from tvn_tf.models import flops as flops_lib  # noqa: E402
from tvn_tf.models import scaling  # noqa: E402
from tvn_tf.models import tvn  # noqa: E402

FLAGS = flags.FLAGS

RESULT_JSON = "bench_against_tvn1.json"
NETWORKS = ("searched", "tvn1", "tvn1_scaled")
VARIANTS = ("float32", "int8")


def define_flags() -> None:
    """The bench's flags."""
    flags.DEFINE_string(
        "bench_dir", "runs/bench_search", "tools/bench_search.py's --output_dir, retrained."
    )
    flags.DEFINE_string(
        "output_dir", "", "Where TVN-1's trainings go (default: BENCH_DIR/against_tvn1)."
    )
    flags.DEFINE_string(
        "flagfile_search",
        "flags/search_motion.cfg",
        "The searches' flagfile: its data and split are the trainings'.",
    )
    flags.DEFINE_string(
        "flagfile_train", "flags/motion.cfg", "The recipe every network trains with."
    )
    flags.DEFINE_list("training_seeds", ["1", "2", "3"], "Training seeds (train's --seed).")
    flags.DEFINE_integer("threads", 2, "TFLite interpreter threads.", lower_bound=1)
    flags.DEFINE_integer(
        "latency_rounds", 5, "Alternating rounds over the timed models.", lower_bound=1
    )
    flags.DEFINE_integer("latency_runs", 30, "Timed runs per model and round.", lower_bound=1)
    flags.DEFINE_float("phi_step", 0.25, "The grid of phi the scaled TVN-1 is chosen on.")
    flags.DEFINE_float("lowest_phi", -16.0, "The smallest phi tried.")


def recipe_architecture() -> tuple[arch_lib.Architecture, tuple[str, ...]]:
    """The network the recipe trains (its model and scaling flags, --image_size), its heads.

    Raises:
      ValueError: naming the flagfile and the flag that does not parse.
    """
    recipe = bench_search.flagfile_values(FLAGS.flagfile_train, "flagfile_train")
    values = {}
    for field in dataclasses.fields(model_flags.ArchitectureOptions):
        if field.name in recipe:
            text = recipe[field.name]
            try:
                values[field.name] = text if field.type.startswith("str") else float(text)
            except ValueError:
                raise ValueError(
                    f"--flagfile_train={FLAGS.flagfile_train}: --{field.name}={text}; "
                    "expected a number."
                ) from None
    arch = model_flags.ArchitectureOptions(**values).architecture()
    arch = model_flags.with_image_size(arch, int(recipe.get("image_size") or 0))
    aux = tuple(name for name in recipe.get("aux_classifiers", "").split(",") if name)
    return arch, aux


class Timer:
    """Builds networks with random weights, converts them to TFLite and times them.

    Each network is built and each variant converted once (keyed by the
    network's JSON): the scaled TVN-1 matched at phi 0 is TVN-1 itself.
    """

    def __init__(self, num_classes: int, threads: int, rounds: int, runs: int):
        self.num_classes, self.threads, self.rounds, self.runs = num_classes, threads, rounds, runs
        self.rng = np.random.default_rng(0)
        self._built: dict[str, tuple] = {}
        self._converted: dict[tuple[str, str], bytes] = {}

    def models(self, arch: arch_lib.Architecture, variants=VARIANTS) -> tuple[dict, int, int]:
        """({variant: TFLite bytes}, parameters, FLOPs) of `arch` with random weights."""
        key = json.dumps(arch.to_json(), sort_keys=True)
        if key not in self._built:
            model = tvn.TinyVideoNetwork(arch, num_classes=self.num_classes)
            flops = int(flops_lib.count_flops(model).forward)
            self._built[key] = (model, int(model.count_params()), flops)
        model, params, flops = self._built[key]
        for v in variants:
            if (key, v) not in self._converted:
                clips = [self.clip(arch) for _ in range(8)] if v == "int8" else None
                self._converted[(key, v)] = tflite.convert_model(model, v, clips)
        return {v: self._converted[(key, v)] for v in variants}, params, flops

    def clip(self, arch: arch_lib.Architecture) -> np.ndarray:
        """One random clip in [-1, 1] of `arch`'s input shape."""
        shape = (arch.num_frames, arch.image_size, arch.image_size, 3)
        return self.rng.uniform(-1, 1, shape).astype(np.float32)

    def time(self, models: dict[str, bytes]) -> dict[str, float]:
        """Median over the rounds of each model's p50 ms, the models alternating."""
        runners = {name: tflite.TFLiteRunner(data, self.threads) for name, data in models.items()}
        for runner in runners.values():
            runner.set_clip(self.rng.uniform(-1, 1, runner.clip_shape))
        times = {name: [] for name in runners}
        for _ in range(self.rounds):
            for name, runner in runners.items():
                times[name].append(perf.time_runs(runner.invoke, runs=self.runs, warmup=3).p50_ms)
        return {name: round(float(np.median(t)), 3) for name, t in times.items()}


def scaled_architecture(
    base: arch_lib.Architecture, searched: bytes, timer: Timer, folder: str
) -> tuple[arch_lib.Architecture, float, bool]:
    """The scaled TVN-1: as chosen before (FOLDER/architecture.json), else matched now."""
    path = os.path.join(folder, bench_search.ARCHITECTURE_JSON)
    choice_path = os.path.join(folder, "phi.json")
    if os.path.exists(path) and os.path.exists(choice_path):
        with open(choice_path) as f:
            choice = json.load(f)
        return arch_lib.load_architecture_json(path), choice["phi"], choice["matched"]
    seen: dict[str, bool] = {}

    def slower(phi: float) -> bool:
        arch = scaling.scale_architecture(base, compound=phi)
        key = json.dumps(arch.to_json(), sort_keys=True)
        if key not in seen:
            models, _, _ = timer.models(arch, ("float32",))
            ms = timer.time({"candidate": models["float32"], "searched": searched})
            seen[key] = ms["candidate"] > ms["searched"]
            print(
                f"bench_against_tvn1: phi {phi:+.2f} ({arch.image_size} px, filters "
                f"{[b.filters for b in arch.blocks]}): {ms['candidate']} ms against the "
                f"searched network's {ms['searched']} ms",
                file=sys.stderr,
                flush=True,
            )
        return seen[key]

    phi, matched = scaling.largest_compound(slower, FLAGS.phi_step, FLAGS.lowest_phi)
    arch = scaling.scale_architecture(base, compound=phi)
    os.makedirs(folder, exist_ok=True)
    atomic.write_json(path, arch.to_json())
    atomic.write_json(choice_path, {"phi": phi, "matched": matched})
    return arch, phi, matched


def describe(arch: arch_lib.Architecture, params: int, flops: int, latency: dict) -> dict:
    """A network's row of the result: its input, size and latency."""
    return {
        "name": arch.name,
        "frames": arch.num_frames,
        "frame_stride": arch.frame_stride,
        "image_size": arch.image_size,
        "blocks": len(arch.blocks),
        "params": params,
        "flops": flops,
        "latency_ms": latency,
    }


def tested(results: list[dict]) -> dict:
    """Test accuracy per training seed and its spread; classes with no video right per seed."""
    accuracy = [r["video_accuracy"] for r in results]
    missed = [
        sum(1 for v in (r.get("per_class_accuracy") or {}).values() if v == 0) for r in results
    ]
    return {
        "test_video_accuracy": accuracy,
        **bench_search.spread(accuracy, "test_video_accuracy"),
        "classes_missed": missed,
    }


def bench(training_seeds: list[int]) -> dict:
    """Trains what is missing, matches the scaled TVN-1, times all six models; the result."""
    if not FLAGS.phi_step > 0 or not FLAGS.lowest_phi < 0:
        raise ValueError(
            f"--phi_step={FLAGS.phi_step} --lowest_phi={FLAGS.lowest_phi}; expected a step "
            "> 0 and a lowest phi < 0."
        )
    path = os.path.join(FLAGS.bench_dir, bench_search.RESULT_JSON)
    if not os.path.exists(path):
        raise ValueError(
            f"--bench_dir={FLAGS.bench_dir}: no {bench_search.RESULT_JSON}; run "
            "tools/bench_search.py into it first."
        )
    with open(path) as f:
        best = json.load(f).get("overall_best")
    if not best:
        raise ValueError(f"{path} has no overall best: run tools/bench_search.py with --retrain.")
    out = FLAGS.output_dir or os.path.join(FLAGS.bench_dir, "against_tvn1")
    flags_train = bench_search.train_flags(FLAGS.flagfile_train, FLAGS.flagfile_search)
    study = bench_search.study_dir(FLAGS.bench_dir, best["search_seed"], best["algorithm"])
    searched_folder = os.path.join(study, bench_search.RETRAIN_DIR, f"trial{best['trial']}")
    searched_path = os.path.join(searched_folder, bench_search.ARCHITECTURE_JSON)
    with open(searched_path) as f:
        searched_json = f.read()
    searched_runs = [
        bench_search.retrain(searched_folder, searched_json, s, flags_train) for s in training_seeds
    ]
    num_classes = len(searched_runs[0]["per_class_accuracy"] or {}) or None
    if not num_classes:
        raise ValueError(f"{searched_folder}: its metrics.json has no per_class_accuracy.")

    timer = Timer(num_classes, FLAGS.threads, FLAGS.latency_rounds, FLAGS.latency_runs)
    searched = arch_lib.load_architecture_json(searched_path)
    base, aux = recipe_architecture()
    searched_models, *searched_size = timer.models(searched)
    scaled, phi, matched = scaled_architecture(
        base, searched_models["float32"], timer, os.path.join(out, "tvn1_scaled")
    )
    archs = {"searched": searched, "tvn1": base, "tvn1_scaled": scaled}
    sizes = {"searched": (searched_models, *searched_size)}
    for name in ("tvn1", "tvn1_scaled"):
        sizes[name] = timer.models(archs[name])
    latency = timer.time({f"{name}/{v}": sizes[name][0][v] for name in NETWORKS for v in VARIANTS})

    runs = {"searched": searched_runs}
    valid = set(tvn.block_names(scaled))
    for name, heads in (("tvn1", aux), ("tvn1_scaled", tuple(a for a in aux if a in valid))):
        folder = os.path.join(out, name)
        text = json.dumps(archs[name].to_json())
        runs[name] = [
            bench_search.retrain(folder, text, s, flags_train, aux_classifiers=heads)
            for s in training_seeds
        ]
    networks = {
        name: {
            **describe(
                archs[name],
                sizes[name][1],
                sizes[name][2],
                {v: latency[f"{name}/{v}"] for v in VARIANTS},
            ),
            **tested(runs[name]),
        }
        for name in NETWORKS
    }
    return {
        "bench_dir": FLAGS.bench_dir,
        "flagfile_train": FLAGS.flagfile_train,
        "training_seeds": training_seeds,
        "threads": FLAGS.threads,
        "networks": networks,
        "phi": phi,
        "phi_matched": matched,
        "machine": perf.machine_description(),
    }


def table(result: dict) -> str:
    """The markdown table: one column per network."""
    nets = [result["networks"][n] for n in NETWORKS]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    rows = [
        (
            "input",
            [
                f"{n['frames']} frames, stride {n['frame_stride']}, {n['image_size']} px"
                for n in nets
            ],
        ),
        ("blocks", [str(n["blocks"]) for n in nets]),
        ("parameters", [f"{n['params']:,}" for n in nets]),
        ("FLOPs per clip", [f"{n['flops'] / 1e6:.1f} M" for n in nets]),
        *(
            (
                f"{v} TFLite p50, {result['threads']} threads",
                [f"{n['latency_ms'][v]} ms" for n in nets],
            )
            for v in VARIANTS
        ),
        (
            "held-out video accuracy per seed",
            [" / ".join(fmt(a) for a in n["test_video_accuracy"]) for n in nets],
        ),
        (
            "min / mean / max",
            [
                " / ".join(fmt(n[f"test_video_accuracy_{k}"]) for k in ("min", "mean", "max"))
                for n in nets
            ],
        ),
        (
            "classes with no video right, per seed",
            [" / ".join(map(str, n["classes_missed"])) for n in nets],
        ),
    ]
    phi = f"TVN-1 scaled, phi {result['phi']:+g}" + ("" if result["phi_matched"] else " (slower)")
    lines = [f"| | searched | TVN-1 | {phi} |", "|---|---|---|---|"]
    lines += [f"| {what} | " + " | ".join(cells) + " |" for what, cells in rows]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        result = bench(bench_search.integers_flag("training_seeds", "1,2,3"))
        out = FLAGS.output_dir or os.path.join(FLAGS.bench_dir, "against_tvn1")
        os.makedirs(out, exist_ok=True)
        atomic.write_json(os.path.join(out, RESULT_JSON), result)
    except ValueError as e:
        sys.exit(f"bench_against_tvn1: {e}")
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
