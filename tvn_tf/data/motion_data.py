"""The "motion" preset of the synthetic data: 20 classes that only motion tells apart.

`tools/make_demo_data.py --preset=motion` writes it (`demo_data.make_demo_data`).
The 20 classes come in 7 families. Within a family every class has the same
object (shape, colour, size): a single frame is ambiguous between them, and
only motion, often only its course over the whole clip, tells them apart, so
that more frames and a wider temporal stride pay off. Horizontal motion goes
left or right at random per clip, and a class is never told by left versus
right nor by the sense of a rotation, because the horizontal-flip augmentation
maps each to its opposite (and keeps up/down, growing/shrinking, speeds, speed
changes, periodicity and contact). The families:

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
as UCF50's groups do, all drawn from the seed, so held-out groups are unseen
(`motion_scene`): a cluttered textured background (smooth colour field,
stripes, checks, waves or grain, and 25-60 random shapes), some with a ripple
that moves it on its own; camera motion (still, pan, shake or zoom, with a
little of each); lighting (gain 0.6-1.25, a spatial gradient, a colour tint,
flicker); object scale (0.75-1.3) and speed (0.8-1.25); 0-3 distractors (shapes
of random colour that move but belong to no class); 0-2 occluding posts in
front of the objects; and sensor noise. Clips of a group differ in position,
direction, phase, timing, colour shade and the distractors' paths. The videos
are compressed harder than the demo's (quantiser `MOTION_QUALITY` = 12, about
1-2 Mbit/s), so that compression artefacts blur small motion as in web video.

Drawing is vectorised numpy (masks over bounding boxes, one gather per clip
for the moving background); 720 videos of 40 frames take a few minutes on 2
cores. Only numpy: the data tools load this without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tvn_tf.data import drawing, motion_scene


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


def render_motion_video(
    class_index: int,
    group: int,
    clip: int,
    *,
    num_groups: int,
    num_frames: int,
    seed: int,
    width: int = drawing.WIDTH,
    height: int = drawing.HEIGHT,
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
    look = motion_scene.group_look(group, num_groups, seed, width, height)
    unit = width / drawing.WIDTH
    rng = np.random.default_rng([seed, 7, group, class_index, clip])
    t = np.arange(num_frames, dtype=np.float64)
    u = t / max(num_frames - 1, 1)
    size = base_size * unit * look.scale * rng.uniform(0.9, 1.1)
    color = np.clip(np.array(base_color) + rng.integers(-20, 21, 3), 0, 255).astype(np.float32)
    objects = _motion_objects(spec.motion, t, u, rng, size, unit * look.speed, width, height)
    if clean:
        camera = motion_scene.still_camera(look, num_frames, width, height)
        frames = np.full((num_frames, height, width, 3), 128.0, np.float32)
        distractors = []
    else:
        camera = motion_scene.camera_path(look, rng, t, u, width, height)
        frames = motion_scene.background(look, camera, t)
        distractors = [_distractor(rng, size, unit, width, height) for _ in range(look.distractors)]
    for k in range(num_frames):
        frame = frames[k]
        _draw_distractors(frame, distractors, camera, t, k, unit)
        for x, y, grow, angle in objects[k]:
            sx, sy = camera.to_screen(x - width / 2, y - height / 2, k)
            drawing.draw_shape(frame, shape, sx, sy, size * grow * camera.zoom[k], angle, color)
        if not clean:
            motion_scene.draw_occluders(frame, look, camera, k)
    if not clean:
        motion_scene.apply_lighting(frames, look, rng, t, clip)
    return frames.astype(np.uint8)


def _draw_distractors(frame, distractors, camera, t, k, unit):
    """Draws the distractors (`_distractor`) where they are at frame k (in place)."""
    for kind, start, velocity, dsize, dcolor, angle in distractors:
        x, y = start + velocity * t[k] + 6 * unit * np.sin(0.2 * t[k] + angle)
        sx, sy = camera.to_screen(x, y, k)
        drawing.draw_shape(frame, kind, sx, sy, dsize * camera.zoom[k], angle + 0.05 * t[k], dcolor)


def _distractor(rng, size, unit, width, height):
    """A shape of no class, drifting and wobbling: (kind, start, velocity, size, colour, angle)."""
    return (
        rng.choice(["ellipse", "square", "circle"]),
        rng.uniform(-0.45, 0.45, 2) * (width, height),
        rng.uniform(-2.5, 2.5, 2) * unit,
        size * rng.uniform(0.5, 1.2),
        rng.uniform(40, 220, 3).astype(np.float32),
        rng.uniform(0, 2 * math.pi),
    )


@dataclasses.dataclass(frozen=True)
class _Start:
    """What every motion of a clip starts from (drawn in this order from the clip's generator)."""

    centre_x: float
    centre_y: float
    side: float  # left or right: a horizontal flip maps one to the other
    drift: np.ndarray  # a sideways drift that tells nothing
    angle0: float


def _motion_objects(motion, t, u, rng, size, speed, width, height):
    """Per frame, the class's objects as (x, y, size factor, angle) in world pixels.

    World pixels are screen pixels of the first frame of a still camera.
    """
    centre_x = width * rng.uniform(0.4, 0.6)
    centre_y = height * rng.uniform(0.4, 0.6)
    side = rng.choice([-1.0, 1.0])
    drift = side * rng.uniform(0.2, 0.5) * speed * (t - t.mean())
    start = _Start(centre_x, centre_y, side, drift, rng.uniform(0, 2 * math.pi))
    for motions, path in _PATHS:
        if motion in motions:
            return path(motion, start, t, u, rng, size, speed, height)
    raise ValueError(f"Unknown motion {motion!r}.")


def _one(x, y, grow=None, angle=None):
    """One object per frame, at (x[k], y[k]), with size factor and angle (default 1, 0)."""
    n = len(x)
    grow = np.ones(n) if grow is None else grow
    angle = np.zeros(n) if angle is None else angle
    return [[(x[k], y[k], grow[k], angle[k])] for k in range(n)]


def _vertical(motion, start, t, u, rng, size, speed, height):
    v = 2.5 * speed
    if motion == "toss":
        peak = min(0.45 * height, 2 * v * len(t) / 2)
        y = start.centre_y + peak / 2 - 4 * peak * u * (1 - u)
    else:
        sign = -1.0 if motion == "rise" else 1.0
        y = start.centre_y + sign * v * (t - t.mean())
    return _one(start.centre_x + start.drift, y)


def _depth(motion, start, t, u, rng, size, speed, height):
    if motion == "loom":
        grow = 0.55 * (1.5 / 0.55) ** np.sin(math.pi * u)
    else:
        grow = 0.55 * (1.5 / 0.55) ** (u if motion == "approach" else 1 - u)
    return _one(start.centre_x + start.drift, start.centre_y + 0.5 * start.drift, grow)


def _rotation(motion, start, t, u, rng, size, speed, height):
    v = 2.5 * speed
    x = start.centre_x + start.side * v * (t - t.mean())
    spin = {"roll": 1.0, "backspin": -1.0, "skid": 0.0}[motion]
    # Rolling without slipping: the rim moves at the centre's speed.
    angle = start.angle0 + spin * start.side * v * t / size
    return _one(x, start.centre_y + 0.3 * start.drift, angle=angle)


def _acceleration(motion, start, t, u, rng, size, speed, height):
    distance = 2.5 * speed * (len(t) - 1)
    f = {
        "speedup": 0.2 * u + 0.8 * u**2,
        "slowdown": 1 - (0.2 * (1 - u) + 0.8 * (1 - u) ** 2),
        "cruise": u,
    }[motion]
    x = start.centre_x + start.side * distance * (f - 0.5)
    return _one(x, start.centre_y + 0.3 * start.drift)


def _speed(motion, start, t, u, rng, size, speed, height):
    v = _SPEEDS[motion] * speed
    x = start.centre_x + start.side * v * (t - t.mean())
    return _one(x, start.centre_y + 0.3 * start.drift)


def _periodic(motion, start, t, u, rng, size, speed, height):
    amplitude, period = 45 * speed, 0.4  # period as a fraction of the clip
    if motion == "oscillate":
        phase = rng.uniform(0, 2 * math.pi)
        x = start.centre_x + amplitude * np.sin(2 * math.pi * u / period + phase)
    else:
        begin = rng.uniform(0.05, 0.55)
        active = (u >= begin) & (u <= begin + period)
        swing = np.sin(2 * math.pi * (u - begin) / period)
        x = start.centre_x + start.side * amplitude * swing * active
    return _one(x, start.centre_y + 0.3 * start.drift)


def _interaction(motion, start, t, u, rng, size, speed, height):
    v = 2.5 * speed
    n = len(t)
    meet = rng.uniform(0.35, 0.65) * (n - 1)
    s = v * (t - meet)  # distance each has travelled past the meeting point
    before = s < 0
    if motion == "collide":
        travel = np.where(before, s, -s)
    elif motion == "stick":
        travel = np.where(before, s, 0.0)
    else:
        travel = s
    a = start.centre_x - size + travel
    b = start.centre_x + size - travel
    dy = 0.3 * size * start.side
    y = start.centre_y
    return [[(a[k], y - dy, 1.0, 0.0), (b[k], y + dy, 1.0, 0.0)] for k in range(n)]


# Which motions each family's path function draws.
_PATHS = (
    (("rise", "fall", "toss"), _vertical),
    (("approach", "recede", "loom"), _depth),
    (("roll", "backspin", "skid"), _rotation),
    (("speedup", "slowdown", "cruise"), _acceleration),
    (tuple(_SPEEDS), _speed),
    (("oscillate", "swing_once"), _periodic),
    (("collide", "pass", "stick"), _interaction),
)
