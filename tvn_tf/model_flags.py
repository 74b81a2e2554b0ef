"""Flags that pick and scale an architecture, shared by every binary.

--model=tvn1 | --arch_json=FILE
--resolution_multiplier --width_multiplier --depth_multiplier
--frames_multiplier --compound_coefficient
"""

from __future__ import annotations

import dataclasses

from absl import flags

from tvn_tf.models import architecture as arch_lib

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "model", "tvn1", "A released architecture: " + ", ".join(arch_lib.list_architectures()) + "."
)
flags.DEFINE_string("arch_json", None, "A custom architecture JSON file; overrides --model.")
flags.DEFINE_float("resolution_multiplier", 1.0, "Scales the input image size.", lower_bound=0.01)
flags.DEFINE_float("width_multiplier", 1.0, "Scales every block's filters.", lower_bound=0.01)
flags.DEFINE_float("depth_multiplier", 1.0, "Scales every block's repeats.", lower_bound=0.01)
flags.DEFINE_float("frames_multiplier", 1.0, "Scales the number of input frames.", lower_bound=0.01)
flags.DEFINE_float(
    "compound_coefficient",
    0.0,
    "EfficientNet-style phi: depth x1.2^phi, width x1.1^phi, resolution "
    "x1.15^phi, on top of the multipliers.",
    lower_bound=0.0,
)


def architecture_from_flags() -> arch_lib.Architecture:
    """The architecture the flags name, scaled.

    Raises:
      ValueError: naming the flag (or the JSON file, block and field) at fault.
    """
    if FLAGS.arch_json:
        arch = arch_lib.load_architecture_json(FLAGS.arch_json)
    else:
        try:
            arch = arch_lib.get_architecture(FLAGS.model)
        except ValueError as e:
            raise ValueError(f"--model: {e}") from None
    return arch_lib.scale_architecture(
        arch,
        resolution=FLAGS.resolution_multiplier,
        width=FLAGS.width_multiplier,
        depth=FLAGS.depth_multiplier,
        frames=FLAGS.frames_multiplier,
        compound=FLAGS.compound_coefficient,
    )


def with_image_size(arch: arch_lib.Architecture, image_size: int) -> arch_lib.Architecture:
    """`arch` at `--image_size` (0 or its own size: unchanged), renamed `NAME_SIZEpx`.

    Raises:
      ValueError: a size below 32, naming `--image_size`.
    """
    if not image_size or image_size == arch.image_size:
        return arch
    if image_size < 32:
        raise ValueError(f"--image_size={image_size}; expected at least 32.")
    return dataclasses.replace(arch, image_size=image_size, name=f"{arch.name}_{image_size}px")
