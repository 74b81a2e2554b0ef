"""Architectures as data: registry, JSON validation, custom files, scaling."""

import copy
import json

import pytest

from tests.isolated import run_module
from tvn_tf.models import architecture as arch_lib

RELEASED = ["tvn1", "tvn2", "tvn3", "tvn4", "tvn_mobile_1", "tvn_mobile_2"]


def test_registry_holds_the_six_released_networks():
    assert arch_lib.list_architectures() == sorted(RELEASED)
    tvn1 = arch_lib.get_architecture("tvn1")
    assert (tvn1.num_frames, tvn1.frame_stride, tvn1.image_size) == (2, 4, 224)
    assert [b.filters for b in tvn1.blocks] == [64, 128, 128, 256]


def test_mobile_configs_are_chains_with_their_activations():
    mobile = arch_lib.get_architecture("tvn_mobile_2")
    assert (mobile.num_frames, mobile.frame_stride, mobile.image_size) == (2, 1, 224)
    first, second = mobile.blocks
    assert not first.inverted_bottleneck and second.inverted_bottleneck
    assert (first.spatial_act, first.temporal_act) == ("hswish", "relu")
    assert second.repeats == 3


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown model 'tvn9'.*tvn1"):
        arch_lib.get_architecture("tvn9")


def test_json_round_trip_is_exact():
    for name in RELEASED:
        arch = arch_lib.get_architecture(name)
        assert arch_lib.architecture_from_json(arch.to_json(), name) == arch


def _original_activations(block: dict) -> tuple[str, str, str]:
    """(act, spatial, temporal) as the original's `tiny_block` and `layers` read a block.

    `tiny_video_net.tiny_block`: without 'act', all three are 'relu'; with it,
    'spatial_act' and 'temporal_act' are read as given. `layers.spatial_conv` and
    `layers.temporal_conv` run ReLU when the name is 'relu', hard-swish otherwise.
    """
    if "act" not in block:
        block = {**block, "act": "relu", "spatial_act": "relu", "temporal_act": "relu"}
    op = lambda name: "relu" if name == "relu" else "hswish"  # noqa: E731
    return block["act"], op(block["spatial_act"]), op(block["temporal_act"])


def _ours(spec: arch_lib.BlockSpec) -> tuple[str, str, str]:
    return spec.act, spec.spatial_act, spec.temporal_act


@pytest.mark.parametrize("name", RELEASED)
def test_written_json_means_the_same_to_the_original(name, tmp_path):
    arch = arch_lib.get_architecture(name)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(arch.to_json()))
    written = json.loads(path.read_text())
    for spec, block in zip(arch.blocks, written["blocks"], strict=True):
        assert _original_activations(block) == _ours(spec)
    assert arch_lib.load_architecture_json(path).blocks == arch.blocks
    if name == "tvn_mobile_1":  # Hard-swish spatial ops ending in ReLU.
        assert _ours(arch.blocks[1]) == ("relu", "hswish", "hswish")


@pytest.mark.parametrize(
    "activations",
    [
        {},
        {"spatial_act": "hswish"},
        {"temporal_act": "hswish", "spatial_act": "relu"},
        {"act": "hswish", "spatial_act": "relu", "temporal_act": "hswish"},
        {"act": "relu", "spatial_act": "hswish", "temporal_act": "relu"},
    ],
)
def test_reading_a_block_follows_the_original_defaults(activations):
    block = {**_tvn1_json()["blocks"][0], **activations}
    spec = arch_lib.block_from_json(block)
    assert _ours(spec) == _original_activations(block)
    assert _original_activations(spec.to_json()) == _ours(spec)


# The registry, and the released file as the original code published it.
RELEASED_FILES = ["tvn_tf/models/found_tvns.json", "tests/testdata/original_found_tvns.json"]


@pytest.mark.parametrize("path", RELEASED_FILES)
def test_released_files_read_as_the_original_reads_them(path):
    with open(path) as f:
        released = json.load(f)
    for name in RELEASED:
        arch = arch_lib.architecture_from_json(released[name], name)
        assert arch == arch_lib.get_architecture(name)
        for spec, block in zip(arch.blocks, released[name]["blocks"], strict=True):
            assert _ours(spec) == _original_activations(block)


def test_block_names_are_built_and_parsed_in_one_place():
    assert arch_lib.block_name(2, 1) == "block2_1"
    assert arch_lib.block_name(2) == "block2"
    assert arch_lib.parse_block_name("block2_1") == (2, 1)
    assert arch_lib.parse_block_name("block12_0/spatial/conv/kernel") == (12, 0)
    for other in ("head/logits", "block2", "block2_1x", "aux_block0_0", "fold_frames"):
        assert arch_lib.parse_block_name(other) is None


def test_original_multistream_chain_form_is_accepted():
    arch = arch_lib.get_architecture("tvn_mobile_1")
    streams = {
        "input_streams": [{"num_frames": 2, "frame_stride": 1, "image_size": 224}],
        "blocks": [{**b.to_json(), "inputs": [i]} for i, b in enumerate(arch.blocks)],
    }
    assert arch_lib.architecture_from_json(streams, "tvn_mobile_1") == arch
    streams["blocks"][1]["inputs"] = [0]
    with pytest.raises(ValueError, match=r"block 1: field 'inputs' is \[0\].*only chains"):
        arch_lib.architecture_from_json(streams, "x")


def _tvn1_json():
    return copy.deepcopy(arch_lib.get_architecture("tvn1").to_json())


@pytest.mark.parametrize(
    "block, field, value, expected",
    [
        (
            0,
            "spatial_type",
            "conv3d",
            r"tvn1 block 0: field 'spatial_type' is 'conv3d'; "
            r"expected one of 'std', 'depth', 'maxpool', 'avgpool', '1std'",
        ),
        (
            2,
            "temporal_type",
            "lstm",
            r"tvn1 block 2: field 'temporal_type' is 'lstm'; expected one of",
        ),
        (
            1,
            "spatial_stride",
            0,
            r"tvn1 block 1: field 'spatial_stride' is 0; expected an integer in \[1, 16\]",
        ),
        (
            3,
            "temporal_stride",
            1.5,
            r"tvn1 block 3: field 'temporal_stride' is 1.5; expected an integer",
        ),
        (0, "filters", "64", r"tvn1 block 0: field 'filters' is '64'; expected an integer in"),
        (0, "repeats", 0, r"field 'repeats' is 0; expected an integer in \[1, 64\]"),
        (
            0,
            "repeats",
            1e6,
            r"block 0: field 'repeats' is 1000000.0; expected an integer in \[1, 64\]",
        ),
        (
            1,
            "filters",
            100000,
            r"block 1: field 'filters' is 100000; expected an integer in \[1, 8192\]",
        ),
        (
            2,
            "expand",
            10**400,
            r"block 2: field 'expand' is 1000.*; expected an integer in \[0, 32\]",
        ),
        (
            3,
            "temporal_kernel",
            float("inf"),
            r"field 'temporal_kernel' is inf; expected an integer",
        ),
        (3, "squeeze", float("nan"), r"field 'squeeze' is nan; expected a number in"),
        (0, "squeeze", 1.5, r"field 'squeeze' is 1.5; expected a number in \[0, 1\]"),
        (0, "skip", 2, r"field 'skip' is 2; expected 0 or 1"),
        (0, "act", "gelu", r"field 'act' is 'gelu'; expected one of 'relu', 'hswish'"),
        (0, "spatial_kernal", 3, r"field 'spatial_kernal' is 3; expected no such field"),
    ],
)
def test_invalid_block_names_block_field_value_and_allowed(block, field, value, expected):
    data = _tvn1_json()
    data["blocks"][block][field] = value
    with pytest.raises(ValueError, match=expected):
        arch_lib.architecture_from_json(data, "tvn1")


def test_missing_fields_are_named():
    data = _tvn1_json()
    del data["blocks"][2]["temporal_kernel"]
    with pytest.raises(ValueError, match="tvn1 block 2: missing field.*temporal_kernel"):
        arch_lib.architecture_from_json(data, "tvn1")
    data = _tvn1_json()
    del data["image_size"]
    with pytest.raises(ValueError, match="tvn1: missing field.*image_size"):
        arch_lib.architecture_from_json(data, "tvn1")
    data = _tvn1_json()
    data["blocks"] = []
    with pytest.raises(ValueError, match="field 'blocks' is \\[\\]; expected a non-empty list"):
        arch_lib.architecture_from_json(data, "tvn1")


def test_load_architecture_json_file(tmp_path):
    arch = arch_lib.load_architecture_json("tests/testdata/all_ops_tvn.json")
    assert arch.name == "all_ops_tvn" and len(arch.blocks) == 5
    assert arch.blocks[3].non_local == 8 and arch.blocks[1].inverted_bottleneck

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json: not valid JSON"):
        arch_lib.load_architecture_json(bad)
    with pytest.raises(ValueError, match=r"missing.json: cannot read architecture file"):
        arch_lib.load_architecture_json(tmp_path / "missing.json")
    data = _tvn1_json()
    data["blocks"][1]["spatial_stride"] = 0
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="bad block 1: field 'spatial_stride' is 0"):
        arch_lib.load_architecture_json(bad)


@pytest.mark.parametrize(
    "field, value, expected",
    [
        (
            "image_size",
            4096,
            r"tvn1: field 'image_size' is 4096; expected an integer in \[8, 1024\]",
        ),
        (
            "num_frames",
            10000,
            r"tvn1: field 'num_frames' is 10000; expected an integer in \[1, 512\]",
        ),
        ("frame_stride", -1, r"tvn1: field 'frame_stride' is -1; expected an integer in \[1, 64\]"),
    ],
)
def test_architecture_fields_have_bounds(field, value, expected):
    data = _tvn1_json()
    data[field] = value
    with pytest.raises(ValueError, match=expected):
        arch_lib.architecture_from_json(data, "tvn1")


@pytest.mark.parametrize("streams", [[5], ["a"], [[1, 2]]])
def test_input_streams_that_are_not_objects_are_refused(streams):
    with pytest.raises(
        ValueError, match=r"x: field 'input_streams' is .*; expected a list with one"
    ):
        arch_lib.architecture_from_json({"input_streams": streams, "blocks": []}, "x")


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"input_streams": [5]}, "field 'input_streams' is [5]"),
        (
            {"repeats": 1e6},
            "huge block 0: field 'repeats' is 1000000.0; expected an integer in [1, 64]",
        ),
    ],
)
def test_model_info_on_a_bad_file_prints_one_line(change, expected, tmp_path):
    data = _tvn1_json()
    if "repeats" in change:
        data["blocks"][0]["repeats"] = change["repeats"]
    else:
        data.update(change)
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(data))
    result = run_module("tvn_tf.model_info", f"--arch_json={path}", timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"model_info: {path}: " + (
        f"huge: {expected}; expected a list with one JSON object (num_frames, frame_stride, "
        "image_size)."
        if "input_streams" in change
        else f"{expected}."
    )
    assert "Traceback" not in result.stderr
