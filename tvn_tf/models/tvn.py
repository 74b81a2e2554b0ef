"""The Tiny Video Network model: one Keras model class built from its architecture.

    arch = get_architecture("tvn1")
    model = TinyVideoNetwork(arch, num_classes=50)
    logits = model(clips)  # clips: float32 [batch, 2, 224, 224, 3]
    same = TinyVideoNetwork.from_config(model.get_config())

`TinyVideoNetwork` is a functional model built in its constructor (as keras-hub's
backbones are): its config is the architecture's JSON plus the head settings,
and `from_config` rebuilds it from exactly that, so a saved `.keras` file, a
model directory's `model.json` (`model_dir.ModelSpec.build`) and a fresh build
all take the same path.

The public input is `[batch, frames, height, width, 3]` with a dynamic batch;
time is folded into the batch once, right after the input. The same code builds
the model on Keras' TensorFlow, JAX and PyTorch backends (docs/backends.md).
"""

from __future__ import annotations

from typing import Any

import keras

from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import blocks, heads, layers

# A model's `head` settings and their layers.
HEADS = heads.HEADS


def _check_settings(num_classes: int, dropout_rate: float, head: str) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes is {num_classes!r}; expected an integer >= 1.")
    if not 0 <= dropout_rate < 1:
        raise ValueError(f"dropout_rate is {dropout_rate!r}; expected a number in [0, 1).")
    if head not in HEADS:
        raise ValueError(f"head is {head!r}; expected one of {', '.join(HEADS)}.")


def _network(arch: arch_lib.Architecture, num_classes: int, dropout_rate: float, head: str):
    """The functional graph: `(clips input, float32 logits)`."""
    clips = keras.Input((arch.num_frames, arch.image_size, arch.image_size, 3), name="clips")
    x = layers.FoldFrames(name="fold_frames")(clips)
    frames = arch.num_frames
    for b, spec in enumerate(arch.blocks):
        first = blocks.TinyBlock(spec, frames, name=arch_lib.block_name(b, 0))
        x = first(x)
        frames = first.output_frames
        # Repeats keep the size (strides 1) and alternate the temporal op, off first.
        use_temporal = False
        for r in range(1, spec.repeats):
            x = blocks.TinyBlock(
                spec, frames, strides=1, use_temporal=use_temporal, name=arch_lib.block_name(b, r)
            )(x)
            use_temporal = not use_temporal
    # float32 logits whatever the mixed-precision policy.
    logits = HEADS[head](num_classes, frames, dropout_rate, dtype="float32", name="head")(x)
    return clips, logits


@keras.saving.register_keras_serializable(package=layers.PACKAGE)
class TinyVideoNetwork(keras.Model):
    """A Tiny Video Network with a `num_classes`-way classifier.

    Maps float clips `[batch, frames, size, size, 3]` to float32 logits
    `[batch, num_classes]`. Its blocks are named `block{b}_{r}` (block b,
    application r; `architecture.block_name`), its head `head`.

    Args:
      architecture: The architecture (`get_architecture`,
        `load_architecture_json`, `scaling.scale_architecture`).
      num_classes: Width of the classifier.
      dropout_rate: Dropout before the classifier (training only).
      head: `'mean'` (clip mean, the released models) or `'softmax_pool'`
        (per-frame logits pooled with softmax weights, for long multi-label
        video).
      name: The model's name; the architecture's name by default.

    Raises:
      ValueError: on a bad `num_classes`, `dropout_rate` or `head`.
    """

    def __init__(
        self,
        architecture: arch_lib.Architecture,
        num_classes: int,
        dropout_rate: float = 0.5,
        head: str = "mean",
        name: str | None = None,
        **kwargs,
    ):
        _check_settings(num_classes, dropout_rate, head)
        clips, logits = _network(architecture, num_classes, dropout_rate, head)
        super().__init__(inputs=clips, outputs=logits, name=name or architecture.name, **kwargs)
        # Plain values (no lists or dicts): the checkpoint's object graph is the layers'.
        self.architecture = architecture
        self.num_classes = num_classes
        self.dropout_rate = dropout_rate
        self.head = head

    def get_config(self) -> dict[str, Any]:
        """The architecture's JSON form and the head settings: all `from_config` needs."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "architecture": self.architecture.to_json(),
            "num_classes": self.num_classes,
            "dropout_rate": self.dropout_rate,
            "head": self.head,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TinyVideoNetwork:
        """Rebuilds the (untrained) model of `get_config` or `ModelSpec.model_config`.

        Raises:
          ValueError: an invalid architecture (naming the block and field) or
            head setting.
        """
        config = dict(config)
        name = config.pop("name", None) or "custom"
        trainable = config.pop("trainable", True)
        arch = arch_lib.architecture_from_json(config.pop("architecture"), name)
        model = cls(arch, name=name, **config)
        model.trainable = trainable
        return model


def block_names(arch: arch_lib.Architecture) -> list[str]:
    """The layer names of `arch`'s block applications, in network order."""
    return [
        arch_lib.block_name(b, r) for b, spec in enumerate(arch.blocks) for r in range(spec.repeats)
    ]


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
