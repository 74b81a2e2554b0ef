"""Full-int8 TFLite against Keras on a weak and a confident demo model, and its latency.

    python tools/bench_int8.py [--work_dir=runs/bench_int8] [--weak_epochs=6]
                               [--weak_seeds=1,2,3] [--confident_epochs=30]
                               [--int8_denylist=auto] [--eval_clips=16]
                               [--reuse_exports]

Trains the demo recipe (`flags/demo.cfg`, its data and split; the demo data
must be prepared first, as in the README's first command) short, once per
`--weak_seeds` (`--weak_epochs`, the whole schedule in fewer epochs: a weak
model, 50-75% held-out clip accuracy and small logit margins; 6 epochs land
there on the demo, 5 and 8 either side), and once in full (`--confident_epochs`, `--seed`). A run folder that already
holds a finished run (`metrics.json`) is reused. Each is
exported with `python -m tvn_tf.export` (`--int8_denylist`), and once more as
int8 only with `--int8_denylist=none` (`int8_full`: every layer in int8); the
figures of its `parity.json` are printed per variant: top-1 agreement with
Keras and accuracy on the held-out clips, the layers kept in float, and
the agreement before export's bias correction of the classifier.
Agreement is measured on `--eval_clips` evenly spaced clips of every held-out
video (16: 1,280 clips on the demo split), not export's default 160: on
eight disjoint draws of 160 clips (2 per video) one int8 model (weak, seed 1,
every layer in int8) read 96.3% to 99.4%, and 97.9% on all 1,280; 160 clips
are too few to judge a 98% bar.

Latency is measured on TVN-1 at its native 224x224 (2 threads, batch 1,
`--latency_runs`, one model after the other in alternating rounds, medians):
every variant, int8 both fully quantized and with the layers any model
kept in float (`layers_at_224`; one model, timed once, when none kept any),
all converted from one model with random weights calibrated on random clips
(the weights do not change the time). Any op that falls back from XNNPACK is printed. A
markdown table of both (docs/deployment.md's variant table) is printed before the
JSON, and the int8 model's time per op type from LiteRT's profiler
(`tvn_tf.deploy.op_profile`).

Last line, one JSON object: {"weak_keras_accuracy", "weak_int8_agreement",
"confident_keras_accuracy", "confident_int8_agreement",
"int8_over_float32_latency", "float_layers_cost", "cpu", "weak_seeds",
"weak_keras_accuracy_per_seed", "weak_int8_agreement_per_seed",
"weak_int8_agreement_before_bias_correction_per_seed",
"weak_int8_agreement_interval95", "num_clips"}: over the weak seeds, the
mean accuracy and the lowest agreement (the one a target must meet), with its
95% interval (`parity.interval95`) on its `num_clips` clips; the int8
latency
is that of the int8 model with float layers, and `float_layers_cost` is its
latency over the fully quantized one's, minus 1 (0 when nothing is kept in
float).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from tvn_tf import cli  # noqa: E402

cli.start()

from tvn_tf import export as export_lib  # noqa: E402
from tvn_tf import model_dir as model_dir_lib  # noqa: E402
from tvn_tf.deploy import tflite as tflite_lib  # noqa: E402

FLAGS = flags.FLAGS
DEMO_FLAGS = os.path.join(ROOT, "flags", "demo.cfg")
MAX_PARITY_CLIPS = 1_000_000  # No cap: every clip --eval_clips picks.
_EXPORT_DEFAULTS = export_lib.ExportOptions()


def define_flags() -> None:
    """Defines the tool's flags (not on import)."""
    flags.DEFINE_string("work_dir", "runs/bench_int8", "Folder for the two runs and exports.")
    flags.DEFINE_integer("weak_epochs", 6, "Epochs of the weak model.", lower_bound=1)
    flags.DEFINE_integer("confident_epochs", 30, "Epochs of the confident model.", lower_bound=1)
    flags.DEFINE_list("weak_seeds", ["1", "2", "3"], "Training seeds of the weak models.")
    flags.DEFINE_integer("seed", 1, "Training seed of the confident model.")
    flags.DEFINE_string("int8_denylist", _EXPORT_DEFAULTS.int8_denylist, "Passed to tvn_tf.export.")
    flags.DEFINE_integer("latency_runs", 40, "Timed runs per model and round.", lower_bound=1)
    flags.DEFINE_integer(
        "latency_rounds", 3, "Alternating rounds of the latency runs.", lower_bound=1
    )
    flags.DEFINE_integer("threads", 2, "Interpreter threads.", lower_bound=1)
    flags.DEFINE_bool(
        "reuse_exports",
        False,
        "Reuse an export folder that already holds parity.json instead of exporting again "
        "(to rerun the latency part only; export anew after changing the export code).",
    )
    flags.DEFINE_integer(
        "eval_clips",
        16,
        "Evenly spaced clips per held-out video that agreement is measured on (export's "
        "--eval_clips; every one of them is used).",
        lower_bound=1,
    )


def _run(args: list[str]) -> str:
    """Runs a tvn_tf binary, streaming its stderr; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, *args], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    if result.returncode:
        raise RuntimeError(f"{' '.join(args[:2])} failed with exit code {result.returncode}.")
    return result.stdout


def train_and_export(name: str, epochs: int, seed: int) -> dict:
    """Trains (unless finished before) and exports one demo model; returns its parity.json."""
    model_dir = os.path.join(FLAGS.work_dir, name)
    if not os.path.exists(os.path.join(model_dir, model_dir_lib.METRICS)):
        print(f"bench_int8: training the {name} model ({epochs} epochs)", file=sys.stderr)
        _run(
            [
                "-m",
                "tvn_tf.train",
                f"--flagfile={DEMO_FLAGS}",
                f"--model_dir={model_dir}",
                f"--epochs={epochs}",
                f"--seed={seed}",
            ]
        )
    reports = {}
    for suffix, variants, denylist in (
        ("", ",".join(tflite_lib.VARIANTS), FLAGS.int8_denylist),
        ("_int8_full", "int8", "none"),
    ):
        export_dir = os.path.join(FLAGS.work_dir, f"{name}_export{suffix}")
        parity_path = os.path.join(export_dir, "parity.json")
        if FLAGS.reuse_exports and os.path.exists(parity_path):
            with open(parity_path) as f:
                reports[suffix] = json.load(f)
            continue
        _run(
            [
                "-m",
                "tvn_tf.export",
                f"--model_dir={model_dir}",
                f"--output_dir={export_dir}",
                f"--variants={variants}",
                f"--int8_denylist={denylist}",
                f"--threads={FLAGS.threads}",
                f"--eval_clips={FLAGS.eval_clips}",
                f"--parity_clips={MAX_PARITY_CLIPS}",
                "--overwrite",
            ]
        )
        with open(parity_path) as f:
            reports[suffix] = json.load(f)
    report = reports[""]
    report["int8_full"] = reports["_int8_full"]["int8"]
    return report


def layers_at_224(analysis, float_layers: list[str]) -> list[str]:
    """The demo models' float layers, as TVN-1 at 224 names them.

    The converter names some fused ops differently at another resolution
    (`block3_1/expand/bn/batchnorm/add_1` at 112 is
    `block3_1/expand/conv/convolution1` at 224), so where the demo models
    kept the tail (`quantization.tail_layers`), the 224 model's tail is kept;
    other layers are kept where the 224 model has them.
    """
    from tvn_tf.deploy import quantization

    names = {layer.layer for layer in analysis.layers}
    tail = quantization.tail_layers(analysis)
    tail_scopes = {layer.split("/")[0] for layer in tail}
    kept = [layer for layer in float_layers if layer in names]
    if any(layer.split("/")[0] in tail_scopes for layer in float_layers):
        kept += [layer for layer in tail if layer not in kept]
    missing = [
        layer
        for layer in float_layers
        if layer not in names and layer.split("/")[0] not in tail_scopes
    ]
    if missing:
        print(f"bench_int8: at 224 no layer named {', '.join(missing)}; timed in int8")
    return kept


def latency_at_224(float_layers: list[str]) -> tuple[dict, str]:
    """p50 ms of TVN-1 at 224 per variant, and the int8 model's per-op profile (a table).

    int8 is timed fully quantized (`int8_full`) and, if either demo model kept
    layers in float, with `float_layers` in float too (`int8`); with none kept,
    the two are one model, timed once.
    """
    import numpy as np

    from tvn_tf import perf
    from tvn_tf.deploy import int8_analysis, op_profile, tflite
    from tvn_tf.models import architecture, tvn

    arch = architecture.get_architecture("tvn1")
    model = tvn.TinyVideoNetwork(arch, num_classes=10)
    rng = np.random.default_rng(0)
    clips = rng.uniform(-1, 1, (8, arch.num_frames, 224, 224, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as tmp:
        path = os.path.join(tmp, "saved_model")
        tflite.save_for_conversion(model, path)
        models = {v: tflite.convert(path, v) for v in tflite.VARIANTS if v != "int8"}
        analysis = int8_analysis.analyze(path, clips)
        models["int8_full"] = analysis.quantized_model(())
        if float_layers:
            models["int8"] = analysis.quantized_model(layers_at_224(analysis, float_layers))
    for name, data in models.items():
        _, fallback = tflite.delegation(data, FLAGS.threads)
        if fallback:
            print(f"bench_int8: {name} at 224: NOT in XNNPACK: {', '.join(fallback)}")
    runners = {name: tflite.TFLiteRunner(data, FLAGS.threads) for name, data in models.items()}
    times = {name: [] for name in runners}
    for _ in range(FLAGS.latency_rounds):
        for name, runner in runners.items():
            runner.set_clip(clips[0])
            times[name].append(
                perf.time_runs(runner.invoke, runs=FLAGS.latency_runs, warmup=3).p50_ms
            )
    latency = {name: float(np.median(t)) for name, t in times.items()}
    latency.setdefault("int8", latency["int8_full"])
    profile = op_profile.profile(models.get("int8", models["int8_full"]), threads=FLAGS.threads)
    return latency, op_profile.describe(profile)


def summarize(float_layers: list[str]) -> str:
    """Float layers by their top scope: `logits, head, block3_1 (9 layers)`; `nothing`."""
    scopes: dict[str, int] = {}
    for layer in float_layers:
        scope = layer.split("/")[0]
        scopes[scope] = scopes.get(scope, 0) + 1
    return (
        ", ".join(f"{scope} ({n} layers)" if n > 1 else scope for scope, n in scopes.items())
        or "nothing"
    )


def table(latency: dict, weaks: dict[int, dict], confident: dict, float_layers: list[str]) -> str:
    """docs/deployment.md's variant table: latency at 224 and agreement on the demo models."""
    from tvn_tf.deploy import parity

    seeds = ", ".join(str(s) for s in weaks)
    clips = confident["num_clips"]
    rows = [
        "| TFLite variant | p50 ms (TVN-1, 224) | vs float32 | top-1 agreement, weak "
        f"(seeds {seeds}) | top-1 agreement, confident |",
        "|---|---|---|---|---|",
    ]
    names = {
        "float32": "float32",
        "float16": "float16",
        "dynamic_int8": "dynamic-range int8",
        "int8_full": "full int8, every layer",
        "int8_before": f"full int8, {summarize(float_layers)} in float, no bias correction",
        "int8": f"full int8, {summarize(float_layers)} in float",
    }

    def agreement(report: dict, key: str) -> str:
        if key == "int8_before":
            before = report["int8"].get("top1_agreement_before_bias_correction")
            return "-" if before is None else f"{before:.1%}"
        text = f"{report[key]['top1_agreement']:.1%}"
        layers = report["int8"]["float_layers"]
        if key == "int8" and sorted(layers) != float_layers:  # Kept less than the row says.
            text += f" ({summarize(layers) if layers else 'all int8'})"
        return text

    for key, label in names.items():
        weak = " / ".join(agreement(r, key) for r in weaks.values())
        ms = latency["int8" if key == "int8_before" else key]  # The bias costs nothing.
        rows.append(
            f"| {label} | {ms:.1f} | {ms / latency['float32']:.2f}x | "
            f"{weak} | {agreement(confident, key)} |"
        )
    low, high = parity.interval95(0.98, clips)
    rows.append(
        f"\nAgreement on {clips} held-out clips per model ({FLAGS.eval_clips} per video); "
        f"a 98% there has a 95% interval of {low:.1%}-{high:.1%} at least."
    )
    return "\n".join(rows)


def describe(name: str, report: dict) -> None:
    """Prints `parity.describe_variant`'s line for each variant of one model's report."""
    from tvn_tf.deploy import parity

    for variant in (*tflite_lib.VARIANTS[:-1], "int8_full", "int8"):
        print(f"{name} {parity.describe_variant(variant, report)}")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from tvn_tf import perf

    try:
        seeds = [int(s) for s in FLAGS.weak_seeds]
    except ValueError:
        sys.exit(f"bench_int8: --weak_seeds={','.join(FLAGS.weak_seeds)}; expected integers.")
    if not seeds:
        sys.exit("bench_int8: --weak_seeds is empty; expected at least one seed.")
    try:
        weaks = {s: train_and_export(f"weak_seed{s}", FLAGS.weak_epochs, s) for s in seeds}
        confident = train_and_export("confident", FLAGS.confident_epochs, FLAGS.seed)
    except RuntimeError as e:
        sys.exit(f"bench_int8: {e}")
    for seed, weak in weaks.items():
        describe(f"weak (seed {seed})", weak)
    describe("confident", confident)
    # The latency of keeping in float whatever any model kept.
    float_layers = sorted(
        {layer for r in [*weaks.values(), confident] for layer in r["int8"]["float_layers"]}
    )
    latency, profile = latency_at_224(float_layers)
    print(f"TVN-1 at 224, batch 1, {FLAGS.threads} threads, {perf.machine_description()}:")
    print(table(latency, weaks, confident, float_layers))
    accuracies = [r["keras"]["accuracy"] for r in weaks.values()]
    agreements = [r["int8"]["top1_agreement"] for r in weaks.values()]
    lowest = min(weaks.values(), key=lambda r: r["int8"]["top1_agreement"])
    print(f"Where the int8 model's time goes (TVN-1 at 224, {FLAGS.threads} threads):")
    print(profile)
    print(
        json.dumps(
            {
                "weak_keras_accuracy": round(sum(accuracies) / len(accuracies), 4),
                "weak_int8_agreement": min(agreements),
                "weak_int8_agreement_interval95": lowest["int8"]["top1_agreement_interval95"],
                "num_clips": lowest["num_clips"],
                "confident_keras_accuracy": confident["keras"]["accuracy"],
                "confident_int8_agreement": confident["int8"]["top1_agreement"],
                "int8_over_float32_latency": round(latency["int8"] / latency["float32"], 3),
                "float_layers_cost": round(latency["int8"] / latency["int8_full"] - 1, 3),
                "cpu": perf.machine_description(),
                "weak_seeds": seeds,
                "weak_keras_accuracy_per_seed": accuracies,
                "weak_int8_agreement_per_seed": agreements,
                "weak_int8_agreement_before_bias_correction_per_seed": [
                    r["int8"].get("top1_agreement_before_bias_correction") for r in weaks.values()
                ],
            }
        )
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
