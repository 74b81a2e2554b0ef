"""Keras forward-pass latency of the released TVNs on this CPU, batch 1.

    python tools/bench_model.py [--models=tvn1,tvn2] [--threads=2] [--runs=15]

For each model: a `tf.function` forward pass of one clip (inference mode),
median of `--runs` after warm-up, next to the original TF1 code's median on
the reference machine and the machine's fp32 SGEMM rate measured in the same
run. Prints a Markdown table, then one JSON object per model as its last lines.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from tvn_tf import cli  # noqa: E402

cli.start()

FLAGS = flags.FLAGS

# The original TF1 code's median on the reference 2-core machine, ms
# (tests/testdata/original_tvn_figures.json).
_FIGURES = os.path.join(
    os.path.dirname(__file__), "..", "tests", "testdata", "original_tvn_figures.json"
)


def define_flags() -> None:
    """Defines the tool's flags (not on import)."""
    flags.DEFINE_list("models", None, "Models to time (default: all released).")
    flags.DEFINE_integer("threads", 2, "TensorFlow intra-op threads.", lower_bound=1)
    flags.DEFINE_integer("runs", 15, "Timed runs per model.", lower_bound=1)
    flags.DEFINE_integer("num_classes", 50, "Classifier width.", lower_bound=1)


def time_model(name: str, original: dict, sgemm: float) -> dict:
    """One released model's row: its size, FLOPs, Keras p50 and share of the SGEMM rate."""
    import numpy as np
    import tensorflow as tf

    from tvn_tf import perf
    from tvn_tf.models import architecture as arch_lib
    from tvn_tf.models import flops as flops_lib
    from tvn_tf.models import tvn

    arch = arch_lib.get_architecture(name)
    model = tvn.TinyVideoNetwork(arch, FLAGS.num_classes)
    flops = flops_lib.count_flops(model).forward
    clip = tf.constant(
        np.random.default_rng(0).random(
            (1, arch.num_frames, arch.image_size, arch.image_size, 3), dtype=np.float32
        )
    )
    forward = tf.function(lambda x: model(x, training=False))
    latency = perf.time_runs(lambda: forward(clip).numpy(), runs=FLAGS.runs, warmup=5)
    print(f"{name}: {latency.p50_ms:.1f} ms", file=sys.stderr)
    return {
        "model": name,
        "frames": arch.num_frames,
        "image_size": arch.image_size,
        "params": model.count_params(),
        "gflops": round(flops / 1e9, 2),
        "p50_ms": round(latency.p50_ms, 1),
        "original_ms": original[name]["median_ms_2threads"],
        "share_of_sgemm": round(flops / (latency.p50_ms / 1000) / 1e9 / sgemm, 3),
    }


def main(argv):
    del argv
    import tensorflow as tf

    from tvn_tf import perf
    from tvn_tf.models import architecture as arch_lib

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with open(_FIGURES) as f:
        original = json.load(f)["models"]
    names = FLAGS.models or arch_lib.list_architectures()
    unknown = sorted(set(names) - set(arch_lib.list_architectures()))
    if unknown:
        sys.exit(
            f"bench_model: --models: unknown {', '.join(unknown)}; expected some of "
            f"{', '.join(arch_lib.list_architectures())}."
        )
    sgemm = perf.sgemm_gflops()
    rows = [time_model(name, original, sgemm) for name in names]
    print(
        f"machine: {perf.machine_description()}; fp32 SGEMM {sgemm:.1f} GFLOP/s; "
        f"{FLAGS.threads} threads, batch 1"
    )
    print(
        "| model | frames | resolution | params | GFLOPs | Keras p50 ms | original TF1 ms | share of SGEMM |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['frames']} | {r['image_size']} | {r['params'] / 1e6:.1f}M | "
            f"{r['gflops']:.2f} | {r['p50_ms']:.1f} | {r['original_ms']:.1f} | "
            f"{r['share_of_sgemm']:.0%} |"
        )
    for r in rows:
        print(json.dumps({**r, "sgemm_gflops": round(sgemm, 1), "threads": FLAGS.threads}))


if __name__ == "__main__":
    cli.run(main, define_flags)
