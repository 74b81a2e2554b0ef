"""A small synthetic dataset in the exact UCF50 layout and codec, for quick starts.

`DIR/<Class>/v_<Class>_gNN_cMM.avi`, MPEG-4 Part 2 in AVI (tag XVID), 320x240,
25 fps. Each class is one object (shape and colour) with its own motion
pattern; each group has its own background, object scale and speed, and the
clips of a group differ in start position and phase, like UCF50 clips cut from
one source video. Held-out groups therefore test generalisation to unseen
backgrounds, scales and speeds.

Every motion survives a horizontal flip (the training augmentation): no class
is told apart by left versus right. Motion between frames 4 apart is 10-60
pixels, so 2-frame models (TVN-1) can see it. Deterministic given the seed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import multiprocessing
import os
import sys

import numpy as np
from tqdm import tqdm

from tvn_tf.data import video

HEIGHT, WIDTH, FPS = 240, 320, 25
DEFAULT_NUM_GROUPS = 7
DEFAULT_CLIPS_PER_GROUP = 4
DEFAULT_NUM_FRAMES = 50


@dataclasses.dataclass(frozen=True)
class DemoClass:
    """One synthetic action: an object's shape, colour and motion."""

    name: str
    shape: str
    color: tuple[int, int, int]
    motion: str
    size: float  # base size in pixels (radius or half-length)


DEMO_CLASSES: tuple[DemoClass, ...] = (
    DemoClass("BouncingBall", "circle", (225, 35, 35), "bounce", 20),
    DemoClass("SlidingSquare", "square", (35, 75, 235), "slide", 18),
    DemoClass("OrbitingDot", "circle", (35, 205, 60), "orbit", 11),
    DemoClass("SpinningBar", "bar", (245, 220, 30), "spin", 48),
    DemoClass("PulsingDisk", "circle", (225, 45, 205), "pulse", 24),
    DemoClass("FallingTriangle", "triangle_down", (30, 210, 225), "fall", 22),
    DemoClass("RisingTriangle", "triangle_up", (250, 135, 20), "rise", 22),
    DemoClass("ZigZagDiamond", "diamond", (250, 250, 250), "zigzag", 20),
    DemoClass("SwingingCross", "cross", (135, 55, 225), "swing", 20),
    DemoClass("ExpandingRing", "ring", (12, 12, 12), "expand", 50),
)


def make_demo_data(
    output_dir: str,
    *,
    num_groups: int = DEFAULT_NUM_GROUPS,
    clips_per_group: int = DEFAULT_CLIPS_PER_GROUP,
    num_frames: int = DEFAULT_NUM_FRAMES,
    num_classes: int = len(DEMO_CLASSES),
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
) -> int:
    """Writes the synthetic dataset under `output_dir`; returns the number of videos.

    Args:
      output_dir: Dataset root; class folders are created directly under it.
      num_groups: Groups (backgrounds, scales, speeds), 1..99.
      clips_per_group: Clips per group and class, 1..99.
      num_frames: Frames per video.
      num_classes: Use the first this many of `DEMO_CLASSES`.
      seed: Everything drawn follows from it.
      workers: Processes; 0 uses every core.
      progress: Show a progress bar.

    Raises:
      ValueError: an argument out of range (the message names it).
    """
    for name, value, low, high in (
        ("num_groups", num_groups, 1, 99),
        ("clips_per_group", clips_per_group, 1, 99),
        ("num_frames", num_frames, 1, 100000),
        ("num_classes", num_classes, 1, len(DEMO_CLASSES)),
        ("workers", workers, 0, 1024),
    ):
        if not low <= value <= high:
            raise ValueError(f"--{name} must be in [{low}, {high}], got {value}.")
    jobs = [
        (output_dir, c, g, k, num_groups, num_frames, seed)
        for c in range(num_classes)
        for g in range(1, num_groups + 1)
        for k in range(1, clips_per_group + 1)
    ]
    for c in range(num_classes):
        os.makedirs(os.path.join(output_dir, DEMO_CLASSES[c].name), exist_ok=True)

    workers = min(workers or os.cpu_count() or 1, len(jobs))
    with tqdm(total=len(jobs), unit="video", disable=not progress, file=sys.stderr) as bar:
        if workers == 1:
            for job in jobs:
                _write_video(job)
                bar.update()
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_video, jobs, chunksize=4):
                    bar.update()
    return len(jobs)


def video_name(class_name: str, group: int, clip: int) -> str:
    """UCF50 file name of a video: `v_<Class>_gNN_cMM.avi`."""
    return f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def render_video(
    class_index: int, group: int, clip: int, *, num_groups: int, num_frames: int, seed: int
) -> np.ndarray:
    """The frames of one demo video: uint8 [num_frames, 240, 320, 3]."""
    spec = DEMO_CLASSES[class_index]
    background, scale, speed = _group_look(group, num_groups, seed)
    rng = np.random.default_rng([seed, group, class_index, clip])
    color = np.clip(np.array(spec.color) + rng.integers(-15, 16, 3), 0, 255).astype(np.uint8)
    size = spec.size * scale * rng.uniform(0.9, 1.1)
    phase = rng.uniform(0, 2 * math.pi)
    anchor = (rng.uniform(0.35, 0.65) * WIDTH, rng.uniform(0.35, 0.65) * HEIGHT)
    direction = rng.choice([-1.0, 1.0])
    frames = np.empty((num_frames, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(num_frames):
        frame = frames[t]
        frame[:] = background
        x, y, angle, grow = _pose(spec.motion, t * speed, phase, anchor, direction, size)
        _draw(frame, spec.shape, x, y, size * grow, angle, color)
    return frames


def _write_video(job) -> None:
    output_dir, class_index, group, clip, num_groups, num_frames, seed = job
    name = DEMO_CLASSES[class_index].name
    path = os.path.join(output_dir, name, video_name(name, group, clip))
    tmp = os.path.join(output_dir, name, "." + video_name(name, group, clip) + ".tmp")
    frames = render_video(
        class_index, group, clip, num_groups=num_groups, num_frames=num_frames, seed=seed
    )
    video.write_avi(tmp, frames, fps=FPS, max_b_frames=2)
    os.replace(tmp, path)


@functools.lru_cache(maxsize=8)
def _group_look(group: int, num_groups: int, seed: int):
    """Background, object scale and speed of a group.

    The order of scales and speeds over groups is random: with seed 0 the held-out
    groups 6-7 have the two smallest scales (0.75, 0.84; training 0.93-1.3), their
    speeds inside the training range.
    """
    order = np.random.default_rng([seed, 0]).permutation(num_groups)
    position = order[(group - 1) % num_groups] / max(num_groups - 1, 1)
    scale = 0.75 + 0.55 * position
    speed = 1.4 - 0.7 * np.random.default_rng([seed, 1]).permutation(num_groups)[
        (group - 1) % num_groups
    ] / max(num_groups - 1, 1)
    rng = np.random.default_rng([seed, 2, group])
    c1, c2 = (_muted(rng) for _ in range(2))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    style = (group - 1) % 7
    if style == 0:  # vertical gradient
        mix = yy / HEIGHT
    elif style == 1:  # stripes
        mix = (np.floor(yy / rng.integers(14, 40)) % 2).astype(np.float32)
    elif style == 2:  # checkerboard
        cell = rng.integers(18, 48)
        mix = ((np.floor(yy / cell) + np.floor(xx / cell)) % 2).astype(np.float32)
    elif style == 3:  # smooth blobs
        coarse = rng.uniform(0, 1, (4, 5))
        mix = _upsample(coarse)
    elif style == 4:  # diagonal gradient
        mix = (xx + yy) / (WIDTH + HEIGHT)
    elif style == 5:  # concentric rings
        mix = (
            np.floor(np.hypot(xx - WIDTH / 2, yy - HEIGHT / 2) / rng.integers(12, 30)) % 2
        ).astype(np.float32)
    else:  # flat with fine texture
        mix = 0.25 * rng.uniform(0, 1, (HEIGHT, WIDTH)).astype(np.float32)
    background = c1 * (1 - mix[..., None]) + c2 * mix[..., None]
    return background.astype(np.uint8), scale, speed


def _muted(rng):
    color = rng.uniform(55, 175, 3)
    return 0.45 * color + 0.55 * color.mean()


def _upsample(coarse):
    """Bilinear upsampling of a small grid to the frame size."""
    h, w = coarse.shape
    wide = np.stack([np.interp(np.linspace(0, w - 1, WIDTH), np.arange(w), row) for row in coarse])
    return np.stack(
        [np.interp(np.linspace(0, h - 1, HEIGHT), np.arange(h), col) for col in wide.T], axis=1
    ).astype(np.float32)


def _pose(motion, t, phase, anchor, direction, size):
    """(x, y, angle, size factor) of the object at (speed-scaled) time t."""
    ax, ay = anchor
    margin = size + 4
    if motion == "bounce":
        return ax, HEIGHT - margin - 110 * abs(math.sin(0.11 * t + phase)), 0.0, 1.0
    if motion == "slide":
        return WIDTH / 2 + 105 * math.sin(0.10 * t + phase), ay, 0.0, 1.0
    if motion == "orbit":
        a = direction * 0.16 * t + phase
        return WIDTH / 2 + 70 * math.cos(a), HEIGHT / 2 + 70 * math.sin(a), 0.0, 1.0
    if motion == "spin":
        return ax, ay, direction * 0.14 * t + phase, 1.0
    if motion == "pulse":
        return ax, ay, 0.0, 1.0 + 0.55 * math.sin(0.2 * t + phase)
    if motion in ("fall", "rise"):
        span = HEIGHT + 2 * margin
        y = (ay + (1 if motion == "fall" else -1) * 4.0 * t) % span - margin
        return ax, y, 0.0, 1.0
    if motion == "zigzag":
        span = WIDTH + 2 * margin
        x = (ax + direction * 4.0 * t) % span - margin
        tri = 2 * abs(((0.06 * t + phase / (2 * math.pi)) % 1.0) - 0.5)  # 0..1 triangle wave
        return x, HEIGHT / 2 + 150 * (tri - 0.5), 0.0, 1.0
    if motion == "swing":
        theta = 0.9 * math.sin(0.12 * t + phase)
        return ax + 95 * math.sin(theta), 25 + 95 * math.cos(theta), theta, 1.0
    if motion == "expand":
        return ax, ay, 0.0, 0.2 + ((0.025 * t + phase / (2 * math.pi)) % 1.0)
    raise ValueError(f"Unknown motion {motion!r}.")


def _draw(frame, shape, x, y, size, angle, color):
    """Fills a shape centred at (x, y) into frame (in place)."""
    r = int(math.ceil(size * 1.5)) + 2
    top, bottom = max(int(y) - r, 0), min(int(y) + r + 1, HEIGHT)
    left, right = max(int(x) - r, 0), min(int(x) + r + 1, WIDTH)
    if top >= bottom or left >= right:
        return
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
    dx, dy = xx - x, yy - y
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # object coordinates
    if shape == "circle":
        mask = u * u + v * v <= size * size
    elif shape == "ring":
        d2 = u * u + v * v
        mask = (d2 <= size * size) & (d2 >= (0.7 * size) ** 2)
    elif shape == "square":
        mask = (np.abs(u) <= size) & (np.abs(v) <= size)
    elif shape == "bar":
        mask = (np.abs(u) <= size) & (np.abs(v) <= 0.16 * size)
    elif shape == "cross":
        mask = ((np.abs(u) <= size) & (np.abs(v) <= 0.3 * size)) | (
            (np.abs(v) <= size) & (np.abs(u) <= 0.3 * size)
        )
    elif shape == "diamond":
        mask = np.abs(u) + np.abs(v) <= size
    elif shape in ("triangle_up", "triangle_down"):
        w = v if shape == "triangle_down" else -v  # w grows towards the tip
        mask = (w >= -0.6 * size) & (w <= size) & (np.abs(u) <= 0.6 * (size - w))
    else:
        raise ValueError(f"Unknown shape {shape!r}.")
    frame[top:bottom, left:right][mask] = color
