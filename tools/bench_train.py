"""Training throughput of TVN-1 on this CPU, float32 and mixed_bfloat16.

    python tools/bench_train.py [--model=tvn1] [--batch_size=8] [--steps=6]

Times the real training step (`tvn_tf.training.step.make_replica_step`: forward, loss,
backward, SGD update) on random clips, so the figure is the model's compute
alone (the input pipeline has its own benchmark, tools/bench_input.py), next to
the machine's fp32 SGEMM rate measured in the same run. Last line, one JSON
object: {"fp32_clips_per_s", "bf16_clips_per_s", "sgemm_gflops",
"fp32_share_of_sgemm"}, where the share prices a training step at 3x the
forward FLOPs.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from tvn_tf import cli  # noqa: E402

cli.start()

import keras  # noqa: E402  (after cli.start)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tvn_tf import perf  # noqa: E402
from tvn_tf.models import architecture as arch_lib  # noqa: E402
from tvn_tf.models import flops as flops_lib  # noqa: E402
from tvn_tf.models import tvn  # noqa: E402
from tvn_tf.training import optimization  # noqa: E402
from tvn_tf.training import step as step_lib  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the tool's flags (not on import)."""
    flags.DEFINE_string("model", "tvn1", "Released architecture to time.")
    flags.DEFINE_integer("batch_size", 8, "Clips per step.", lower_bound=1)
    flags.DEFINE_integer(
        "steps", 6, "Timed steps per precision (after 2 warm-up steps).", lower_bound=1
    )
    flags.DEFINE_integer("num_classes", 50, "Classifier width.", lower_bound=1)


def clips_per_second(arch, precision: str, batch_size: int, steps: int) -> float:
    """Median-step training throughput of `arch` under a Keras dtype policy."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = tvn.TinyVideoNetwork(arch, FLAGS.num_classes)
        schedule = optimization.WarmupCosineDecay(0.01, 0, 1000)
        optimizer = optimization.make_optimizer("momentum", schedule, weight_decay=1e-4)
        step = tf.function(
            step_lib.make_replica_step(model, optimizer, FLAGS.num_classes, 0.1, batch_size)
        )
        rng = np.random.default_rng(0)
        clips = tf.constant(
            rng.uniform(
                -1, 1, (batch_size, arch.num_frames, arch.image_size, arch.image_size, 3)
            ).astype(np.float32)
        )
        labels = tf.constant(rng.integers(0, FLAGS.num_classes, batch_size), tf.int32)
        latency = perf.time_runs(lambda: float(step(clips, labels)[0]), runs=steps, warmup=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return batch_size / (latency.p50_ms / 1000)


def main(argv):
    del argv
    try:
        arch = arch_lib.get_architecture(FLAGS.model)
    except ValueError as e:
        sys.exit(f"bench_train: --model: {e}")
    forward = flops_lib.count_flops(tvn.TinyVideoNetwork(arch, FLAGS.num_classes)).forward
    sgemm = perf.sgemm_gflops()
    fp32 = clips_per_second(arch, "float32", FLAGS.batch_size, FLAGS.steps)
    bf16 = clips_per_second(arch, "mixed_bfloat16", FLAGS.batch_size, FLAGS.steps)
    share = fp32 * 3 * forward / 1e9 / sgemm
    print(f"machine: {perf.machine_description()}")
    print(
        f"{FLAGS.model} training, batch {FLAGS.batch_size}, "
        f"{arch.image_size}x{arch.image_size}x{arch.num_frames}: "
        f"float32 {fp32:.2f} clips/s, mixed_bfloat16 {bf16:.2f} clips/s "
        f"({bf16 / fp32:.2f}x); fp32 SGEMM {sgemm:.0f} GFLOP/s; float32 training runs at "
        f"{share:.0%} of it (3 x {forward / 1e9:.2f} GFLOPs per clip)"
    )
    print(
        json.dumps(
            {
                "fp32_clips_per_s": round(fp32, 3),
                "bf16_clips_per_s": round(bf16, 3),
                "sgemm_gflops": round(sgemm, 1),
                "fp32_share_of_sgemm": round(share, 3),
            }
        )
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
