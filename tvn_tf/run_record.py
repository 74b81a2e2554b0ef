"""A run's record, `MODEL_DIR/train_config.json`: how the run in that folder was trained.

`RunRecord` is its one form: written by `write_run_record` (the training
loop, once every check of a run has passed), read by `read_run_record` (a
rerun's checks and resume, `evaluate`, `export` through `data_config`). A
rerun must keep the recorded split; evaluation and export read the recorded
data. The file is JSON:

    {"train": {...TrainConfig...}, "data": {...DataConfig...},
     "split": {"train": [...], "validation": [...], "test": [...]},
     "total_steps": N, "steps_per_epoch": M}

    run = read_run_record(model_dir)                  # None for a folder without one
    data = data_config(model_dir, given={"fold": 2})  # the run's data, --fold=2 on top
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from tvn_tf import atomic
from tvn_tf import model_dir as model_dir_lib
from tvn_tf.data import dataset as data_lib


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What `MODEL_DIR/train_config.json` holds: how the run in that folder was trained.

    Written by `write_run_record` alone, read by `read_run_record` alone.

    Attributes:
      train: The recipe, as `TrainConfig.to_json` gives it (a run recorded
        before a field existed lacks that key).
      data: The data folder and split flags, as `DataConfig.to_json` gives them.
      split: The groups of each side (`GroupSplit`): "train", "validation", "test".
      total_steps: The run's length in steps (None where the record has none).
      steps_per_epoch: Its steps per pass over the training videos (likewise).
    """

    train: dict[str, Any]
    data: dict[str, Any]
    split: dict[str, Any]
    total_steps: int | None = None
    steps_per_epoch: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "train": self.train,
            "data": self.data,
            "split": {k: list(v) for k, v in self.split.items()},
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """The record of a parsed `train_config.json`.

        Raises:
          KeyError, TypeError, AttributeError: a key every reader needs is missing or malformed.
        """
        return cls(
            train=dict(data["train"]),
            data=dict(data["data"]),
            split={k: list(v) for k, v in data["split"].items()},
            total_steps=data.get("total_steps"),
            steps_per_epoch=data.get("steps_per_epoch"),
        )


def write_run_record(model_dir: str, record: RunRecord) -> None:
    """Saves `record` as `MODEL_DIR/train_config.json`."""
    atomic.write_json(os.path.join(model_dir, model_dir_lib.TRAIN_CONFIG), record.to_json())


def read_run_record(model_dir: str) -> RunRecord | None:
    """`MODEL_DIR/train_config.json`, or None if the folder has none.

    Raises:
      ValueError: the file is unreadable (names it).
    """
    path = os.path.join(model_dir, model_dir_lib.TRAIN_CONFIG)
    try:
        with open(path) as f:
            return RunRecord.from_json(json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(
            f"{path}: unreadable run config ({e}); restore it, or use a new --model_dir."
        ) from None


def data_config(
    model_dir: str, given: dict[str, Any], defaults: dict[str, Any] | None = None
) -> data_lib.DataConfig:
    """The data and split to read a trained run with (`evaluate`, `export`).

    The run's own (`train_config.json`), with the values `given` (the data
    flags on the command line) laid over them. A folder without
    `train_config.json` (a model written by other means) takes `given` over
    `defaults` (the flags' defaults), and then `given` must name the data_dir.

    Returns:
      A `tvn_tf.data.dataset.DataConfig`.

    Raises:
      ValueError: no data folder is known, or the stored config is unreadable.
    """
    run = read_run_record(model_dir)
    values = {**(defaults or {})} if run is None else dict(run.data)
    values.update(given)
    if not values.get("data_dir"):
        raise ValueError(
            f"--data_dir is required: {model_dir} has no {model_dir_lib.TRAIN_CONFIG} naming the training data."
        )
    names = {field.name for field in dataclasses.fields(data_lib.DataConfig)}
    return data_lib.DataConfig(**{k: v for k, v in values.items() if k in names})
