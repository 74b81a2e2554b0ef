"""The training step: one replica's loss and gradient step, and the distributed step over them.

Each replica computes its loss over its part of the global batch, scaled by
the global batch size (`tf.nn.compute_average_loss`), and the optimizer sums
gradients across replicas: the same step runs on one device, several GPUs,
several workers or a TPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from tvn_tf.training import optimization


def trainable_variables(
    model: keras.Model, aux: tuple[keras.Model, Sequence[keras.layers.Layer]] | None
) -> list:
    """The model's variables, then the auxiliary heads': the model's slots keep their places."""
    heads = aux[1] if aux else []
    return model.trainable_variables + [v for head in heads for v in head.trainable_variables]


def _moving_statistics(model: keras.Model) -> list:
    """Every batch-norm moving mean and variance of `model`."""
    return [
        v
        for layer in model._flatten_layers(include_self=False)  # noqa: SLF001
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in (layer.moving_mean, layer.moving_variance)
    ]


def _average_across_replicas(variables: list) -> None:
    """Sets `variables` to their mean over the replicas, in one flat all-reduce."""
    flat = tf.concat([tf.reshape(v.value, [-1]) for v in variables], axis=0)
    flat = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, flat)
    for variable, value in zip(variables, tf.split(flat, [v.shape[0] for v in variables])):
        variable.assign(value)


def _make_loss(
    model: keras.Model,
    num_classes: int,
    label_smoothing: float,
    global_batch_size: int,
    aux: tuple[keras.Model, Sequence[keras.layers.Layer]] | None,
    aux_loss_weight: float,
) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """`(clips, labels) -> (loss, main logits)`, the loss over the global batch (training mode)."""
    loss_fn = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=label_smoothing, reduction="none"
    )

    def loss_and_logits(clips, labels):
        targets = tf.one_hot(labels, num_classes)
        if aux:
            logits, *aux_logits = aux[0](clips, training=True)
            per_clip = loss_fn(targets, logits)
            for head_logits in aux_logits:
                per_clip += aux_loss_weight * loss_fn(targets, head_logits)
        else:
            logits = model(clips, training=True)
            per_clip = loss_fn(targets, logits)
        loss = tf.nn.compute_average_loss(per_clip, global_batch_size=global_batch_size)
        if model.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        return loss, logits

    return loss_and_logits


def make_replica_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    num_classes: int,
    label_smoothing: float,
    global_batch_size: int,
    average_moving_statistics: bool = False,
    aux: tuple[keras.Model, Sequence[keras.layers.Layer]] | None = None,
    aux_loss_weight: float = 1.0,
    learning_rate_multipliers: dict[str, float] | None = None,
) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """One replica's training step: `(clips, labels) -> (loss, correct)`.

    The loss is label-smoothed cross-entropy averaged over the *global* batch,
    so summing gradients across replicas gives the global mean. With a loss-scale
    optimizer (float16) the loss is scaled before the gradients.

    With `aux`, `(training_model, heads)` from
    `deep_supervision.build_training_model`, the loss adds `aux_loss_weight`
    times each auxiliary head's cross-entropy, and the heads train too; the
    returned loss is that sum, `correct` counts the main head's hits.
    `learning_rate_multipliers` (`{'block0': 0.1}`) scales each named block's
    gradients (`optimization.scale_gradients`).

    Keras 3 batch-norm moving statistics are not aggregated across replicas: each
    replica would keep its own, and a checkpoint would hold one replica's. With
    `average_moving_statistics` they are averaged across replicas after every
    step (one packed all-reduce of a few thousand floats), so every replica and
    worker holds the same model.
    """
    moving = _moving_statistics(model) if average_moving_statistics else []
    loss_and_logits = _make_loss(
        model, num_classes, label_smoothing, global_batch_size, aux, aux_loss_weight
    )
    variables = trainable_variables(model, aux)

    def replica_step(clips, labels):
        with tf.GradientTape() as tape:
            loss, logits = loss_and_logits(clips, labels)
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, variables)
        if learning_rate_multipliers:
            grads = optimization.scale_gradients(grads, variables, learning_rate_multipliers)
        optimizer.apply_gradients(zip(grads, variables))
        if moving:
            _average_across_replicas(moving)
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        )
        return loss, correct

    return replica_step


def make_train_step(
    replica_step: Callable,
    strategy: tf.distribute.Strategy,
    step: tf.Variable,
    jit_compile: bool = False,
) -> Callable:
    """The distributed step: one batch on every replica, `iterator -> (loss, correct)` summed.

    Args:
      replica_step: One replica's step (`make_replica_step`).
      strategy: The run's `tf.distribute` strategy.
      step: The run's step counter, advanced by one per call.
      jit_compile: Compile the replica step with XLA.
    """

    @tf.function(jit_compile=jit_compile or None, autograph=False)
    def _compiled_step(clips, labels):
        return replica_step(clips, labels)

    @tf.function(autograph=False)
    def train_step(iterator):
        clips, labels = next(iterator)
        loss, correct = strategy.run(
            _compiled_step if jit_compile else replica_step, args=(clips, labels)
        )
        step.assign_add(1)
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
        )

    return train_step
