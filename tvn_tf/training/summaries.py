"""What a training run writes to TensorBoard: step curves, evaluation scores, sample clips."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tvn_tf.data import dataset as data_lib
from tvn_tf.models.model_input import ModelInput

EVALUATION_SCALARS = ("clip_accuracy", "video_accuracy", "top5_accuracy")


def write_step(
    writer,
    step: int,
    loss: tf.Tensor | float,
    accuracy: tf.Tensor | float,
    learning_rate: float,
    clips_per_s: float,
) -> None:
    """One training step's loss, accuracy, learning rate and throughput, under `train/`."""
    with writer.as_default(step=step):
        tf.summary.scalar("train/loss", loss)
        tf.summary.scalar("train/accuracy", accuracy)
        tf.summary.scalar("train/learning_rate", learning_rate)
        tf.summary.scalar("train/clips_per_second", clips_per_s)


def write_scores(writer, prefix: str, result: dict, step: int) -> None:
    """An evaluation's accuracies (`EVALUATION_SCALARS`) under `prefix/` ("validation", "test")."""
    with writer.as_default(step=step):
        for key in EVALUATION_SCALARS:
            tf.summary.scalar(f"{prefix}/{key}", result[key])


def image_rows(clips: np.ndarray) -> np.ndarray:
    """[clips, frames, h, w, 3] in [-1, 1] -> one row of frames per clip, in [0, 1]."""
    rows = [np.concatenate(list(clip), axis=1) for clip in clips]
    return ((np.stack(rows) + 1.0) / 2.0).clip(0, 1)


def write_sample_clips(
    writer, dataset: data_lib.Dataset, model_input: ModelInput, count: int, seed: int
) -> None:
    """`count` augmented training clips as images (one row of frames each), at step 0."""
    sample = data_lib.make_clips(
        dataset, dataset.split.train, model_input, training=True, batch_size=count, seed=seed
    )
    clips, labels = next(iter(sample))
    names = ", ".join(dataset.class_names[i] for i in labels.numpy())
    with writer.as_default(step=0):
        tf.summary.image(
            "train/sample_clips",
            image_rows(clips.numpy()),
            max_outputs=count,
            description=f"One row of frames per augmented training clip: {names}",
        )
