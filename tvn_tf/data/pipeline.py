"""`tf.data` pipelines that turn videos into batches of normalised clips.

Two sources, one output:

- `make_tfrecord_dataset`: TFRecords written by `tools/prepare_ucf50.py`
  (fast; decodes only the sampled frames, and in training only their crop).
- `make_avi_dataset`: the `.avi` tree itself, decoded with PyAV on the fly
  (no preparation; slow, for quick starts).

Which one a run reads is chosen in one place, `tvn_tf.data.dataset.make_clips`;
call that rather than these.

Both run the same phases, each in a module of its own:

1. read: one element per video, in order (sharded, shuffled, repeated): here.
2. sample: which frames make each clip, and the seeds (`sampling.sample_clips`),
   reading only those frames (`decoding.record_reader`, `decoding.avi_reader`).
3. decode and augment: a clip to float32 (`decoding`, with `augment` in
   training and `preprocessing` in evaluation).
4. batch: labels, ids, views and batches (`batching`).

Elements are `(clips, labels)`: float32 [batch, num_frames, image_size,
image_size, 3] in [-1, 1] and int32 [batch]; with `with_video_ids=True`, also
string [batch] video ids (paths relative to the dataset root), so that
`tvn_tf.training.metrics.average_clip_scores` can average the clip scores of
each video.

Training: `num_clips` clips per video read (default 1), each from a random
start with its own clip-consistent augmentation; shuffling, repeat, complete
batches. A video is read (and, from TFRecords, parsed) once for all its clips:
more than one amortises the read, which costs more than decoding a clip's
frames (docs/benchmarks.md, `tools/bench_input.py`). `seed` with
`deterministic=True` makes the draws (file order, clip starts, augmentation)
and their order reproducible. Evaluation: `num_clips` evenly spaced clips per
video, centre crop (or `num_crops`=3 squares along the long side, each view an
element of its own with the clip's label and id), no randomness, the same
order on every run, the last batch kept even when smaller. `deterministic`
None: ordered in evaluation, free (faster) in training; it is passed to every
parallel transformation, where it overrides `tf.data.Options.deterministic`.
With a `tf.distribute.InputContext`, each input pipeline reads its own part of
the data and batches `batch_size` (the global batch size) divided by the
number of replicas; use it through `strategy.distribute_datasets_from_function`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Collection

import tensorflow as tf

from tvn_tf.data import augment as augment_lib
from tvn_tf.data import batching, decoding, layout, records, sampling

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 1024  # clips of num_frames JPEGs each: ~30 MB for 2 frames
DEFAULT_AUGMENT = augment_lib.AugmentConfig()
# Direct AVI training: decoded clips held to separate the clips of one video.
AVI_SHUFFLE_VIDEOS = 8


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
    """Clips from TFRecords of `SequenceExample`s (schema in `records`); see the module docstring.

    Args:
      data_dir: Folder of `*.tfrecord` shards written by `prepare_ucf50`.
      training: Training (random clips, augmentation, shuffle) or evaluation.
      num_frames, frame_stride, image_size: The clip (from the model's config):
        frames, their distance in frames, and the square output resolution.
      batch_size, input_context: The global batch size; with a multi-worker
        `input_context`, each pipeline reads its part and batches per replica.
      groups: Keep only videos of these groups (see `splits`); None keeps all.
      num_clips: Clips per video read: evenly spaced, or independent random ones.
      num_crops: Evaluation: spatial views per clip, 1 (centre) or 3.
      augment: Training augmentation; None: the evaluation preprocessing.
      shuffle_buffer: Training: clips held for shuffling (sampled JPEGs only).
      seed: Makes training draws reproducible, with `deterministic=True`.
      repeat: Repeat forever; defaults to `training`.
      with_video_ids: Add the video ids to each element.
      deterministic: Keep the order of elements through the parallel steps.

    Returns:
      A dataset of `(clips, labels)` or `(clips, labels, video_ids)`.

    Raises:
      ValueError: no shard file matches.
    """
    files = _shard_files(data_dir, groups)
    batch_size, pipelines, pipeline_id = _per_replica(batch_size, input_context)
    ordered = not training if deterministic is None else deterministic
    repeat = training if repeat is None else repeat
    ds = _read_records(files, training, repeat, pipelines, pipeline_id, seed, ordered)
    return _clip_pipeline(
        ds,
        read=decoding.record_reader(groups, num_clips),
        decode=decoding.record_decoder(training, num_frames, image_size, augment, num_crops),
        draw=sampling.ClipDraw(training, num_frames, frame_stride, num_clips, seed),
        clip_shuffle=shuffle_buffer if training else 0,
        num_crops=num_crops,
        with_video_ids=with_video_ids,
        batch_size=batch_size,
        ordered=ordered,
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
      deterministic: As in `make_tfrecord_dataset` (in training, the
        `num_clips` clips of a video share one decode).
      classes: The class list (see `layout.scan_videos`); None takes the folders.
      short_side: Resize decoded frames to this short side first (0: keep).

    Returns:
      A dataset of `(clips, labels)` or `(clips, labels, video_ids)`.
    """
    videos = _videos(video_dir, classes, groups)
    batch_size, pipelines, pipeline_id = _per_replica(batch_size, input_context)
    ordered = not training if deterministic is None else deterministic
    repeat = training if repeat is None else repeat
    ds = _list_videos(video_dir, videos, training, repeat, pipelines, pipeline_id, seed)
    return _clip_pipeline(
        ds,
        read=decoding.avi_reader(num_frames, short_side),
        decode=decoding.avi_decoder(training, num_frames, image_size, augment, num_crops),
        draw=sampling.ClipDraw(training, num_frames, frame_stride, num_clips, seed),
        # Training: keep a video's clips apart; decoded frames, so a small buffer.
        clip_shuffle=AVI_SHUFFLE_VIDEOS * num_clips if training and num_clips > 1 else 0,
        num_crops=num_crops,
        with_video_ids=with_video_ids,
        batch_size=batch_size,
        ordered=ordered,
    )


def _shard_files(data_dir, groups) -> list[str]:
    """`tfrecord_files`, at least one.

    Raises:
      ValueError: no shard file matches.
    """
    files = tfrecord_files(data_dir, groups)
    if not files:
        raise ValueError(
            f"No {records.SHARD_SUFFIX} files for groups {groups} in "
            f"data_dir={data_dir!r}; run tools/prepare_ucf50.py first."
        )
    return files


def _videos(video_dir, classes, groups) -> list[layout.VideoFile]:
    """The videos of `groups` in the tree, at least one, of which one decodes.

    Raises:
      ValueError: no video, or none that decodes.
    """
    videos = layout.scan_videos(video_dir, classes).videos
    if groups is not None:
        videos = [v for v in videos if v.group in set(groups)]
    if not videos:
        raise ValueError(f"No videos for groups {groups} under video_dir={video_dir!r}.")
    decoding.check_one_decodes(video_dir, videos, groups)
    return videos


def _read_records(
    files, training, repeat, pipelines, pipeline_id, seed, ordered
) -> tf.data.Dataset:
    """The read phase of TFRecords: one serialized record per video, this pipeline's part."""
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
    return ds.repeat() if repeat else ds


def _list_videos(
    video_dir, videos, training, repeat, pipelines, pipeline_id, seed
) -> tf.data.Dataset:
    """The read phase of an `.avi` tree: `{"path", "label", "video_id"}` per video."""
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
    return ds.repeat() if repeat else ds


def _per_replica(batch_size, input_context):
    if input_context is None:
        return batch_size, 1, 0
    return (
        input_context.get_per_replica_batch_size(batch_size),
        input_context.num_input_pipelines,
        input_context.input_pipeline_id,
    )


def _clip_pipeline(
    videos: tf.data.Dataset,
    *,
    read: sampling.FrameReader,
    decode: Callable[[dict[str, tf.Tensor]], tf.Tensor],
    draw: sampling.ClipDraw,
    clip_shuffle: int,
    num_crops: int,
    with_video_ids: bool,
    batch_size: int,
    ordered: bool,
) -> tf.data.Dataset:
    """From one element per video to batches of clips: the phases both sources share.

    Args:
      videos: One element per video, in reading order (the read phase).
      read: Reads a video's sampled frames (`sampling.FrameReader`).
      decode: One clip's element (`clip`, `label`, `video_id`, in training
        `seed`) to its float32 clip (or its views, in evaluation).
      draw: Which clips, and with which seed.
      clip_shuffle: Clips held for shuffling after sampling; 0: none.
      num_crops: Evaluation views per clip.
      with_video_ids: Add the video ids to each element.
      batch_size: Per replica.
      ordered: Keep the order through the parallel maps (`deterministic`).
    """
    ds = sampling.sample_clips(videos, read, draw, ordered)
    if clip_shuffle:
        ds = ds.shuffle(clip_shuffle, seed=draw.seed)
    ds = ds.map(
        tf.autograph.experimental.do_not_convert(
            lambda e: batching.as_output(decode(e), e, with_video_ids)
        ),
        num_parallel_calls=AUTOTUNE,
        deterministic=ordered,
    )
    return batching.batch_clips(
        ds, training=draw.training, num_crops=num_crops, batch_size=batch_size, ordered=ordered
    )
