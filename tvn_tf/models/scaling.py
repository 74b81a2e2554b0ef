"""Scaling an architecture along the paper's axes: resolution, width, depth, frames.

    tvn1 = architecture.get_architecture("tvn1")
    bigger = scale_architecture(tvn1, compound=1.0)       # EfficientNet-style phi
    smaller = scale_architecture(tvn1, compound=-2.0)     # phi < 0 scales down
    narrow = scale_architecture(tvn1, width=0.5, resolution=0.5)

The result is validated like a JSON file (`architecture.LIMITS`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from tvn_tf.models import architecture as arch_lib

# EfficientNet's compound scaling constants (Tan & Le 2019): depth, width and
# resolution grow as alpha**phi, beta**phi, gamma**phi.
COMPOUND_ALPHA = 1.2
COMPOUND_BETA = 1.1
COMPOUND_GAMMA = 1.15


def round_filters(filters: int, multiplier: float, divisor: int = 8) -> int:
    """Scales a width and rounds it to a multiple of `divisor` (as EfficientNet).

    A multiplier of 1 returns `filters` unchanged, so odd released widths (348)
    survive.
    """
    if multiplier == 1:
        return filters
    scaled = filters * multiplier
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:  # Never round down by more than 10%.
        rounded += divisor
    return int(rounded)


def _multipliers(
    resolution: float, width: float, depth: float, frames: float, compound: float
) -> tuple[float, float, float, float]:
    """Validates `scale_architecture`'s multipliers and folds `compound` into them."""
    names = ("resolution", "width", "depth", "frames")
    for flag, value in zip(names, (resolution, width, depth, frames)):
        if not value > 0:
            raise ValueError(f"Scaling multiplier '{flag}' is {value!r}; expected a number > 0.")
    if not math.isfinite(compound):
        raise ValueError(f"Scaling 'compound' is {compound!r}; expected a finite number.")
    return (
        resolution * COMPOUND_GAMMA**compound,
        width * COMPOUND_BETA**compound,
        depth * COMPOUND_ALPHA**compound,
        frames,
    )


def scale_architecture(
    arch: arch_lib.Architecture,
    resolution: float = 1.0,
    width: float = 1.0,
    depth: float = 1.0,
    frames: float = 1.0,
    compound: float = 0.0,
) -> arch_lib.Architecture:
    """Scales an architecture along the paper's axes.

    Args:
      arch: The architecture to scale.
      resolution: Multiplier for the input image size (rounded to a multiple of 8).
      width: Multiplier for every block's filters (rounded to a multiple of 8).
      depth: Multiplier for every block's repeats (rounded up).
      frames: Multiplier for the number of input frames (rounded, at least 1).
      compound: EfficientNet-style coefficient phi; multiplies depth by
        1.2**phi, width by 1.1**phi and resolution by 1.15**phi on top of the
        explicit multipliers. A negative phi scales down (to at least 32 px,
        8 filters and one repeat per block).

    Returns:
      A new `Architecture`; the name records the scaling. All multipliers at
      their defaults return `arch` itself.

    Raises:
      ValueError: if a multiplier is not positive, or the scaled architecture
        is outside `architecture.LIMITS` (naming the block, field and value).
    """
    resolution, width, depth, frames = _multipliers(resolution, width, depth, frames, compound)
    if (resolution, width, depth, frames) == (1, 1, 1, 1):
        return arch
    image_size = arch.image_size
    if resolution != 1:
        image_size = max(32, int(round(arch.image_size * resolution / 8)) * 8)
    num_frames = max(1, int(round(arch.num_frames * frames)))
    blocks = tuple(
        dataclasses.replace(
            b,
            filters=round_filters(b.filters, width),
            repeats=b.repeats if depth == 1 else int(math.ceil(b.repeats * depth)),
        )
        for b in arch.blocks
    )
    parts = [
        f"{k}{v:g}"
        for k, v in (("r", resolution), ("w", width), ("d", depth), ("f", frames))
        if v != 1
    ]
    scaled = arch_lib.Architecture(
        name=f"{arch.name}_" + "_".join(parts),
        num_frames=num_frames,
        frame_stride=arch.frame_stride,
        image_size=image_size,
        blocks=blocks,
    )
    # The same limits as a JSON file: a width of 1000x would only exhaust memory.
    return arch_lib.architecture_from_json(scaled.to_json(), scaled.name)


def largest_compound(
    too_big: Callable[[float], bool], step: float = 0.25, lowest: float = -16.0
) -> tuple[float, bool]:
    """The largest phi <= 0 on the grid 0, -step, -2 step, ..., `lowest` that fits a budget.

    Scaling a network down to a device's latency (or size) budget: the budget
    only has to be monotone in phi, so the grid is bisected, asking
    `too_big(phi)` about 2 + log2(grid size) times (10 for the defaults).

        phi, fits = largest_compound(lambda phi: latency_ms(phi) > 5.0)

    Returns:
      (phi, fits): `fits` is False when even `lowest` is too big (phi is then `lowest`).

    Raises:
      ValueError: a step that is not positive or a lowest phi that is not negative.
    """
    if not step > 0 or not lowest < 0:
        raise ValueError(f"step {step}, lowest {lowest}: expected a step > 0 and a lowest < 0.")
    last = int(math.floor(-lowest / step + 1e-9))
    if not too_big(0.0):
        return 0.0, True
    if too_big(-last * step):
        return -last * step, False
    big, small = 0, last  # Grid indices: phi = -index * step; big is too big, small is not.
    while small - big > 1:
        middle = (big + small) // 2
        if too_big(-middle * step):
            big = middle
        else:
            small = middle
    return -small * step, True
