"""Turns the output of TFLite's `benchmark_model` into `tvn_tf.benchmark`'s JSON.

`tools/android_benchmark.sh` runs `benchmark_model` on a phone and pipes its
output here:

    adb shell /data/local/tmp/benchmark_model --graph=... | \\
        python -m tvn_tf.deploy.android --model_path=model_int8.tflite --machine="Pixel 7"

What `benchmark_model` prints (tensorflow/lite/tools/benchmark): per call of
the tool, a warm-up and a timed `Stat` line in microseconds,

    count=50 first=40123 curr=39875 min=39544 max=41890 avg=40012.5 std=412

(builds whose stats keep percentiles add ` p5=... median=... p95=...`), then
`Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ...,
Inference (avg): ...`, and `Num threads: [4]` among the parameters.

Percentiles: when the output holds several calls of the tool with one timed
run each (`android_benchmark.sh --repeats=N`), p50, p90 and p99 are those of
the runs; from a single call with many runs, p50 is the printed median (the
average if the build prints none) and p90 / p99 are null, since the tool
does not print them. A phone has no SGEMM figure here: `sgemm_gflops`, the
`share_of_sgemm` fields and `rounds` are null.
"""

from __future__ import annotations

import json
import re
import sys

from absl import app
from absl import flags

from tvn_tf import cli

cli.start()

from tvn_tf import model_path_flag  # noqa: E402  (after cli.start)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the flags of the binary (not on import: other binaries share names)."""
    model_path_flag.define_flags(
        "The .tflite file benchmarked (its FLOPs are read from the "
        "model_info.json beside it, else counted from its graph)."
    )
    flags.DEFINE_string("machine", "", "The device, e.g. 'Pixel 7 (Tensor G2)'.")
    flags.DEFINE_string("input", "-", "benchmark_model's output; - reads stdin.")


_STAT = re.compile(r"count=(\d+)(.*)")
_FIELD = re.compile(r"(\w+)=([-+0-9.eE]+)")
_THREADS = re.compile(r"Num threads: \[(\d+)\]")
# "Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ...,
# Inference (avg): ..." (older tools: "Average inference timings in us: Warmup:
# ..., Init: ..., Inference: ...").
_SUMMARY = re.compile(r"[Ii]nference timings in us: (.*)")
# The op profiler's per-run totals, also printed as Stat lines.
_PROFILER_STATS = ("Timings (microseconds)", "Memory (bytes)")


class BenchmarkOutputError(ValueError):
    """The text is not `benchmark_model` output with a finished benchmark."""


def parse_stat(line: str) -> dict[str, float] | None:
    """The fields of one `Stat` line (`count=... avg=...`), or None for another line."""
    match = _STAT.search(line)
    if not match:
        return None
    fields = {"count": float(match.group(1))}
    rest = match.group(2)
    if rest.startswith(" curr=") and "min=" not in rest:  # One run, or "(all same)".
        value = float(re.match(r" curr=([-+0-9.eE]+)", rest).group(1))
        fields.update(first=value, curr=value, min=value, max=value, avg=value, std=0.0)
        return fields
    fields.update({k: float(v) for k, v in _FIELD.findall(rest)})
    return fields


def parse(text: str) -> dict:
    """Parses one or more concatenated `benchmark_model` outputs.

    Returns:
      `{"runs_us": [...] or None, "stat": the timed Stat of the last call,
      "threads": int or None, "calls": number of tool calls, "summary": the
      "Inference timings in us" fields of the last call}`.

    Raises:
      BenchmarkOutputError: no finished benchmark in `text`.
    """
    timed, summaries, pending = [], [], []
    for line in text.splitlines():
        summary = _SUMMARY.search(line)
        if summary:
            if not pending:
                break
            timed.append(pending[-1])  # A call prints its warm-up Stat, then its timed Stat.
            summaries.append(_summary_fields(summary.group(1)))
            pending = []
        elif not any(marker in line for marker in _PROFILER_STATS):
            stat = parse_stat(line)
            if stat is not None:
                pending.append(stat)
    if not timed:
        raise BenchmarkOutputError(
            "no finished benchmark in the input (expected benchmark_model's 'count=...' lines "
            "and its 'Inference timings in us: ...' line); did the tool fail on the phone?"
        )
    threads = _THREADS.findall(text)
    result = {
        "stat": timed[-1],
        "threads": int(threads[-1]) if threads else None,
        "calls": len(timed),
        "summary": summaries[-1],
        "runs_us": None,
    }
    if len(timed) > 1 and all(s["count"] == 1 for s in timed):
        result["runs_us"] = [s["avg"] for s in timed]
    return result


def _summary_fields(text: str) -> dict[str, float]:
    fields = {}
    for part in text.split(","):
        if ":" in part:
            key, value = part.rsplit(":", 1)
            fields[key.strip()] = float(value)
    return fields


def to_benchmark_json(parsed: dict, model: str, flops: int | None, machine: str) -> dict:
    """The `tvn_tf.benchmark` JSON object for a parsed `benchmark_model` output."""
    import numpy as np

    if parsed["runs_us"]:
        p50, p90, p99 = (float(v) / 1e3 for v in np.percentile(parsed["runs_us"], [50, 90, 99]))
    else:
        stat = parsed["stat"]
        p50 = stat.get("median", stat["avg"]) / 1e3
        p90 = p99 = None
    return {
        "model": model,
        "threads": parsed["threads"],
        "p50_ms": round(p50, 3),
        "p90_ms": None if p90 is None else round(p90, 3),
        "p99_ms": None if p99 is None else round(p99, 3),
        "clips_per_s": round(1e3 / p50, 2),
        "flops": flops,
        "sgemm_gflops": None,
        "share_of_sgemm": None,
        "share_of_sgemm_min": None,
        "share_of_sgemm_median": None,
        "rounds": None,
        "machine": machine,
    }


def model_flops(path: str | None) -> int | None:
    """FLOPs of the model from `model_info.json` beside it, else from its graph."""
    import os

    if not path:
        return None
    from tvn_tf.deploy import loading, tflite

    info = loading.read_model_info(path)
    if info and "flops" in info:
        return int(info["flops"])
    return tflite.count_flops(path) if os.path.isfile(path) else None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        path = model_path_flag.model_path("android_benchmark", required=False)
    except ValueError as e:
        sys.exit(f"android_benchmark: {e}")
    try:
        if FLAGS.input == "-":
            text = sys.stdin.read()
        else:
            with open(FLAGS.input) as f:
                text = f.read()
        parsed = parse(text)
    except (OSError, BenchmarkOutputError) as e:
        sys.exit(f"android_benchmark: --input={FLAGS.input}: {e}")
    result = to_benchmark_json(parsed, path or "", model_flops(path), FLAGS.machine)
    print(
        f"{parsed['calls']} benchmark_model call(s); timed runs: "
        f"{len(parsed['runs_us']) if parsed['runs_us'] else int(parsed['stat']['count'])}",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
