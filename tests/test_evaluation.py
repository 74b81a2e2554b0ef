"""Scoring a model on groups of the data, and the metrics files of a run."""

from __future__ import annotations

import json

import keras
import numpy as np

from tvn_tf.data import dataset as data_lib
from tvn_tf.training import evaluation


def test_evaluator_takes_the_values_it_uses_and_scores_every_clip_and_crop(tiny_data):
    # `evaluate` scores a stored run through this without a TrainConfig.
    dataset = data_lib.load_dataset(data_lib.DataConfig(tiny_data["records"], fold=4))

    class Clip:
        num_frames, frame_stride, image_size = 2, 4, 16

    model = keras.Sequential(
        [keras.Input((2, 16, 16, 3)), keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(4)]
    )
    evaluator = evaluation.Evaluator(model, dataset, Clip, batch_size=4, eval_clips=2, eval_crops=3)
    result = evaluator.evaluate(dataset.split.test)
    videos = dataset.num_videos(dataset.split.test)
    assert result["num_test_videos"] == videos
    assert result["num_test_clips"] == videos * 2 * 3


def test_write_metrics_names_each_class_and_draws_the_confusion(tmp_path):
    result = {
        "video_accuracy": 0.5,
        "clip_accuracy": 0.75,
        "per_class_accuracy": [0.0, 1.0],
        "confusion": [[0, 1], [0, 1]],
        "split": "validation",
    }
    evaluation.write_metrics(str(tmp_path), result, ("a", "b"))
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["per_class_accuracy"] == {"a": 0.0, "b": 1.0}
    assert written["class_names"] == ["a", "b"] and written["split"] == "validation"
    assert (tmp_path / "confusion.png").stat().st_size > 0
    assert (tmp_path / "confusion.csv").read_text().startswith("true \\ predicted,")
    np.testing.assert_array_equal(written["confusion"], result["confusion"])
