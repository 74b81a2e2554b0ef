"""Whether a run may continue what its folder holds, and restoring its training checkpoint.

A run folder remembers its model (`model.json`), its split and its flags
(`train_config.json`, a `model_dir.RunRecord`). A rerun that asks for another
model or split is refused (it would train on its test groups, or test on
groups it trained on), and so is one whose optimizer, precision or training
heads differ from those its checkpoints hold. Every refusal happens before
anything is written, and names the flags that differ.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

import tensorflow as tf
from absl import logging

from tvn_tf import errors
from tvn_tf import model_dir as model_dir_lib
from tvn_tf import run_record
from tvn_tf.data import dataset as data_lib
from tvn_tf.data import splits
from tvn_tf.training import config as config_lib

# Flags that change what a checkpoint holds (optimizer slots, loss scale, input state).
_STATE_FLAGS = ("optimizer", "mixed_precision", "strategy", "aux_classifiers")
# Of those, the ones a resumed run must keep as the run's record has them. A
# checkpoint restores into a run that asks for less (no loss scale, fewer
# heads) without complaint, so only this check stops such a run from training
# on and rewriting the record. The strategy may change: the restore decides.
_RECORDED_STATE_FLAGS = ("optimizer", "mixed_precision", "aux_classifiers")

# Where a training checkpoint keeps the input pipeline's position.
_INPUT_STATE = "data/.ATTRIBUTES/ITERATOR_STATE"


def _split_flags(data: dict[str, Any]) -> str:
    flags = ["split", "fold"] + (["num_folds"] if data["split"] == "kfold" else [])
    return " ".join(f"--{k}={data[k]}" for k in flags + ["num_validation_groups"])


def _check_same_model(model_dir: str, spec: model_dir_lib.ModelSpec) -> None:
    """Refuses a folder whose `model.json` names another architecture, classes or head."""
    if not os.path.exists(os.path.join(model_dir, model_dir_lib.SPEC_FILE)):
        return
    old = model_dir_lib.read_spec(model_dir)
    for what, a, b in (
        ("architecture", old.architecture, spec.architecture),
        ("classes", old.class_names, spec.class_names),
        ("head", old.head, spec.head),
    ):
        if a != b:
            detail = (
                f"{old.name} at {old.input.image_size}px vs {spec.name} at "
                f"{spec.input.image_size}px"
                if what == "architecture"
                else f"{len(a)} vs {len(b)}"
                if what == "classes"
                else f"{a} vs {b}"
            )
            raise ValueError(
                f"--model_dir={model_dir} holds a different model ({what}: "
                f"{detail}); use a new --model_dir or the same flags."
            )


def check_model_dir(
    model_dir: str,
    spec: model_dir_lib.ModelSpec,
    data_config: data_lib.DataConfig | None = None,
    split: splits.GroupSplit | None = None,
) -> None:
    """Refuses a model dir that already holds a different model or split.

    A run folder remembers its split: resuming it under another one would train
    on its test groups, or test on groups it trained on.

    Raises:
      ValueError: naming what differs.
    """
    _check_same_model(model_dir, spec)
    run = run_record.read_run_record(model_dir)
    if run is None or split is None:
        return
    new = dataclasses.asdict(split)
    if run.split != {k: list(v) for k, v in new.items()}:
        raise ValueError(
            f"--model_dir={model_dir} was trained with {_split_flags(run.data)} (test "
            f"groups {list(run.split['test'])}); this run asks for "
            f"{_split_flags(data_config.to_json())} (test groups {list(split.test)}). Use a "
            "new --model_dir, or the run's split flags."
        )


def _as_flag(value: Any) -> Any:
    """A config value as it is written on the command line (lists comma-separated)."""
    return ",".join(value) if isinstance(value, list) else value


def _does_not_fit(path: str, config: config_lib.TrainConfig, reason: str) -> ValueError:
    return ValueError(
        f"{path} does not fit this run ({reason}); rerun with the flags of "
        f"{os.path.join(config.model_dir, model_dir_lib.TRAIN_CONFIG)}, or use a new --model_dir."
    )


def check_state_flags(config: config_lib.TrainConfig) -> None:
    """Refuses to resume a run's checkpoints with other optimizer, precision or training heads.

    Runs before anything is written: a refused rerun leaves the run's record
    (`train_config.json`) and checkpoints as they were.

    Raises:
      ValueError: naming the newest checkpoint and each flag that differs.
    """
    indexes = glob.glob(os.path.join(config.model_dir, model_dir_lib.CHECKPOINTS, "*.index"))
    run = run_record.read_run_record(config.model_dir)
    if not indexes or run is None:
        return  # Nothing trained yet: any flags may start it.
    now = config.to_json()
    differ = [
        f"--{k}={_as_flag(now[k]) or 'none'} (the run's: {_as_flag(run.train[k]) or 'none'})"
        for k in _RECORDED_STATE_FLAGS
        if k in run.train and run.train[k] != now[k]
    ]
    if differ:
        newest = max(indexes, key=lambda p: (len(p), p))[: -len(".index")]
        raise _does_not_fit(newest, config, ", ".join(differ))


def _mismatch(
    path: str, config: config_lib.TrainConfig, data_config: data_lib.DataConfig, error: Exception
) -> ValueError:
    """The refusal of a checkpoint that does not restore: the flags that differ from its run's."""
    run = run_record.read_run_record(config.model_dir)
    if run is None:  # Checkpoints from elsewhere: no recorded flags to blame.
        return ValueError(
            f"{path} does not fit this run ({errors.first_line(error)}); "
            f"{config.model_dir} has no {model_dir_lib.TRAIN_CONFIG}, so its "
            f"{model_dir_lib.CHECKPOINTS}/ hold another model's checkpoints: move that "
            "folder away to start over, or use a new --model_dir."
        )
    now = {**config.to_json(), "data_format": data_config.data_format}
    was = {**run.train, "data_format": run.data.get("data_format")}
    differ = [
        f"--{k}={_as_flag(now[k])} (the run's: {_as_flag(was[k]) or 'none'})"
        for k in (*_STATE_FLAGS, "data_format")
        if k in was and was[k] != now[k]
    ]
    reason = ", ".join(differ) if differ else errors.first_line(error)
    return _does_not_fit(path, config, reason)


def restore(
    checkpoint: tf.train.Checkpoint,
    path: str,
    config: config_lib.TrainConfig,
    data_config: data_lib.DataConfig,
    trackables: dict[str, Any] | None = None,
) -> None:
    """Restores a training checkpoint; a mismatch names the checkpoint and the flags that differ.

    A checkpoint without an input position (saved over several replicas, say)
    restores all but the input, which then starts afresh.

    Args:
      checkpoint: The run's checkpoint.
      path: The checkpoint to restore.
      config: The run's flags (named in a refusal).
      data_config: The run's data flags (named in a refusal).
      trackables: What `checkpoint` was built from, to restore without the
        input position where `path` has none.

    Raises:
      ValueError: the checkpoint does not fit this run's model and optimizer.
    """
    try:
        trackables = trackables or {}
        if "data" in trackables and not tf.train.load_checkpoint(path).has_tensor(_INPUT_STATE):
            logging.info("%s holds no input position: the input starts afresh.", path)
            checkpoint = tf.train.Checkpoint(**{k: v for k, v in trackables.items() if k != "data"})
        checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        # The failed restore would log a warning per unmatched value at exit: the
        # message says it all.
        tf.get_logger().setLevel("ERROR")
        raise _mismatch(path, config, data_config, e) from None
