"""Which frames make a clip: `num_frames` frames, `frame_stride` apart.

A clip spans `(num_frames - 1) * frame_stride + 1` frames of the video.

- Training: clips starting at uniformly random frames among the starts that
  fit in the video, drawn independently (`num_clips` of them per video read).
- Evaluation: `num_clips` clips per video, starts evenly spaced from the first
  frame to the last start that fits (one clip: the centred one).

Short-video rule (loop): a video shorter than the span is read as if it
looped, index `i` standing for frame `i mod num_available`; the start is then
0. Looping keeps real motion between consecutive samples, where padding with
the last frame would show a frozen clip. The stride is in frames, whatever the
frame rate (UCF50 mixes 25 and ~30 fps).

The sample phase of the `tf.data` pipelines is `sample_clips`: from one
element per video to one element per clip, with the draw (`ClipDraw`) and its
seeds; each source says how to read the sampled frames of a video.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import tensorflow as tf


def clip_span(num_frames: int, frame_stride: int) -> int:
    """Number of video frames a clip covers, first to last sample included."""
    if num_frames < 1 or frame_stride < 1:
        raise ValueError(
            f"num_frames and frame_stride must be >= 1, got {num_frames} and {frame_stride}."
        )
    return (num_frames - 1) * frame_stride + 1


def training_indices(
    num_available: tf.Tensor,
    num_frames: int,
    frame_stride: int,
    seed: tf.Tensor,
    num_clips: int | None = None,
) -> tf.Tensor:
    """Frame indices of training clips, each from an independent random start.

    Args:
      num_available: Number of frames in the video (scalar, >= 1).
      num_frames: Frames per clip.
      frame_stride: Distance between sampled frames.
      seed: Stateless random seed, int [2].
      num_clips: None for one clip, else the number of clips.

    Returns:
      int32 [num_frames], or [num_clips, num_frames] when `num_clips` is given.

    Example:
      >>> training_indices(20, 2, 4, seed=[1, 2])  # start in 0..15
      <tf.Tensor: ..., numpy=array([7, 11], dtype=int32)>
    """
    if num_clips is not None and num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}.")
    n = tf.cast(num_available, tf.int32)
    last_start = tf.maximum(n - clip_span(num_frames, frame_stride), 0)
    shape = [] if num_clips is None else [num_clips]
    starts = tf.random.stateless_uniform(
        shape, seed, minval=0, maxval=last_start + 1, dtype=tf.int32
    )
    return _clip_indices(starts, n, num_frames, frame_stride)


def evaluation_indices(
    num_available: tf.Tensor, num_frames: int, frame_stride: int, num_clips: int
) -> tf.Tensor:
    """Frame indices of `num_clips` evenly spaced clips, deterministically.

    Args:
      num_available: Number of frames in the video (scalar, >= 1).
      num_frames: Frames per clip.
      frame_stride: Distance between sampled frames.
      num_clips: Clips per video.

    Returns:
      int32 [num_clips, num_frames].
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}.")
    n = tf.cast(num_available, tf.int32)
    last_start = tf.maximum(n - clip_span(num_frames, frame_stride), 0)
    if num_clips == 1:
        starts = tf.reshape(last_start // 2, [1])
    else:
        starts = tf.range(num_clips, dtype=tf.int32) * last_start // (num_clips - 1)
    return _clip_indices(starts, n, num_frames, frame_stride)


def _clip_indices(starts, n, num_frames, frame_stride):
    """[..., num_frames] indices of clips starting at `starts` (scalar or [num_clips])."""
    offsets = frame_stride * tf.range(num_frames, dtype=tf.int32)
    return tf.math.floormod(starts[..., tf.newaxis] + offsets, n)


@dataclasses.dataclass(frozen=True)
class ClipDraw:
    """Which clips a pipeline draws from each video, and from which seed.

    In training each video gets a seed pair drawn in order from `seed`, split
    into the seed of its clip starts and one augmentation seed per clip, so a
    video's clips depend on its place in the sequence alone, whichever source
    reads it. Evaluation draws nothing.
    """

    training: bool
    num_frames: int
    frame_stride: int
    num_clips: int
    seed: int | None

    def indices(self, num_available: tf.Tensor, sample_seed: tf.Tensor) -> tf.Tensor:
        """int32 [num_clips, num_frames]: the frames of each clip of a video."""
        if self.training:
            return training_indices(
                num_available, self.num_frames, self.frame_stride, sample_seed, self.num_clips
            )
        return evaluation_indices(num_available, self.num_frames, self.frame_stride, self.num_clips)


# How a source reads the sampled frames of one video:
# `(video, sample_seed, indices) -> (clips, label, video_id)`, where `indices(n, seed)`
# is `ClipDraw.indices` and `clips` is [n_clips, ...] (JPEG strings or decoded frames;
# n_clips = `num_clips`, or 0 to skip the video).
FrameReader = Callable[[Any, tf.Tensor, Callable], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]


def sample_clips(
    videos: tf.data.Dataset, read: FrameReader, draw: ClipDraw, ordered: bool
) -> tf.data.Dataset:
    """From one element per video to one element per clip: the sample phase.

    Args:
      videos: One element per video, in reading order.
      read: Reads the frames `draw.indices` picks from a video (`FrameReader`).
      draw: Which clips, and with which seed.
      ordered: Keep the order through the parallel map (`deterministic`).

    Returns:
      Elements `{"clip", "label", "video_id"}`, and in training `"seed"`
      (the clip's augmentation seed, int64 [2]).
    """
    if draw.training:
        videos = tf.data.Dataset.zip((videos, tf.data.Dataset.random(seed=draw.seed).batch(2)))

    def clips_of(video, seed_pair=None):
        if seed_pair is None:  # Evaluation draws nothing.
            sample_seed = tf.zeros([2], tf.int64)
        else:
            split = tf.random.experimental.stateless_split(seed_pair, 2)
            sample_seed, clip_seed = tf.unstack(split)
        clips, label, video_id = read(video, sample_seed, draw.indices)
        count = tf.shape(clips)[0]
        element = {
            "clip": clips,
            "label": tf.fill([count], label),
            "video_id": tf.fill([count], video_id),
        }
        if draw.training:  # One augmentation seed per clip.
            clip_seeds = tf.random.experimental.stateless_split(clip_seed, draw.num_clips)
            element["seed"] = clip_seeds[:count]
        return element

    return videos.map(
        tf.autograph.experimental.do_not_convert(clips_of),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=ordered,
    ).unbatch()
