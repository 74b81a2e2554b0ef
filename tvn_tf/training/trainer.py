"""The training loop: one custom loop for every tf.distribute strategy.

Keras `fit` fails under `MultiWorkerMirroredStrategy` in Keras 3, so training
is a plain loop of `strategy.run` steps: each replica computes its loss over
its part of the global batch, scaled by the global batch size
(`tf.nn.compute_average_loss`), and the optimizer sums gradients across
replicas. The same code runs on one device, several GPUs, several workers or
a TPU.

A run is resumable: `MODEL_DIR/checkpoints` holds the model, the optimizer,
the step and (where the strategy allows) the input pipeline's position, so a
run killed at any moment and started again with the same command continues
from its last checkpoint and ends after the same number of steps.

`train` runs in phases, one function each: `_plan` (every check, the step
counts), `_set_up` (model, optimizer, input, checkpoints), `_restore_or_start`
(resume, record the run), `_loop` (step, `_log_step`, checkpoint, `_validate`)
and `_finish` (the final metrics).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tvn_tf import atomic, errors
from tvn_tf import model_dir as model_dir_lib
from tvn_tf.data import dataset as data_lib
from tvn_tf.data import splits
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import memory
from tvn_tf.models import tvn
from tvn_tf.models.model_input import ModelInput
from tvn_tf.training import deep_supervision
from tvn_tf.training import metrics as metrics_lib
from tvn_tf.training import optimization
from tvn_tf.training import strategy as strategy_lib

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The recipe and the run's mechanics (the flags of `tvn_tf.train`)."""

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

    def to_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _check_config(config: TrainConfig) -> None:
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
        (
            "mixed_precision",
            config.mixed_precision in PRECISIONS,
            "one of " + ", ".join(PRECISIONS),
        ),
        (
            "optimizer",
            config.optimizer in optimization.OPTIMIZERS,
            "one of " + ", ".join(optimization.OPTIMIZERS),
        ),
        (
            "strategy",
            config.strategy in strategy_lib.STRATEGIES,
            "one of " + ", ".join(strategy_lib.STRATEGIES),
        ),
        ("head", config.head in tvn.HEADS, "one of " + ", ".join(tvn.HEADS)),
        ("checkpoint_every", config.checkpoint_every >= 1, "an integer >= 1"),
        ("keep_checkpoints", config.keep_checkpoints >= 1, "an integer >= 1"),
        ("eval_every", config.eval_every >= 0, "an integer >= 0"),
        ("train_clips_per_video", config.train_clips_per_video >= 1, "an integer >= 1"),
        ("eval_clips", config.eval_clips >= 1, "an integer >= 1"),
        ("eval_crops", config.eval_crops in (1, 3), "1 or 3"),
    ]
    for flag, ok, expected in checks:
        if not ok:
            raise ValueError(f"--{flag}={getattr(config, flag)!r}; expected {expected}.")
    if config.learning_rate_multipliers and config.optimizer != "momentum":
        raise ValueError(
            f"--learning_rate_multipliers with --optimizer={config.optimizer}: it scales "
            "gradients, which Adam and RMSprop normalise away; use --optimizer=momentum."
        )


def _split_flags(data: dict[str, Any]) -> str:
    flags = ["split", "fold"] + (["num_folds"] if data["split"] == "kfold" else [])
    return " ".join(f"--{k}={data[k]}" for k in flags + ["num_validation_groups"])


def check_model_dir(
    model_dir: str,
    spec: model_dir_lib.ModelSpec,
    data_config: data_lib.DataConfig | None = None,
    split=None,
) -> None:
    """Refuses a model dir that already holds a different model or split.

    A run folder remembers its split: resuming it under another one would train
    on its test groups, or test on groups it trained on.

    Raises:
      ValueError: naming what differs.
    """
    if os.path.exists(os.path.join(model_dir, model_dir_lib.SPEC_FILE)):
        old = model_dir_lib.read_spec(model_dir)
        for what, a, b in (
            ("architecture", old.architecture, spec.architecture),
            ("classes", old.class_names, spec.class_names),
            ("head", old.head, spec.head),
        ):
            if a != b:
                detail = (
                    f"{old.name} at {old.input.image_size}px vs {spec.name} at "
                    f"{spec.input.image_size}px"
                    if what == "architecture"
                    else f"{len(a)} vs {len(b)}"
                    if what == "classes"
                    else f"{a} vs {b}"
                )
                raise ValueError(
                    f"--model_dir={model_dir} holds a different model ({what}: "
                    f"{detail}); use a new --model_dir or the same flags."
                )
    run = model_dir_lib.read_train_config(model_dir)
    if run is None or split is None:
        return
    new = dataclasses.asdict(split)
    if {k: list(v) for k, v in run["split"].items()} != {k: list(v) for k, v in new.items()}:
        raise ValueError(
            f"--model_dir={model_dir} was trained with {_split_flags(run['data'])} (test "
            f"groups {list(run['split']['test'])}); this run asks for "
            f"{_split_flags(data_config.to_json())} (test groups {list(split.test)}). Use a "
            "new --model_dir, or the run's split flags."
        )


# Flags that change what a checkpoint holds (optimizer slots, loss scale, input state).
_STATE_FLAGS = ("optimizer", "mixed_precision", "strategy", "aux_classifiers")
# Of those, the ones a resumed run must keep as the run's record has them. A
# checkpoint restores into a run that asks for less (no loss scale, fewer
# heads) without complaint, so only this check stops such a run from training
# on and rewriting the record. The strategy may change: the restore decides.
_RECORDED_STATE_FLAGS = ("optimizer", "mixed_precision", "aux_classifiers")


def _as_flag(value: Any) -> Any:
    """A config value as it is written on the command line (lists comma-separated)."""
    return ",".join(value) if isinstance(value, list) else value


def _does_not_fit(path: str, config: TrainConfig, reason: str) -> ValueError:
    return ValueError(
        f"{path} does not fit this run ({reason}); rerun with the flags of "
        f"{os.path.join(config.model_dir, model_dir_lib.TRAIN_CONFIG)}, or use a new --model_dir."
    )


def check_state_flags(config: TrainConfig) -> None:
    """Refuses to resume a run's checkpoints with other optimizer, precision or training heads.

    Runs before anything is written: a refused rerun leaves the run's record
    (`train_config.json`) and checkpoints as they were.

    Raises:
      ValueError: naming the newest checkpoint and each flag that differs.
    """
    indexes = glob.glob(os.path.join(config.model_dir, model_dir_lib.CHECKPOINTS, "*.index"))
    run = model_dir_lib.read_train_config(config.model_dir)
    if not indexes or run is None:
        return  # Nothing trained yet: any flags may start it.
    now = config.to_json()
    differ = [
        f"--{k}={_as_flag(now[k]) or 'none'} (the run's: {_as_flag(run['train'][k]) or 'none'})"
        for k in _RECORDED_STATE_FLAGS
        if k in run["train"] and run["train"][k] != now[k]
    ]
    if differ:
        newest = max(indexes, key=lambda p: (len(p), p))[: -len(".index")]
        raise _does_not_fit(newest, config, ", ".join(differ))


_INPUT_STATE = "data/.ATTRIBUTES/ITERATOR_STATE"


def _restore(
    checkpoint: tf.train.Checkpoint,
    path: str,
    config: TrainConfig,
    data_config,
    trackables: dict[str, Any] | None = None,
) -> None:
    """Restores a training checkpoint; a mismatch names the checkpoint and the flags that differ.

    A checkpoint without an input position (saved over several replicas, say)
    restores all but the input, which then starts afresh.

    Args:
      checkpoint: The run's checkpoint.
      path: The checkpoint to restore.
      config: The run's flags (named in a refusal).
      data_config: The run's data flags (named in a refusal).
      trackables: What `checkpoint` was built from, to restore without the
        input position where `path` has none.

    Raises:
      ValueError: the checkpoint does not fit this run's model and optimizer.
    """
    try:
        trackables = trackables or {}
        if "data" in trackables and not tf.train.load_checkpoint(path).has_tensor(_INPUT_STATE):
            logging.info("%s holds no input position: the input starts afresh.", path)
            checkpoint = tf.train.Checkpoint(**{k: v for k, v in trackables.items() if k != "data"})
        checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        # The failed restore would log a warning per unmatched value at exit: the
        # message below says it all.
        tf.get_logger().setLevel("ERROR")
        run = model_dir_lib.read_train_config(config.model_dir)
        if run is None:  # Checkpoints from elsewhere: no recorded flags to blame.
            raise ValueError(
                f"{path} does not fit this run ({errors.first_line(e)}); "
                f"{config.model_dir} has no {model_dir_lib.TRAIN_CONFIG}, so its "
                f"{model_dir_lib.CHECKPOINTS}/ hold another model's checkpoints: move that "
                "folder away to start over, or use a new --model_dir."
            ) from None
        now = {**config.to_json(), "data_format": data_config.data_format}
        was = {**run["train"], "data_format": run["data"].get("data_format")}
        differ = [
            f"--{k}={_as_flag(now[k])} (the run's: {_as_flag(was[k]) or 'none'})"
            for k in (*_STATE_FLAGS, "data_format")
            if k in was and was[k] != now[k]
        ]
        reason = ", ".join(differ) if differ else errors.first_line(e)
        raise _does_not_fit(path, config, reason) from None


class _Progress:
    """A progress bar on the chief: step, loss, learning rate, clips/s, ETA."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="step",
                dynamic_ncols=True,
                mininterval=1.0,
                smoothing=0.1,
            )

    def update(self, n: int, **postfix) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _one_pipeline(strategy: tf.distribute.Strategy) -> bool:
    """Whether the run feeds one replica in this process, from a plain (checkpointable) iterator.

    A distributed iterator cannot be checkpointed, even over one device: one
    replica reads a plain `tf.data` iterator instead, whose batches
    `strategy.run` hands to that replica as they are.
    """
    return strategy.num_replicas_in_sync == 1 and not isinstance(
        strategy, (tf.distribute.MultiWorkerMirroredStrategy, tf.distribute.TPUStrategy)
    )


def _input_position_note(
    strategy: tf.distribute.Strategy, data_config: data_lib.DataConfig
) -> str | None:
    """Why this run's input position cannot be checkpointed, or None when it can.

    Input pipelines distributed over several devices or workers, and the AVI
    pipeline (it decodes in Python), cannot be checkpointed; there, a resumed
    run sees fresh draws (same steps and schedule).
    """
    if not data_lib.is_prepared(data_config):
        why = "the .avi pipeline decodes in Python"
    elif not _one_pipeline(strategy):
        why = f"the input is distributed over {strategy.num_replicas_in_sync} replicas"
    else:
        return None
    return (
        f"The input position is not checkpointed ({why}): a resumed run draws fresh clips "
        "(same steps and schedule)."
    )


def _image_summary(clips: np.ndarray) -> np.ndarray:
    """[clips, frames, h, w, 3] in [-1, 1] -> one row of frames per clip, in [0, 1]."""
    rows = [np.concatenate(list(clip), axis=1) for clip in clips]
    return ((np.stack(rows) + 1.0) / 2.0).clip(0, 1)


def _trainable_variables(model: keras.Model, aux) -> list:
    """The model's variables, then the auxiliary heads': the model's slots keep their places."""
    heads = aux[1] if aux else []
    return model.trainable_variables + [v for head in heads for v in head.trainable_variables]


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
):
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
    moving = []
    if average_moving_statistics:
        moving = [
            v
            for layer in model._flatten_layers(include_self=False)  # noqa: SLF001
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)
        ]
    loss_fn = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=label_smoothing, reduction="none"
    )
    variables = _trainable_variables(model, aux)

    def replica_step(clips, labels):
        with tf.GradientTape() as tape:
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
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, variables)
        if learning_rate_multipliers:
            grads = optimization.scale_gradients(grads, variables, learning_rate_multipliers)
        optimizer.apply_gradients(zip(grads, variables))
        if moving:  # One flat all-reduce for all of them.
            flat = tf.concat([tf.reshape(v.value, [-1]) for v in moving], axis=0)
            flat = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, flat)
            for variable, value in zip(moving, tf.split(flat, [v.shape[0] for v in moving])):
                variable.assign(value)
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        )
        return loss, correct

    return replica_step


def train(
    config: TrainConfig,
    data_config: data_lib.DataConfig,
    arch: arch_lib.Architecture,
    split: splits.GroupSplit | None = None,
) -> dict[str, Any]:
    """Trains `arch` on the data, evaluates it, and returns the final metrics.

    Args:
      config: The recipe and the run's mechanics.
      data_config: The data folder and its split.
      arch: The architecture (already scaled / resized).
      split: Replaces the split `data_config` names, e.g. one without test
        groups (the architecture search scores on validation groups only and
        never reads the test groups).

    Returns:
      The test metrics (see `evaluate`), or the validation metrics when the
      split has no test groups; also written to `MODEL_DIR/metrics.json`.
      Under multi-worker training only the chief evaluates (validation and
      test; the others keep the chief's choice of best checkpoint), so the
      other workers return the step and the training time alone.

    Raises:
      ValueError: on bad flags, data or model dir (one line, naming the flag).
      tvn_tf.atomic.NoSpaceError: a file system filled up (names it and the file).
      Interrupted: Ctrl-C (says at which step, and where the same command resumes).
    """
    _check_config(config)
    dataset = data_lib.load_dataset(data_config)
    if split is not None:
        dataset = dataclasses.replace(dataset, split=split)
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = strategy_lib.make_strategy(config.strategy, config.tpu)
    # One writer per folder: a second run on it would interleave checkpoints.
    with model_dir_lib.lock_run(strategy_lib.write_dir(config.model_dir, strategy)):
        try:
            return _train(config, data_config, dataset, arch, strategy)
        except Exception as e:  # A full disk under any writer: TensorBoard, JSON, PNG.
            atomic.raise_if_no_space(e, getattr(e, "filename", None) or config.model_dir, None)
            raise


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a run will do, fixed before anything is built: its model and its steps."""

    spec: model_dir_lib.ModelSpec
    chief: bool
    replicas: int
    num_train: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    learning_rate_multipliers: dict[str, float]


@dataclasses.dataclass
class _Run:
    """The live state of a run: what its phases build, restore and advance."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    schedule: optimization.WarmupCosineDecay
    step: tf.Variable
    iterator: Any
    checkpoint: tf.train.Checkpoint
    manager: tf.train.CheckpointManager
    out_dir: str
    aux: tuple[keras.Model, list[keras.layers.Layer]] | None = None
    best_manager: tf.train.CheckpointManager | None = None
    best_file: str = ""
    best_accuracy: float = -1.0
    writer: Any = None
    evaluator: Evaluator | None = None
    trackables: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The step of this process's last checkpoint (-1: none yet).
    saved_step: int = -1
    # What a training checkpoint's variables take on disk (a full disk's message).
    variable_bytes: int = 0
    looping: bool = False  # Whether steps have begun (only then does Ctrl-C save).


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the run; str() is the one line that says where, and what next.

    A KeyboardInterrupt still, so that every caller's handling of Ctrl-C sees it.

    Attributes:
      step: The last step trained, or None when it stopped before training.
      resume_step: Where the same command resumes (its last checkpoint).
    """

    def __init__(self, step: int | None, resume_step: int | None):
        super().__init__(step, resume_step)
        self.step, self.resume_step = step, resume_step

    def __str__(self) -> str:
        if self.step is None:
            return "interrupted before the first step; the same command resumes"
        text = f"interrupted at step {self.step}; the same command resumes"
        if self.resume_step != self.step:
            text += f" from step {self.resume_step or 0} (its last checkpoint)"
        return text


def _train(
    config: TrainConfig,
    data_config: data_lib.DataConfig,
    dataset: data_lib.Dataset,
    arch: arch_lib.Architecture,
    strategy: tf.distribute.Strategy,
) -> dict[str, Any]:
    """`train` once the run folder is locked: plan, set up, restore, loop, finish.

    Ctrl-C saves the step it stopped at (where every worker can take part: not
    under multi-worker training) and raises `Interrupted`.
    """
    started: list[_Run] = []
    try:
        return _train_phases(config, data_config, dataset, arch, strategy, started)
    except KeyboardInterrupt:
        run = started[0] if started else None
        if run is None or not run.looping:  # Before any step: the checkpoints are as they were.
            restored = run.saved_step if run is not None and run.saved_step >= 0 else None
            raise Interrupted(restored, restored) from None
        step = int(run.step.numpy())
        if step > run.saved_step and not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            try:
                _save(run.manager, step, run.variable_bytes)
                run.saved_step = step
            except (KeyboardInterrupt, Exception) as e:  # A second Ctrl-C, a full disk.
                logging.warning("Could not save step %d: %s", step, errors.first_line(e))
        raise Interrupted(step, max(run.saved_step, 0)) from None


def _train_phases(
    config: TrainConfig,
    data_config: data_lib.DataConfig,
    dataset: data_lib.Dataset,
    arch: arch_lib.Architecture,
    strategy: tf.distribute.Strategy,
    started: list[_Run],
) -> dict[str, Any]:
    """The phases of `_train`; the run they build is appended to `started` once set up."""
    plan = _plan(config, data_config, dataset, arch, strategy)
    run = _set_up(config, data_config, dataset, arch, strategy, plan)
    started.append(run)
    _restore_or_start(config, data_config, dataset, plan, run)
    train_step = _make_train_step(config, strategy, plan, len(dataset.class_names), run)
    run.writer = tf.summary.create_file_writer(
        os.path.join(
            run.out_dir,
            model_dir_lib.TENSORBOARD if plan.chief else model_dir_lib.WORKER_TENSORBOARD,
        )
    )
    # Evaluation runs on the chief alone: the weights are the same on every worker.
    if plan.chief:
        run.evaluator = Evaluator(
            run.model,
            dataset,
            arch.input,
            batch_size=config.batch_size,
            eval_clips=config.eval_clips,
            eval_crops=config.eval_crops,
        )
    if plan.chief and int(run.step.numpy()) == 0 and config.num_sample_clips:
        _log_sample_clips(dataset, arch, config, run.writer)
    elapsed = _loop(config, dataset, strategy, plan, run, train_step)
    return _finish(config, dataset, plan, run, elapsed)


def _plan(
    config: TrainConfig,
    data_config: data_lib.DataConfig,
    dataset: data_lib.Dataset,
    arch: arch_lib.Architecture,
    strategy: tf.distribute.Strategy,
) -> _Plan:
    """Checks the run against its flags, folder and data, and counts its steps.

    Raises:
      ValueError: naming the flag at fault; nothing is written then.
    """
    chief = strategy_lib.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"--batch_size={config.batch_size} does not split over {replicas} "
            "replicas; use a multiple of the replica count."
        )
    spec = model_dir_lib.ModelSpec(
        arch.name, arch.to_json(), dataset.class_names, config.head, config.dropout_rate
    )
    check_model_dir(config.model_dir, spec, data_config, dataset.split)
    check_state_flags(config)
    deep_supervision.check_names(arch, config.aux_classifiers)
    # One clip per replica must fit, or the build would swap or die silently.
    memory.check_fits(arch, len(dataset.class_names), batch_size=1, training=True)
    multipliers = optimization.parse_multipliers(config.learning_rate_multipliers, len(arch.blocks))
    num_train = dataset.num_videos(dataset.split.train)
    steps_per_epoch = max(1, num_train // config.batch_size)
    total_steps = config.train_steps or config.epochs * steps_per_epoch
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    if warmup_steps and warmup_steps >= total_steps:
        raise ValueError(
            f"--warmup_epochs={config.warmup_epochs:g} is {warmup_steps} steps, not shorter "
            f"than the whole run ({total_steps} steps from --epochs/--train_steps): the "
            "learning rate would never reach its peak. Lower --warmup_epochs."
        )
    # A corrupt shard otherwise surfaces mid-run, or after all of training (test groups).
    data_lib.check_shards(
        dataset, dataset.split.train + dataset.split.validation + dataset.split.test
    )
    logging.info(
        "%s: %d classes, %d training videos in groups %s, %d steps (%d per epoch), %d replica(s)",
        arch.name,
        len(dataset.class_names),
        num_train,
        dataset.split.train,
        total_steps,
        steps_per_epoch,
        replicas,
    )
    return _Plan(
        spec, chief, replicas, num_train, steps_per_epoch, total_steps, warmup_steps, multipliers
    )


def _set_up(
    config: TrainConfig,
    data_config: data_lib.DataConfig,
    dataset: data_lib.Dataset,
    arch: arch_lib.Architecture,
    strategy: tf.distribute.Strategy,
    plan: _Plan,
) -> _Run:
    """Builds the model, optimizer, input iterator and checkpoint manager of a run."""
    with strategy.scope():
        model = plan.spec.build()
        if config.sync_batch_norm:
            tvn.set_synchronized_batch_norm(model)
        schedule = optimization.WarmupCosineDecay(
            config.learning_rate * config.batch_size / 64, plan.warmup_steps, plan.total_steps
        )
        optimizer = optimization.make_optimizer(
            config.optimizer,
            schedule,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            loss_scaling=config.mixed_precision == "mixed_float16",
        )
        aux = None
        if config.aux_classifiers:
            aux = deep_supervision.build_training_model(
                model, config.aux_classifiers, len(dataset.class_names)
            )
        optimizer.build(_trainable_variables(model, aux))
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    def train_input(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data_lib.make_clips(
            dataset,
            dataset.split.train,
            arch.input,
            training=True,
            batch_size=config.batch_size,
            num_clips=config.train_clips_per_video,
            seed=config.seed + context.input_pipeline_id,
            input_context=context,
            deterministic=config.deterministic,
        )

    if _one_pipeline(strategy):
        iterator = iter(train_input(tf.distribute.InputContext()))
    else:
        iterator = iter(strategy.distribute_datasets_from_function(train_input))
    # Dropout's random state is a model variable that the checkpoint does not
    # reach through the layer: save it by name, or a resumed run draws anew.
    seed_states = [v for v in model.variables if "seed_generator_state" in v.path]
    trackables = dict(model=model, optimizer=optimizer, step=step, random_states=seed_states)
    if aux:  # Resuming needs the heads, evaluation and export never read them.
        trackables["aux_heads"] = aux[1]
    note = _input_position_note(strategy, data_config)
    if note is None:
        trackables["data"] = iterator
    elif strategy_lib.is_chief(strategy):
        logging.info(note)
    checkpoint = tf.train.Checkpoint(**trackables)
    out_dir = strategy_lib.write_dir(config.model_dir, strategy)
    for folder in (model_dir_lib.CHECKPOINTS, model_dir_lib.BEST):
        _remove_unfinished_checkpoints(os.path.join(out_dir, folder))
    atomic.remove_stale_temporaries(out_dir)
    manager = tf.train.CheckpointManager(
        checkpoint,
        os.path.join(out_dir, model_dir_lib.CHECKPOINTS),
        max_to_keep=config.keep_checkpoints,
    )
    run = _Run(model, optimizer, schedule, step, iterator, checkpoint, manager, out_dir, aux)
    run.trackables = trackables
    variables = _trainable_variables(model, aux) + model.non_trainable_variables
    run.variable_bytes = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in variables + list(optimizer.variables)
    )
    return run


# What TensorFlow writes while it saves `ckpt-N`: its shards in `ckpt-N_temp/`, and
# the `checkpoint` state file as `checkpoint.tmp<hex>` before its rename.
_UNFINISHED_SAVE = re.compile(r"^(ckpt-\d+_temp.*|checkpoint\.tmp[0-9a-f]+)$")


def _remove_unfinished_checkpoints(folder: str) -> None:
    """Removes what a save cut short (a kill, a full disk) left in `folder`.

    Only the process that holds the run folder's lock saves there, so no save
    is under way: every temporary is a leftover, often as large as a checkpoint.
    A checkpoint's data without its index (written last) is one too.
    """
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    indexed = {n[: -len(".index")] for n in names if n.endswith(".index")}
    removed = []
    for name in names:
        data = re.match(r"^(ckpt-\d+)\.data-\d+-of-\d+$", name)
        if _UNFINISHED_SAVE.match(name) or (data and data.group(1) not in indexed):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            removed.append(name)
    if removed:
        logging.info("Removed what unfinished saves left in %s: %s", folder, ", ".join(removed))


def _remove_checkpoint_files(prefix: str) -> None:
    """Removes checkpoint `prefix` (its index, its data, its temporary folder)."""
    shutil.rmtree(prefix + "_temp", ignore_errors=True)
    for path in glob.glob(glob.escape(prefix) + ".*"):
        try:
            os.remove(path)
        except FileNotFoundError:
            continue


def _last_checkpoint_bytes(folder: str) -> int:
    """The size of the newest checkpoint in `folder` (0 if there is none)."""
    found = {}
    for path in glob.glob(os.path.join(glob.escape(folder), "ckpt-*")):
        match = re.match(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$", os.path.basename(path))
        if match:
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            found[int(match.group(1))] = found.get(int(match.group(1)), 0) + size
    return found[max(found)] if found else 0


def _save(manager: tf.train.CheckpointManager, number: int, variable_bytes: int) -> None:
    """Saves checkpoint `number`; a failed save (full disk, Ctrl-C) leaves none of its files.

    Raises:
      tvn_tf.atomic.NoSpaceError: the file system is full (names it, the
        checkpoint and about what it needs: the last checkpoint's size, or the
        variables' where there is none).
      Anything else the save raised, once its files are gone.
    """
    prefix = os.path.join(manager.directory, f"ckpt-{number}")
    try:
        manager.save(checkpoint_number=number)
    except BaseException as e:
        _remove_checkpoint_files(prefix)
        if isinstance(e, Exception):
            needed = max(variable_bytes, _last_checkpoint_bytes(manager.directory))
            atomic.raise_if_no_space(e, prefix, needed)
        raise


def _restore_or_start(
    config: TrainConfig,
    data_config: data_lib.DataConfig,
    dataset: data_lib.Dataset,
    plan: _Plan,
    run: _Run,
) -> None:
    """Resumes from the last intact checkpoint, records the run, and reads the best so far."""
    latest = model_dir_lib.latest_intact_checkpoint(
        os.path.join(config.model_dir, model_dir_lib.CHECKPOINTS)
    )
    if latest:
        _restore(run.checkpoint, latest, config, data_config, run.trackables)
        run.saved_step = int(run.step.numpy())
        logging.info("Resumed from %s at step %d.", latest, run.saved_step)
    # Only now that every check has passed: a refused rerun leaves the folder as it was.
    if plan.chief:
        model_dir_lib.write_spec(config.model_dir, plan.spec)
        atomic.write_json(
            os.path.join(config.model_dir, model_dir_lib.TRAIN_CONFIG),
            {
                "train": config.to_json(),
                "data": data_config.to_json(),
                "split": dataclasses.asdict(dataset.split),
                "total_steps": plan.total_steps,
                "steps_per_epoch": plan.steps_per_epoch,
            },
        )
    run.best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=run.model, step=run.step),
        os.path.join(run.out_dir, model_dir_lib.BEST),
        max_to_keep=1,
    )
    run.best_file = os.path.join(config.model_dir, model_dir_lib.BEST, model_dir_lib.BEST_FILE)
    if os.path.exists(run.best_file):
        with open(run.best_file) as f:
            run.best_accuracy = json.load(f)["video_accuracy"]


def _make_train_step(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    plan: _Plan,
    num_classes: int,
    run: _Run,
):
    """The distributed step: one batch on every replica, `iterator -> (loss, correct)` summed."""
    replica_step = make_replica_step(
        run.model,
        run.optimizer,
        num_classes,
        config.label_smoothing,
        config.batch_size,
        average_moving_statistics=plan.replicas > 1 and not config.sync_batch_norm,
        aux=run.aux,
        aux_loss_weight=config.aux_loss_weight,
        learning_rate_multipliers=plan.learning_rate_multipliers,
    )

    @tf.function(jit_compile=config.jit_compile or None)
    def _compiled_step(clips, labels):
        return replica_step(clips, labels)

    @tf.function
    def train_step(iterator):
        clips, labels = next(iterator)
        loss, correct = strategy.run(
            _compiled_step if config.jit_compile else replica_step, args=(clips, labels)
        )
        run.step.assign_add(1)
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
        )

    return train_step


class _Throughput:
    """Clips per second over a window of steps that restarts every 30 s."""

    def __init__(self, batch_size: int, start: float):
        self.batch_size, self.start, self.steps = batch_size, start, 0

    def tick(self) -> float:
        self.steps += 1
        now = time.perf_counter()
        clips_per_s = self.steps * self.batch_size / max(now - self.start, 1e-9)
        if now - self.start > 30:
            self.start, self.steps = now, 0
        return clips_per_s


def _loop(
    config: TrainConfig,
    dataset: data_lib.Dataset,
    strategy: tf.distribute.Strategy,
    plan: _Plan,
    run: _Run,
    train_step,
) -> float:
    """Steps to the end: log, checkpoint and validate as the flags say; returns the seconds."""
    progress = _Progress(
        plan.total_steps, int(run.step.numpy()), plan.chief and config.progress_bar
    )
    start_step, started = int(run.step.numpy()), time.perf_counter()
    run.looping = True
    throughput = _Throughput(config.batch_size, started)
    try:
        while int(run.step.numpy()) < plan.total_steps:
            loss, correct = train_step(run.iterator)
            current = int(run.step.numpy())
            _log_step(config, run, progress, current, loss, correct, throughput.tick())
            if current % config.checkpoint_every == 0 or current == plan.total_steps:
                _save(run.manager, current, run.variable_bytes)
                run.saved_step = current
            validate = dataset.split.validation and (
                current == plan.total_steps
                or config.eval_every
                and current % config.eval_every == 0
            )
            if validate:
                _validate(dataset, strategy, plan, run, progress, current)
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    logging.info("Trained %d steps in %.0f s.", int(run.step.numpy()) - start_step, elapsed)
    return elapsed


def _log_step(
    config: TrainConfig,
    run: _Run,
    progress: _Progress,
    current: int,
    loss: tf.Tensor,
    correct: tf.Tensor,
    clips_per_s: float,
) -> None:
    """Progress bar and TensorBoard for one step; stops a run whose loss is not finite."""
    lr = float(run.schedule(current))
    progress.update(1, loss=f"{float(loss):.3f}", lr=f"{lr:.4f}", clips_s=f"{clips_per_s:.1f}")
    with run.writer.as_default(step=current):
        tf.summary.scalar("train/loss", loss)
        tf.summary.scalar("train/accuracy", correct / config.batch_size)
        tf.summary.scalar("train/learning_rate", lr)
        tf.summary.scalar("train/clips_per_second", clips_per_s)
    if not np.isfinite(float(loss)):
        raise FloatingPointError(
            f"Loss is {float(loss)} at step {current}; lower "
            "--learning_rate or use --mixed_precision=float32."
        )


def _validate(
    dataset: data_lib.Dataset,
    strategy: tf.distribute.Strategy,
    plan: _Plan,
    run: _Run,
    progress: _Progress,
    current: int,
) -> None:
    """Scores the validation groups on the chief and keeps the best checkpoint."""
    improved = False
    if plan.chief:
        result = run.evaluator.evaluate(dataset.split.validation)
        _write_scalars(run.writer, "validation", result, current)
        progress.write(
            f"step {current}: validation video accuracy "
            f"{result['video_accuracy']:.3f} (clip {result['clip_accuracy']:.3f})"
        )
        improved = result["video_accuracy"] > run.best_accuracy
    # Every worker takes part in a save, so every worker learns the chief's choice.
    if strategy_lib.from_chief(strategy, improved, plan.chief):
        _save(run.best_manager, current, run.variable_bytes)
        if plan.chief:
            run.best_accuracy = result["video_accuracy"]
            atomic.write_json(run.best_file, {"step": current, "video_accuracy": run.best_accuracy})


def _finish(
    config: TrainConfig, dataset: data_lib.Dataset, plan: _Plan, run: _Run, elapsed: float
) -> dict[str, Any]:
    """The final test (or validation) metrics on the chief, written with the run."""
    groups = dataset.split.test or dataset.split.validation
    result = {"step": int(run.step.numpy())}
    if groups and plan.chief:
        result.update(run.evaluator.evaluate(groups))
        result["split"] = "test" if dataset.split.test else "validation"
        result["groups"] = list(groups)
        _write_scalars(run.writer, result["split"], result, int(run.step.numpy()))
        write_metrics(config.model_dir, result, dataset.class_names)
    result["train_seconds"] = elapsed
    run.writer.flush()
    return result


def _write_scalars(writer, prefix: str, result: dict, step: int) -> None:
    with writer.as_default(step=step):
        for key in ("clip_accuracy", "video_accuracy", "top5_accuracy"):
            tf.summary.scalar(f"{prefix}/{key}", result[key])


def _log_sample_clips(dataset, arch, config, writer) -> None:
    sample = data_lib.make_clips(
        dataset,
        dataset.split.train,
        arch.input,
        training=True,
        batch_size=config.num_sample_clips,
        seed=config.seed,
    )
    clips, labels = next(iter(sample))
    names = ", ".join(dataset.class_names[i] for i in labels.numpy())
    with writer.as_default(step=0):
        tf.summary.image(
            "train/sample_clips",
            _image_summary(clips.numpy()),
            max_outputs=config.num_sample_clips,
            description=f"One row of frames per augmented training clip: {names}",
        )


class Evaluator:
    """Runs a model over every clip (and crop) of some groups and scores it.

    Takes only what evaluation reads, so that `tvn_tf.evaluate` scores a stored
    run without building a training recipe.

    Args:
      model: The classifier, `[batch, frames, size, size, 3] -> logits`.
      dataset: The data and its split (`tvn_tf.data.dataset.load_dataset`).
      model_input: What the model is fed (`Architecture.input`,
        `ModelSpec.input`).
      batch_size: Clips per batch (at least 8 are used: evaluation holds no
        gradients).
      eval_clips: Evenly spaced clips per video.
      eval_crops: Spatial views per clip, 1 or 3.
    """

    def __init__(
        self,
        model: keras.Model,
        dataset: data_lib.Dataset,
        model_input: ModelInput,
        *,
        batch_size: int,
        eval_clips: int,
        eval_crops: int,
    ):
        self.model, self.dataset, self.model_input = model, dataset, model_input
        self.batch_size, self.eval_clips, self.eval_crops = batch_size, eval_clips, eval_crops
        size = model_input.image_size
        shape = (None, model_input.num_frames, size, size, 3)
        self.forward = tf.function(
            lambda x: model(x, training=False), input_signature=[tf.TensorSpec(shape, tf.float32)]
        )

    def evaluate(self, groups) -> dict[str, Any]:
        """Clip and video metrics over `groups` (see `metrics.classification_metrics`)."""
        ds = data_lib.make_clips(
            self.dataset,
            groups,
            self.model_input,
            training=False,
            batch_size=max(8, self.batch_size),
            num_clips=self.eval_clips,
            num_crops=self.eval_crops,
            with_video_ids=True,
        )
        logits, labels, ids = [], [], []
        for clips, label, video_id in ds:
            logits.append(self.forward(clips).numpy())
            labels.append(label.numpy())
            ids.append(video_id.numpy())
        return metrics_lib.classification_metrics(
            np.concatenate(logits),
            np.concatenate(labels),
            np.concatenate(ids),
            len(self.dataset.class_names),
        )


def write_metrics(model_dir: str, result: dict, class_names) -> None:
    """Writes `metrics.json` and the confusion matrix (PNG and CSV) into `model_dir`."""
    metrics = dict(result)
    metrics["per_class_accuracy"] = dict(zip(class_names, result["per_class_accuracy"]))
    metrics["class_names"] = list(class_names)
    atomic.write_json(os.path.join(model_dir, model_dir_lib.METRICS), metrics)
    metrics_lib.write_confusion(
        result["confusion"],
        class_names,
        os.path.join(model_dir, model_dir_lib.CONFUSION),
        f"{result.get('split', 'test')} videos: accuracy {result['video_accuracy']:.3f}",
    )
