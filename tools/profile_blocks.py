"""Where a TVN's TFLite latency goes, block by block (tvn_tf.deploy.profile).

    python tools/profile_blocks.py --model=tvn1 --variant=int8 --threads=2
    python tools/profile_blocks.py --arch_json=runs/search_demo/best_architecture.json

Builds the architecture (`--model` / `--arch_json` and the scaling flags of
`tvn_tf.model_flags`), converts every prefix of it (up to each block
application, then the whole model) to `--variant`, and times them in the
LiteRT interpreter with XNNPACK, alternating. Each block's time is the
difference between two prefixes. This names the Keras block a time belongs
to, which the per-op profile (`python -m tvn_tf.benchmark --op_profile=...`,
LiteRT's profiler) does not: XNNPACK's operators carry no layer names. Weights
are random; int8 calibrates on random clips: the ops and shapes are the
export's, the time does not depend on the weights.

Prints a table (block, FLOPs, ms, share of the total); the last line is one
JSON object: {"model", "variant", "threads", "image_size", "total_ms",
"blocks": [{"layer", "flops", "ms", "share"}, ...], "machine"}.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from tvn_tf import cli  # noqa: E402

cli.start()

from tvn_tf import model_flags  # noqa: E402  (--model, --arch_json, scaling)
from tvn_tf.deploy import tflite  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the tool's flags: the architecture's (`model_flags`) and its own."""
    model_flags.define_flags()
    flags.DEFINE_enum("variant", "int8", list(tflite.VARIANTS), "TFLite variant to time.")
    flags.DEFINE_integer("threads", 2, "Interpreter threads.", lower_bound=1)
    flags.DEFINE_integer("image_size", 0, "Input resolution; overrides the model's (0: keep).")
    flags.DEFINE_integer("num_classes", 10, "Classifier width.", lower_bound=1)
    flags.DEFINE_integer("rounds", 5, "Alternating rounds over the prefixes.", lower_bound=1)
    flags.DEFINE_integer("runs_per_round", 6, "Timed runs of each prefix per round.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from tvn_tf import perf
    from tvn_tf.deploy import profile
    from tvn_tf.models import tvn

    try:
        arch = model_flags.with_image_size(model_flags.architecture_from_flags(), FLAGS.image_size)
    except ValueError as e:
        sys.exit(f"profile_blocks: {e}")
    model = tvn.TinyVideoNetwork(arch, num_classes=FLAGS.num_classes)
    rows = profile.block_times(
        model,
        FLAGS.variant,
        threads=FLAGS.threads,
        rounds=FLAGS.rounds,
        runs_per_round=FLAGS.runs_per_round,
        progress=True,
    )
    blocks = profile.to_json(rows)
    total = rows[-1].cumulative_ms
    print(
        f"{arch.name} at {arch.image_size}, {FLAGS.variant}, {FLAGS.threads} threads, "
        f"{perf.machine_description()}:"
    )
    print("| layer | MFLOPs | ms | share |\n|---|---|---|---|")
    for row in blocks:
        print(
            f"| {row['layer']} | {row['flops'] / 1e6:.1f} | {row['ms']:.2f} | {row['share']:.1%} |"
        )
    print(f"| total | {sum(r.flops for r in rows) / 1e6:.1f} | {total:.2f} | 100% |")
    print(
        json.dumps(
            {
                "model": arch.name,
                "variant": FLAGS.variant,
                "threads": FLAGS.threads,
                "image_size": arch.image_size,
                "total_ms": round(total, 3),
                "blocks": blocks,
                "machine": perf.machine_description(),
            }
        )
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
