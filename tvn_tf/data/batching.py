"""The batch phase of the `tf.data` pipelines: from decoded clips to batches.

Each element becomes `(clip, label)` or `(clip, label, video_id)`; in
evaluation with several crops, each view becomes an element of its own. Then
batches (complete ones in training, the last one kept in evaluation),
prefetching, and the pipeline's options (order, memory ceiling).
"""

from __future__ import annotations

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# Ceiling for buffers grown by AUTOTUNE, so resident memory stays bounded.
AUTOTUNE_RAM_BUDGET = 1 << 30


def as_output(clip: tf.Tensor, element: dict[str, tf.Tensor], with_video_ids: bool) -> tuple:
    """A decoded clip with its element's label (int32), and video id if asked for."""
    label = tf.cast(element["label"], tf.int32)
    return (clip, label, element["video_id"]) if with_video_ids else (clip, label)


def batch_clips(
    ds: tf.data.Dataset, *, training: bool, num_crops: int, batch_size: int, ordered: bool
) -> tf.data.Dataset:
    """Batches `as_output` elements: the batch phase.

    Args:
      ds: One element per clip, `(clip, label)` or `(clip, label, video_id)`;
        in evaluation with several crops, `clip` holds its views.
      training: Complete batches only.
      num_crops: Evaluation views per clip; each becomes an element.
      batch_size: Per replica.
      ordered: Keep the order through the parallel maps (`deterministic`).
    """
    ds = _spread_views(ds, training, num_crops)
    ds = ds.batch(batch_size, drop_remainder=training).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = ordered
    options.autotune.ram_budget = AUTOTUNE_RAM_BUDGET
    return ds.with_options(options)


def _spread_views(ds, training, num_crops):
    """Evaluation with several crops: one element per view, label and id repeated."""
    if training or num_crops == 1:
        return ds
    return ds.map(
        tf.autograph.experimental.do_not_convert(
            lambda clip, *rest: (clip, *(tf.fill([num_crops], x) for x in rest))
        ),
        num_parallel_calls=AUTOTUNE,
    ).unbatch()
