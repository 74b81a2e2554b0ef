"""A run's checkpoint files: what an unfinished save leaves is cleared, a failed save leaves nothing."""

from __future__ import annotations

import errno
import os

import pytest
import tensorflow as tf

from tvn_tf import atomic
from tvn_tf.training import checkpoints


def test_what_unfinished_saves_left_is_removed_and_whole_checkpoints_stay(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    whole = ["ckpt-4.index", "ckpt-4.data-00000-of-00001", "checkpoint"]
    left = ["ckpt-8.data-00000-of-00001", "checkpoint.tmp3fa9c0", "ckpt-8_temp"]
    for name in whole + left[:2]:
        (folder / name).write_bytes(b"x")
    (folder / left[2]).mkdir()
    (folder / left[2] / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    checkpoints.remove_unfinished(str(folder))
    assert sorted(os.listdir(folder)) == sorted(whole)
    checkpoints.remove_unfinished(str(tmp_path / "none"))  # No folder yet: nothing to do.


def test_a_failed_save_leaves_none_of_its_files_and_a_full_disk_is_named(tmp_path, monkeypatch):
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(step=tf.Variable(3, dtype=tf.int64)), str(tmp_path), max_to_keep=2
    )
    checkpoints.save(manager, 3, variable_bytes=8)
    saved = sorted(os.listdir(tmp_path))

    def full_disk(**_):
        (tmp_path / "ckpt-5.index").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manager, "save", full_disk)
    with pytest.raises(atomic.NoSpaceError, match="ckpt-5"):
        checkpoints.save(manager, 5, variable_bytes=8)
    assert sorted(os.listdir(tmp_path)) == saved
