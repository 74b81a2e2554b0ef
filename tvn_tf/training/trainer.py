"""The training loop: one custom loop for every tf.distribute strategy.

Keras `fit` fails under `MultiWorkerMirroredStrategy` in Keras 3, so training
is a plain loop of `strategy.run` steps (`step.py`). The same code runs on one
device, several GPUs, several workers or a TPU.

A run is resumable: `MODEL_DIR/checkpoints` holds the model, the optimizer,
the step and (where the strategy allows) the input pipeline's position, so a
run killed at any moment and started again with the same command continues
from its last checkpoint and ends after the same number of steps.

`train` runs in phases, one function each: `_plan` (every check, the step
counts), `_set_up` (model, optimizer, input, checkpoints), `_restore_or_start`
(resume, record the run), `_loop` (step, `_log_step`, checkpoint, `_validate`)
and `_finish` (the final metrics). The recipe is `config.TrainConfig`; the
checks of a rerun against its folder are `resume.py`'s, the checkpoint files
`checkpoints.py`'s, evaluation `evaluation.py`'s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tvn_tf import atomic, errors
from tvn_tf import model_dir as model_dir_lib
from tvn_tf import run_record
from tvn_tf.data import dataset as data_lib
from tvn_tf.data import splits
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import memory
from tvn_tf.models import tvn
from tvn_tf.training import checkpoints
from tvn_tf.training import config as config_lib
from tvn_tf.training import deep_supervision
from tvn_tf.training import evaluation
from tvn_tf.training import optimization
from tvn_tf.training import progress as progress_lib
from tvn_tf.training import resume
from tvn_tf.training import step as step_lib
from tvn_tf.training import strategy as strategy_lib
from tvn_tf.training import summaries
from tvn_tf.training import train_input

# How the run's error begins when the loss stops being finite (`_log_step`), for
# tools that read the step from a training's last line.
NOT_FINITE = re.compile(r"Loss is (?:nan|-?inf) at step (\d+)")


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


def train(
    config: config_lib.TrainConfig,
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
      The test metrics (see `evaluation.Evaluator`), or the validation metrics
      when the split has no test groups; also written to `MODEL_DIR/metrics.json`.
      Under multi-worker training only the chief evaluates (validation and
      test; the others keep the chief's choice of best checkpoint), so the
      other workers return the step and the training time alone.

    Raises:
      ValueError: on bad flags, data or model dir (one line, naming the flag).
      tvn_tf.atomic.NoSpaceError: a file system filled up (names it and the file).
      Interrupted: Ctrl-C (says at which step, and where the same command resumes).
    """
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
    steps: config_lib.StepCounts
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
    evaluator: evaluation.Evaluator | None = None
    trackables: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The step of this process's last checkpoint (-1: none yet).
    saved_step: int = -1
    # What a training checkpoint's variables take on disk (a full disk's message).
    variable_bytes: int = 0
    looping: bool = False  # Whether steps have begun (only then does Ctrl-C save).


def _train(
    config: config_lib.TrainConfig,
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
                checkpoints.save(run.manager, step, run.variable_bytes)
                run.saved_step = step
            except (KeyboardInterrupt, Exception) as e:  # A second Ctrl-C, a full disk.
                logging.warning("Could not save step %d: %s", step, errors.first_line(e))
        raise Interrupted(step, max(run.saved_step, 0)) from None


def _train_phases(
    config: config_lib.TrainConfig,
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
    replica_step = step_lib.make_replica_step(
        run.model,
        run.optimizer,
        len(dataset.class_names),
        config.label_smoothing,
        config.batch_size,
        average_moving_statistics=plan.replicas > 1 and not config.sync_batch_norm,
        aux=run.aux,
        aux_loss_weight=config.aux_loss_weight,
        learning_rate_multipliers=plan.learning_rate_multipliers,
    )
    train_step = step_lib.make_train_step(replica_step, strategy, run.step, config.jit_compile)
    board = model_dir_lib.TENSORBOARD if plan.chief else model_dir_lib.WORKER_TENSORBOARD
    run.writer = tf.summary.create_file_writer(os.path.join(run.out_dir, board))
    # Evaluation runs on the chief alone: the weights are the same on every worker.
    if plan.chief:
        run.evaluator = evaluation.Evaluator(
            run.model,
            dataset,
            arch.input,
            batch_size=config.batch_size,
            eval_clips=config.eval_clips,
            eval_crops=config.eval_crops,
        )
    if plan.chief and int(run.step.numpy()) == 0 and config.num_sample_clips:
        summaries.write_sample_clips(
            run.writer, dataset, arch.input, config.num_sample_clips, config.seed
        )
    elapsed = _loop(config, dataset, strategy, plan, run, train_step)
    return _finish(config, dataset, plan, run, elapsed)


def _plan(
    config: config_lib.TrainConfig,
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
    resume.check_model_dir(config.model_dir, spec, data_config, dataset.split)
    resume.check_state_flags(config)
    deep_supervision.check_names(arch, config.aux_classifiers)
    # One clip per replica must fit, or the build would swap or die silently.
    memory.check_fits(arch, len(dataset.class_names), batch_size=1, training=True)
    multipliers = optimization.parse_multipliers(config.learning_rate_multipliers, len(arch.blocks))
    num_train = dataset.num_videos(dataset.split.train)
    steps = config_lib.step_counts(config, num_train)
    config_lib.check_warmup(config.warmup_epochs, steps)
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
        steps.total_steps,
        steps.steps_per_epoch,
        replicas,
    )
    return _Plan(spec, chief, replicas, num_train, steps, multipliers)


def _build_model(
    config: config_lib.TrainConfig, strategy: tf.distribute.Strategy, plan: _Plan
) -> tuple[keras.Model, Any, Any, Any, tf.Variable]:
    """The model, schedule, optimizer (built), auxiliary heads and step, in the strategy's scope."""
    with strategy.scope():
        model = plan.spec.build()
        if config.sync_batch_norm:
            tvn.set_synchronized_batch_norm(model)
        schedule = optimization.WarmupCosineDecay(
            config.learning_rate * config.batch_size / 64,
            plan.steps.warmup_steps,
            plan.steps.total_steps,
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
                model, config.aux_classifiers, plan.spec.num_classes
            )
        optimizer.build(step_lib.trainable_variables(model, aux))
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    return model, schedule, optimizer, aux, step


def _set_up(
    config: config_lib.TrainConfig,
    data_config: data_lib.DataConfig,
    dataset: data_lib.Dataset,
    arch: arch_lib.Architecture,
    strategy: tf.distribute.Strategy,
    plan: _Plan,
) -> _Run:
    """Builds the model, optimizer, input iterator and checkpoint manager of a run."""
    model, schedule, optimizer, aux, step = _build_model(config, strategy, plan)
    iterator = train_input.make_iterator(config, dataset, arch.input, strategy)
    # Dropout's random state is a model variable that the checkpoint does not
    # reach through the layer: save it by name, or a resumed run draws anew.
    seed_states = [v for v in model.variables if "seed_generator_state" in v.path]
    trackables = dict(model=model, optimizer=optimizer, step=step, random_states=seed_states)
    if aux:  # Resuming needs the heads, evaluation and export never read them.
        trackables["aux_heads"] = aux[1]
    note = train_input.position_note(strategy, data_config)
    if note is None:
        trackables["data"] = iterator
    elif strategy_lib.is_chief(strategy):
        logging.info(note)
    checkpoint = tf.train.Checkpoint(**trackables)
    out_dir = strategy_lib.write_dir(config.model_dir, strategy)
    for folder in (model_dir_lib.CHECKPOINTS, model_dir_lib.BEST):
        checkpoints.remove_unfinished(os.path.join(out_dir, folder))
    atomic.remove_stale_temporaries(out_dir)
    manager = tf.train.CheckpointManager(
        checkpoint,
        os.path.join(out_dir, model_dir_lib.CHECKPOINTS),
        max_to_keep=config.keep_checkpoints,
    )
    run = _Run(model, optimizer, schedule, step, iterator, checkpoint, manager, out_dir, aux)
    run.trackables = trackables
    variables = step_lib.trainable_variables(model, aux) + model.non_trainable_variables
    run.variable_bytes = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in variables + list(optimizer.variables)
    )
    return run


def _restore_or_start(
    config: config_lib.TrainConfig,
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
        resume.restore(run.checkpoint, latest, config, data_config, run.trackables)
        run.saved_step = int(run.step.numpy())
        logging.info("Resumed from %s at step %d.", latest, run.saved_step)
    # Only now that every check has passed: a refused rerun leaves the folder as it was.
    if plan.chief:
        model_dir_lib.write_spec(config.model_dir, plan.spec)
        run_record.write_run_record(
            config.model_dir,
            run_record.RunRecord(
                train=config.to_json(),
                data=data_config.to_json(),
                split=dataclasses.asdict(dataset.split),
                total_steps=plan.steps.total_steps,
                steps_per_epoch=plan.steps.steps_per_epoch,
            ),
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


def _loop(
    config: config_lib.TrainConfig,
    dataset: data_lib.Dataset,
    strategy: tf.distribute.Strategy,
    plan: _Plan,
    run: _Run,
    train_step,
) -> float:
    """Steps to the end: log, checkpoint and validate as the flags say; returns the seconds."""
    total = plan.steps.total_steps
    progress = progress_lib.Progress(
        total, int(run.step.numpy()), plan.chief and config.progress_bar
    )
    start_step, started = int(run.step.numpy()), time.perf_counter()
    run.looping = True
    throughput = progress_lib.Throughput(config.batch_size, started)
    try:
        while int(run.step.numpy()) < total:
            loss, correct = train_step(run.iterator)
            current = int(run.step.numpy())
            _log_step(config, run, progress, current, loss, correct, throughput.tick())
            if current % config.checkpoint_every == 0 or current == total:
                checkpoints.save(run.manager, current, run.variable_bytes)
                run.saved_step = current
            validate = dataset.split.validation and (
                current == total or config.eval_every and current % config.eval_every == 0
            )
            if validate:
                _validate(dataset, strategy, plan, run, progress, current)
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    logging.info("Trained %d steps in %.0f s.", int(run.step.numpy()) - start_step, elapsed)
    return elapsed


def _log_step(
    config: config_lib.TrainConfig,
    run: _Run,
    progress: progress_lib.Progress,
    current: int,
    loss: tf.Tensor,
    correct: tf.Tensor,
    clips_per_s: float,
) -> None:
    """Progress bar and TensorBoard for one step; stops a run whose loss is not finite."""
    lr = float(run.schedule(current))
    progress.update(1, loss=f"{float(loss):.3f}", lr=f"{lr:.4f}", clips_s=f"{clips_per_s:.1f}")
    summaries.write_step(run.writer, current, loss, correct / config.batch_size, lr, clips_per_s)
    if not np.isfinite(float(loss)):
        cure = "lower --learning_rate"
        if config.mixed_precision != "float32":
            cure += " or use --mixed_precision=float32"
        raise FloatingPointError(f"Loss is {float(loss)} at step {current}; {cure}.")


def _validate(
    dataset: data_lib.Dataset,
    strategy: tf.distribute.Strategy,
    plan: _Plan,
    run: _Run,
    progress: progress_lib.Progress,
    current: int,
) -> None:
    """Scores the validation groups on the chief and keeps the best checkpoint."""
    improved = False
    if plan.chief:
        result = run.evaluator.evaluate(dataset.split.validation)
        summaries.write_scores(run.writer, "validation", result, current)
        progress.write(
            f"step {current}: validation video accuracy "
            f"{result['video_accuracy']:.3f} (clip {result['clip_accuracy']:.3f})"
        )
        improved = result["video_accuracy"] > run.best_accuracy
    # Every worker takes part in a save, so every worker learns the chief's choice.
    if strategy_lib.from_chief(strategy, improved, plan.chief):
        checkpoints.save(run.best_manager, current, run.variable_bytes)
        if plan.chief:
            run.best_accuracy = result["video_accuracy"]
            atomic.write_json(run.best_file, {"step": current, "video_accuracy": run.best_accuracy})


def _finish(
    config: config_lib.TrainConfig,
    dataset: data_lib.Dataset,
    plan: _Plan,
    run: _Run,
    elapsed: float,
) -> dict[str, Any]:
    """The final test (or validation) metrics on the chief, written with the run."""
    groups = dataset.split.test or dataset.split.validation
    result = {"step": int(run.step.numpy())}
    if groups and plan.chief:
        result.update(run.evaluator.evaluate(groups))
        result["split"] = "test" if dataset.split.test else "validation"
        result["groups"] = list(groups)
        summaries.write_scores(run.writer, result["split"], result, int(run.step.numpy()))
        evaluation.write_metrics(config.model_dir, result, dataset.class_names)
    result["train_seconds"] = elapsed
    run.writer.flush()
    return result
