"""A run's training checkpoint files: saving them whole, and clearing what a cut-short save left.

A save that fails (a full disk, Ctrl-C) leaves none of its files, and a run
starting on a folder first removes what an earlier process's unfinished save
left there (TensorFlow's temporaries, data without its index). Only the
process that holds the run folder's lock (`model_dir.lock_run`) saves there.
"""

from __future__ import annotations

import glob
import os
import re
import shutil

import tensorflow as tf
from absl import logging

from tvn_tf import atomic

# What TensorFlow writes while it saves `ckpt-N`: its shards in `ckpt-N_temp/`, and
# the `checkpoint` state file as `checkpoint.tmp<hex>` before its rename.
_UNFINISHED_SAVE = re.compile(r"^(ckpt-\d+_temp.*|checkpoint\.tmp[0-9a-f]+)$")


def remove_unfinished(folder: str) -> None:
    """Removes what a save cut short (a kill, a full disk) left in `folder`.

    Only the process that holds the run folder's lock saves there, so no save
    is under way: every temporary is a leftover, often as large as a checkpoint.
    A checkpoint's data without its index (written last) is one too.
    """
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    indexed = {n[: -len(".index")] for n in names if n.endswith(".index")}
    removed = []
    for name in names:
        data = re.match(r"^(ckpt-\d+)\.data-\d+-of-\d+$", name)
        if _UNFINISHED_SAVE.match(name) or (data and data.group(1) not in indexed):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            removed.append(name)
    if removed:
        logging.info("Removed what unfinished saves left in %s: %s", folder, ", ".join(removed))


def _remove_files(prefix: str) -> None:
    """Removes checkpoint `prefix` (its index, its data, its temporary folder)."""
    shutil.rmtree(prefix + "_temp", ignore_errors=True)
    for path in glob.glob(glob.escape(prefix) + ".*"):
        try:
            os.remove(path)
        except FileNotFoundError:
            continue


def _last_checkpoint_bytes(folder: str) -> int:
    """The size of the newest checkpoint in `folder` (0 if there is none)."""
    found = {}
    for path in glob.glob(os.path.join(glob.escape(folder), "ckpt-*")):
        match = re.match(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$", os.path.basename(path))
        if match:
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            found[int(match.group(1))] = found.get(int(match.group(1)), 0) + size
    return found[max(found)] if found else 0


def save(manager: tf.train.CheckpointManager, number: int, variable_bytes: int) -> None:
    """Saves checkpoint `number`; a failed save (full disk, Ctrl-C) leaves none of its files.

    Args:
      manager: The folder's checkpoint manager.
      number: The checkpoint's number (the step).
      variable_bytes: What the checkpoint's variables take, for a full disk's
        message where the folder holds no checkpoint yet.

    Raises:
      tvn_tf.atomic.NoSpaceError: the file system is full (names it, the
        checkpoint and about what it needs: the last checkpoint's size, or the
        variables' where there is none).
      Anything else the save raised, once its files are gone.
    """
    prefix = os.path.join(manager.directory, f"ckpt-{number}")
    try:
        manager.save(checkpoint_number=number)
    except BaseException as e:
        _remove_files(prefix)
        if isinstance(e, Exception):
            needed = max(variable_bytes, _last_checkpoint_bytes(manager.directory))
            atomic.raise_if_no_space(e, prefix, needed)
        raise
