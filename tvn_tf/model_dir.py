"""What a model directory holds, and how to rebuild a trained model from it.

The one place that names the files of a run. Written by `tvn_tf.train` (and
`evaluate`, which rewrites the metrics), read by `evaluate`, `export`, `predict`
and `benchmark`:

    MODEL_DIR/
      model.json           the ModelSpec: architecture (after scaling and any
                           --image_size override), classes, head, input sampling
      train_config.json    the recipe, the data and its split, the step counts (a
                           rerun must keep the split; evaluate and export read the data)
      train.lock           held (flock) by the training process that owns the folder
      checkpoints/ckpt-N*  the last K training checkpoints (tf.train.Checkpoint:
                           model, optimizer, step, input position, and the
                           `--aux_classifiers` heads when trained with them), and
                           TensorFlow's `checkpoint` index file
      best/ckpt-N*         the checkpoint with the best validation accuracy
      best/best.json       its step and validation video accuracy
      metrics.json         the last evaluation: clip and video accuracy, top-5,
                           per-class accuracy, the confusion matrix
      confusion.png        that confusion matrix as an image,
      confusion.csv        and as a table
      tensorboard/         training curves, validation and test scalars, sample clips
      .workers/workerN/    multi-worker training: worker N's own checkpoints/,
                           best/, tb/ (its curves) and train.lock (the chief
                           writes MODEL_DIR itself)

    spec = read_spec(model_dir)
    model = restore_model(model_dir)            # latest checkpoint
    model = restore_model(model_dir, "best")    # best by validation accuracy

`train_config.json` is read and written by `tvn_tf.run_record` alone.

This module loads neither TensorFlow nor Keras at import, so that tools which
only read a run's files start at once: the functions that read checkpoints or
build a model import them when called.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from typing import IO, Any

from absl import logging

from tvn_tf import atomic, errors
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models.model_input import ModelInput

SPEC_FILE = "model.json"
TRAIN_CONFIG = "train_config.json"
LOCK_FILE = "train.lock"
CHECKPOINTS = "checkpoints"
BEST = "best"
BEST_FILE = "best.json"  # in BEST
METRICS = "metrics.json"
CONFUSION = "confusion"  # .png and .csv
TENSORBOARD = "tensorboard"
WORKERS = ".workers"
WORKER_TENSORBOARD = "tb"  # in a worker's folder


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a trained model and feed it.

    Attributes:
      name: The architecture's name (e.g. "tvn1").
      architecture: The architecture's JSON form, as trained.
      class_names: One name per class, in label order.
      head: "mean" or "softmax_pool".
      dropout_rate: Dropout before the classifier.
    """

    name: str
    architecture: dict[str, Any]
    class_names: tuple[str, ...]
    head: str = "mean"
    dropout_rate: float = 0.5

    @property
    def input(self) -> ModelInput:
        """What the model is fed and what it names: its clips' sampling and its classes."""
        return ModelInput(
            num_frames=self.architecture["num_frames"],
            frame_stride=self.architecture["frame_stride"],
            image_size=self.architecture["image_size"],
            class_names=self.class_names,
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "class_names": list(self.class_names),
            "head": self.head,
            "dropout_rate": self.dropout_rate,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            name=data["name"],
            architecture=arch_lib.named_activations_json(data["architecture"]),
            class_names=tuple(data["class_names"]),
            head=data.get("head", "mean"),
            dropout_rate=data.get("dropout_rate", 0.5),
        )

    def model_config(self) -> dict[str, Any]:
        """The `tvn.TinyVideoNetwork` config of the model this spec describes."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "dropout_rate": self.dropout_rate,
            "head": self.head,
        }

    def build(self):
        """Builds the (untrained) Keras model this spec describes, from its config."""
        from tvn_tf.models import tvn

        return tvn.TinyVideoNetwork.from_config(self.model_config())


def write_spec(model_dir: str, spec: ModelSpec) -> None:
    """Saves `spec` as `MODEL_DIR/model.json`."""
    os.makedirs(model_dir, exist_ok=True)
    atomic.write_json(os.path.join(model_dir, SPEC_FILE), spec.to_json())


def read_spec(model_dir: str) -> ModelSpec:
    """Reads `MODEL_DIR/model.json`.

    Raises:
      ValueError: if the directory holds no readable spec.
    """
    path = os.path.join(model_dir, SPEC_FILE)
    try:
        with open(path) as f:
            return ModelSpec.from_json(json.load(f))
    except (FileNotFoundError, NotADirectoryError):
        raise ValueError(
            f"{model_dir}: not a model directory (no {SPEC_FILE}); expected the "
            "--model_dir of a training run."
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: unreadable model spec ({e}).") from None


def worker_dir(model_dir: str, task_id: int) -> str:
    """The folder where multi-worker task `task_id` (not the chief) keeps its own files."""
    return os.path.join(model_dir, WORKERS, f"worker{task_id}")


def lock_run(folder: str) -> IO[str]:
    """Takes the exclusive lock of a run folder that one training process writes.

    `folder/train.lock`, held (`atomic.hold_lock`) while the returned file is open.

    Raises:
      ValueError: another process holds the lock (names it and the folder), or
        the folder cannot be made or written (a file, a read-only place).
      tvn_tf.atomic.NoSpaceError: its file system is full.
    """
    try:
        return atomic.hold_lock(
            os.path.join(folder, LOCK_FILE),
            f"--model_dir={folder} is in use by another training process (pid {{pid}}, "
            "lock {lock}); wait for it to end, or use another --model_dir.",
        )
    except OSError as e:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ValueError(f"--model_dir={folder} is a file; expected a folder.") from None
        raise ValueError(
            f"--model_dir={folder}: cannot write {e.filename or folder} ({e.strerror}); "
            "expected a folder this process can create and write."
        ) from None


def verify_checkpoint(path: str) -> None:
    """Reads every tensor of a checkpoint, so that its checksums are checked.

    Input-pipeline states (variant tensors) cannot be read outside their
    pipeline and are skipped.

    Raises:
      ValueError: naming the checkpoint and what is wrong with it.
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(path)
        for name, dtype in reader.get_variable_to_dtype_map().items():
            if dtype != tf.variant:
                reader.get_tensor(name)
    except (tf.errors.OpError, RuntimeError, IndexError, ValueError) as e:
        raise ValueError(f"{path}: unreadable checkpoint ({errors.first_line(e)})") from None


def latest_intact_checkpoint(folder: str) -> str | None:
    """The newest checkpoint of `folder` that reads back whole, or None if there is none.

    Checkpoints are found by their files (`ckpt-N.index`), not through the
    `checkpoint` state file, which may be stale or damaged. A damaged newer
    checkpoint (a disk fault, a copy cut short) is skipped with a warning that
    names it, so the run goes on from the one before.

    Raises:
      ValueError: checkpoints exist but none is intact (names each).
    """
    problems = []
    for path in _checkpoints_newest_first(folder):
        try:
            verify_checkpoint(path)
        except ValueError as e:
            logging.warning("Skipping %s; trying the checkpoint before it.", e)
            problems.append(str(e))
            continue
        return path
    if problems:
        raise ValueError(
            f"{folder}: no intact checkpoint ({'; '.join(problems)}); move the folder "
            "away to start over."
        )
    return None


def checkpoint_step(path: str) -> int | None:
    """The training step saved in a checkpoint (its `step` variable), or None if it has none."""
    import tensorflow as tf

    key = "step/.ATTRIBUTES/VARIABLE_VALUE"
    try:
        reader = tf.train.load_checkpoint(path)
        return int(reader.get_tensor(key)) if reader.has_tensor(key) else None
    except (tf.errors.OpError, ValueError):  # Rotated away or damaged since: the step is unknown.
        return None


def checkpoint_path(model_dir: str, checkpoint: str | None = None) -> str:
    """Resolves a checkpoint: None (latest intact), "best", or an explicit prefix.

    Raises:
      ValueError: if there is no such checkpoint, or it is damaged.
    """

    if checkpoint in (None, "latest", BEST):
        folder = os.path.join(model_dir, BEST if checkpoint == BEST else CHECKPOINTS)
        path = latest_intact_checkpoint(folder)
        if path is None:
            raise ValueError(f"{folder}: no checkpoint found; train first, or pass --checkpoint.")
        return path
    _require_index(checkpoint)
    verify_checkpoint(checkpoint)
    return checkpoint


def _require_index(checkpoint: str) -> None:
    """Refuses a `--checkpoint` prefix without its `.index` file."""
    import tensorflow as tf

    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise ValueError(
            f"--checkpoint={checkpoint}: no such checkpoint (expected a prefix "
            "like MODEL_DIR/checkpoints/ckpt-100, 'latest' or 'best')."
        )


class CheckpointVanishedError(ValueError):
    """A checkpoint's files went away while it was read (a running training rotated it out)."""


class DamagedCheckpointError(ValueError):
    """A checkpoint whose model weights cannot be read back (checksum, truncation)."""


def _checkpoints_newest_first(folder: str) -> list[str]:
    """The checkpoint prefixes of `folder` found by their `ckpt-N.index` files, newest first."""
    found = []
    for index in glob.glob(os.path.join(folder, "*.index")):
        match = re.search(r"-(\d+)\.index$", index)
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return [path for _, path in sorted(found, reverse=True)]


def _checkpoint_files_present(path: str) -> bool:
    return os.path.exists(path + ".index") and bool(glob.glob(path + ".data-*"))


def restore_weights(model, path: str, spec_file: str) -> None:
    """Loads the model's weights from checkpoint `path`, and nothing else of it.

    Only what `model` holds is read (`tf.train.Checkpoint(model=model)`): a
    training checkpoint's optimizer slots, step and input position are never
    read, so a damaged optimizer value does not stop evaluation or export.
    TensorFlow's per-value warnings of a failed restore are silenced: the
    error raised says it in one line.

    Raises:
      CheckpointVanishedError: its files went away meanwhile.
      DamagedCheckpointError: a model weight cannot be read (checksum, truncation).
      ValueError: it holds another model's weights (names `spec_file`).
    """
    import gc

    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    # A failed restore logs every value it left unread once its status is collected.
    logger.setLevel("ERROR")
    kind, text = None, ""
    try:
        try:
            tf.train.Checkpoint(model=model).restore(
                path
            ).expect_partial().assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            text = errors.first_line(e)
            if not _checkpoint_files_present(path):
                kind = "vanished"
            elif isinstance(e, tf.errors.OpError):
                kind = "damaged"
            else:
                kind = "mismatch"
        gc.collect()
    finally:
        logger.setLevel(level)
    if kind == "vanished":
        raise CheckpointVanishedError(
            f"{path}: the checkpoint went away while it was read (a training running on "
            "this folder keeps only its last checkpoints and deletes older ones); rerun, "
            "or pass --checkpoint=best or a checkpoint that stays."
        )
    if kind == "damaged":
        raise DamagedCheckpointError(f"{path}: unreadable checkpoint ({text})")
    if kind == "mismatch":
        raise ValueError(f"{path} does not fit the model of {spec_file} ({text}).")


def restore_model(model_dir: str, checkpoint: str | None = None):
    """Rebuilds the model of a training run and loads its weights.

    Reads the model's weights only (`restore_weights`). With "latest" or
    "best", a newest checkpoint whose weights are damaged is skipped with a
    warning naming it, and one that a running training deletes meanwhile
    (it keeps only its last few) is replaced by the newest one then.

    Args:
      model_dir: A training run's `--model_dir`.
      checkpoint: None or "latest", "best", or a checkpoint prefix.

    Returns:
      `(model, spec, path)`: the Keras model with the checkpoint's weights, its
      `ModelSpec`, and the checkpoint path used.

    Raises:
      ValueError: no such checkpoint, none readable, or one of another model
        (`CheckpointVanishedError`, `DamagedCheckpointError` among them).
    """

    spec = read_spec(model_dir)
    spec_file = os.path.join(model_dir, SPEC_FILE)
    model = spec.build()
    if checkpoint not in (None, "latest", BEST):
        _require_index(checkpoint)
        restore_weights(model, checkpoint, spec_file)
        return model, spec, checkpoint
    folder = os.path.join(model_dir, BEST if checkpoint == BEST else CHECKPOINTS)
    problems, damaged, vanished = [], set(), None
    for _ in range(3):  # Each pass starts again from the newest checkpoint now on disk.
        vanished = None
        for path in _checkpoints_newest_first(folder):
            if path in damaged:
                continue
            try:
                restore_weights(model, path, spec_file)
            except CheckpointVanishedError as e:
                vanished = e
                break
            except DamagedCheckpointError as e:
                problems.append(str(e))
                damaged.add(path)
                continue
            for problem in problems:
                logging.warning("Skipped %s; read the checkpoint before it.", problem)
            return model, spec, path
        if vanished is None:
            break
    if vanished is not None:
        raise vanished
    if problems:
        raise ValueError(
            f"{folder}: no readable checkpoint ({'; '.join(problems)}); pass --checkpoint "
            "with another one."
        )
    raise ValueError(f"{folder}: no checkpoint found; train first, or pass --checkpoint.")
