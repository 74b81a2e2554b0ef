"""The read and decode phases of the `tf.data` pipelines, for both sources.

Reading takes a video's sampled frames (`sampling.FrameReader`):

- `record_reader`: from a TFRecord `SequenceExample`, the JPEGs of the
  sampled frames only (no decoding yet).
- `avi_reader`: from an `.avi` file, decoded with PyAV (`video.decode_video`),
  only the sampled frames converted to RGB.

Decoding turns one sampled clip into the model's float32 input:

- `record_decoder`: JPEG decoding; in training only the random crop's window
  of each frame is decoded, then the rest of the clip's augmentation
  (`augment`) is applied; in evaluation, the centre crop or crops
  (`preprocessing`).
- `avi_decoder`: the same preprocessing on frames already decoded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection

import numpy as np
import tensorflow as tf
from absl import logging

from tvn_tf.data import augment as augment_lib
from tvn_tf.data import preprocessing, records, video


def record_reader(groups: Collection[int] | None, num_clips: int) -> Callable:
    """Reads the sampled JPEGs of a serialized record (a `sampling.FrameReader`).

    A record of a shard whose name carries no group is kept or skipped by its
    own group, when `groups` is given.
    """
    group_filter = None if groups is None else tf.constant(sorted(groups), tf.int64)

    def read(serialized, sample_seed, indices):
        record = records.parse_sequence_example(serialized)
        jpegs = tf.gather(record["frames"], indices(tf.shape(record["frames"])[0], sample_seed))
        if group_filter is not None:  # A shard without a group in its name: keep by record.
            keep = tf.reduce_any(tf.equal(record["group"], group_filter))
            jpegs = jpegs[: tf.cast(keep, tf.int32) * num_clips]
        return jpegs, record["label"], record["source_path"]

    return read


def avi_reader(num_frames: int, short_side: int) -> Callable:
    """Decodes the sampled frames of an `.avi` element (a `sampling.FrameReader`).

    Elements are `{"path", "label", "video_id"}`. An unreadable file is logged
    and gives no clips.
    """

    def decode(path, select):
        try:
            return video.decode_video(
                path.numpy().decode(), short_side=short_side, min_frames=1, select=select
            ).frames
        except (video.VideoError, OSError) as e:
            logging.warning("Skipping %s: %s", path.numpy().decode(), e)
            return np.zeros((0, 1, 1, 3), np.uint8)  # No clips.

    def read(element, sample_seed, indices):
        frames = tf.py_function(
            lambda p, s: decode(p, lambda n, fps: indices(n, s).numpy()),
            [element["path"], sample_seed],
            tf.uint8,
        )
        frames = tf.ensure_shape(frames, [None, None, None, 3])
        clips = tf.reshape(frames, tf.concat([[-1, num_frames], tf.shape(frames)[1:]], 0))
        return clips, element["label"], element["video_id"]

    return read


def check_one_decodes(video_dir: str, videos, groups: Collection[int] | None) -> None:
    """Stops unless some video decodes: unreadable ones are skipped when met, so a
    repeated pipeline of nothing but unreadable files would skip forever.

    Costs one decode when the first file is fine.

    Raises:
      ValueError: naming the folder, the groups and a sample failure.
    """
    first_error = None
    for v in videos:
        try:
            video.decode_video(
                os.path.join(video_dir, v.path), min_frames=1, select=lambda n, fps: [0]
            )
            return
        except (video.VideoError, OSError) as e:
            first_error = first_error or f"{v.path}: {e}"
    raise ValueError(
        f"{video_dir}: none of the {len(videos)} videos of groups "
        f"{sorted({v.group for v in videos}) if groups is None else sorted(groups)} can be "
        f"decoded (first: {first_error}); expected readable .avi files."
    )


def record_decoder(
    training: bool,
    num_frames: int,
    image_size: int,
    augment: augment_lib.AugmentConfig | None,
    num_crops: int,
) -> Callable[[dict[str, tf.Tensor]], tf.Tensor]:
    """Decodes a clip element of JPEGs to its float32 clip (evaluation: its views)."""
    if training:
        return lambda e: _decode_training_clip(e, num_frames, image_size, augment)
    return lambda e: evaluation_views(decode_jpegs(e["clip"], num_frames), image_size, num_crops)


def avi_decoder(
    training: bool,
    num_frames: int,
    image_size: int,
    augment: augment_lib.AugmentConfig | None,
    num_crops: int,
) -> Callable[[dict[str, tf.Tensor]], tf.Tensor]:
    """Preprocesses a clip element of decoded frames to its float32 clip (or views)."""

    def decode(e):
        if not training:
            return evaluation_views(e["clip"], image_size, num_crops)
        frames = tf.ensure_shape(e["clip"], [num_frames, None, None, 3])
        if augment is None:
            return preprocessing.preprocess_for_eval(frames, image_size)
        return augment_lib.augment_clip(frames, image_size, augment, e["seed"])

    return decode


def decode_jpegs(jpegs: tf.Tensor, num_frames: int, window: tf.Tensor | None = None) -> tf.Tensor:
    """uint8 [num_frames, h, w, 3] from `num_frames` JPEG strings; only `window` when given."""
    if window is None:
        frames = [tf.io.decode_jpeg(jpegs[i], channels=3) for i in range(num_frames)]
    else:
        frames = [
            tf.io.decode_and_crop_jpeg(jpegs[i], window, channels=3) for i in range(num_frames)
        ]
    return tf.stack(frames)


def _decode_training_clip(element, num_frames, image_size, augment):
    jpegs = element["clip"]
    if augment is None:
        return preprocessing.preprocess_for_eval(decode_jpegs(jpegs, num_frames), image_size)
    crop_seed, rest_seed = augment_lib.split_clip_seed(element["seed"])
    # Decode only the crop: one window for the clip, from the first frame's header.
    window = augment_lib.sample_crop_window(tf.io.extract_jpeg_shape(jpegs[0]), augment, crop_seed)
    frames = decode_jpegs(jpegs, num_frames, window)
    return augment_lib.augment_cropped_clip(frames, image_size, augment, rest_seed)


def evaluation_views(frames: tf.Tensor, image_size: int, num_crops: int) -> tf.Tensor:
    """The centre crop (one view) or `num_crops` views of a clip, normalised."""
    if num_crops == 1:
        return preprocessing.preprocess_for_eval(frames, image_size)
    return preprocessing.preprocess_views(frames, image_size, num_crops)
