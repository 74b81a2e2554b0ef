"""Auxiliary classifiers on intermediate blocks (deep supervision), for training only.

On small data, SGD can leave whole classes of TVN-1 unlearned: the objects of the
classes learned first get detectors, and the first block stops responding to
the others before their classes are learned (docs/design.md, "The demo recipe"). A
classifier on a block's pooled output gives that block a short gradient path
from every class, so it keeps every class's evidence while the blocks after it
learn to use it. On the demo this keeps every class together with a slower first
block (`--learning_rate_multipliers=block0:0.1`), neither alone (docs/design.md
has the figures). The auxiliary heads exist only in training: the
checkpoint keeps them so that a run can resume, while evaluation, export and
serving use the architecture as it is, without them.

    training_model, heads = build_training_model(model, ["block0_0", "block1_0"], 10)
    logits, *aux_logits = training_model(clips, training=True)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import heads as heads_lib
from tvn_tf.models import tvn


def check_names(arch: arch_lib.Architecture, names: Sequence[str]) -> None:
    """Checks `--aux_classifiers` against the architecture before anything is built.

    Raises:
      ValueError: a name that is not one of `arch`'s block applications, or a
        name given twice (the message lists the valid names).
    """
    valid = tvn.block_names(arch)
    unknown = [n for n in names if n not in valid]
    if unknown or len(set(names)) != len(names):
        problem = f"{', '.join(unknown)} not in {arch.name}" if unknown else "a block named twice"
        raise ValueError(
            f"--aux_classifiers={','.join(names)}: {problem}; expected distinct names "
            f"from {', '.join(valid)}."
        )


def build_training_model(
    model: keras.Model, names: Sequence[str], num_classes: int
) -> tuple[keras.Model, list[keras.layers.Layer]]:
    """The model with an auxiliary classifier on each named block's output.

    Each head is the released head without dropout: the clip mean over frames,
    height and width, then a dense layer (float32 logits). The returned model
    shares every layer of `model` (training it trains `model`) and maps clips to
    `[logits, aux_logits_1, ...]` in the order of `names`.

    Args:
      model: A TVN from `tvn.TinyVideoNetwork` (blocks named `block{b}_{r}`).
      names: Block applications to supervise (`check_names`).
      num_classes: Width of every auxiliary classifier.

    Returns:
      `(training_model, heads)`: the heads are returned apart so that a
      checkpoint and an optimizer can hold their variables.
    """
    heads, outputs = [], [model.outputs[0]]
    for name in names:
        block = model.get_layer(name)
        head = heads_lib.ClassificationHead(
            num_classes, block.output_frames, dropout_rate=0.0, dtype="float32", name=f"aux_{name}"
        )
        heads.append(head)
        outputs.append(head(block.output))
    return keras.Model(model.input, outputs, name=f"{model.name}_deeply_supervised"), heads
