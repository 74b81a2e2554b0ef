"""Builds a Tiny Video Network as a Keras functional model from its architecture.

    arch = get_architecture("tvn1")
    model = build_model(arch, num_classes=50)
    logits = model(clips)  # clips: float32 [batch, 2, 224, 224, 3]

The public input is `[batch, frames, height, width, 3]` with a dynamic batch;
time is folded into the batch once, right after the input. The same code builds
the model on Keras' TensorFlow, JAX and PyTorch backends (docs/backends.md).
"""

from __future__ import annotations

import keras

from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import layers

HEADS = {"mean": layers.ClassificationHead, "softmax_pool": layers.SoftmaxPoolingHead}


def build_model(
    arch: arch_lib.Architecture, num_classes: int, dropout_rate: float = 0.5, head: str = "mean"
) -> keras.Model:
    """Builds the network for `arch` with a `num_classes`-way classifier.

    Args:
      arch: The architecture (`get_architecture`, `load_architecture_json`,
        `scale_architecture`).
      num_classes: Width of the classifier.
      dropout_rate: Dropout before the classifier (training only).
      head: `'mean'` (clip mean, the released models) or `'softmax_pool'`
        (per-frame logits pooled with softmax weights, for long multi-label
        video).

    Returns:
      A `keras.Model` named after the architecture, mapping float clips
      `[batch, frames, size, size, 3]` to float32 logits `[batch, num_classes]`.
      Its blocks are named `block{b}_{r}` (block b, application r), its head
      `head`.

    Raises:
      ValueError: on a bad `num_classes`, `dropout_rate` or `head`.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes is {num_classes!r}; expected an integer >= 1.")
    if not 0 <= dropout_rate < 1:
        raise ValueError(f"dropout_rate is {dropout_rate!r}; expected a number in [0, 1).")
    if head not in HEADS:
        raise ValueError(f"head is {head!r}; expected one of {', '.join(HEADS)}.")
    clips = keras.Input((arch.num_frames, arch.image_size, arch.image_size, 3), name="clips")
    x = layers.FoldFrames(name="fold_frames")(clips)
    frames = arch.num_frames
    for b, spec in enumerate(arch.blocks):
        block_json = spec.to_json()
        first = layers.TinyBlock(block_json, frames, name=f"block{b}_0")
        x = first(x)
        frames = first.output_frames
        # Repeats keep the size (strides 1) and alternate the temporal op, off first.
        use_temporal = False
        for r in range(1, spec.repeats):
            x = layers.TinyBlock(
                block_json, frames, strides=1, use_temporal=use_temporal, name=f"block{b}_{r}"
            )(x)
            use_temporal = not use_temporal
    # float32 logits whatever the mixed-precision policy.
    logits = HEADS[head](num_classes, frames, dropout_rate, dtype="float32", name="head")(x)
    return keras.Model(clips, logits, name=arch.name)


def block_names(arch: arch_lib.Architecture) -> list[str]:
    """The layer names `build_model` gives `arch`'s block applications, in network order."""
    return [f"block{b}_{r}" for b, spec in enumerate(arch.blocks) for r in range(spec.repeats)]


def feature_shape(model: keras.Model) -> list[int]:
    """The last block's output for one clip, `[frames, height, width, channels]`."""
    head = model.get_layer("head")
    _, height, width, channels = head.input.shape
    return [head.num_frames, height, width, channels]


def set_synchronized_batch_norm(model: keras.Model, synchronized: bool = True) -> None:
    """Makes every batch norm of `model` average its statistics across replicas."""
    for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = synchronized
