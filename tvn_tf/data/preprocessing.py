"""Resizing to the model's resolution and THE normalisation of frames.

Training, evaluation and the exported model all use these functions, so a
model never sees pixels scaled two ways. Only TF ops that convert to TFLite
builtins (slice, resize bilinear, multiply, add).
"""

from __future__ import annotations

import tensorflow as tf

# Spatial views per evaluation clip: the centre square, or left, centre and right.
EVAL_CROPS = (1, 3)

# Pixels in [0, 255] map linearly to [-1, 1].
PIXEL_SCALE = 2.0 / 255.0
PIXEL_OFFSET = -1.0
MID_GREY = 127.5


def normalize_frames(
    frames: tf.Tensor, contrast: tf.Tensor | float = 1.0, brightness: tf.Tensor | float = 0.0
) -> tf.Tensor:
    """Maps pixels in [0, 255] (uint8 or float) to float32 in [-1, 1].

    Training colour jitter folds into the same multiply-add: contrast scales
    pixels about mid-grey (127.5) and brightness shifts them, in pixel units,
    before the mapping. Values pushed past the range are not clipped, as in
    `tf.image.adjust_contrast` and `adjust_brightness` on float images.

    Args:
      frames: [..., height, width, 3] pixels.
      contrast: Contrast factor (1 for none).
      brightness: Brightness shift in pixel units (0 for none).

    Returns:
      float32 of the same shape.
    """
    gain = contrast * PIXEL_SCALE
    bias = (MID_GREY * (1.0 - contrast) + brightness) * PIXEL_SCALE + PIXEL_OFFSET
    return tf.cast(frames, tf.float32) * gain + bias


def resize_frames(frames: tf.Tensor, image_size: int) -> tf.Tensor:
    """Resizes [..., height, width, 3] frames to image_size x image_size (bilinear).

    Returns:
      float32 [..., image_size, image_size, 3], pixels still in [0, 255].
    """
    shape = tf.shape(frames)
    frames = tf.cast(frames, tf.float32)  # TF's bilinear resize is faster from float
    flat = tf.reshape(frames, tf.concat([[-1], shape[-3:]], 0))
    resized = tf.image.resize(flat, [image_size, image_size], method="bilinear")
    return tf.reshape(resized, tf.concat([shape[:-3], [image_size, image_size, 3]], 0))


def center_crop_square(frames: tf.Tensor) -> tf.Tensor:
    """The largest centred square of [..., height, width, 3] frames."""
    height, width = tf.shape(frames)[-3], tf.shape(frames)[-2]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return frames[..., top : top + side, left : left + side, :]


def preprocess_for_eval(frames: tf.Tensor, image_size: int) -> tf.Tensor:
    """Evaluation and inference preprocessing: centre square, resize, normalise.

    Args:
      frames: uint8 [..., height, width, 3] RGB frames of any size.
      image_size: The model's input resolution.

    Returns:
      float32 [..., image_size, image_size, 3] in [-1, 1].
    """
    return normalize_frames(resize_frames(center_crop_square(frames), image_size))


def square_crops(frames: tf.Tensor, num_crops: int) -> tf.Tensor:
    """`num_crops` largest squares along the long side of [..., height, width, 3] frames.

    One crop: the centre square. Three: the start (left or top), centre and end
    (right or bottom) squares, the usual 3-crop evaluation of video models.

    Returns:
      [num_crops, ..., side, side, 3].

    Raises:
      ValueError: if `num_crops` is not 1 or 3.
    """
    if num_crops not in EVAL_CROPS:
        expected = " or ".join(map(str, EVAL_CROPS))
        raise ValueError(f"num_crops is {num_crops!r}; expected {expected}.")
    height, width = tf.shape(frames)[-3], tf.shape(frames)[-2]
    side = tf.minimum(height, width)
    spare_h, spare_w = height - side, width - side  # One of them is 0.
    offsets = [(spare_h // 2, spare_w // 2)]  # `center_crop_square`'s square.
    if num_crops == 3:
        offsets = [(0, 0), *offsets, (spare_h, spare_w)]
    crops = [frames[..., top : top + side, left : left + side, :] for top, left in offsets]
    return tf.stack(crops)


def preprocess_views(frames: tf.Tensor, image_size: int, num_crops: int = 1) -> tf.Tensor:
    """`preprocess_for_eval` of each of `num_crops` squares: [num_crops, ..., S, S, 3]."""
    return normalize_frames(resize_frames(square_crops(frames, num_crops), image_size))
