"""The candidates' brief training and scoring, and the full retraining of the best network.

    check_warmup(config, dataset)                      # Before any candidate trains.
    result = train_candidate(config, arch, key, dataset)   # Scored on validation groups.
    final = retrain_best(config, best_trial)           # The full recipe, tested once.

Both train with the project's trainer and the search's `TrainConfig`
(`config.proxy`), a few of its fields replaced: each candidate's folder, and for
the retraining its length (`--final_epochs`), learning rate and progress bar. A
candidate trains on the training groups alone and is then scored once, by the
evaluation code (`training.evaluation.Evaluator`), on the validation groups. It
keeps its metrics, not its weights: a search trains thousands.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any

from absl import logging

from tvn_tf import atomic
from tvn_tf import model_dir as model_dir_lib
from tvn_tf import run_record
from tvn_tf.data import dataset as data_lib
from tvn_tf.data import splits as splits_lib
from tvn_tf.models import architecture as arch_lib
from tvn_tf.search import config as config_lib
from tvn_tf.search import records
from tvn_tf.training import config as train_config_lib
from tvn_tf.training import evaluation
from tvn_tf.training import trainer

# What the retraining's record (`final_metrics.json`) keeps of the trainer's result.
_FINAL_KEYS = ("split", "groups", "video_accuracy", "clip_accuracy", "step", "train_seconds")


def search_split(dataset: data_lib.Dataset) -> splits_lib.GroupSplit:
    """The data's split without its test groups: candidates train and score on the rest."""
    return splits_lib.GroupSplit(
        train=dataset.split.train, validation=dataset.split.validation, test=()
    )


def check_warmup(config: config_lib.SearchConfig, dataset: data_lib.Dataset) -> None:
    """Refuses a proxy warm-up as long as its --train_steps (the trainer's own check).

    Raises:
      ValueError: naming --warmup_epochs and --train_steps.
    """
    steps = train_config_lib.step_counts(config.proxy, dataset.num_videos(dataset.split.train))
    train_config_lib.check_warmup(config.proxy.warmup_epochs, steps, "--train_steps")


def _run(
    train_config: train_config_lib.TrainConfig,
    data: data_lib.DataConfig,
    arch: arch_lib.Architecture,
    split: splits_lib.GroupSplit | None,
    quiet: bool,
) -> dict[str, Any]:
    """The trainer's run, its log at WARNING when `quiet`."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING if quiet else verbosity)
    try:
        return trainer.train(train_config, data, arch, split=split)
    finally:
        logging.set_verbosity(verbosity)


def _training_split(folder: str, dataset: data_lib.Dataset) -> splits_lib.GroupSplit:
    """The training groups alone; a candidate folder trained under another split is cleared.

    Such a folder (a candidate trained with its validation groups in its split)
    would be refused by the trainer as another run's; it holds the search's
    scratch, so its candidate trains again from the start.
    """
    split = splits_lib.GroupSplit(train=dataset.split.train, validation=(), test=())
    try:
        run = run_record.read_run_record(folder)
    except ValueError:
        run = None
        shutil.rmtree(folder, ignore_errors=True)
    if run is not None and run.split != {k: list(v) for k, v in dataclasses.asdict(split).items()}:
        shutil.rmtree(folder, ignore_errors=True)
    return split


def score(
    folder: str,
    dataset: data_lib.Dataset,
    arch: arch_lib.Architecture,
    proxy: train_config_lib.TrainConfig,
) -> dict[str, Any]:
    """The candidate trained in `folder` scored on the validation groups, as `evaluate` scores.

    Its last checkpoint, with the proxy's clips and crops per video; the
    metrics are also written to `folder/metrics.json` (with the confusion matrix).
    """
    model, _, _ = model_dir_lib.restore_model(folder)
    evaluator = evaluation.Evaluator(
        model,
        dataset,
        arch.input,
        batch_size=proxy.batch_size,
        eval_clips=proxy.eval_clips,
        eval_crops=proxy.eval_crops,
    )
    result = evaluator.evaluate(dataset.split.validation)
    result.update(split="validation", groups=list(dataset.split.validation))
    evaluation.write_metrics(folder, result, dataset.class_names)
    return result


def train_candidate(
    config: config_lib.SearchConfig,
    arch: arch_lib.Architecture,
    key: str,
    dataset: data_lib.Dataset,
) -> dict[str, Any]:
    """The proxy training of one candidate in MODEL_DIR/candidates/KEY, then its score.

    Args:
      config: The search's settings (`proxy`: the training).
      arch: The candidate.
      key: Its canonical key (its folder's name).
      dataset: The data with the search's split (`search_split`): trained on its
        training groups, scored on its validation groups.

    Returns:
      The validation metrics ("video_accuracy", "clip_accuracy", ...),
      "train_seconds" (the training call) and "eval_seconds" (the scoring).
    """
    folder = os.path.join(config.model_dir, "candidates", key)
    train_config = dataclasses.replace(config.proxy, model_dir=folder)
    start = time.perf_counter()
    _run(train_config, config.data, arch, _training_split(folder, dataset), quiet=True)
    train_seconds = time.perf_counter() - start
    result = score(folder, dataset, arch, config.proxy)
    result["train_seconds"] = train_seconds
    result["eval_seconds"] = time.perf_counter() - start - train_seconds
    for sub in ("checkpoints", "best", "tensorboard"):  # Metrics kept, weights not.
        shutil.rmtree(os.path.join(folder, sub), ignore_errors=True)
    return result


def retrain_best(config: config_lib.SearchConfig, best) -> dict[str, Any]:
    """Retrains the best candidate with the full recipe and tests it once (MODEL_DIR/final/trialN).

    The test figures are kept in `MODEL_DIR/final_metrics.json`; a rerun whose
    best is the same network returns them instead of testing again.
    """
    path = os.path.join(config.model_dir, records.FINAL_METRICS)
    if os.path.exists(path):
        with open(path) as f:
            done = json.load(f)
        if done.get("trial") == best.number and done.get("epochs") == config.final_epochs:
            return done
    name = f"trial{best.number}"  # One folder per best: a new best retrains that one.
    arch = arch_lib.architecture_from_stored_json(best.user_attrs[records.ARCHITECTURE], name)
    proxy = config.proxy
    train_config = dataclasses.replace(
        proxy,
        model_dir=os.path.join(config.model_dir, "final", name),
        epochs=config.final_epochs,
        train_steps=0,
        learning_rate=config.final_learning_rate or proxy.learning_rate,
        checkpoint_every=200,
        progress_bar=config.progress,
    )
    result = _run(train_config, config.data, arch, None, quiet=False)
    final = {"trial": best.number, "epochs": config.final_epochs}
    final.update({k: result.get(k) for k in _FINAL_KEYS if k in result})
    atomic.write_json(path, final)
    return final
