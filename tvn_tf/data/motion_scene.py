"""The scene of a motion-preset video: what a group fixes and how a clip is filmed.

`motion_data` draws a class's objects; this module draws everything around
them: the group's conditions (`group_look`: a cluttered textured background,
camera style, lighting, object scale and speed, distractor count, occluding
posts, sensor noise), the camera's path over a clip (`camera_path`), the
background it sees (`background`), the posts in front of the objects
(`draw_occluders`) and the lighting and noise over the finished frames
(`apply_lighting`). Only numpy: the data tools load this without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from tvn_tf.data import drawing


@dataclasses.dataclass(frozen=True)
class GroupLook:
    """The conditions of one source video of the motion preset."""

    texture: np.ndarray  # float32 [h, w, 3], wraps around
    scale: float  # object size factor
    speed: float  # object speed factor
    pan: tuple[float, float]  # camera pan, pixels per frame (x, y)
    shake: float  # camera shake amplitude, pixels
    zoom: float  # zoom change over the clip (fraction)
    wave: tuple[float, float, float]  # background ripple: amplitude, rows per radian, radians/frame
    gain: float  # lighting
    gradient: tuple[float, float]  # lighting slope over x and y
    flicker: float  # lighting flicker amplitude
    tint: tuple[float, float, float]
    noise: np.ndarray  # int8 [4, height, width, 1] sensor noise bank
    distractors: int
    occluders: tuple[tuple[str, float, float, tuple[float, float, float]], ...]


@dataclasses.dataclass(frozen=True)
class Camera:
    """A clip's camera: its centre in texture coordinates and its zoom, per frame."""

    cx: np.ndarray
    cy: np.ndarray
    zoom: np.ndarray
    width: int
    height: int

    def to_screen(self, x, y, k: int):
        """World position (pixels, relative to the first frame's centre) to screen, frame k."""
        dx = self.cx[k] - self.cx[0]
        dy = self.cy[k] - self.cy[0]
        return (
            (x - dx) * self.zoom[k] + self.width / 2,
            (y - dy) * self.zoom[k] + self.height / 2,
        )


@functools.lru_cache(maxsize=4)
def group_look(group: int, num_groups: int, seed: int, width: int, height: int) -> GroupLook:
    """The conditions of a group; scales and speeds are spread over the groups in random order."""
    order = np.random.default_rng([seed, 10]).permutation(num_groups)
    position = order[(group - 1) % num_groups] / max(num_groups - 1, 1)
    speed_order = np.random.default_rng([seed, 11]).permutation(num_groups)
    speed_position = speed_order[(group - 1) % num_groups] / max(num_groups - 1, 1)
    rng = np.random.default_rng([seed, 12, group])
    unit = width / drawing.WIDTH
    th, tw = height + int(160 * unit), width + int(240 * unit)
    texture = _texture(rng, th, tw, unit)
    pan, shake, zoom = _camera_style(rng)
    wave = (
        (rng.uniform(1.5, 4.0) * unit, rng.uniform(4, 12) * unit, rng.uniform(0.15, 0.4))
        if rng.uniform() < 0.4
        else (0.0, 1.0, 0.0)
    )
    occluders = tuple(
        (
            "vertical" if rng.uniform() < 0.7 else "horizontal",
            float(rng.uniform(-0.35, 0.35)),
            float(rng.uniform(8, 22)),
            tuple(drawing.muted_color(rng).astype(np.float32)),
        )
        for _ in range(rng.integers(0, 3))
    )
    noise = np.clip(rng.normal(0, rng.uniform(1.5, 4), (4, height, width, 1)), -30, 30)
    return GroupLook(
        texture=texture,
        scale=0.75 + 0.55 * position,
        speed=0.8 + 0.45 * speed_position,
        pan=pan,
        shake=shake,
        zoom=zoom,
        wave=wave,
        gain=rng.uniform(0.6, 1.25),
        gradient=tuple(rng.uniform(-0.35, 0.35, 2)),
        flicker=rng.uniform(0, 0.08),
        tint=tuple(rng.uniform(0.85, 1.15, 3)),
        noise=noise.astype(np.float32),
        distractors=int(rng.integers(0, 4)),
        occluders=occluders,
    )


def _camera_style(rng):
    """(pan, shake, zoom) of a group: still, pan, shake or zoom, plus a little of each."""
    style = rng.integers(0, 4)
    pan = tuple(rng.uniform(-0.25, 0.25, 2))
    if style == 1:
        pan = (rng.choice([-1, 1]) * rng.uniform(0.4, 0.8), rng.uniform(-0.3, 0.3))
    shake = rng.uniform(0.0, 0.6) + (rng.uniform(1.0, 2.5) if style == 2 else 0.0)
    zoom = rng.uniform(-0.04, 0.04) + (
        rng.choice([-1, 1]) * rng.uniform(0.08, 0.15) if style == 3 else 0.0
    )
    return pan, shake, zoom


def _texture(rng, height, width, unit):
    """A cluttered background: a smooth colour field, a pattern and many random shapes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c1, c2, c3 = (drawing.muted_color(rng) for _ in range(3))
    smooth = drawing.upsample(rng.uniform(0, 1, (5, 6)), height, width)
    style = rng.integers(0, 4)
    period = rng.uniform(10, 30) * unit
    if style == 0:
        pattern = np.floor(yy / period) % 2
    elif style == 1:
        pattern = (np.floor(yy / period) + np.floor(xx / period)) % 2
    elif style == 2:
        pattern = 0.5 + 0.5 * np.sin(xx / period * 1.3 + 2 * np.sin(yy / (2 * period)))
    else:
        pattern = rng.uniform(0, 1, (height, width))
    pattern = pattern.astype(np.float32) * rng.uniform(0.2, 0.5)
    texture = (c1 * (1 - smooth[..., None]) + c2 * smooth[..., None]) * (
        1 - pattern[..., None]
    ) + c3 * pattern[..., None]
    texture = texture.astype(np.float32)
    for _ in range(int(rng.integers(25, 60))):  # clutter
        kind = rng.choice(["ellipse", "square", "circle"])
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        drawing.draw_shape(
            texture,
            kind,
            x,
            y,
            rng.uniform(5, 28) * unit,
            rng.uniform(0, 3.2),
            drawing.muted_color(rng).astype(np.float32),
        )
    return texture


def still_camera(look: GroupLook, num_frames: int, width: int, height: int) -> Camera:
    """A camera that neither moves nor zooms, centred on the texture."""
    th, tw = look.texture.shape[:2]
    return Camera(
        cx=np.full(num_frames, tw / 2),
        cy=np.full(num_frames, th / 2),
        zoom=np.ones(num_frames),
        width=width,
        height=height,
    )


def camera_path(
    look: GroupLook,
    rng: np.random.Generator,
    t: np.ndarray,
    u: np.ndarray,
    width: int,
    height: int,
) -> Camera:
    """The group's camera over a clip: pan, shake and zoom, from a random start.

    Args:
      look: The group's conditions.
      rng: The clip's generator (draws the shake and the start).
      t: Frame numbers, float64 [num_frames].
      u: Time as a fraction of the clip, float64 [num_frames].
      width: Frame width.
      height: Frame height.
    """
    unit = width / drawing.WIDTH
    th, tw = look.texture.shape[:2]
    shake = look.shake * rng.standard_normal((2, len(t)))
    cx = tw / 2 + rng.uniform(-60, 60) * unit + look.pan[0] * unit * t + shake[0]
    cy = th / 2 + rng.uniform(-30, 30) * unit + look.pan[1] * unit * t + shake[1]
    return Camera(cx=cx, cy=cy, zoom=1 + look.zoom * u, width=width, height=height)


def background(look: GroupLook, camera: Camera, t: np.ndarray) -> np.ndarray:
    """What the camera sees of the texture: float32 [num_frames, height, width, 3].

    One gather per clip; the texture wraps around.
    """
    th, tw = look.texture.shape[:2]
    rows = np.arange(camera.height) - camera.height / 2
    cols = np.arange(camera.width) - camera.width / 2
    zoom = camera.zoom
    ys = np.round(camera.cy[:, None] + rows[None, :] / zoom[:, None]).astype(np.int32) % th
    xs = np.round(camera.cx[:, None] + cols[None, :] / zoom[:, None]).astype(np.int32) % tw
    xs = xs[:, None, :]
    amp, row_scale, rate = look.wave
    if amp:  # a ripple that moves the background independently of the camera
        wave = amp * np.sin(rows[None, :] / row_scale + rate * t[:, None])
        xs = (xs + np.round(wave).astype(np.int32)[:, :, None]) % tw
    return look.texture[ys[:, :, None], xs]


def draw_occluders(frame: np.ndarray, look: GroupLook, camera: Camera, k: int) -> None:
    """Paints the group's posts, fixed in the world, over frame `k` (in place)."""
    unit = camera.width / drawing.WIDTH
    for orientation, position, thickness, color in look.occluders:
        half = thickness * unit * camera.zoom[k] / 2
        if orientation == "vertical":
            sx, _ = camera.to_screen(position * camera.width, 0.0, k)
            frame[:, max(int(sx - half), 0) : max(int(sx + half), 0)] = color
        else:
            _, sy = camera.to_screen(0.0, position * camera.height, k)
            frame[max(int(sy - half), 0) : max(int(sy + half), 0)] = color


def apply_lighting(
    frames: np.ndarray, look: GroupLook, rng: np.random.Generator, t: np.ndarray, clip: int
) -> None:
    """Gain, tint, a spatial gradient, flicker and sensor noise over float frames (in place).

    Draws the flicker phase from the clip's generator; clips the result to [0, 255].
    """
    height, width = frames.shape[1:3]
    rows = np.arange(height) - height / 2
    cols = np.arange(width) - width / 2
    light = (
        1
        + look.gradient[0] * (cols / width)[None, :, None]
        + look.gradient[1] * (rows / height)[:, None, None]
    ) * (look.gain * np.array(look.tint))
    frames *= light.astype(np.float32)
    flicker = 1 + look.flicker * np.sin(0.9 * t + rng.uniform(0, 2 * math.pi))
    frames *= flicker.astype(np.float32)[:, None, None, None]
    frames += look.noise[(t.astype(int) + clip) % len(look.noise)]
    np.clip(frames, 0, 255, out=frames)
