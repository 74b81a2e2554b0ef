"""Flags that pick and scale an architecture, shared by the binaries that build one.

--model=tvn1 | --arch_json=FILE
--resolution_multiplier --width_multiplier --depth_multiplier
--frames_multiplier --compound_coefficient

A binary calls `define_flags()` from its own `define_flags` and, once flags are
parsed, `architecture_from_flags()`.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from tvn_tf import cli
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import scaling

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class ArchitectureOptions:
    """Which architecture to build, and how to scale it (`scaling.scale_architecture`).

    Attributes:
      model: A released architecture's name (`architecture.list_architectures`).
      arch_json: A custom architecture JSON file; overrides `model`.
      resolution_multiplier, width_multiplier, depth_multiplier,
        frames_multiplier: Scale the input size, every block's filters, every
        block's repeats and the number of input frames.
      compound_coefficient: EfficientNet-style phi, on top of the multipliers.
    """

    model: str = "tvn1"
    arch_json: str | None = None
    resolution_multiplier: float = 1.0
    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    frames_multiplier: float = 1.0
    compound_coefficient: float = 0.0

    def architecture(self) -> arch_lib.Architecture:
        """The architecture these options name, scaled.

        Raises:
          ValueError: naming the flag (or the JSON file, block and field) at fault.
        """
        if self.arch_json:
            arch = arch_lib.load_architecture_json(self.arch_json)
        else:
            try:
                arch = arch_lib.get_architecture(self.model)
            except ValueError as e:
                raise ValueError(f"--model: {e}") from None
        return scaling.scale_architecture(
            arch,
            resolution=self.resolution_multiplier,
            width=self.width_multiplier,
            depth=self.depth_multiplier,
            frames=self.frames_multiplier,
            compound=self.compound_coefficient,
        )


_DEFAULTS = ArchitectureOptions()


def define_flags() -> None:
    """Defines --model, --arch_json and the scaling flags."""
    flags.DEFINE_string(
        "model",
        _DEFAULTS.model,
        "A released architecture: " + ", ".join(arch_lib.list_architectures()) + ".",
    )
    flags.DEFINE_string(
        "arch_json", _DEFAULTS.arch_json, "A custom architecture JSON file; overrides --model."
    )
    for name, what in (
        ("resolution_multiplier", "Scales the input image size."),
        ("width_multiplier", "Scales every block's filters."),
        ("depth_multiplier", "Scales every block's repeats."),
        ("frames_multiplier", "Scales the number of input frames."),
    ):
        flags.DEFINE_float(name, getattr(_DEFAULTS, name), what, lower_bound=0.01)
    flags.DEFINE_float(
        "compound_coefficient",
        _DEFAULTS.compound_coefficient,
        "EfficientNet-style phi: depth x1.2^phi, width x1.1^phi, resolution "
        "x1.15^phi, on top of the multipliers; negative scales down.",
    )


def architecture_from_flags() -> arch_lib.Architecture:
    """The architecture the flags name, scaled (`ArchitectureOptions.architecture`).

    Raises:
      ValueError: naming the flag (or the JSON file, block and field) at fault.
    """
    return cli.from_flags(ArchitectureOptions).architecture()


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
