"""Synthetic datasets in the exact UCF50 layout and codec: an easy demo and a hard benchmark.

`DIR/<Class>/v_<Class>_gNN_cMM.avi`, MPEG-4 Part 2 in AVI (tag XVID), 320x240,
25 fps. Two presets, both deterministic given the seed:

**demo** (`DEMO_CLASSES`, the default): each class is one object (shape and
colour) with its own motion pattern; each group has its own background, object
scale and speed, and the clips of a group differ in start position and phase,
like UCF50 clips cut from one source video. Held-out groups therefore test
generalisation to unseen backgrounds, scales and speeds. Every motion survives
a horizontal flip (the training augmentation): no class is told apart by left
versus right. Motion between frames 4 apart is 10-60 pixels, so 2-frame models
(TVN-1) can see it. One frame names the class (each has its own shape), so a
2-frame model all but solves it: good for a quick start, useless to compare
architectures.

**motion** (`MOTION_CLASSES`, `--preset=motion`): 20 classes in 7 families.
Within a family every class has the same object (shape, colour, size): a
single frame is ambiguous between them, and only motion, often only its
course over the whole clip, tells them apart, so that more frames and a wider
temporal stride pay off. Horizontal motion goes left or right at random per
clip, and a class is never told by left versus right nor by the sense of a
rotation, because the horizontal-flip augmentation maps each to its opposite
(and keeps up/down, growing/shrinking, speeds, speed changes, periodicity and
contact). The families:

- vertical (square): RiseUp, FallDown, TossUp (up, then down). Up versus down
  survives a horizontal flip; TossUp matches RiseUp over its first half.
- depth (ring): Approach (grows 0.55x to 1.5x), Recede (shrinks), LoomAndGo
  (grows, then shrinks). Camera zoom (up to about 20%) is a nuisance to see past.
- rotation (a disc with one spoke): Roll (turns as a wheel rolling along its
  path), BackSpin (turns the other way), Skid (slides without turning). The
  rotation sense relative to the travel survives a flip, the sense alone would
  not; the spoke angle of one frame is random.
- acceleration (bar): SpeedUp, SlowDown, Cruise: the same path length in the
  same time; only the order of slow and fast parts differs.
- speed (diamond): DriftSlow, DriftMedium, DriftFast: 1, 2 and 3.6 pixels per
  frame, times the group's speed factor (0.8-1.25) and seen through camera pan,
  so that speed is relative, as in real video.
- periodic (cross): SwingRepeat (2.5 periods per clip) versus SwingOnce (one
  period at a random time, still otherwise).
- interaction (two identical balls meeting): Collide (bounce back at contact),
  PassThrough (go on, one over the other), MeetAndStick (stop at contact).

Each of `MOTION_NUM_GROUPS` (12) groups fixes the conditions of one source video,
as UCF50's groups do, all drawn from the seed, so held-out groups are unseen:
a cluttered textured background (smooth colour field, stripes, checks, waves or
grain, and 25-60 random shapes), some with a ripple that moves it on its own;
camera motion (still, pan, shake or zoom, with a little of each); lighting
(gain 0.6-1.25, a spatial gradient, a colour tint, flicker); object scale
(0.75-1.3) and speed (0.8-1.25); 0-3 distractors (shapes of random colour that
move but belong to no class); 0-2 occluding posts in front of the objects; and
sensor noise. Clips of a group differ in position, direction, phase, timing,
colour shade and the distractors' paths. The videos are compressed harder
than the demo's (quantiser `MOTION_QUALITY` = 12, about 1-2 Mbit/s), so that
compression artefacts blur small motion as in web video.

Both presets draw with vectorised numpy (masks over bounding boxes, one gather
per clip for the moving background); 720 motion videos of 40 frames take a few
minutes on 2 cores.
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
    DemoClass("ExpandingRing", "ring", (12, 12, 12), "expand", 50),
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
      preset: One of `PRESETS`: "demo" (easy) or "motion" (see the module docstring).
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
    motion = preset == "motion"
    classes = MOTION_CLASSES if motion else DEMO_CLASSES
    if num_groups is None:
        num_groups = MOTION_NUM_GROUPS if motion else DEFAULT_NUM_GROUPS
    if clips_per_group is None:
        clips_per_group = MOTION_CLIPS_PER_GROUP if motion else DEFAULT_CLIPS_PER_GROUP
    if num_frames is None:
        num_frames = MOTION_NUM_FRAMES if motion else DEFAULT_NUM_FRAMES
    if num_classes is None:
        num_classes = len(classes)
    for name, value, low, high in (
        ("num_groups", num_groups, 1, 99),
        ("clips_per_group", clips_per_group, 1, 99),
        ("num_frames", num_frames, 1, 100000),
        ("num_classes", num_classes, 1, len(classes)),
        ("width", width, 32, 1920),
        ("height", height, 32, 1080),
        ("workers", workers, 0, 1024),
    ):
        if not low <= value <= high:
            raise ValueError(f"--{name} must be in [{low}, {high}], got {value}.")
    if width % 2 or height % 2:
        raise ValueError(f"--width and --height must be even, got {width}x{height}.")
    if not motion and (width, height) != (WIDTH, HEIGHT):
        raise ValueError(
            f"--width and --height: the demo preset is {WIDTH}x{HEIGHT} only "
            f"(other sizes need --preset=motion), got {width}x{height}."
        )
    if motion:
        write = _write_motion_video
        jobs = [
            (output_dir, c, g, k, num_groups, num_frames, seed, width, height)
            for c in range(num_classes)
            for g in range(1, num_groups + 1)
            for k in range(1, clips_per_group + 1)
        ]
    else:
        write = _write_video
        jobs = [
            (output_dir, c, g, k, num_groups, num_frames, seed)
            for c in range(num_classes)
            for g in range(1, num_groups + 1)
            for k in range(1, clips_per_group + 1)
        ]
    for c in range(num_classes):
        os.makedirs(os.path.join(output_dir, classes[c].name), exist_ok=True)

    workers = min(workers or os.cpu_count() or 1, len(jobs))
    with tqdm(total=len(jobs), unit="video", disable=not progress, file=sys.stderr) as bar:
        if workers == 1:
            for job in jobs:
                write(job)
                bar.update()
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(write, jobs, chunksize=4):
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


# --- The "motion" preset ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MotionClass:
    """One class of the motion preset: its family (one look) and its motion."""

    name: str
    family: str
    motion: str


# Each family has one look (shape, colour, size); its classes differ only in motion.
MOTION_FAMILIES: dict[str, tuple[str, tuple[int, int, int], float]] = {
    "vertical": ("square", (235, 140, 30), 16),
    "depth": ("ring", (40, 200, 225), 22),
    "rotation": ("wheel", (240, 215, 40), 20),
    "acceleration": ("rect", (60, 200, 70), 18),
    "speed": ("diamond", (225, 50, 200), 17),
    "periodic": ("cross", (140, 70, 230), 18),
    "interaction": ("circle", (220, 40, 40), 14),
}

MOTION_CLASSES: tuple[MotionClass, ...] = (
    MotionClass("RiseUp", "vertical", "rise"),
    MotionClass("FallDown", "vertical", "fall"),
    MotionClass("TossUp", "vertical", "toss"),
    MotionClass("Approach", "depth", "approach"),
    MotionClass("Recede", "depth", "recede"),
    MotionClass("LoomAndGo", "depth", "loom"),
    MotionClass("Roll", "rotation", "roll"),
    MotionClass("BackSpin", "rotation", "backspin"),
    MotionClass("Skid", "rotation", "skid"),
    MotionClass("SpeedUp", "acceleration", "speedup"),
    MotionClass("SlowDown", "acceleration", "slowdown"),
    MotionClass("Cruise", "acceleration", "cruise"),
    MotionClass("DriftSlow", "speed", "slow"),
    MotionClass("DriftMedium", "speed", "medium"),
    MotionClass("DriftFast", "speed", "fast"),
    MotionClass("SwingRepeat", "periodic", "oscillate"),
    MotionClass("SwingOnce", "periodic", "swing_once"),
    MotionClass("Collide", "interaction", "collide"),
    MotionClass("PassThrough", "interaction", "pass"),
    MotionClass("MeetAndStick", "interaction", "stick"),
)

MOTION_NUM_GROUPS = 12
MOTION_CLIPS_PER_GROUP = 3
MOTION_NUM_FRAMES = 40
MOTION_QUALITY = 12  # MPEG-4 quantiser scale: visible blocking, as in web video
_SPEEDS = {"slow": 1.0, "medium": 2.0, "fast": 3.6}  # pixels per frame at 320 px wide


@dataclasses.dataclass(frozen=True)
class _MotionGroup:
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


def render_motion_video(
    class_index: int,
    group: int,
    clip: int,
    *,
    num_groups: int,
    num_frames: int,
    seed: int,
    width: int = WIDTH,
    height: int = HEIGHT,
    clean: bool = False,
) -> np.ndarray:
    """The frames of one motion-preset video: uint8 [num_frames, height, width, 3].

    Args:
      class_index: Index into `MOTION_CLASSES`.
      group: Group, 1-based: fixes background, camera, lighting, scale, speed,
        distractors and occluders.
      clip: Clip within the group, 1-based: fixes position, phase, timing and
        direction.
      num_groups: Groups in the dataset (the group conditions are spread over them).
      num_frames: Frames.
      seed: Everything drawn follows from it.
      width: Frame width (even).
      height: Frame height (even).
      clean: Leave out every nuisance (flat grey background, still camera, even
        light, no distractors, occluders or noise): the class's motion alone.
    """
    spec = MOTION_CLASSES[class_index]
    shape, base_color, base_size = MOTION_FAMILIES[spec.family]
    look = _motion_group(group, num_groups, seed, width, height)
    unit = width / WIDTH
    rng = np.random.default_rng([seed, 7, group, class_index, clip])
    t = np.arange(num_frames, dtype=np.float64)
    u = t / max(num_frames - 1, 1)
    size = base_size * unit * look.scale * rng.uniform(0.9, 1.1)
    color = np.clip(np.array(base_color) + rng.integers(-20, 21, 3), 0, 255).astype(np.float32)
    objects = _motion_objects(spec.motion, t, u, rng, size, unit * look.speed, width, height)

    # The camera: centre in texture coordinates and zoom, per frame.
    th, tw = look.texture.shape[:2]
    if clean:
        cx = np.full(num_frames, tw / 2)
        cy = np.full(num_frames, th / 2)
        zoom = np.ones(num_frames)
    else:
        shake = look.shake * rng.standard_normal((2, num_frames))
        cx = tw / 2 + rng.uniform(-60, 60) * unit + look.pan[0] * unit * t + shake[0]
        cy = th / 2 + rng.uniform(-30, 30) * unit + look.pan[1] * unit * t + shake[1]
        zoom = 1 + look.zoom * u
    rows = np.arange(height) - height / 2
    cols = np.arange(width) - width / 2

    if clean:
        frames = np.full((num_frames, height, width, 3), 128.0, np.float32)
    else:
        ys = np.round(cy[:, None] + rows[None, :] / zoom[:, None]).astype(np.int32) % th
        xs = np.round(cx[:, None] + cols[None, :] / zoom[:, None]).astype(np.int32) % tw
        xs = xs[:, None, :]
        amp, row_scale, rate = look.wave
        if amp:  # a ripple that moves the background independently of the camera
            wave = amp * np.sin(rows[None, :] / row_scale + rate * t[:, None])
            xs = (xs + np.round(wave).astype(np.int32)[:, :, None]) % tw
        frames = look.texture[ys[:, :, None], xs]

    def to_screen(x, y, k):
        """World position (pixels, relative to the first frame's centre) to screen."""
        dx = cx[k] - cx[0] if not clean else 0.0
        dy = cy[k] - cy[0] if not clean else 0.0
        return (x - dx) * zoom[k] + width / 2, (y - dy) * zoom[k] + height / 2

    distractors = []
    if not clean:
        for _ in range(look.distractors):
            distractors.append(
                (
                    rng.choice(["ellipse", "square", "circle"]),
                    rng.uniform(-0.45, 0.45, 2) * (width, height),
                    rng.uniform(-2.5, 2.5, 2) * unit,
                    size * rng.uniform(0.5, 1.2),
                    rng.uniform(40, 220, 3).astype(np.float32),
                    rng.uniform(0, 2 * math.pi),
                )
            )
    for k in range(num_frames):
        frame = frames[k]
        for kind, start, velocity, dsize, dcolor, angle in distractors:
            x, y = start + velocity * t[k] + 6 * unit * np.sin(0.2 * t[k] + angle)
            sx, sy = to_screen(x, y, k)
            _draw_motion_shape(frame, kind, sx, sy, dsize * zoom[k], angle + 0.05 * t[k], dcolor)
        for x, y, grow, angle in objects[k]:
            sx, sy = to_screen(x - width / 2, y - height / 2, k)
            _draw_motion_shape(frame, shape, sx, sy, size * grow * zoom[k], angle, color)
        if not clean:
            for orientation, position, thickness, ocolor in look.occluders:
                if orientation == "vertical":
                    sx, _ = to_screen(position * width, 0.0, k)
                    half = thickness * unit * zoom[k] / 2
                    frame[:, max(int(sx - half), 0) : max(int(sx + half), 0)] = ocolor
                else:
                    _, sy = to_screen(0.0, position * height, k)
                    half = thickness * unit * zoom[k] / 2
                    frame[max(int(sy - half), 0) : max(int(sy + half), 0)] = ocolor
    if clean:
        return frames.astype(np.uint8)

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
    return frames.astype(np.uint8)


def _motion_objects(motion, t, u, rng, size, speed, width, height):
    """Per frame, the class's objects as (x, y, size factor, angle) in world pixels.

    World pixels are screen pixels of the first frame of a still camera.
    """
    n = len(t)
    centre_x = width * rng.uniform(0.4, 0.6)
    centre_y = height * rng.uniform(0.4, 0.6)
    side = rng.choice([-1.0, 1.0])  # left or right: a horizontal flip maps one to the other
    drift = (
        side * rng.uniform(0.2, 0.5) * speed * (t - t.mean())
    )  # a sideways drift that tells nothing
    angle0 = rng.uniform(0, 2 * math.pi)
    still = np.zeros(n)
    ones = np.ones(n)

    def one(x, y, grow=ones, angle=still):
        return [[(x[k], y[k], grow[k], angle[k])] for k in range(n)]

    if motion in ("rise", "fall", "toss"):
        v = 2.5 * speed
        if motion == "toss":
            peak = min(0.45 * height, 2 * v * n / 2)
            y = centre_y + peak / 2 - 4 * peak * u * (1 - u)
        else:
            sign = -1.0 if motion == "rise" else 1.0
            y = centre_y + sign * v * (t - t.mean())
        return one(centre_x + drift, y)
    if motion in ("approach", "recede", "loom"):
        if motion == "loom":
            grow = 0.55 * (1.5 / 0.55) ** np.sin(math.pi * u)
        else:
            grow = 0.55 * (1.5 / 0.55) ** (u if motion == "approach" else 1 - u)
        return one(centre_x + drift, centre_y + 0.5 * drift, grow)
    if motion in ("roll", "backspin", "skid"):
        v = 2.5 * speed
        x = centre_x + side * v * (t - t.mean())
        spin = {"roll": 1.0, "backspin": -1.0, "skid": 0.0}[motion]
        # Rolling without slipping: the rim moves at the centre's speed.
        angle = angle0 + spin * side * v * t / size
        return one(x, centre_y + 0.3 * drift, angle=angle)
    if motion in ("speedup", "slowdown", "cruise"):
        distance = 2.5 * speed * (n - 1)
        f = {
            "speedup": 0.2 * u + 0.8 * u**2,
            "slowdown": 1 - (0.2 * (1 - u) + 0.8 * (1 - u) ** 2),
            "cruise": u,
        }[motion]
        return one(centre_x + side * distance * (f - 0.5), centre_y + 0.3 * drift)
    if motion in _SPEEDS:
        v = _SPEEDS[motion] * speed
        return one(centre_x + side * v * (t - t.mean()), centre_y + 0.3 * drift)
    if motion in ("oscillate", "swing_once"):
        amplitude, period = 45 * speed, 0.4  # period as a fraction of the clip
        if motion == "oscillate":
            phase = rng.uniform(0, 2 * math.pi)
            x = centre_x + amplitude * np.sin(2 * math.pi * u / period + phase)
        else:
            start = rng.uniform(0.05, 0.55)
            active = (u >= start) & (u <= start + period)
            x = centre_x + side * amplitude * np.sin(2 * math.pi * (u - start) / period) * active
        return one(x, centre_y + 0.3 * drift)
    if motion in ("collide", "pass", "stick"):
        v = 2.5 * speed
        meet = rng.uniform(0.35, 0.65) * (n - 1)
        s = v * (t - meet)  # distance each has travelled past the meeting point
        before = s < 0
        if motion == "collide":
            travel = np.where(before, s, -s)
        elif motion == "stick":
            travel = np.where(before, s, 0.0)
        else:
            travel = s
        a = centre_x - size + travel
        b = centre_x + size - travel
        dy = 0.3 * size * side
        return [
            [(a[k], centre_y - dy, 1.0, 0.0), (b[k], centre_y + dy, 1.0, 0.0)] for k in range(n)
        ]
    raise ValueError(f"Unknown motion {motion!r}.")


@functools.lru_cache(maxsize=4)
def _motion_group(group: int, num_groups: int, seed: int, width: int, height: int) -> _MotionGroup:
    """The conditions of a group; scales and speeds are spread over the groups in random order."""
    order = np.random.default_rng([seed, 10]).permutation(num_groups)
    position = order[(group - 1) % num_groups] / max(num_groups - 1, 1)
    speed_order = np.random.default_rng([seed, 11]).permutation(num_groups)
    speed_position = speed_order[(group - 1) % num_groups] / max(num_groups - 1, 1)
    rng = np.random.default_rng([seed, 12, group])
    unit = width / WIDTH
    th, tw = height + int(160 * unit), width + int(240 * unit)
    texture = _motion_texture(rng, th, tw, unit)
    style = rng.integers(0, 4)  # camera: still, pan, shake, zoom (plus a little of each)
    pan = tuple(rng.uniform(-0.25, 0.25, 2))
    if style == 1:
        pan = (rng.choice([-1, 1]) * rng.uniform(0.4, 0.8), rng.uniform(-0.3, 0.3))
    shake = rng.uniform(0.0, 0.6) + (rng.uniform(1.0, 2.5) if style == 2 else 0.0)
    zoom = rng.uniform(-0.04, 0.04) + (
        rng.choice([-1, 1]) * rng.uniform(0.08, 0.15) if style == 3 else 0.0
    )
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
            tuple(_muted(rng).astype(np.float32)),
        )
        for _ in range(rng.integers(0, 3))
    )
    noise = np.clip(rng.normal(0, rng.uniform(1.5, 4), (4, height, width, 1)), -30, 30)
    return _MotionGroup(
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


def _motion_texture(rng, height, width, unit):
    """A cluttered background: a smooth colour field, a pattern and many random shapes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c1, c2, c3 = (_muted(rng) for _ in range(3))
    coarse = rng.uniform(0, 1, (5, 6))
    smooth = np.stack([np.interp(np.linspace(0, 5, width), np.arange(6), row) for row in coarse])
    smooth = np.stack(
        [np.interp(np.linspace(0, 4, height), np.arange(5), col) for col in smooth.T], axis=1
    )
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
        _draw_motion_shape(
            texture,
            kind,
            x,
            y,
            rng.uniform(5, 28) * unit,
            rng.uniform(0, 3.2),
            _muted(rng).astype(np.float32),
        )
    return texture


def _draw_motion_shape(frame, shape, x, y, size, angle, color):
    """Fills a shape centred at (x, y) into a float frame of any size (in place)."""
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
    if shape == "wheel":  # a disc with one dark spoke: its angle shows the rotation
        region[u * u + v * v <= size * size] = color
        region[(np.abs(v) <= 0.22 * size) & (u >= 0) & (u <= size)] = 0.3 * color
        return
    if shape == "circle":
        mask = u * u + v * v <= size * size
    elif shape == "ellipse":
        mask = (u / size) ** 2 + (v / (0.55 * size)) ** 2 <= 1
    elif shape == "ring":
        d2 = u * u + v * v
        mask = (d2 <= size * size) & (d2 >= (0.6 * size) ** 2)
    elif shape == "square":
        mask = (np.abs(u) <= size) & (np.abs(v) <= size)
    elif shape == "rect":
        mask = (np.abs(dx) <= size) & (np.abs(dy) <= 0.5 * size)  # axis-aligned
    elif shape == "cross":
        mask = ((np.abs(u) <= size) & (np.abs(v) <= 0.3 * size)) | (
            (np.abs(v) <= size) & (np.abs(u) <= 0.3 * size)
        )
    elif shape == "diamond":
        mask = np.abs(u) + np.abs(v) <= size
    else:
        raise ValueError(f"Unknown shape {shape!r}.")
    region[mask] = color


def _write_motion_video(job) -> None:
    output_dir, class_index, group, clip, num_groups, num_frames, seed, width, height = job
    name = MOTION_CLASSES[class_index].name
    path = os.path.join(output_dir, name, video_name(name, group, clip))
    tmp = os.path.join(output_dir, name, "." + video_name(name, group, clip) + ".tmp")
    frames = render_motion_video(
        class_index,
        group,
        clip,
        num_groups=num_groups,
        num_frames=num_frames,
        seed=seed,
        width=width,
        height=height,
    )
    video.write_avi(tmp, frames, fps=FPS, quality=MOTION_QUALITY, max_b_frames=2)
    os.replace(tmp, path)
