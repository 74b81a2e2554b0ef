"""Which frames make a clip: random training starts, evenly spaced evaluation clips, the loop rule."""

import pytest
import tensorflow as tf

from tvn_tf.data import sampling

T, STRIDE = 2, 4  # TVN-1's clip shape


def test_training_indices_cover_every_start_and_loop_short_videos():
    starts = set()
    for i in range(200):
        idx = sampling.training_indices(20, T, STRIDE, seed=tf.constant([i, 0])).numpy()
        assert idx[1] - idx[0] == STRIDE
        starts.add(int(idx[0]))
    assert starts == set(range(16))  # 20 frames, span 5: starts 0..15
    # Span 9 > 6 frames: start 0, indices wrap (loop rule).
    assert sampling.training_indices(6, 3, 4, seed=tf.constant([1, 2])).numpy().tolist() == [
        0,
        4,
        2,
    ]


def test_training_indices_draw_independent_clips():
    idx = sampling.training_indices(20, T, STRIDE, seed=tf.constant([5, 0]), num_clips=64).numpy()
    assert idx.shape == (64, T)
    assert (idx[:, 1] - idx[:, 0] == STRIDE).all()
    assert len(set(idx[:, 0])) > 8 and idx.min() >= 0 and idx.max() < 20
    with pytest.raises(ValueError, match="num_clips must be >= 1"):
        sampling.training_indices(20, T, STRIDE, seed=tf.constant([5, 0]), num_clips=0)


def test_evaluation_indices_are_evenly_spaced():
    assert sampling.evaluation_indices(20, T, STRIDE, 4).numpy().tolist() == [
        [0, 4],
        [5, 9],
        [10, 14],
        [15, 19],
    ]
    assert sampling.evaluation_indices(20, T, STRIDE, 1).numpy().tolist() == [[7, 11]]
    assert sampling.evaluation_indices(3, T, STRIDE, 2).numpy().tolist() == [[0, 1], [0, 1]]
