"""Shapes drawn into frames for the synthetic data."""

import numpy as np
import pytest

from tvn_tf.data import drawing


def test_draw_shape_clips_to_the_frame_and_rejects_unknown_shapes():
    frame = np.zeros((20, 30, 3), np.uint8)
    drawing.draw_shape(frame, "square", 0.0, 0.0, 4.0, 0.0, np.array([255, 0, 0], np.uint8))
    assert frame[:5, :5, 0].all() and not frame[6:, 6:].any()
    drawing.draw_shape(frame, "circle", -50.0, -50.0, 4.0, 0.0, np.array([0, 255, 0], np.uint8))
    assert not frame[..., 1].any()
    with pytest.raises(ValueError, match="Unknown shape"):
        drawing.draw_shape(frame, "blob", 10.0, 10.0, 4.0, 0.0, np.zeros(3))


def test_every_shape_fills_pixels_around_its_centre():
    for shape in (
        "circle",
        "ellipse",
        "ring",
        "thin_ring",
        "square",
        "rect",
        "bar",
        "cross",
        "diamond",
        "triangle_up",
        "triangle_down",
        "wheel",
    ):
        frame = np.zeros((40, 40, 3), np.float32)
        drawing.draw_shape(frame, shape, 20.0, 20.0, 10.0, 0.3, np.full(3, 200.0, np.float32))
        assert 20 < (frame[..., 0] > 0).sum() < 40 * 40, shape
