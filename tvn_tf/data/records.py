"""The TFRecord format: one `tf.train.SequenceExample` per video.

Context (one value per video):
  label        int64   index in the sorted class list (`classes.json`)
  class_name   bytes   the class folder name
  group        int64   group number from the file name
  clip         int64   clip number within the group
  fps          float   frame rate of the source video
  num_frames   int64   number of frames stored (= length of `frames`)
  height       int64   stored frame height
  width        int64   stored frame width
  source_path  bytes   path of the source video, relative to the input folder;
                       the video's id
Feature list:
  frames       bytes   one JPEG per frame, in display order

Storing frames as separate JPEGs lets the pipeline decode only the frames a
clip samples. Anyone can produce this format with a short script.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from tvn_tf import atomic
from tvn_tf.data import layout, video

LABEL = "label"
CLASS_NAME = "class_name"
GROUP = "group"
CLIP = "clip"
FPS = "fps"
NUM_FRAMES = "num_frames"
HEIGHT = "height"
WIDTH = "width"
SOURCE_PATH = "source_path"
FRAMES = "frames"

CONTEXT_FEATURES = {
    LABEL: tf.io.FixedLenFeature([], tf.int64),
    CLASS_NAME: tf.io.FixedLenFeature([], tf.string),
    GROUP: tf.io.FixedLenFeature([], tf.int64),
    CLIP: tf.io.FixedLenFeature([], tf.int64),
    FPS: tf.io.FixedLenFeature([], tf.float32),
    NUM_FRAMES: tf.io.FixedLenFeature([], tf.int64),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    WIDTH: tf.io.FixedLenFeature([], tf.int64),
    SOURCE_PATH: tf.io.FixedLenFeature([], tf.string),
}
SEQUENCE_FEATURES = {FRAMES: tf.io.FixedLenSequenceFeature([], tf.string)}

SHARD_SUFFIX = ".tfrecord"
DEFAULT_JPEG_QUALITY = 90


def make_sequence_example(
    jpegs: Sequence[bytes], entry: layout.VideoFile, *, fps: float, height: int, width: int
) -> tf.train.SequenceExample:
    """Builds the `SequenceExample` of one video from its JPEG frames."""

    def int64(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    def string(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))

    context = tf.train.Features(
        feature={
            LABEL: int64(entry.label),
            CLASS_NAME: string(entry.class_name),
            GROUP: int64(entry.group),
            CLIP: int64(entry.clip),
            FPS: tf.train.Feature(float_list=tf.train.FloatList(value=[fps])),
            NUM_FRAMES: int64(len(jpegs)),
            HEIGHT: int64(height),
            WIDTH: int64(width),
            SOURCE_PATH: string(entry.path),
        }
    )
    frames = tf.train.FeatureList(
        feature=[tf.train.Feature(bytes_list=tf.train.BytesList(value=[j])) for j in jpegs]
    )
    return tf.train.SequenceExample(
        context=context, feature_lists=tf.train.FeatureLists(feature_list={FRAMES: frames})
    )


def parse_sequence_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialized record into its context values and `frames`.

    Returns:
      A dict with every context key (scalars) and `frames`, a string
      tensor [num_frames] of JPEGs (not decoded).
    """
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=CONTEXT_FEATURES, sequence_features=SEQUENCE_FEATURES
    )
    return {**context, FRAMES: sequence[FRAMES]}


def shard_name(group: int, index: int, count: int) -> str:
    """File name of shard `index` of `count` for one group: `g07-00001-of-00003.tfrecord`.

    Shards hold one group each, so a group-wise split selects whole files.
    """
    return f"g{group:02d}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def shard_group(filename: str) -> int | None:
    """The group of a shard file name made by `shard_name`, or None."""
    base = os.path.basename(filename)
    if base.startswith("g") and base[1:3].isdigit() and base[3] == "-":
        return int(base[1:3])
    return None


def write_shard(
    path: str,
    entries: Sequence[layout.VideoFile],
    input_dir: str,
    *,
    short_side: int,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    min_frames: int = video.DEFAULT_MIN_FRAMES,
) -> list[dict]:
    """Decodes videos and writes them to one TFRecord shard, atomically.

    The shard is written under a temporary name unique to this process and
    renamed when complete, so a file with the final name is always a finished
    shard, and two processes writing the same shard (a rerun racing a killed
    run's workers) do not mix their bytes.

    Args:
      path: The shard file to write.
      entries: The videos of the shard (with no `problem`).
      input_dir: The folder `entries` paths are relative to.
      short_side: Resize frames to this short side (0 keeps the size).
      jpeg_quality: JPEG quality, 1..100.
      min_frames: Skip videos with fewer readable frames.

    Returns:
      One manifest entry per video (see `manifest_entry`).
    """
    manifest, tmp = [], atomic.temporary_path(path)
    with tf.io.TFRecordWriter(tmp) as writer:
        for entry in entries:
            try:
                decoded = video.decode_video(
                    os.path.join(input_dir, entry.path),
                    short_side=short_side,
                    min_frames=min_frames,
                )
            except video.VideoError as e:
                manifest.append(manifest_entry(entry, "skipped", str(e), 0))
                continue
            jpegs = [tf.io.encode_jpeg(f, quality=jpeg_quality).numpy() for f in decoded.frames]
            height, width = decoded.frames.shape[1:3]
            example = make_sequence_example(
                jpegs, entry, fps=decoded.fps, height=height, width=width
            )
            writer.write(example.SerializeToString(deterministic=True))  # byte-identical reruns
            manifest.append(manifest_entry(entry, "ok", decoded.note, len(jpegs)))
    os.replace(tmp, path)
    return manifest


def manifest_entry(entry: layout.VideoFile, status: str, reason: str, frames: int) -> dict:
    """One line of `manifest.jsonl`: what became of one file found."""
    return {
        "path": entry.path,
        "label": entry.label,
        "group": entry.group,
        "clip": entry.clip,
        "status": status,
        "reason": reason,
        "frames": frames,
    }
