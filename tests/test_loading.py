"""`tvn_tf.deploy.loading`: every saved form of one model loads to one runner and one input."""

import json
import os

import numpy as np
import pytest

from tvn_tf import model_dir as model_dir_lib
from tvn_tf.deploy import loading
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models.model_input import ModelInput


@pytest.fixture(scope="module")
def clips():
    """Three uint8 clips of 4 frames at an odd size (the runner resizes them)."""
    return np.random.default_rng(0).integers(0, 256, (3, 4, 40, 56, 3), dtype=np.uint8)


def test_the_three_forms_of_one_export_describe_one_input_and_agree(
    export_dir, trained_model_dir, clips
):
    paths = {
        "tflite": os.path.join(export_dir, "model_float32.tflite"),
        "saved_model": os.path.join(export_dir, "saved_model"),
        "keras": trained_model_dir,
    }
    runners = {kind: loading.load(path) for kind, path in paths.items()}
    assert {kind: r.kind for kind, r in runners.items()} == {k: k for k in paths}
    expected = model_dir_lib.read_spec(trained_model_dir).input
    assert expected == ModelInput(4, 2, 32, ("BouncingBall", "OrbitingDot", "SlidingSquare"))
    for runner in runners.values():
        assert runner.input == expected
    scores = {kind: r.probabilities(clips) for kind, r in runners.items()}
    assert scores["saved_model"].shape == (3, 3)
    np.testing.assert_allclose(scores["tflite"], scores["saved_model"], atol=1e-4)
    np.testing.assert_allclose(scores["keras"], scores["saved_model"], atol=1e-4)
    info = json.load(open(os.path.join(export_dir, "model_info.json")))
    assert runners["tflite"].flops() == runners["saved_model"].flops() == info["flops"]
    for runner in runners.values():
        runner.timed_call()()


def test_an_export_folder_loads_its_saved_model(export_dir):
    runner = loading.load(export_dir)
    assert runner.kind == loading.SAVED_MODEL
    assert runner.path == os.path.join(export_dir, "saved_model")


def test_model_info_json_reads_back_as_the_input_export_wrote(export_dir, trained_model_dir):
    info = loading.read_model_info(os.path.join(export_dir, "model_int8.tflite"))
    spec = model_dir_lib.read_spec(trained_model_dir)
    assert ModelInput.from_json(info) == spec.input
    assert {k: info[k] for k in spec.input.to_json()} == spec.input.to_json()


def test_an_older_model_info_json_still_loads():
    # As tvn_tf.export wrote it before ModelInput: the same keys among others.
    old = {
        "name": "tvn1",
        "num_classes": 2,
        "class_names": ["a", "b"],
        "num_frames": 2,
        "frame_stride": 4,
        "image_size": 224,
        "head": "mean",
        "flops": 1,
    }
    assert ModelInput.from_json(old) == ModelInput(2, 4, 224, ("a", "b"))
    with pytest.raises(ValueError, match="x.json: unreadable model input .*num_frames"):
        ModelInput.from_json({"image_size": 224}, "x.json")


def test_architecture_and_spec_give_the_same_input():
    arch = arch_lib.get_architecture("tvn1")
    spec = model_dir_lib.ModelSpec("tvn1", arch.to_json(), ("a", "b"))
    assert arch.input == ModelInput(2, 4, 224)
    assert spec.input == ModelInput(2, 4, 224, ("a", "b"))


def test_a_model_input_feeds_the_clip_pipeline_as_it_is(tiny_data):
    # data/dataset.py reads num_frames, frame_stride and image_size by name.
    from tvn_tf.data import dataset as data_lib

    dataset = data_lib.load_dataset(data_lib.DataConfig(data_dir=tiny_data["records"]))
    model_input = ModelInput(3, 2, 24, dataset.class_names)
    ds = data_lib.make_clips(dataset, dataset.split.test, model_input, training=False, batch_size=2)
    clip, _ = next(iter(ds))
    assert tuple(clip.shape[1:]) == model_input.clip_shape


@pytest.mark.parametrize("name", ["notes.txt", "folder", "missing.tflite"])
def test_a_path_of_no_known_form_is_named_with_what_was_expected(tmp_path, name):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "folder").mkdir()
    path = str(tmp_path / name)
    with pytest.raises(ValueError) as raised:
        loading.load(path)
    assert str(raised.value) == (
        f"--model_path={path}: not a .tflite file, a SavedModel folder or a model directory."
    )


def test_labelling_needs_model_info_timing_does_not(export_dir, tmp_path):
    lone = tmp_path / "lone.tflite"
    lone.write_bytes(open(os.path.join(export_dir, "model_float32.tflite"), "rb").read())
    with pytest.raises(ValueError, match=f"--model_path={lone}: no model_info.json beside it"):
        loading.load(str(lone), require_input=True)
    runner = loading.load(str(lone))
    assert runner.input is None and runner.flops() > 1e6
    runner.timed_call()()
    with pytest.raises(ValueError, match="no model_info.json"):
        runner.probabilities(np.zeros((1, 4, 32, 32, 3), np.uint8))


@pytest.mark.parametrize(
    "binary",
    ["tvn_tf.predict", "tvn_tf.benchmark", "tvn_tf.deploy.android", "tvn_tf.search.engine"],
)
def test_no_module_imports_a_binary_to_load_a_model(binary):
    # predict and benchmark are binaries: neither loads the other, nor do the library modules.
    from tests.isolated import run_python

    loaded = run_python(f"""
        import json, sys
        import {binary}
        print(json.dumps(sorted(m for m in sys.modules if m in ("tvn_tf.predict", "tvn_tf.benchmark", "tvn_tf.train", "tvn_tf.export"))))
    """)
    assert loaded == ([binary] if binary in ("tvn_tf.predict", "tvn_tf.benchmark") else [])
