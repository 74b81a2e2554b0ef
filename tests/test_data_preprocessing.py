"""Resizing and crops shared by training, evaluation and export."""

import numpy as np
import pytest
import tensorflow as tf

from tvn_tf.data import preprocessing


def test_three_square_crops_run_along_the_long_side():
    wide = tf.reshape(tf.range(6 * 8), (1, 6, 8, 1))  # height 6, width 8
    left, centre, right = preprocessing.square_crops(wide, 3).numpy()
    np.testing.assert_array_equal(left, wide[:, :, 0:6])
    np.testing.assert_array_equal(centre, wide[:, :, 1:7])
    np.testing.assert_array_equal(right, wide[:, :, 2:8])
    np.testing.assert_array_equal(centre, preprocessing.center_crop_square(wide))
    tall = tf.transpose(wide, (0, 2, 1, 3))  # height 8, width 6
    top, _, bottom = preprocessing.square_crops(tall, 3).numpy()
    np.testing.assert_array_equal(top, tall[:, 0:6])
    np.testing.assert_array_equal(bottom, tall[:, 2:8])
    with pytest.raises(ValueError, match="num_crops is 2; expected 1 or 3"):
        preprocessing.square_crops(wide, 2)


def test_normalize_frames_range_and_jitter():
    x = tf.constant([0, 127.5, 255])
    np.testing.assert_allclose(preprocessing.normalize_frames(x).numpy(), [-1, 0, 1])
    np.testing.assert_allclose(
        preprocessing.normalize_frames(x, contrast=0.5, brightness=25.5).numpy(),
        [-0.5 + 0.2, 0.2, 0.5 + 0.2],
        atol=1e-6,
    )


def test_preprocess_for_eval_centre_crops():
    frames = np.zeros((1, 30, 50, 3), np.uint8)
    frames[:, :, 10:40] = 255  # the centre 30x30 square is white
    out = preprocessing.preprocess_for_eval(tf.constant(frames), 8).numpy()
    assert out.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(out, 1.0)
