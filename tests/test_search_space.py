"""The search space over many seeded draws: validity, one-part mutation, building, TFLite."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tvn_tf.models import architecture as arch_lib
from tvn_tf.search import algorithms
from tvn_tf.search import config as config_lib
from tvn_tf.search import space as space_lib

SMALL = space_lib.SpaceConfig(
    resolution=(32, 48),
    frames=(1, 4),
    frame_stride=(1, 8),
    blocks=(2, 4),
    filters=(8, 24),
    repeats=(1, 2),
)


def draws(space, n, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("config", [space_lib.SpaceConfig(), SMALL], ids=["paper", "small"])
def test_samples_validate_and_stay_in_the_space(config):
    space = space_lib.SearchSpace(config)
    for arch in draws(space, 300):
        # The same validation as a hand-written JSON file.
        again = arch_lib.architecture_from_json(arch.to_json(), "again")
        assert again.blocks == arch.blocks
        assert space.contains(arch)
        assert space_lib.fits(arch)
        assert config.blocks[0] <= len(arch.blocks) <= config.blocks[1]
        assert config.resolution[0] <= arch.image_size <= config.resolution[1]
        assert config.frames[0] <= arch.num_frames <= config.frames[1]
        for block in arch.blocks:
            assert config.filters[0] <= block.filters <= config.filters[1]
            assert block.act == "relu" and not block.inverted_bottleneck


@pytest.mark.parametrize("config", [space_lib.SpaceConfig(), SMALL], ids=["paper", "small"])
def test_a_mutation_changes_exactly_one_part(config):
    space = space_lib.SearchSpace(config)
    rng = np.random.default_rng(1)
    kinds = set()
    for parent in draws(space, 60, seed=2):
        for _ in range(5):
            child, what = space.mutate(parent, rng)
            diff = space_lib.differences(parent, child)
            assert space.contains(child) and space_lib.fits(child)
            assert space_lib.canonical_key(child) != space_lib.canonical_key(parent)
            if diff == ["num_blocks"]:
                # One block inserted or removed, every other block unchanged.
                kind, _, index = what.split()
                p, c = parent.to_json()["blocks"], child.to_json()["blocks"]
                index = int(index)
                if kind == "insert":
                    assert c[:index] + c[index + 1 :] == p
                else:
                    assert p[:index] + p[index + 1 :] == c
                kinds.add("num_blocks")
            else:
                assert len(diff) == 1, (what, diff)
                assert what.startswith(diff[0]), (what, diff)
                kinds.add(diff[0].split()[-1])
    # Every kind of part is reached: the inputs, the block count, every block field.
    assert {"image_size", "num_frames", "frame_stride", "num_blocks"} <= kinds
    assert set(space.block_choices) <= kinds


def test_canonical_form_ignores_what_does_not_run():
    arch = draws(space_lib.SearchSpace(SMALL), 1)[0]
    data = arch.to_json()
    data["blocks"][0].update(spatial_kernel=1, spatial_stride=1, spatial_type="std")
    a = arch_lib.architecture_from_json(data)
    data["blocks"][0].update(spatial_stride=4, spatial_type="maxpool")
    b = arch_lib.architecture_from_json(data)
    assert space_lib.canonical_key(a) == space_lib.canonical_key(b)
    data["blocks"][0]["filters"] += 1
    assert space_lib.canonical_key(
        arch_lib.architecture_from_json(data)
    ) != space_lib.canonical_key(a)


def test_released_networks_project_into_a_narrow_space():
    space = space_lib.SearchSpace(SMALL)
    for name in arch_lib.list_architectures():
        projected = space.project(arch_lib.get_architecture(name))
        assert space.contains(projected), name


def test_a_seed_moved_into_the_space_says_what_changed():
    """The full space's squeeze ratios stop at 1/2: TVN-1's 0.91 and 0.73 are clipped."""
    space = space_lib.SearchSpace(space_lib.SpaceConfig())
    tvn1 = arch_lib.get_architecture("tvn1")
    changes = space.changes(tvn1, space.project(tvn1))
    assert changes == ["block 1 squeeze 0.9068->0.5", "block 3 squeeze 0.7266->0.5"]
    narrow = space_lib.SearchSpace(SMALL)
    assert "image_size 224->48" in narrow.changes(tvn1, narrow.project(tvn1))
    mobile = arch_lib.get_architecture("tvn_mobile_1")
    assert "block 1 inverted_bottleneck True->False" in space.changes(mobile, space.project(mobile))


def test_random_and_tournament_draw_from_one_space():
    """Both algorithms record the same space, and both propose only members of it."""
    base = dict(model_dir="", data=None, space=SMALL, population=4, tournament_size=2)
    spaces = []
    for algorithm in algorithms.ALGORITHMS:
        config = config_lib.SearchConfig(**base, algorithm=algorithm)
        space = space_lib.SearchSpace(config.space)
        spaces.append(space.to_json())
        proposer = algorithms.make(
            algorithm, space, seed=0, population=config.population, tournament_size=2
        )
        for number in range(20):
            assert space.contains(proposer.propose(number, number, []).architecture)
    assert spaces[0] == spaces[1]
    # The tournament's children of random parents are in the space too.
    space = space_lib.SearchSpace(SMALL)
    rng = np.random.default_rng(5)
    for parent in draws(space, 50, seed=6):
        assert space.contains(space.mutate(parent, rng)[0])


def test_samples_build_and_convert_to_builtin_tflite():
    from tvn_tf.deploy import tflite
    from tvn_tf.models import tvn

    space = space_lib.SearchSpace(SMALL)
    archs = draws(space, 6, seed=3)
    for i, arch in enumerate(archs):
        model = tvn.TinyVideoNetwork(arch, num_classes=4)
        out = model(np.zeros((1, arch.num_frames, arch.image_size, arch.image_size, 3), "float32"))
        assert out.shape == (1, 4)
        if i < 2:  # Conversion costs seconds: two float32, one int8.
            rng = np.random.default_rng(0)
            clip = rng.uniform(-1, 1, (arch.num_frames, arch.image_size, arch.image_size, 3))
            variants = [("float32", None)] + [("int8", [clip.astype("float32")])] * (i == 0)
            for variant, clips in variants:
                ops = tflite.op_names(tflite.convert_model(model, variant, clips))
                assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]


def test_the_smallest_network_is_in_the_space_and_no_draw_is_smaller():
    for config in (space_lib.SpaceConfig(), SMALL):
        space = space_lib.SearchSpace(config)
        smallest = space.smallest()
        assert space.contains(smallest) and space_lib.fits(smallest)
        floor = space_lib.estimate(smallest).max_activation
        assert all(space_lib.estimate(a).max_activation >= floor for a in draws(space, 100))
    # Inside the architecture limits, yet nothing fits: the search refuses it up front.
    huge = space_lib.SearchSpace(
        space_lib.SpaceConfig(resolution=(1024, 1024), frames=(512, 512))
    ).smallest()
    assert not space_lib.fits(huge)


def test_a_canonical_key_does_not_depend_on_naming_the_default_activation():
    """Keys stored in studies name networks: ReLU named or left out is the same network."""
    arch = space_lib.SearchSpace(SMALL).smallest()
    data = arch.to_json()
    for block in data["blocks"]:
        for name in ("act", "spatial_act", "temporal_act"):
            block.pop(name, None)
    bare = arch_lib.architecture_from_json(data, "bare")
    assert space_lib.canonical_key(bare) == space_lib.canonical_key(arch)
    # The key a study holds for tvn1 in tests/test_search.py's space: keys never change.
    tiny = space_lib.SpaceConfig((32, 32), (1, 2), (1, 4), (2, 3), (8, 16), (1, 1))
    tvn1 = space_lib.SearchSpace(tiny).project(arch_lib.get_architecture("tvn1"))
    assert space_lib.canonical_key(tvn1) == "40f32881150e18e2"
    swish = json.loads(json.dumps(data))
    swish["blocks"][0]["act"] = "hswish"
    other = arch_lib.architecture_from_json(swish, "other")
    assert space_lib.canonical_key(other) != space_lib.canonical_key(arch)
