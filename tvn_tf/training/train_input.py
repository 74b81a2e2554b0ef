"""The training input: its iterator, and whether the input's position can be checkpointed.

One replica in this process reads a plain `tf.data` iterator, whose position a
checkpoint holds, so a resumed run continues the same draws; the input of
several replicas or workers is distributed by the strategy and starts afresh
on resume, as does the AVI pipeline's (it decodes in Python).
"""

from __future__ import annotations

import tensorflow as tf

from tvn_tf.data import dataset as data_lib
from tvn_tf.models.model_input import ModelInput
from tvn_tf.training import config as config_lib


def one_pipeline(strategy: tf.distribute.Strategy) -> bool:
    """Whether the run feeds one replica in this process, from a plain (checkpointable) iterator.

    A distributed iterator cannot be checkpointed, even over one device: one
    replica reads a plain `tf.data` iterator instead, whose batches
    `strategy.run` hands to that replica as they are.
    """
    return strategy.num_replicas_in_sync == 1 and not isinstance(
        strategy, (tf.distribute.MultiWorkerMirroredStrategy, tf.distribute.TPUStrategy)
    )


def position_note(strategy: tf.distribute.Strategy, data_config: data_lib.DataConfig) -> str | None:
    """Why this run's input position cannot be checkpointed, or None when it can.

    Input pipelines distributed over several devices or workers, and the AVI
    pipeline (it decodes in Python), cannot be checkpointed; there, a resumed
    run sees fresh draws (same steps and schedule).
    """
    if not data_lib.is_prepared(data_config):
        why = "the .avi pipeline decodes in Python"
    elif not one_pipeline(strategy):
        why = f"the input is distributed over {strategy.num_replicas_in_sync} replicas"
    else:
        return None
    return (
        f"The input position is not checkpointed ({why}): a resumed run draws fresh clips "
        "(same steps and schedule)."
    )


def make_iterator(
    config: config_lib.TrainConfig,
    dataset: data_lib.Dataset,
    model_input: ModelInput,
    strategy: tf.distribute.Strategy,
):
    """The training input's iterator: plain for one replica, else distributed by the strategy."""

    def train_input(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data_lib.make_clips(
            dataset,
            dataset.split.train,
            model_input,
            training=True,
            batch_size=config.batch_size,
            num_clips=config.train_clips_per_video,
            seed=config.seed + context.input_pipeline_id,
            input_context=context,
            deterministic=config.deterministic,
        )

    if one_pipeline(strategy):
        return iter(train_input(tf.distribute.InputContext()))
    return iter(strategy.distribute_datasets_from_function(train_input))
