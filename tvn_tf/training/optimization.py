"""The learning-rate schedule and optimizers of the training recipe."""

from __future__ import annotations

import math

import keras
from keras import ops

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
    parameter's step by its own gradient size; BUILD.md ("The demo recipe")
    compares it with SGD on the demo data. Weight decay skips batch-norm
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
