"""`tf.data` pipelines that turn videos into batches of normalised clips.

Two sources, one output:

- `make_tfrecord_dataset`: TFRecords written by `tools/prepare_ucf50.py`
  (fast; decodes only the sampled frames, and in training only their crop).
- `make_avi_dataset`: the `.avi` tree itself, decoded with PyAV on the fly
  (no preparation; slow, for quick starts).

Which one a run reads is chosen in one place, `tvn_tf.data.dataset.make_clips`;
call that rather than these.

Elements are `(clips, labels)`: float32 [batch, num_frames, image_size,
image_size, 3] in [-1, 1] and int32 [batch]; with `with_video_ids=True`, also
string [batch] video ids (paths relative to the dataset root), so that
`tvn_tf.training.metrics.average_clip_scores` can average the clip scores of
each video.

Training: `num_clips` clips per video read (default 1), each from a random
start with its own clip-consistent augmentation; shuffling, repeat, complete
batches. Evaluation: `num_clips` evenly spaced clips per video, centre
crop, no randomness, the same order on every run, the last batch kept even
when smaller. With a `tf.distribute.InputContext`, each input pipeline reads
its own part of the data and batches `batch_size` (the global batch size)
divided by the number of replicas; use it through
`strategy.distribute_datasets_from_function`.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tvn_tf.data import augment as augment_lib
from tvn_tf.data import layout, preprocessing, records, sampling, video

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 1024  # clips of num_frames JPEGs each: ~30 MB for 2 frames
DEFAULT_AUGMENT = augment_lib.AugmentConfig()
# Direct AVI training: decoded clips held to separate the clips of one video.
AVI_SHUFFLE_VIDEOS = 8
# Ceiling for buffers grown by AUTOTUNE, so resident memory stays bounded.
AUTOTUNE_RAM_BUDGET = 1 << 30


def tfrecord_files(data_dir: str, groups: Collection[int] | None = None) -> list[str]:
    """The shard files of `data_dir`, sorted; only those of `groups` when given.

    Files whose names carry no group (not written by `prepare_ucf50`) are
    always kept; their records are filtered by group instead.
    """
    files = sorted(glob.glob(os.path.join(data_dir, "*" + records.SHARD_SUFFIX)))
    if groups is not None:
        wanted = set(groups)
        files = [f for f in files if records.shard_group(f) in wanted | {None}]
    return files


def make_tfrecord_dataset(
    data_dir: str,
    *,
    training: bool,
    num_frames: int,
    frame_stride: int,
    image_size: int,
    batch_size: int,
    groups: Collection[int] | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    augment: augment_lib.AugmentConfig | None = DEFAULT_AUGMENT,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    seed: int | None = None,
    repeat: bool | None = None,
    input_context: tf.distribute.InputContext | None = None,
    with_video_ids: bool = False,
    deterministic: bool | None = None,
) -> tf.data.Dataset:
    """Clips from TFRecords of `SequenceExample`s (schema in `records`).

    Args:
      data_dir: Folder of `*.tfrecord` shards written by `prepare_ucf50`.
      training: Training (random clip, augmentation, shuffle) or evaluation.
      num_frames: Frames per clip (from the model's config).
      frame_stride: Distance between sampled frames, in frames.
      image_size: Output resolution (square).
      batch_size: Global batch size.
      groups: Keep only videos of these groups (see `splits`); None keeps all.
      num_clips: Clips per video read. Evaluation: evenly spaced clips.
        Training: independent random clips, each with its own start and
        augmentation draw, mixed by the shuffle buffer. A video's record is
        read and parsed once for all of them: more than one amortises the
        read, which costs more than decoding a clip's frames (docs/benchmarks.md,
        `tools/bench_input.py`).
      num_crops: Evaluation: spatial views per clip, 1 (centre square) or 3
        (start, centre and end squares along the long side); each view is an
        element of its own, with the clip's label and video id.
      augment: Training augmentation; None gives the evaluation preprocessing
        (centre crop) with a random clip start.
      shuffle_buffer: Training: clips held for shuffling (small elements:
        the sampled JPEGs only).
      seed: Makes training draws (file order, clip starts, augmentation)
        reproducible, with `deterministic=True`.
      repeat: Repeat forever; defaults to `training`.
      input_context: Multi-worker input sharding and per-replica batching.
      with_video_ids: Add the video ids to each element.
      deterministic: Keep the order of elements through the parallel reads and
        maps, so that one seed gives one sequence of clips. None: ordered in
        evaluation, free (faster) in training. Passed to every parallel
        transformation, where it overrides `tf.data.Options.deterministic`.

    Returns:
      A dataset of `(clips, labels)` or `(clips, labels, video_ids)`.

    Raises:
      ValueError: no shard file matches.
    """
    files = tfrecord_files(data_dir, groups)
    if not files:
        raise ValueError(
            f"No {records.SHARD_SUFFIX} files for groups {groups} in "
            f"data_dir={data_dir!r}; run tools/prepare_ucf50.py first."
        )
    batch_size, pipelines, pipeline_id = _per_replica(batch_size, input_context)
    repeat = training if repeat is None else repeat
    ordered = not training if deterministic is None else deterministic

    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if pipelines > 1 and len(files) >= pipelines:
        file_ds, pipelines = file_ds.shard(pipelines, pipeline_id), 1
    if training and pipelines == 1:
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = file_ds.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(files), 16),
            num_parallel_calls=AUTOTUNE,
            deterministic=ordered,
        )
    else:
        ds = tf.data.TFRecordDataset(file_ds)
    if pipelines > 1:  # Fewer files than pipelines: every pipeline reads all, keeps its part.
        ds = ds.shard(pipelines, pipeline_id)
    if repeat:
        ds = ds.repeat()

    group_filter = None if groups is None else tf.constant(sorted(groups), tf.int64)

    def sample(serialized, sample_seed, indices):
        record = records.parse_sequence_example(serialized)
        jpegs = tf.gather(record["frames"], indices(tf.shape(record["frames"])[0], sample_seed))
        if group_filter is not None:  # A shard without a group in its name: keep by record.
            keep = tf.reduce_any(tf.equal(record["group"], group_filter))
            jpegs = jpegs[: tf.cast(keep, tf.int32) * num_clips]
        return jpegs, record["label"], record["source_path"]

    if training:
        decode = lambda e: _decode_training_clip(e, num_frames, image_size, augment)
    else:
        decode = lambda e: _evaluation_views(
            _decode_jpegs(e["clip"], num_frames), image_size, num_crops
        )
    draw = _Draw(training, num_frames, frame_stride, num_clips, num_crops, seed)
    clip_shuffle = shuffle_buffer if training else 0
    return _clip_pipeline(
        ds, sample, decode, draw, clip_shuffle, with_video_ids, batch_size, ordered
    )


def make_avi_dataset(
    video_dir: str,
    *,
    training: bool,
    num_frames: int,
    frame_stride: int,
    image_size: int,
    batch_size: int,
    groups: Collection[int] | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    augment: augment_lib.AugmentConfig | None = DEFAULT_AUGMENT,
    seed: int | None = None,
    repeat: bool | None = None,
    input_context: tf.distribute.InputContext | None = None,
    with_video_ids: bool = False,
    deterministic: bool | None = None,
    classes: Collection[str] | None = None,
    short_side: int = 0,
) -> tf.data.Dataset:
    """Clips decoded straight from a UCF50-style `.avi` tree, without preparation.

    Same elements, sampling, augmentation and preprocessing as
    `make_tfrecord_dataset`, but every clip costs a full video decode in
    Python (PyAV). Unreadable files are logged and skipped when met.

    Args:
      video_dir: Root of the tree (`video_dir/<Class>/v_<Class>_gNN_cMM.avi`).
      training, num_frames, frame_stride, image_size, batch_size, groups,
      num_clips, num_crops, augment, seed, repeat, input_context, with_video_ids,
      deterministic: As in
        `make_tfrecord_dataset` (in training, the `num_clips` clips of a video
        share one decode).
      classes: The class list (see `layout.scan_videos`); None takes the folders.
      short_side: Resize decoded frames to this short side first (0: keep).

    Returns:
      A dataset of `(clips, labels)` or `(clips, labels, video_ids)`.
    """
    videos = layout.scan_videos(video_dir, classes).videos
    if groups is not None:
        videos = [v for v in videos if v.group in set(groups)]
    if not videos:
        raise ValueError(f"No videos for groups {groups} under video_dir={video_dir!r}.")
    _check_one_decodes(video_dir, videos, groups)
    batch_size, pipelines, pipeline_id = _per_replica(batch_size, input_context)
    repeat = training if repeat is None else repeat
    ordered = not training if deterministic is None else deterministic

    ds = tf.data.Dataset.from_tensor_slices(
        {
            "path": [os.path.join(video_dir, v.path) for v in videos],
            "label": [v.label for v in videos],
            "video_id": [v.path for v in videos],
        }
    )
    if pipelines > 1:
        ds = ds.shard(pipelines, pipeline_id)
    if training:
        ds = ds.shuffle(len(videos), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def read(path, select):
        try:
            return video.decode_video(
                path.numpy().decode(), short_side=short_side, min_frames=1, select=select
            ).frames
        except (video.VideoError, OSError) as e:
            logging.warning("Skipping %s: %s", path.numpy().decode(), e)
            return np.zeros((0, 1, 1, 3), np.uint8)  # No clips.

    def sample(element, sample_seed, indices):
        frames = tf.py_function(
            lambda p, s: read(p, lambda n, fps: indices(n, s).numpy()),
            [element["path"], sample_seed],
            tf.uint8,
        )
        frames = tf.ensure_shape(frames, [None, None, None, 3])
        clips = tf.reshape(frames, tf.concat([[-1, num_frames], tf.shape(frames)[1:]], 0))
        return clips, element["label"], element["video_id"]

    def decode(e):
        if not training:
            return _evaluation_views(e["clip"], image_size, num_crops)
        frames = tf.ensure_shape(e["clip"], [num_frames, None, None, 3])
        if augment is None:
            return preprocessing.preprocess_for_eval(frames, image_size)
        return augment_lib.augment_clip(frames, image_size, augment, e["seed"])

    # Training: keep a video's clips apart; decoded frames, so a small buffer.
    clip_shuffle = AVI_SHUFFLE_VIDEOS * num_clips if training and num_clips > 1 else 0
    draw = _Draw(training, num_frames, frame_stride, num_clips, num_crops, seed)
    return _clip_pipeline(
        ds, sample, decode, draw, clip_shuffle, with_video_ids, batch_size, ordered
    )


def _check_one_decodes(video_dir, videos, groups) -> None:
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


def _per_replica(batch_size, input_context):
    if input_context is None:
        return batch_size, 1, 0
    return (
        input_context.get_per_replica_batch_size(batch_size),
        input_context.num_input_pipelines,
        input_context.input_pipeline_id,
    )


# What a source's sampling function is given: `indices(num_frames_in_video, seed)`
# -> int32 [num_clips, num_frames], the frames of each clip (module `sampling`).
IndexRule = Callable[[Any, Any], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class _Draw:
    """Which clips both sources draw from each video (arguments of `make_tfrecord_dataset`)."""

    training: bool
    num_frames: int
    frame_stride: int
    num_clips: int
    num_crops: int
    seed: int | None


def _clip_pipeline(
    videos: tf.data.Dataset,
    sample: Callable[[Any, tf.Tensor, IndexRule], tuple[tf.Tensor, tf.Tensor, tf.Tensor]],
    decode: Callable[[dict[str, tf.Tensor]], tf.Tensor],
    draw: _Draw,
    clip_shuffle: int,
    with_video_ids: bool,
    batch_size: int,
    ordered: bool,
) -> tf.data.Dataset:
    """From one element per video to batches of clips: what both sources share.

    In training each video gets a seed pair drawn in order from `draw.seed`,
    split into the seed of its clip starts and one augmentation seed per clip,
    so a video's clips depend on its place in the sequence alone, whichever
    source reads it.

    Args:
      videos: One element per video, in reading order (sharded, shuffled and
        repeated as the source wants).
      sample: `(video, sample_seed, indices) -> (clips, label, video_id)`:
        reads the frames `indices` picks, as `clips` [n, ...] (JPEG strings or
        decoded frames; n = `draw.num_clips`, or 0 to skip the video).
      decode: One clip's element (`clip`, `label`, `video_id`, in training
        `seed`) to its float32 clip (or its views, in evaluation).
      draw: Which clips, and with which seed.
      clip_shuffle: Clips held for shuffling after sampling; 0: none.
      with_video_ids: Add the video ids to each element.
      batch_size: Per replica.
      ordered: Keep the order through the parallel maps (`deterministic`).
    """
    training, num_frames, frame_stride = draw.training, draw.num_frames, draw.frame_stride
    num_clips, num_crops, seed = draw.num_clips, draw.num_crops, draw.seed
    if training:
        indices = lambda n, s: sampling.training_indices(n, num_frames, frame_stride, s, num_clips)
        videos = tf.data.Dataset.zip((videos, tf.data.Dataset.random(seed=seed).batch(2)))
    else:
        indices = lambda n, s: sampling.evaluation_indices(n, num_frames, frame_stride, num_clips)

    def clips_of(video, seed_pair=None):
        if seed_pair is None:  # Evaluation draws nothing.
            sample_seed = tf.zeros([2], tf.int64)
        else:
            split = tf.random.experimental.stateless_split(seed_pair, 2)
            sample_seed, clip_seed = tf.unstack(split)
        clips, label, video_id = sample(video, sample_seed, indices)
        count = tf.shape(clips)[0]
        element = {
            "clip": clips,
            "label": tf.fill([count], label),
            "video_id": tf.fill([count], video_id),
        }
        if training:
            element["seed"] = tf.random.experimental.stateless_split(clip_seed, num_clips)[:count]
        return element

    # One element per clip from here: its frames (or their JPEGs), label and id.
    ds = videos.map(clips_of, num_parallel_calls=AUTOTUNE, deterministic=ordered).unbatch()
    if clip_shuffle:
        ds = ds.shuffle(clip_shuffle, seed=seed)
    ds = ds.map(
        lambda e: _output(decode(e), e, with_video_ids),
        num_parallel_calls=AUTOTUNE,
        deterministic=ordered,
    )
    return _finish(_spread_views(ds, training, num_crops), batch_size, training, ordered)


def _decode_jpegs(jpegs, num_frames, window=None):
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
        return preprocessing.preprocess_for_eval(_decode_jpegs(jpegs, num_frames), image_size)
    crop_seed, rest_seed = augment_lib.split_clip_seed(element["seed"])
    # Decode only the crop: one window for the clip, from the first frame's header.
    window = augment_lib.sample_crop_window(tf.io.extract_jpeg_shape(jpegs[0]), augment, crop_seed)
    frames = _decode_jpegs(jpegs, num_frames, window)
    return augment_lib.augment_cropped_clip(frames, image_size, augment, rest_seed)


def _evaluation_views(frames, image_size, num_crops):
    if num_crops == 1:
        return preprocessing.preprocess_for_eval(frames, image_size)
    return preprocessing.preprocess_views(frames, image_size, num_crops)


def _spread_views(ds, training, num_crops):
    """Evaluation with several crops: one element per view, label and id repeated."""
    if training or num_crops == 1:
        return ds
    return ds.map(
        lambda clip, *rest: (clip, *(tf.fill([num_crops], x) for x in rest)),
        num_parallel_calls=AUTOTUNE,
    ).unbatch()


def _output(clip, element, with_video_ids):
    label = tf.cast(element["label"], tf.int32)
    return (clip, label, element["video_id"]) if with_video_ids else (clip, label)


def _finish(ds, batch_size, training, ordered):
    ds = ds.batch(batch_size, drop_remainder=training).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = ordered
    options.autotune.ram_budget = AUTOTUNE_RAM_BUDGET
    return ds.with_options(options)
