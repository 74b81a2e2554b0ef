"""What a model directory holds, and how to rebuild a trained model from it.

Layout, written by `tvn_tf.train` and read by `evaluate`, `export` and
`predict`:

    MODEL_DIR/
      model.json           the ModelSpec: architecture (after scaling and any
                           --image_size override), classes, head, input sampling
      checkpoints/ckpt-N*  the last K training checkpoints (tf.train.Checkpoint:
                           model, optimizer, step)
      best/ckpt-N*         the checkpoint with the best validation accuracy
      metrics.json         written by evaluation

    spec = read_spec(model_dir)
    model = restore_model(model_dir)            # latest checkpoint
    model = restore_model(model_dir, "best")    # best by validation accuracy
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

SPEC_FILE = "model.json"
CHECKPOINTS = "checkpoints"
BEST = "best"


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
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_frames(self) -> int:
        return self.architecture["num_frames"]

    @property
    def frame_stride(self) -> int:
        return self.architecture["frame_stride"]

    @property
    def image_size(self) -> int:
        return self.architecture["image_size"]

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
            architecture=data["architecture"],
            class_names=tuple(data["class_names"]),
            head=data.get("head", "mean"),
            dropout_rate=data.get("dropout_rate", 0.5),
        )

    def build(self):
        """Builds the (untrained) Keras model this spec describes."""
        from tvn_tf.models import architecture as arch_lib
        from tvn_tf.models import tvn

        arch = arch_lib.architecture_from_json(self.architecture, self.name)
        return tvn.build_model(arch, self.num_classes, self.dropout_rate, self.head)


def write_json_atomic(path: str, data: Any) -> None:
    """Writes JSON to `path` through a temporary file, so readers never see half of it."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def write_spec(model_dir: str, spec: ModelSpec) -> None:
    """Saves `spec` as `MODEL_DIR/model.json`."""
    os.makedirs(model_dir, exist_ok=True)
    write_json_atomic(os.path.join(model_dir, SPEC_FILE), spec.to_json())


def read_spec(model_dir: str) -> ModelSpec:
    """Reads `MODEL_DIR/model.json`.

    Raises:
      ValueError: if the directory holds no readable spec.
    """
    path = os.path.join(model_dir, SPEC_FILE)
    try:
        with open(path) as f:
            return ModelSpec.from_json(json.load(f))
    except FileNotFoundError:
        raise ValueError(
            f"{model_dir}: not a model directory (no {SPEC_FILE}); expected the "
            "--model_dir of a training run."
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: unreadable model spec ({e}).") from None


def checkpoint_path(model_dir: str, checkpoint: str | None = None) -> str:
    """Resolves a checkpoint: None (latest), "best", or an explicit prefix.

    Raises:
      ValueError: if there is no such checkpoint.
    """
    import tensorflow as tf

    if checkpoint in (None, "latest", BEST):
        folder = os.path.join(model_dir, BEST if checkpoint == BEST else CHECKPOINTS)
        path = tf.train.latest_checkpoint(folder)
        if path is None:
            raise ValueError(f"{folder}: no checkpoint found; train first, or pass --checkpoint.")
        return path
    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise ValueError(
            f"--checkpoint={checkpoint}: no such checkpoint (expected a prefix "
            "like MODEL_DIR/checkpoints/ckpt-100, 'latest' or 'best')."
        )
    return checkpoint


def restore_model(model_dir: str, checkpoint: str | None = None):
    """Rebuilds the model of a training run and loads its weights.

    Args:
      model_dir: A training run's `--model_dir`.
      checkpoint: None or "latest", "best", or a checkpoint prefix.

    Returns:
      `(model, spec, path)`: the Keras model with the checkpoint's weights, its
      `ModelSpec`, and the checkpoint path used.
    """
    import tensorflow as tf

    spec = read_spec(model_dir)
    path = checkpoint_path(model_dir, checkpoint)
    model = spec.build()
    tf.train.Checkpoint(model=model).restore(
        path
    ).expect_partial().assert_existing_objects_matched()
    return model, spec, path
