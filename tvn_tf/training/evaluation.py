"""Scoring a model on groups of the data, and the metrics files that record it.

`Evaluator` runs a model over every evaluation clip (and crop) of some groups
and scores clips and videos; `write_metrics` writes `metrics.json` and the
confusion matrix into a run folder. The training loop validates and tests
with them, and `tvn_tf.evaluate` scores a stored run with them, without any
training recipe.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tvn_tf import atomic
from tvn_tf import model_dir as model_dir_lib
from tvn_tf.data import dataset as data_lib
from tvn_tf.models.model_input import ModelInput
from tvn_tf.training import metrics as metrics_lib


class Evaluator:
    """Runs a model over every clip (and crop) of some groups and scores it.

    Takes only what evaluation reads, so that `tvn_tf.evaluate` scores a stored
    run without building a training recipe.

    Args:
      model: The classifier, `[batch, frames, size, size, 3] -> logits`.
      dataset: The data and its split (`tvn_tf.data.dataset.load_dataset`).
      model_input: What the model is fed (`Architecture.input`,
        `ModelSpec.input`).
      batch_size: Clips per batch (at least 8 are used: evaluation holds no
        gradients).
      eval_clips: Evenly spaced clips per video.
      eval_crops: Spatial views per clip, 1 or 3.
    """

    def __init__(
        self,
        model: keras.Model,
        dataset: data_lib.Dataset,
        model_input: ModelInput,
        *,
        batch_size: int,
        eval_clips: int,
        eval_crops: int,
    ):
        self.model, self.dataset, self.model_input = model, dataset, model_input
        self.batch_size, self.eval_clips, self.eval_crops = batch_size, eval_clips, eval_crops
        size = model_input.image_size
        shape = (None, model_input.num_frames, size, size, 3)
        self.forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec(shape, tf.float32)],
            autograph=False,
        )

    def evaluate(self, groups) -> dict[str, Any]:
        """Clip and video metrics over `groups` (see `metrics.classification_metrics`)."""
        ds = data_lib.make_clips(
            self.dataset,
            groups,
            self.model_input,
            training=False,
            batch_size=max(8, self.batch_size),
            num_clips=self.eval_clips,
            num_crops=self.eval_crops,
            with_video_ids=True,
        )
        logits, labels, ids = [], [], []
        for clips, label, video_id in ds:
            logits.append(self.forward(clips).numpy())
            labels.append(label.numpy())
            ids.append(video_id.numpy())
        return metrics_lib.classification_metrics(
            np.concatenate(logits),
            np.concatenate(labels),
            np.concatenate(ids),
            len(self.dataset.class_names),
        )


def write_metrics(model_dir: str, result: dict, class_names) -> None:
    """Writes `metrics.json` and the confusion matrix (PNG and CSV) into `model_dir`."""
    metrics = dict(result)
    metrics["per_class_accuracy"] = dict(zip(class_names, result["per_class_accuracy"]))
    metrics["class_names"] = list(class_names)
    atomic.write_json(os.path.join(model_dir, model_dir_lib.METRICS), metrics)
    metrics_lib.write_confusion(
        result["confusion"],
        class_names,
        os.path.join(model_dir, model_dir_lib.CONFUSION),
        f"{result.get('split', 'test')} videos: accuracy {result['video_accuracy']:.3f}",
    )
