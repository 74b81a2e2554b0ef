"""Clip and video metrics."""

from __future__ import annotations

import numpy as np

from tvn_tf.training import metrics as metrics_lib


def test_video_metrics_average_softmax_over_clips():
    # Video "a" (label 0): one confident wrong clip, two right ones; "b" (label 1) right.
    logits = np.log(np.array([[0.1, 0.9], [0.6, 0.4], [0.6, 0.4], [0.2, 0.8]]))
    result = metrics_lib.classification_metrics(
        logits, np.array([0, 0, 0, 1]), np.array(["a", "a", "a", "b"]), 2
    )
    assert result["clip_accuracy"] == 0.75
    assert result["video_accuracy"] == 0.5  # mean of a: [0.433, 0.567] -> wrong
    assert result["num_test_videos"] == 2 and result["confusion"] == [[0, 1], [0, 1]]
    assert result["per_class_accuracy"] == [0.0, 1.0] and result["top5_accuracy"] == 1.0
