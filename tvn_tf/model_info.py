"""Prints a TVN's layers, parameter counts, FLOPs and feature shape.

    python -m tvn_tf.model_info --model=tvn1 --num_classes=50
    python -m tvn_tf.model_info --arch_json=my_tvn.json --width_multiplier=0.5

The last line is one JSON object: {"model", "num_classes", "input_shape",
"trainable_params", "total_params", "flops", "feature_shape"}, with `flops`
the forward pass of one clip, multiply and add counted separately.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from absl import app
from absl import flags

from tvn_tf import cli

cli.start()

from tvn_tf import model_flags  # noqa: E402  (after cli.start)
from tvn_tf.models import architecture as arch_lib  # noqa: E402
from tvn_tf.models import memory  # noqa: E402

FLAGS = flags.FLAGS
# The classifier's width when --num_classes is not given: UCF50's.
DEFAULT_NUM_CLASSES = 50


def define_flags() -> None:
    """Defines the binary's flags: the architecture's (`model_flags`) and --num_classes.

    `--model` names an architecture here, as in `train`; an exported or
    trained model's path is `--model_path` in `predict` and `benchmark`.
    """
    model_flags.define_flags()
    flags.DEFINE_integer(
        "num_classes", DEFAULT_NUM_CLASSES, "Width of the classifier.", lower_bound=1
    )


def _describe(block) -> str:
    """A TinyBlock's ops as they run in this application (repeats stride 1)."""
    spatial, temporal = block.spatial, block.temporal
    parts = [
        f"{spatial.op} {spatial.kernel_size}x{spatial.kernel_size}/{spatial.strides}"
        if spatial.kernel_size != 1
        else "no spatial op"
    ]
    if temporal is None or temporal.window is None:
        parts.append("no temporal op")
    else:
        parts.append(f"temporal {temporal.op} {temporal.kernel_size}/{temporal.strides}")
    parts += [
        name
        for layer, name in (
            (block.bottleneck, "inv-bottle"),
            (block.residual, "skip"),
            (block.squeeze_excite, "SE"),
            (block.context_gate, "gate"),
            (block.non_local, "non-local"),
        )
        if layer is not None
    ]
    return ", ".join(parts)


def model_info(arch: arch_lib.Architecture, num_classes: int) -> tuple[str, dict[str, Any]]:
    """Builds the model for `arch` and returns (a readable table, the figures).

    Raises:
      ValueError: the model would not fit in this machine's memory
        (`memory.check_fits`, checked before anything is built), or its build ran
        out of memory all the same.
    """
    memory.check_fits(arch, num_classes)
    from tvn_tf.models import flops as flops_lib  # Imports TensorFlow: keep --help fast.
    from tvn_tf.models import blocks, tvn

    model = _build_within_memory(tvn, arch, num_classes)
    count = flops_lib.count_flops(model)
    layer_flops = dict(count.per_layer)
    rows = [("layer", "op", "frames x h x w x c", "params", "MFLOPs")]
    for layer in model.layers[1:]:
        out = layer.output.shape
        frames = getattr(layer, "output_frames", getattr(layer, "num_frames", None))
        if isinstance(layer, blocks.TinyBlock):
            op = _describe(layer)
            shape = f"{frames} x {out[1]} x {out[2]} x {out[3]}"
        else:
            op, shape = type(layer).__name__, " x ".join(str(d) for d in out[1:])
        rows.append(
            (
                layer.name,
                op,
                shape,
                f"{layer.count_params():,}",
                f"{layer_flops[layer.name] / 1e6:,.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    trainable = sum(w.numpy().size for w in model.trainable_weights)
    model_input = arch.input
    info = {
        "model": arch.name,
        "num_classes": num_classes,
        "input_shape": [None, *model.input_shape[1:]],
        "trainable_params": int(trainable),
        "total_params": int(model.count_params()),
        "flops": count.forward,
        "feature_shape": tvn.feature_shape(model),
    }
    lines += [
        "",
        f"{arch.name}: {model_input.num_frames} frames {model_input.frame_stride} apart at "
        f"{model_input.image_size}x{model_input.image_size}, {num_classes} classes",
        f"params: {info['trainable_params']:,} trainable, {info['total_params']:,} total",
        f"FLOPs per clip: {count.forward / 1e9:.3f} G forward; "
        f"{count.with_initializers / 1e9:.3f} G with the initializer term the original "
        "profile also counted",
    ]
    return "\n".join(lines), info


def _build_within_memory(tvn, arch: arch_lib.Architecture, num_classes: int):
    """`tvn.TinyVideoNetwork`, with running out of memory turned into one ValueError line."""
    try:
        return tvn.TinyVideoNetwork(arch, num_classes)
    except Exception as e:  # noqa: BLE001  (MemoryError, TensorFlow's and Keras's forms of OOM)
        oom = memory.out_of_memory(e)
        if oom is None:
            raise
        params = memory.estimate(arch, num_classes).params
        raise ValueError(
            f"{arch.name}: ran out of memory building its {params:,} parameters "
            f"({memory.describe_out_of_memory(oom)}); use a smaller architecture."
        ) from None


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        arch = model_flags.architecture_from_flags()
        table, info = model_info(arch, FLAGS.num_classes)
    except ValueError as e:
        sys.exit(f"model_info: {e}")
    print(table)
    print(json.dumps(info))


if __name__ == "__main__":
    cli.run(main, define_flags)
