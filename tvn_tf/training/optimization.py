"""The learning-rate schedule and optimizers of the training recipe."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import ops

from tvn_tf.models import architecture as arch_lib

OPTIMIZERS = ("momentum", "rmsprop", "adamw")


@keras.saving.register_keras_serializable(package="tvn_tf")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `base_lr` over `warmup_steps`, then cosine decay to 0.

    The schedule is a pure function of the step, so a resumed run continues it
    exactly where the checkpoint left it.
    """

    def __init__(self, base_lr: float, warmup_steps: int, total_steps: int):
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = self.base_lr * step / max(self.warmup_steps, 1)
        progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip(progress, 0.0, 1.0)
        cosine = 0.5 * self.base_lr * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


def make_optimizer(
    name: str,
    schedule: WarmupCosineDecay,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    loss_scaling: bool = False,
) -> keras.optimizers.Optimizer:
    """SGD with momentum (the paper's), RMSprop or AdamW, with decoupled weight decay.

    `adamw` is Adam (beta1 = `momentum`, epsilon 1e-7), which scales each
    parameter's step by its own gradient size; on the demo data it did not keep
    classes from being lost (docs/design.md, "The demo recipe"). Weight decay skips batch-norm
    parameters and biases. With `loss_scaling` (float16 training) the optimizer
    is wrapped in a dynamic loss scaler.

    Raises:
      ValueError: on an unknown optimizer name.
    """
    if name == "momentum":
        optimizer = keras.optimizers.SGD(
            schedule, momentum=momentum, nesterov=True, weight_decay=weight_decay or None
        )
    elif name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(
            schedule, rho=0.9, momentum=momentum, epsilon=1e-3, weight_decay=weight_decay or None
        )
    elif name == "adamw":
        optimizer = keras.optimizers.AdamW(
            schedule, weight_decay=weight_decay, beta_1=momentum, epsilon=1e-7
        )
    else:
        raise ValueError(f"--optimizer={name!r}; expected one of {', '.join(OPTIMIZERS)}.")
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def parse_multipliers(entries: Sequence[str], num_blocks: int) -> dict[str, float]:
    """`--learning_rate_multipliers`: `['block0:0.1']` -> `{'block0': 0.1}`.

    Raises:
      ValueError: an entry that is not `block{b}:FACTOR` with `b` a block of the
        model and FACTOR >= 0, or a block named twice (the message names the flag).
    """
    multipliers = {}
    for entry in entries:
        name, _, factor = entry.partition(":")
        try:
            value = float(factor)
        except ValueError:
            value = -1.0
        index = name[len("block") :]
        if (
            not name.startswith("block")
            or not index.isdigit()
            or int(index) >= num_blocks
            or not (math.isfinite(value) and value >= 0)
            or name in multipliers
        ):
            raise ValueError(
                f"--learning_rate_multipliers={','.join(entries)}: bad entry {entry!r}; expected "
                f"distinct BLOCK:FACTOR with BLOCK in block0..block{num_blocks - 1} and "
                "FACTOR >= 0, e.g. block0:0.1."
            )
        multipliers[name] = value
    return multipliers


def scale_gradients(grads: Sequence, variables: Sequence, multipliers: dict[str, float]) -> list:
    """Each gradient times its block's multiplier (variables at `block{b}_{r}/...`).

    With SGD this scales the block's learning rate (decoupled weight decay is
    applied apart, unscaled); Adam and RMSprop divide the scale out again.
    """
    scaled = []
    for grad, variable in zip(grads, variables):
        block = arch_lib.parse_block_name(variable.path)
        factor = multipliers.get(arch_lib.block_name(block[0]), 1.0) if block else 1.0
        scaled.append(grad if grad is None or factor == 1.0 else grad * factor)
    return scaled
