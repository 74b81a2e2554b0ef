"""Drawing for the synthetic datasets: filled shapes, muted colours, smooth fields.

Both presets of `demo_data` (the demo and `motion_data`) draw with these, in
vectorised numpy: a shape is a mask over its bounding box, filled in place.
Only numpy: the data tools load this without TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np

HEIGHT, WIDTH = 240, 320  # UCF50's frame size, the presets' default

# Inner radius of a ring, as a fraction of its outer radius.
_RING_INNER = {"ring": 0.6, "thin_ring": 0.7}


def draw_shape(
    frame: np.ndarray,
    shape: str,
    x: float,
    y: float,
    size: float,
    angle: float,
    color: np.ndarray,
) -> None:
    """Fills a shape centred at (x, y), turned by `angle`, into `frame` (in place).

    Args:
      frame: [height, width, 3] uint8 or float frame of any size; pixels
        outside it are clipped away.
      shape: "circle", "ellipse", "ring", "thin_ring", "square", "rect"
        (axis-aligned, half as high as wide), "bar", "cross", "diamond",
        "triangle_up", "triangle_down", or "wheel" (a disc with one dark spoke,
        whose angle shows the rotation).
      x: Centre, column in pixels.
      y: Centre, row in pixels.
      size: Radius or half-length in pixels.
      angle: Rotation in radians.
      color: RGB colour.

    Raises:
      ValueError: an unknown shape.
    """
    height, width = frame.shape[:2]
    r = int(math.ceil(size * 1.5)) + 2
    top, bottom = max(int(y) - r, 0), min(int(y) + r + 1, height)
    left, right = max(int(x) - r, 0), min(int(x) + r + 1, width)
    if top >= bottom or left >= right:
        return
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
    dx, dy = xx - x, yy - y
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # object coordinates
    region = frame[top:bottom, left:right]
    if shape == "wheel":
        region[u * u + v * v <= size * size] = color
        region[(np.abs(v) <= 0.22 * size) & (u >= 0) & (u <= size)] = 0.3 * color
        return
    region[_mask(shape, size, u, v, dx, dy)] = color


def _mask(shape, size, u, v, dx, dy):
    """Where `shape` is, from object coordinates (u, v) and offsets (dx, dy)."""
    if shape == "circle":
        return u * u + v * v <= size * size
    if shape == "ellipse":
        return (u / size) ** 2 + (v / (0.55 * size)) ** 2 <= 1
    if shape in _RING_INNER:
        d2 = u * u + v * v
        return (d2 <= size * size) & (d2 >= (_RING_INNER[shape] * size) ** 2)
    if shape == "square":
        return (np.abs(u) <= size) & (np.abs(v) <= size)
    if shape == "rect":
        return (np.abs(dx) <= size) & (np.abs(dy) <= 0.5 * size)  # axis-aligned
    if shape == "bar":
        return (np.abs(u) <= size) & (np.abs(v) <= 0.16 * size)
    if shape == "cross":
        return ((np.abs(u) <= size) & (np.abs(v) <= 0.3 * size)) | (
            (np.abs(v) <= size) & (np.abs(u) <= 0.3 * size)
        )
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= size
    if shape in ("triangle_up", "triangle_down"):
        w = v if shape == "triangle_down" else -v  # w grows towards the tip
        return (w >= -0.6 * size) & (w <= size) & (np.abs(u) <= 0.6 * (size - w))
    raise ValueError(f"Unknown shape {shape!r}.")


def muted_color(rng: np.random.Generator) -> np.ndarray:
    """A random greyish colour (float64 RGB): backgrounds that do not outshine objects."""
    color = rng.uniform(55, 175, 3)
    return 0.45 * color + 0.55 * color.mean()


def upsample(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a small grid to `height` x `width` (float64)."""
    h, w = coarse.shape
    wide = np.stack([np.interp(np.linspace(0, w - 1, width), np.arange(w), row) for row in coarse])
    return np.stack(
        [np.interp(np.linspace(0, h - 1, height), np.arange(h), col) for col in wide.T], axis=1
    )
