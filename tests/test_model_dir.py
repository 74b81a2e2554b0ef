"""Model directories: the spec file and restoring checkpoints."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.isolated import run_python
from tvn_tf import model_dir as model_dir_lib
from tvn_tf.models import architecture as arch_lib


@pytest.fixture()
def spec():
    arch = arch_lib.load_architecture_json("tests/testdata/all_ops_tvn.json")
    return model_dir_lib.ModelSpec(
        name=arch.name, architecture=arch.to_json(), class_names=("a", "b", "c")
    )


def test_restore_model_gives_the_checkpointed_weights(spec, tmp_path):
    model_dir = str(tmp_path / "run")
    model_dir_lib.write_spec(model_dir, spec)
    model = spec.build()
    clips = np.random.default_rng(0).random((2, 4, 32, 32, 3), dtype=np.float32)
    model(clips, training=True)  # Moves the batch-norm statistics.
    for w in model.trainable_weights:
        w.assign(w + 0.01)
    step = tf.Variable(7, dtype=tf.int64)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, step=step), f"{model_dir}/checkpoints", max_to_keep=2
    )
    manager.save(checkpoint_number=7)

    restored, read, path = model_dir_lib.restore_model(model_dir)
    assert read == spec and path.endswith("checkpoints/ckpt-7")
    np.testing.assert_array_equal(restored(clips, training=False), model(clips, training=False))
    assert json.loads((tmp_path / "run" / "model.json").read_text())["class_names"] == [
        "a",
        "b",
        "c",
    ]


def test_missing_model_dir_and_checkpoint_are_named(spec, tmp_path):
    with pytest.raises(ValueError, match="not a model directory"):
        model_dir_lib.read_spec(str(tmp_path))
    model_dir_lib.write_spec(str(tmp_path), spec)
    with pytest.raises(ValueError, match="checkpoints: no checkpoint found"):
        model_dir_lib.restore_model(str(tmp_path))
    with pytest.raises(ValueError, match="--checkpoint=.*nope: no such checkpoint"):
        model_dir_lib.restore_model(str(tmp_path), str(tmp_path / "nope"))


def _save(spec, model_dir, steps):
    model = spec.build()
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, step=step), f"{model_dir}/checkpoints", max_to_keep=5
    )
    for s in steps:
        step.assign(s)
        manager.save(checkpoint_number=s)


def test_latest_intact_checkpoint_skips_damaged_ones(spec, tmp_path):
    folder = tmp_path / "checkpoints"
    _save(spec, str(tmp_path), [1, 2])
    assert model_dir_lib.latest_intact_checkpoint(str(folder)).endswith("ckpt-2")
    index = folder / "ckpt-2.index"
    index.write_bytes(index.read_bytes()[:50])  # cut short
    assert model_dir_lib.latest_intact_checkpoint(str(folder)).endswith("ckpt-1")
    assert model_dir_lib.checkpoint_step(str(folder / "ckpt-1")) == 1
    (folder / "ckpt-1.data-00000-of-00001").unlink()
    with pytest.raises(ValueError, match=r"no intact checkpoint \(.*ckpt-2: .*ckpt-1: "):
        model_dir_lib.latest_intact_checkpoint(str(folder))


def test_stale_checkpoint_state_file_alone_means_no_checkpoint(spec, tmp_path):
    model_dir_lib.write_spec(str(tmp_path), spec)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-9"\n')
    with pytest.raises(ValueError, match="checkpoints: no checkpoint found"):
        model_dir_lib.restore_model(str(tmp_path))


def test_checkpoint_of_another_model_is_named(spec, tmp_path):
    _save(spec, str(tmp_path), [3])
    other = model_dir_lib.ModelSpec(spec.name, spec.architecture, ("a", "b"))
    model_dir_lib.write_spec(str(tmp_path), other)
    with pytest.raises(ValueError, match=r"ckpt-3 does not fit the model of .*model.json"):
        model_dir_lib.restore_model(str(tmp_path))


def test_second_lock_on_a_folder_is_refused_until_released(tmp_path, run_module):
    held = model_dir_lib.lock_run(str(tmp_path))
    # Another process: flock locks belong to the open file, so a child sees the conflict.
    code = (
        "import sys; from tvn_tf import model_dir as m\n"
        f"try: m.lock_run({str(tmp_path)!r})\n"
        "except ValueError as e: sys.exit(str(e))\n"
    )
    busy = run_module("-c", code)
    assert (
        busy.returncode == 1
        and f"in use by another training process (pid {os.getpid()}" in busy.stderr
    )
    held.close()
    assert run_module("-c", code).returncode == 0


def test_model_dir_loads_neither_the_training_loop_nor_tensorflow():
    loaded = run_python(
        "import json, sys\n"
        "from tvn_tf import model_dir\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('tvn_tf.training', 'tensorflow', 'keras')))))"
    )
    assert loaded == []
