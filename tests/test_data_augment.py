"""One random draw per clip: the same crop, flip and colour jitter on every frame."""

import numpy as np
import tensorflow as tf

from tvn_tf.data import augment, preprocessing


def _asymmetric_frame(height=40, width=56):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 4, y * 6, (x * y) % 255], axis=-1).astype(np.uint8)


def test_same_crop_flip_and_jitter_on_every_frame():
    frame = _asymmetric_frame()
    clip = tf.constant(np.stack([frame] * 4))
    config = augment.AugmentConfig()
    outputs = []
    for seed in range(20):
        out = augment.augment_clip(clip, 24, config, tf.constant([seed, 1])).numpy()
        assert out.shape == (4, 24, 24, 3)
        for t in range(1, 4):
            np.testing.assert_array_equal(out[t], out[0])
        outputs.append(out[0])
    # The draws do differ between clips.
    assert len({o.tobytes() for o in outputs}) == 20


def test_flip_mirrors_whole_clip():
    frame = _asymmetric_frame()
    clip = tf.constant(np.stack([frame, frame]))
    config = augment.AugmentConfig(
        area_range=(1.0, 1.0),
        aspect_ratio_range=(56 / 40, 56 / 40),
        brightness_delta=0.0,
        contrast_range=(1.0, 1.0),
    )
    plain = preprocessing.normalize_frames(preprocessing.resize_frames(clip, 24)).numpy()
    flips = 0
    for seed in range(16):
        out = augment.augment_clip(clip, 24, config, tf.constant([seed, 5])).numpy()
        if np.allclose(out, plain, atol=1e-5):
            continue
        np.testing.assert_allclose(out, plain[:, :, ::-1], atol=1e-5)
        flips += 1
    assert 0 < flips < 16
