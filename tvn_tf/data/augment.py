"""Clip-consistent augmentation: one random draw per clip, applied to every frame.

Image augmentation layers draw new parameters per image; a clip whose frames
were cropped or flipped differently would show motion that is not there. Here
every random value is drawn once per clip from a stateless seed.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tvn_tf.data import preprocessing


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation of a clip.

    Attributes:
      area_range: Random resized crop: fraction of the frame area kept.
      aspect_ratio_range: Random resized crop: width / height of the crop.
      flip: Horizontal flip with probability 1/2.
      brightness_delta: Brightness shift drawn in [-delta, delta], as a
        fraction of the pixel range.
      contrast_range: Contrast factor drawn in this range; contrast scales
        pixels about mid-grey (see `preprocessing.normalize_frames`), which
        costs no pass over the pixels, unlike scaling about the clip's mean.
    """

    area_range: tuple[float, float] = (0.3, 1.0)
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    brightness_delta: float = 0.125
    contrast_range: tuple[float, float] = (0.75, 1.25)


def split_clip_seed(seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Splits a clip's seed into the crop seed and the flip/colour seed."""
    crop_seed, rest_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return crop_seed, rest_seed


def sample_crop_window(frame_shape: tf.Tensor, config: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """Draws one random resized crop window for a clip.

    Args:
      frame_shape: int [3], (height, width, channels) of the frames.
      config: The augmentation settings.
      seed: Stateless random seed, int [2].

    Returns:
      int32 [4]: (top, left, height, width), the form
      `tf.io.decode_and_crop_jpeg` takes.
    """
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.cast(frame_shape, tf.int32),
        bounding_boxes=tf.zeros([1, 0, 4]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=config.aspect_ratio_range,
        area_range=config.area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def crop_clip(frames: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Crops every frame of [T, H, W, 3] to the same (top, left, height, width)."""
    return frames[:, window[0] : window[0] + window[2], window[1] : window[1] + window[3], :]


def augment_cropped_clip(
    frames: tf.Tensor, image_size: int, config: AugmentConfig, seed: tf.Tensor
) -> tf.Tensor:
    """Flips, resizes, colour-jitters and normalises a cropped clip, all frames alike.

    Args:
      frames: uint8 [T, h, w, 3], already cropped with `sample_crop_window`.
      image_size: Output resolution.
      config: The augmentation settings.
      seed: Stateless random seed, int [2] (not the crop's).

    Returns:
      float32 [T, image_size, image_size, 3], normalised model input.
    """
    flip_seed, brightness_seed, contrast_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3)
    )
    if config.flip:  # On the uint8 crop: cheaper than on the resized floats.
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        frames = tf.cond(flip, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
    delta = 255.0 * config.brightness_delta
    brightness = tf.random.stateless_uniform([], brightness_seed, -delta, delta)
    contrast = tf.random.stateless_uniform([], contrast_seed, *config.contrast_range)
    return preprocessing.normalize_frames(
        preprocessing.resize_frames(frames, image_size), contrast=contrast, brightness=brightness
    )


def augment_clip(
    frames: tf.Tensor, image_size: int, config: AugmentConfig, seed: tf.Tensor
) -> tf.Tensor:
    """Random resized crop, flip and colour jitter, one draw for the whole clip.

    Args:
      frames: uint8 [T, H, W, 3] decoded frames.
      image_size: Output resolution.
      config: The augmentation settings.
      seed: Stateless random seed, int [2].

    Returns:
      float32 [T, image_size, image_size, 3], normalised model input.

    Example:
      >>> clip = augment_clip(frames, 224, AugmentConfig(), seed=tf.constant([0, 7]))
    """
    crop_seed, rest_seed = split_clip_seed(seed)
    window = sample_crop_window(tf.shape(frames)[1:], config, crop_seed)
    return augment_cropped_clip(crop_clip(frames, window), image_size, config, rest_seed)
