"""The motion preset's classes: each family's look and motion, and each group's own conditions.

The motion of each family is pinned on clean renders (no nuisances), where the
object's pixels are exactly the ones that differ from the flat grey background.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tvn_tf.data import motion_data


def test_motion_families_share_a_look_and_groups_differ():
    families = {spec.family for spec in motion_data.MOTION_CLASSES}
    assert len(families) == 7
    assert len({motion_data.MOTION_FAMILIES[f][:2] for f in families}) == 7  # one look each
    # One frame shows the family, not the class: each class's object has its family's colour.
    for index, spec in enumerate(motion_data.MOTION_CLASSES):
        frame = motion_data.render_motion_video(
            index, 3, 1, num_groups=12, num_frames=2, seed=0, clean=True
        )[0]
        shade = np.median(frame[object_mask(frame[None])[0]], axis=0)
        assert np.abs(shade - motion_data.MOTION_FAMILIES[spec.family][1]).max() <= 20, spec.name
    # A group's own conditions: a textured background, unlike another group's.
    first = [
        motion_data.render_motion_video(0, group, 1, num_groups=12, num_frames=2, seed=0)[0]
        for group in (1, 2)
    ]
    assert all(frame.reshape(-1, 3).std(axis=0).mean() > 8 for frame in first)
    assert np.abs(first[0].astype(int) - first[1].astype(int)).mean() > 10


def clean(name: str, group: int = 1, clip: int = 1, num_frames: int = 40) -> np.ndarray:
    """A clean render of a class, by name: uint8 [T, 240, 320, 3]."""
    index = [spec.name for spec in motion_data.MOTION_CLASSES].index(name)
    return motion_data.render_motion_video(
        index, group, clip, num_groups=12, num_frames=num_frames, seed=0, clean=True
    )


def object_mask(frames: np.ndarray) -> np.ndarray:
    """Where the objects are: [T, H, W] bool (the clean background is 128 grey)."""
    return (np.abs(frames.astype(np.int16) - 128) > 12).any(axis=-1)


def centroids(frames: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The centroid of the objects (or of `mask`) per frame: [T, 2] (x, y)."""
    mask = object_mask(frames) if mask is None else mask
    area = mask.sum(axis=(1, 2))
    x = (mask.sum(axis=1) * np.arange(mask.shape[2])).sum(axis=1) / area
    y = (mask.sum(axis=2) * np.arange(mask.shape[1])).sum(axis=1) / area
    return np.stack([x, y], 1)


GROUPS_AND_CLIPS = [(1, 1), (12, 3)]


@pytest.mark.parametrize("group, clip", GROUPS_AND_CLIPS)
def test_vertical_family_moves_up_down_and_up_then_down(group, clip):
    rise, fall, toss = (
        centroids(clean(n, group, clip))[:, 1] for n in ("RiseUp", "FallDown", "TossUp")
    )
    assert rise[-1] < rise[0] - 50 and np.all(np.diff(rise) < 0)  # image y grows downwards
    assert fall[-1] > fall[0] + 50 and np.all(np.diff(fall) > 0)
    top = int(np.argmin(toss))
    assert 10 <= top <= 30 and toss[0] > toss[top] + 30 and toss[-1] > toss[top] + 30


@pytest.mark.parametrize("group, clip", GROUPS_AND_CLIPS)
def test_depth_family_grows_shrinks_and_grows_then_shrinks(group, clip):
    approach, recede, loom = (
        object_mask(clean(n, group, clip)).sum(axis=(1, 2))
        for n in ("Approach", "Recede", "LoomAndGo")
    )
    assert approach[-1] > 4 * approach[0] and recede[0] > 4 * recede[-1]
    assert 10 <= int(np.argmax(loom)) <= 30 and loom.max() > 4 * max(loom[0], loom[-1])


def spoke_turn_per_frame(frames: np.ndarray) -> tuple[float, float]:
    """(mean spoke angle change per frame in image coordinates, mean x travel per frame)."""
    mask = object_mask(frames)
    total = frames.astype(np.int16).sum(axis=-1)
    rim = np.array([total[k][mask[k]].max() for k in range(len(frames))])
    spoke = mask & (total < 0.6 * rim[:, None, None])  # the dark spoke
    centre, tip = centroids(frames, mask), centroids(frames, spoke)
    sx, sy = (tip - centre).T
    angle = np.unwrap(np.arctan2(sy, sx))
    return float(np.diff(angle).mean()), float(np.diff(centre[:, 0]).mean())


@pytest.mark.parametrize("group, clip", GROUPS_AND_CLIPS)
def test_rotation_family_turns_with_against_or_not_with_the_travel(group, clip):
    # Moving right (+x), a rolling wheel turns clockwise on screen: its angle grows
    # (y points down). A horizontal flip reverses both, so the product's sign is the class.
    turns = {}
    for name in ("Roll", "BackSpin", "Skid"):
        turn, travel = spoke_turn_per_frame(clean(name, group, clip))
        assert abs(travel) > 1.5
        turns[name] = turn * math.copysign(1, travel)
    assert turns["Roll"] > 0.05 and turns["BackSpin"] < -0.05 and abs(turns["Skid"]) < 0.01


@pytest.mark.parametrize("group, clip", GROUPS_AND_CLIPS)
def test_acceleration_family_same_path_different_order(group, clip):
    steps = {
        n: np.abs(np.diff(centroids(clean(n, group, clip))[:, 0]))
        for n in ("SpeedUp", "SlowDown", "Cruise")
    }
    paths = [s.sum() for s in steps.values()]
    assert max(paths) < 1.05 * min(paths) and min(paths) > 60
    early, late = ({n: s[a:b].mean() for n, s in steps.items()} for a, b in ((0, 13), (-13, None)))
    assert late["SpeedUp"] > 2 * early["SpeedUp"] and early["SlowDown"] > 2 * late["SlowDown"]
    assert 0.8 < late["Cruise"] / early["Cruise"] < 1.25


@pytest.mark.parametrize("group, clip", GROUPS_AND_CLIPS)
def test_speed_family_fast_travels_farther_per_frame(group, clip):
    slow, medium, fast = (
        np.abs(np.diff(centroids(clean(n, group, clip))[:, 0])).mean()
        for n in ("DriftSlow", "DriftMedium", "DriftFast")
    )
    assert 0.5 < slow < medium < fast and fast > 3 * slow and medium > 1.7 * slow


def reversals(x: np.ndarray) -> int:
    """How often a path turns back (moves under half a pixel are stillness)."""
    step = np.diff(x)
    signs = np.sign(step[np.abs(step) > 0.5])
    return int((signs[1:] != signs[:-1]).sum())


@pytest.mark.parametrize("group, clip", GROUPS_AND_CLIPS)
def test_periodic_family_repeats_or_swings_once(group, clip):
    repeat, once = (centroids(clean(n, group, clip))[:, 0] for n in ("SwingRepeat", "SwingOnce"))
    assert reversals(repeat) >= 4 and np.ptp(repeat) > 60
    assert reversals(once) <= 2 and np.ptp(once) > 60
    assert (np.abs(np.diff(once)) < 0.5).mean() > 0.4  # still for most of the clip


@pytest.mark.parametrize("group, clip", GROUPS_AND_CLIPS)
def test_interaction_family_bounces_passes_or_sticks(group, clip):
    def extent_and_area(name):
        mask = object_mask(clean(name, group, clip))
        columns = mask.any(axis=1)
        extent = np.array([np.ptp(np.flatnonzero(c)) for c in columns])
        return extent, mask.sum(axis=(1, 2))

    collide, pass_through, stick = map(extent_and_area, ("Collide", "PassThrough", "MeetAndStick"))
    # Collide and stick never overlap (two whole balls in every frame); passing does.
    assert collide[1].min() > 0.95 * collide[1].max() and stick[1].min() > 0.95 * stick[1].max()
    assert pass_through[1].min() < 0.85 * pass_through[1].max()
    # After contact, colliding balls part; sticking ones stay together, at contact.
    meet = int(np.argmin(collide[0]))
    assert 8 <= meet <= 31 and collide[0][-1] > collide[0][meet] + 20
    assert np.ptp(stick[0][-5:]) <= 1 and stick[0][-1] <= stick[0].min() + 1
