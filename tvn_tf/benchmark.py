"""Latency of one exported TVN on this machine, batch 1, next to its SGEMM rate.

    python -m tvn_tf.benchmark --model_path=exports/demo/model_int8.tflite --threads=2
    python -m tvn_tf.benchmark --model_path=exports/demo/saved_model
    python -m tvn_tf.benchmark --model_path=runs/demo            # the Keras model

`--model_path` (`--model` is its deprecated alias here, with a warning) is a
`.tflite` file (LiteRT interpreter, XNNPACK, `--threads`), a
SavedModel folder (its `serving_default`, preprocessing included, fed uint8
frames at the model's resolution; TensorFlow with `--threads` intra-op
threads), or a training run's folder (the Keras model, `tf.function`).
After `--warmup` runs, `--runs` runs are timed one by one. The machine's fp32
SGEMM rate is measured in the same process, with numpy's BLAS on `--threads`
threads, in `--rounds` rounds alternating with the model's timed runs, and
`share_of_sgemm` is `FLOPs / the fastest run / the best SGEMM rate`: on a
shared machine interference only slows a measurement down, so each side's best
is what repeats. Per round, `FLOPs / the round's fastest run / the round's
SGEMM` gives the spread (`share_of_sgemm_median`, `share_of_sgemm_min`).
`tvn_tf.perf.PairedShare` has the figures behind this.
p50/p90/p99 are over all timed runs.

`--op_profile=PATH.csv` (a `.tflite` model) then profiles it op by op with
LiteRT's own profiler (`tvn_tf.deploy.op_profile`): a CSV row per op, a table
of time per op type, and the ops XNNPACK did not take.

The model is loaded by `tvn_tf.deploy.loading`. FLOPs come from the model
itself (Keras), else from `model_info.json` (written by `tvn_tf.export`) beside
the model, else from the TFLite graph.

The last line is one JSON object:
  {"model", "threads", "p50_ms", "p90_ms", "p99_ms", "clips_per_s", "flops",
   "sgemm_gflops", "share_of_sgemm", "share_of_sgemm_min", "share_of_sgemm_median",
   "rounds", "machine"}
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import app
from absl import flags

from tvn_tf import cli

cli.start()

from tvn_tf import model_path_flag  # noqa: E402  (after cli.start)
from tvn_tf.deploy import loading  # noqa: E402

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class BenchmarkOptions:
    """How `benchmark` times a model.

    Attributes:
      threads: Threads for the model and for SGEMM.
      runs: Timed runs (spread over the rounds).
      warmup: Untimed runs first.
      sgemm: Measure the SGEMM rate (about 3 s per round).
      rounds: Alternating SGEMM and model rounds.
    """

    threads: int = 2
    runs: int = 120
    warmup: int = 5
    sgemm: bool = True
    rounds: int = 10


_DEFAULTS = BenchmarkOptions()


def define_flags() -> None:
    """Defines the flags of the binary (not on import: other binaries share names)."""
    model_path_flag.define_flags(
        "A .tflite file, a SavedModel folder (or an export folder "
        "holding saved_model/), or a training run's --model_dir."
    )
    flags.DEFINE_integer(
        "threads", _DEFAULTS.threads, "Threads for the model and for SGEMM.", lower_bound=1
    )
    flags.DEFINE_integer(
        "runs",
        _DEFAULTS.runs,
        "Timed runs (spread over the rounds: 12 per round by default).",
        lower_bound=1,
    )
    flags.DEFINE_integer("warmup", _DEFAULTS.warmup, "Untimed runs first.", lower_bound=0)
    flags.DEFINE_bool("sgemm", _DEFAULTS.sgemm, "Measure the SGEMM rate (about 3 s per round).")
    flags.DEFINE_integer(
        "rounds", _DEFAULTS.rounds, "Alternating SGEMM and model rounds.", lower_bound=1
    )
    flags.DEFINE_string(
        "op_profile",
        None,
        "A .tflite model only: also profile it op by op with LiteRT's profiler and "
        "write one CSV row per op here (position, op, delegated, ms, share); the time "
        "per op type and any op XNNPACK did not take are printed.",
    )


JSON_FIELDS = (
    "model",
    "threads",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "clips_per_s",
    "flops",
    "sgemm_gflops",
    "share_of_sgemm",
    "share_of_sgemm_min",
    "share_of_sgemm_median",
    "rounds",
    "machine",
)


def make_runner(path: str, threads: int):
    """`(run, flops, description)`: a no-argument callable doing one batch-1 inference.

    The model is loaded by `tvn_tf.deploy.loading.load`.
    """
    runner = loading.load(path, threads)
    if runner.tensorflow_threads_set is False:
        print(
            "benchmark: TensorFlow already running here; its thread settings are kept.",
            file=sys.stderr,
        )
    return runner.timed_call(), runner.flops(), f"{runner.description}, {runner.engine}"


def _rounded(x: float | None, digits: int) -> float | None:
    return round(x, digits) if x is not None else None


def benchmark(
    path: str,
    threads: int = _DEFAULTS.threads,
    runs: int = _DEFAULTS.runs,
    warmup: int = _DEFAULTS.warmup,
    measure_sgemm: bool = _DEFAULTS.sgemm,
    rounds: int = _DEFAULTS.rounds,
) -> dict:
    """Times `path` at batch 1; returns the JSON object of the module docstring."""
    from tvn_tf import perf

    run, flops, description = make_runner(path, threads)
    rounds = min(rounds, runs)
    print(
        f"benchmark: {description}: {warmup} warm-up runs, {runs} timed runs, {threads} threads"
        + (f", {rounds} rounds against SGEMM" if measure_sgemm and flops else ""),
        file=sys.stderr,
        flush=True,
    )
    sgemm = share = low = median = None
    if measure_sgemm and flops:
        paired = perf.paired_share(run, flops, rounds=rounds, runs=runs, warmup=warmup)
        latency, sgemm, share = paired.latency, paired.sgemm_gflops, paired.share
        low, median = min(paired.shares), paired.median
    else:
        latency = perf.time_runs(run, runs=runs, warmup=warmup)
        sgemm = perf.sgemm_gflops() if measure_sgemm else None
        rounds = None

    return {
        "model": path,
        "threads": threads,
        "p50_ms": round(latency.p50_ms, 3),
        "p90_ms": round(latency.p90_ms, 3),
        "p99_ms": round(latency.p99_ms, 3),
        "clips_per_s": round(latency.per_second, 2),
        "flops": flops,
        "sgemm_gflops": _rounded(sgemm, 1),
        "share_of_sgemm": _rounded(share, 4),
        "share_of_sgemm_min": _rounded(low, 4),
        "share_of_sgemm_median": _rounded(median, 4),
        "rounds": rounds,
        "machine": perf.machine_description(),
    }


def describe(result: dict) -> str:
    """The human-readable lines printed before the JSON."""
    lines = [
        f"model: {result['model']}",
        f"machine: {result['machine']}",
        f"latency (batch 1, {result['threads']} threads): p50 {result['p50_ms']:.2f} ms, "
        f"p90 {result['p90_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms; "
        f"{result['clips_per_s']:.1f} clips/s",
    ]
    if result["flops"]:
        achieved = result["flops"] / (result["p50_ms"] / 1e3) / 1e9
        lines.append(
            f"FLOPs per clip: {result['flops'] / 1e9:.3f} G; {achieved:.1f} GFLOP/s at p50"
        )
    if result["sgemm_gflops"]:
        line = f"fp32 SGEMM, same run: {result['sgemm_gflops']:.1f} GFLOP/s"
        if result["share_of_sgemm"] is not None:
            line += (
                f"; the model's fastest run reaches {result['share_of_sgemm']:.1%} of it "
                f"({result['rounds']} alternating rounds; per round: median "
                f"{result['share_of_sgemm_median']:.1%}, worst {result['share_of_sgemm_min']:.1%})"
            )
        lines.append(line)
    return "\n".join(lines)


def write_op_profile(model_path: str, csv_path: str, threads: int) -> None:
    """Profiles `model_path` op by op (`tvn_tf.deploy.op_profile`); writes the CSV, prints the table."""
    from tvn_tf import atomic
    from tvn_tf.deploy import op_profile

    try:
        profile = op_profile.profile(model_path, threads=threads)
        atomic.write_text(csv_path, op_profile.to_csv(profile))
    except (OSError, RuntimeError) as e:
        sys.exit(f"benchmark: --op_profile={csv_path}: {e}")
    print(op_profile.describe(profile))
    print(f"per-op profile: {csv_path}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        path = model_path_flag.model_path("benchmark")
    except ValueError as e:
        sys.exit(f"benchmark: {e}")
    # numpy's BLAS reads its thread count when it loads: SGEMM on --threads threads.
    if "numpy" not in sys.modules:
        os.environ["OPENBLAS_NUM_THREADS"] = str(FLAGS.threads)
    if FLAGS.op_profile and not (os.path.isfile(path) and path.endswith(".tflite")):
        sys.exit(f"benchmark: --op_profile needs a .tflite --model_path, not {path}.")
    if FLAGS.op_profile and not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.op_profile))):
        sys.exit(f"benchmark: --op_profile={FLAGS.op_profile}: its folder does not exist.")
    options = cli.from_flags(BenchmarkOptions)
    try:
        result = benchmark(
            path,
            threads=options.threads,
            runs=options.runs,
            warmup=options.warmup,
            measure_sgemm=options.sgemm,
            rounds=options.rounds,
        )
    except ValueError as e:
        sys.exit(f"benchmark: {e}")
    print(describe(result))
    if FLAGS.op_profile:
        write_op_profile(path, FLAGS.op_profile, FLAGS.threads)
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
