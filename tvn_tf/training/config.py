"""The training recipe (`TrainConfig`) and the arithmetic of its steps.

`TrainConfig` holds the flags of `tvn_tf.train`; a config that breaks a bound
is refused as it is built, with one line naming the flag. The step counts of a
run (steps per epoch, total steps, warm-up steps) and the check that warm-up
ends before the run does are computed here alone: the trainer and the
architecture search both call these functions.

    config = TrainConfig(model_dir="runs/tvn1", epochs=60)
    steps = step_counts(config, num_train_videos=1200)
    check_warmup(config.warmup_epochs, steps)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tvn_tf.data import preprocessing
from tvn_tf.models import tvn
from tvn_tf.training import optimization
from tvn_tf.training import strategy as strategy_lib

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The recipe and the run's mechanics (the flags of `tvn_tf.train`).

    Raises:
      ValueError: on construction, a value out of its bounds (one line naming
        the flag and what it expects).
    """

    model_dir: str
    epochs: int = 60
    train_steps: int = 0  # Overrides epochs when > 0.
    batch_size: int = 64  # Global: split across replicas.
    optimizer: str = "momentum"
    learning_rate: float = 0.1
    momentum: float = 0.9
    warmup_epochs: float = 5.0
    weight_decay: float = 1e-4
    dropout_rate: float = 0.5
    label_smoothing: float = 0.1
    # Training-only classifiers on these blocks' outputs (deep_supervision.py).
    aux_classifiers: tuple[str, ...] = ()
    aux_loss_weight: float = 1.0
    # BLOCK:FACTOR entries: that block's gradient step times FACTOR (momentum only).
    learning_rate_multipliers: tuple[str, ...] = ()
    train_clips_per_video: int = 1
    head: str = "mean"
    mixed_precision: str = "float32"
    jit_compile: bool = False
    strategy: str = "default"
    tpu: str = ""
    sync_batch_norm: bool = False
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    eval_every: int = 0  # 0: only at the end.
    eval_clips: int = 4
    eval_crops: int = 1
    seed: int = 0
    deterministic: bool = False
    num_sample_clips: int = 3
    progress_bar: bool = True  # The step bar on the chief (off inside a search).

    def __post_init__(self) -> None:
        _check(self)

    def to_json(self) -> dict[str, Any]:
        """The config as JSON values (tuples as lists), as `train_config.json` holds it."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _one_of(values) -> str:
    return "one of " + ", ".join(values)


def _check(config: TrainConfig) -> None:
    """Refuses a value out of its bounds, naming its flag.

    Raises:
      ValueError: `--flag=value; expected ...`.
    """
    checks = [
        ("epochs", config.epochs >= 1 or config.train_steps >= 1, "an integer >= 1"),
        ("train_steps", config.train_steps >= 0, "an integer >= 0"),
        ("batch_size", config.batch_size >= 1, "an integer >= 1"),
        ("learning_rate", config.learning_rate > 0, "a number > 0"),
        ("momentum", 0 <= config.momentum < 1, "a number in [0, 1)"),
        ("warmup_epochs", config.warmup_epochs >= 0, "a number >= 0"),
        ("weight_decay", config.weight_decay >= 0, "a number >= 0"),
        ("dropout_rate", 0 <= config.dropout_rate < 1, "a number in [0, 1)"),
        ("label_smoothing", 0 <= config.label_smoothing < 1, "a number in [0, 1)"),
        ("aux_loss_weight", config.aux_loss_weight >= 0, "a number >= 0"),
        ("mixed_precision", config.mixed_precision in PRECISIONS, _one_of(PRECISIONS)),
        (
            "optimizer",
            config.optimizer in optimization.OPTIMIZERS,
            _one_of(optimization.OPTIMIZERS),
        ),
        ("strategy", config.strategy in strategy_lib.STRATEGIES, _one_of(strategy_lib.STRATEGIES)),
        ("head", config.head in tvn.HEADS, _one_of(tvn.HEADS)),
        ("checkpoint_every", config.checkpoint_every >= 1, "an integer >= 1"),
        ("keep_checkpoints", config.keep_checkpoints >= 1, "an integer >= 1"),
        ("eval_every", config.eval_every >= 0, "an integer >= 0"),
        ("train_clips_per_video", config.train_clips_per_video >= 1, "an integer >= 1"),
        ("eval_clips", config.eval_clips >= 1, "an integer >= 1"),
        (
            "eval_crops",
            config.eval_crops in preprocessing.EVAL_CROPS,
            " or ".join(map(str, preprocessing.EVAL_CROPS)),
        ),
    ]
    for flag, ok, expected in checks:
        if not ok:
            raise ValueError(f"--{flag}={getattr(config, flag)!r}; expected {expected}.")
    if config.learning_rate_multipliers and config.optimizer != "momentum":
        raise ValueError(
            f"--learning_rate_multipliers with --optimizer={config.optimizer}: it scales "
            "gradients, which Adam and RMSprop normalise away; use --optimizer=momentum."
        )


@dataclasses.dataclass(frozen=True)
class StepCounts:
    """A run's steps: per epoch (whole global batches), in all, and of warm-up."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def steps_per_epoch(num_train_videos: int, batch_size: int) -> int:
    """Whole global batches in one pass over the training videos (at least 1)."""
    return max(1, num_train_videos // batch_size)


def warmup_steps(warmup_epochs: float, per_epoch: int) -> int:
    """`warmup_epochs` in steps, rounded to the nearest step."""
    return int(round(warmup_epochs * per_epoch))


def step_counts(config: TrainConfig, num_train_videos: int) -> StepCounts:
    """The steps of a run of `config` over `num_train_videos` training videos.

    `train_steps`, when set, is the run's length; else `epochs` passes.
    """
    per_epoch = steps_per_epoch(num_train_videos, config.batch_size)
    return StepCounts(
        steps_per_epoch=per_epoch,
        total_steps=config.train_steps or config.epochs * per_epoch,
        warmup_steps=warmup_steps(config.warmup_epochs, per_epoch),
    )


def check_warmup(
    warmup_epochs: float, steps: StepCounts, length_flags: str = "--epochs/--train_steps"
) -> None:
    """Refuses a warm-up as long as the run: its learning rate would never peak.

    Args:
      warmup_epochs: The warm-up, in epochs (named in the refusal).
      steps: The run's step counts.
      length_flags: The flags that set the run's length (named in the refusal).

    Raises:
      ValueError: the warm-up is not shorter than the run.
    """
    if steps.warmup_steps and steps.warmup_steps >= steps.total_steps:
        raise ValueError(
            f"--warmup_epochs={warmup_epochs:g} is {steps.warmup_steps} steps, not shorter "
            f"than the whole run ({steps.total_steps} steps from {length_flags}): the "
            "learning rate would never reach its peak. Lower --warmup_epochs."
        )
