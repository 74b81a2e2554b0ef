"""The training recipe: its bounds, its JSON form, and the arithmetic of its steps."""

from __future__ import annotations

import dataclasses

import pytest

from tvn_tf.training import config as config_lib

# The keys of `train_config.json`'s "train", in order: run folders written with them must
# keep reading back.
JSON_KEYS = [
    "model_dir",
    "epochs",
    "train_steps",
    "batch_size",
    "optimizer",
    "learning_rate",
    "momentum",
    "warmup_epochs",
    "weight_decay",
    "dropout_rate",
    "label_smoothing",
    "aux_classifiers",
    "aux_loss_weight",
    "learning_rate_multipliers",
    "train_clips_per_video",
    "head",
    "mixed_precision",
    "jit_compile",
    "strategy",
    "tpu",
    "sync_batch_norm",
    "checkpoint_every",
    "keep_checkpoints",
    "eval_every",
    "eval_clips",
    "eval_crops",
    "seed",
    "deterministic",
    "num_sample_clips",
    "progress_bar",
]


def test_json_form_keeps_its_keys_and_writes_lists():
    config = config_lib.TrainConfig(model_dir="run", aux_classifiers=("block0_0",))
    data = config.to_json()
    assert list(data) == JSON_KEYS
    assert data["aux_classifiers"] == ["block0_0"] and data["learning_rate_multipliers"] == []
    assert data["epochs"] == 60 and data["batch_size"] == 64 and data["eval_crops"] == 1


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"epochs": 0}, "--epochs=0; expected an integer >= 1."),
        ({"train_steps": -1}, "--train_steps=-1; expected an integer >= 0."),
        ({"batch_size": 0}, "--batch_size=0; expected an integer >= 1."),
        ({"learning_rate": 0.0}, "--learning_rate=0.0; expected a number > 0."),
        ({"momentum": 1.0}, "--momentum=1.0; expected a number in [0, 1)."),
        ({"dropout_rate": 1.0}, "--dropout_rate=1.0; expected a number in [0, 1)."),
        ({"mixed_precision": "fp8"}, "--mixed_precision='fp8'; expected one of float32, "),
        ({"optimizer": "sgd"}, "--optimizer='sgd'; expected one of momentum, rmsprop, adamw."),
        ({"strategy": "x"}, "--strategy='x'; expected one of default, mirrored,"),
        ({"head": "max"}, "--head='max'; expected one of mean, softmax_pool."),
        ({"eval_crops": 2}, "--eval_crops=2; expected 1 or 3."),
        ({"train_clips_per_video": 0}, "--train_clips_per_video=0; expected an integer >= 1."),
        (
            {"learning_rate_multipliers": ("block0:0.1",), "optimizer": "adamw"},
            "--learning_rate_multipliers with --optimizer=adamw: it scales gradients",
        ),
    ],
)
def test_a_value_out_of_bounds_is_refused_as_the_config_is_built(values, expected):
    with pytest.raises(ValueError) as raised:
        config_lib.TrainConfig(model_dir="run", **values)
    assert str(raised.value).startswith(expected)
    with pytest.raises(ValueError):  # A copy with a bad value is refused too.
        dataclasses.replace(config_lib.TrainConfig(model_dir="run"), **values)


def test_train_steps_alone_is_a_run_length():
    config = config_lib.TrainConfig(model_dir="run", epochs=0, train_steps=5)
    assert config_lib.step_counts(config, 100).total_steps == 5


def test_step_counts_from_epochs_or_train_steps():
    config = config_lib.TrainConfig(model_dir="run", epochs=3, batch_size=8, warmup_epochs=1.5)
    assert config_lib.step_counts(config, 36) == config_lib.StepCounts(4, 12, 6)
    # Fewer videos than one batch: still a step an epoch.
    assert config_lib.step_counts(config, 5).steps_per_epoch == 1
    steps = config_lib.step_counts(dataclasses.replace(config, train_steps=7), 36)
    assert (steps.total_steps, steps.steps_per_epoch) == (7, 4)
    assert config_lib.steps_per_epoch(48, 8) == 6 and config_lib.warmup_steps(0.5, 5) == 2


def test_warmup_as_long_as_the_run_is_refused():
    config = config_lib.TrainConfig(model_dir="run", train_steps=2, batch_size=8, warmup_epochs=1)
    steps = config_lib.step_counts(config, 48)
    with pytest.raises(ValueError) as raised:
        config_lib.check_warmup(config.warmup_epochs, steps)
    assert str(raised.value) == (
        "--warmup_epochs=1 is 6 steps, not shorter than the whole run (2 steps from "
        "--epochs/--train_steps): the learning rate would never reach its peak. Lower "
        "--warmup_epochs."
    )
    with pytest.raises(ValueError, match=r"\(2 steps from --train_steps\)"):
        config_lib.check_warmup(1, steps, length_flags="--train_steps")
    config_lib.check_warmup(
        0, config_lib.step_counts(dataclasses.replace(config, warmup_epochs=0), 48)
    )
    config_lib.check_warmup(
        0.1, config_lib.step_counts(dataclasses.replace(config, warmup_epochs=0.1), 48)
    )
