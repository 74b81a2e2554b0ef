"""Model directories: the spec file and restoring checkpoints."""

import json

import numpy as np
import pytest
import tensorflow as tf

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
