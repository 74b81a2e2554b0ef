"""Synthetic datasets in the exact UCF50 layout and codec: an easy demo and a hard benchmark.

`make_demo_data` writes `DIR/<Class>/v_<Class>_gNN_cMM.avi`, MPEG-4 Part 2 in
AVI (tag XVID), 320x240 by default, 25 fps (`tools/make_demo_data.py`). Two
presets, both deterministic given the seed:

**demo** (`DEMO_CLASSES`, the default, drawn here): each class is one object
(shape and colour) with its own motion pattern; each group has its own
background, object scale and speed, and the clips of a group differ in start
position and phase, like UCF50 clips cut from one source video. Held-out
groups therefore test generalisation to unseen backgrounds, scales and speeds.
Every motion survives a horizontal flip (the training augmentation): no class
is told apart by left versus right. Motion between frames 4 apart is 10-60
pixels, so 2-frame models (TVN-1) can see it. One frame names the class (each
has its own shape), so a 2-frame model all but solves it: good for a quick
start, useless to compare architectures.

**motion** (`motion_data.MOTION_CLASSES`, `--preset=motion`): 20 classes in 7
families that only motion tells apart, under nuisances (moving camera,
clutter, lighting, distractors, occlusion); `motion_data` describes them.

Both presets draw with vectorised numpy (`drawing`). Only numpy and PyAV: the
data tools load this without TensorFlow.
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

from tvn_tf.data import drawing, motion_data, video

HEIGHT, WIDTH = drawing.HEIGHT, drawing.WIDTH
FPS = 25
DEFAULT_NUM_GROUPS = 7
DEFAULT_CLIPS_PER_GROUP = 4
DEFAULT_NUM_FRAMES = 50
DEMO_QUALITY = 4  # MPEG-4 quantiser scale (`video.write_avi`'s default): little visible loss
PRESETS = ("demo", "motion")


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
    DemoClass("ExpandingRing", "thin_ring", (12, 12, 12), "expand", 50),
)


def make_demo_data(
    output_dir: str,
    *,
    preset: str = "demo",
    num_groups: int | None = None,
    clips_per_group: int | None = None,
    num_frames: int | None = None,
    num_classes: int | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
) -> int:
    """Writes the synthetic dataset under `output_dir`; returns the number of videos.

    Args:
      output_dir: Dataset root; class folders are created directly under it.
      preset: One of `PRESETS`: "demo" (easy) or "motion" (see `motion_data`).
      num_groups: Groups (source-video conditions), 1..99; None: the preset's.
      clips_per_group: Clips per group and class, 1..99; None: the preset's.
      num_frames: Frames per video; None: the preset's.
      num_classes: Use the first this many classes of the preset; None: all.
      width: Frame width, even; only the "motion" preset draws other than 320.
      height: Frame height, even; only the "motion" preset draws other than 240.
      seed: Everything drawn follows from it.
      workers: Processes; 0 uses every core.
      progress: Show a progress bar.

    Raises:
      ValueError: an argument out of range (the message names it).
    """
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}.")
    classes = _preset_classes(preset)
    motion = preset == "motion"
    if num_groups is None:
        num_groups = motion_data.MOTION_NUM_GROUPS if motion else DEFAULT_NUM_GROUPS
    if clips_per_group is None:
        clips_per_group = motion_data.MOTION_CLIPS_PER_GROUP if motion else DEFAULT_CLIPS_PER_GROUP
    if num_frames is None:
        num_frames = motion_data.MOTION_NUM_FRAMES if motion else DEFAULT_NUM_FRAMES
    if num_classes is None:
        num_classes = len(classes)
    _check_sizes(
        preset, num_groups, clips_per_group, num_frames, num_classes, width, height, workers
    )
    jobs = [
        (output_dir, preset, c, g, k, num_groups, num_frames, seed, width, height)
        for c in range(num_classes)
        for g in range(1, num_groups + 1)
        for k in range(1, clips_per_group + 1)
    ]
    for c in range(num_classes):
        os.makedirs(os.path.join(output_dir, classes[c].name), exist_ok=True)
    _run(jobs, workers, progress)
    return len(jobs)


def _preset_classes(preset: str):
    return motion_data.MOTION_CLASSES if preset == "motion" else DEMO_CLASSES


def _check_sizes(
    preset, num_groups, clips_per_group, num_frames, num_classes, width, height, workers
):
    """Raises ValueError, naming the flag, for a size out of range."""
    for name, value, low, high in (
        ("num_groups", num_groups, 1, 99),
        ("clips_per_group", clips_per_group, 1, 99),
        ("num_frames", num_frames, 1, 100000),
        ("num_classes", num_classes, 1, len(_preset_classes(preset))),
        ("width", width, 32, 1920),
        ("height", height, 32, 1080),
        ("workers", workers, 0, 1024),
    ):
        if not low <= value <= high:
            raise ValueError(f"--{name} must be in [{low}, {high}], got {value}.")
    if width % 2 or height % 2:
        raise ValueError(f"--width and --height must be even, got {width}x{height}.")
    if preset != "motion" and (width, height) != (WIDTH, HEIGHT):
        raise ValueError(
            f"--width and --height: the demo preset is {WIDTH}x{HEIGHT} only "
            f"(other sizes need --preset=motion), got {width}x{height}."
        )


def _run(jobs, workers, progress) -> None:
    """Writes every job's video, in `workers` processes (0: every core)."""
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


def _write_video(job) -> None:
    """Renders and writes one video, atomically (a hidden temporary file, then a rename)."""
    output_dir, preset, class_index, group, clip, num_groups, num_frames, seed, width, height = job
    if preset == "motion":
        name = motion_data.MOTION_CLASSES[class_index].name
        frames = motion_data.render_motion_video(
            class_index,
            group,
            clip,
            num_groups=num_groups,
            num_frames=num_frames,
            seed=seed,
            width=width,
            height=height,
        )
        quality = motion_data.MOTION_QUALITY
    else:
        name = DEMO_CLASSES[class_index].name
        frames = render_video(
            class_index, group, clip, num_groups=num_groups, num_frames=num_frames, seed=seed
        )
        quality = DEMO_QUALITY
    path = os.path.join(output_dir, name, video_name(name, group, clip))
    tmp = os.path.join(output_dir, name, "." + video_name(name, group, clip) + ".tmp")
    video.write_avi(tmp, frames, fps=FPS, quality=quality, max_b_frames=2)
    os.replace(tmp, path)


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
        drawing.draw_shape(frame, spec.shape, x, y, size * grow, angle, color)
    return frames


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
    c1, c2 = (drawing.muted_color(rng) for _ in range(2))
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
        mix = drawing.upsample(coarse, HEIGHT, WIDTH).astype(np.float32)
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
