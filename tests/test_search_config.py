"""A search worker's settings: the proxy training as a `TrainConfig`, and the checks of flags."""

from __future__ import annotations

import dataclasses

import pytest

from tvn_tf.data import dataset as data_lib
from tvn_tf.search import config as config_lib
from tvn_tf.search import space as space_lib
from tvn_tf.training.config import TrainConfig

DATA = data_lib.DataConfig(data_dir="unused", num_validation_groups=1)


def test_the_proxy_is_the_trainers_recipe_with_the_searchs_values():
    proxy = config_lib.SearchConfig(model_dir="", data=DATA).proxy
    assert isinstance(proxy, TrainConfig) and proxy == config_lib.PROXY
    # What a study records of it, and what the flags default to.
    assert {name: getattr(proxy, name) for name in config_lib.PROXY_FIELDS} == {
        "train_steps": 100,
        "batch_size": 16,
        "learning_rate": 0.4,
        "warmup_epochs": 1.0,
        "weight_decay": 1e-4,
        "label_smoothing": 0.1,
        "dropout_rate": 0.5,
        "optimizer": "momentum",
        "eval_clips": 2,
        "seed": 1,
    }
    # Trained once over --train_steps, checkpointed rarely, nothing shown or sampled.
    assert (proxy.epochs, proxy.checkpoint_every, proxy.keep_checkpoints) == (1, 50, 1)
    assert (proxy.num_sample_clips, proxy.progress_bar, proxy.eval_every) == (0, False, 0)
    # Every other field is the trainer's default.
    ours = set(config_lib.PROXY_FIELDS) | {
        "model_dir",
        "epochs",
        "checkpoint_every",
        "keep_checkpoints",
        "num_sample_clips",
        "progress_bar",
        "eval_every",
    }
    default = TrainConfig(model_dir="")
    for field in dataclasses.fields(TrainConfig):
        if field.name not in ours:
            assert getattr(proxy, field.name) == getattr(default, field.name), field.name


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(algorithm="grid"), "--algorithm='grid'; expected one of tournament, random"),
        (dict(num_trials=0), "--num_trials=0; expected an integer >= 1"),
        (dict(num_trials=5, population=5), "--population=5; expected fewer than --num_trials=5"),
        (dict(tournament_size=201), r"--tournament_size=201; expected an integer in \[1, --pop"),
        (dict(max_params=-1), "--max_params=-1; expected an integer >= 0"),
        (dict(max_latency_ms=-1.0), "--max_latency_ms=-1.0; expected a number >= 0"),
        (dict(latency_variant="int4"), "--latency_variant='int4'; expected one of float32, int8"),
        (dict(threads=0), "--threads=0; expected an integer >= 1"),
        (dict(heartbeat_interval=0), "--heartbeat_interval=0; expected an integer >= 1"),
        (dict(grace_period=60), "--grace_period=60; expected more seconds than --heartbeat"),
        (dict(proxy=dataclasses.replace(config_lib.PROXY, train_steps=0)), "--train_steps=0"),
        (dict(data=DATA.__class__(data_dir="x")), "--num_validation_groups=0; expected an"),
        (dict(space=space_lib.SpaceConfig(blocks=(3, 2))), "--blocks"),
    ],
)
def test_check_config_names_the_flag(changes, message):
    config = config_lib.SearchConfig(**{"model_dir": "", "data": DATA, **changes})
    with pytest.raises(ValueError, match=message):
        config_lib.check_config(config)


def test_a_random_search_may_be_all_population():
    config_lib.check_config(
        config_lib.SearchConfig(
            model_dir="",
            data=DATA,
            algorithm="random",
            num_trials=5,
            population=5,
            tournament_size=1,
        )
    )


def test_check_model_dir(tmp_path):
    config_lib.check_model_dir(str(tmp_path / "new" / "deeper"))  # Created later, not now.
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        config_lib.check_model_dir(str(tmp_path / "file" / "run"))


def test_a_space_without_a_searchable_network_is_refused():
    huge = space_lib.SpaceConfig(resolution=(1024, 1024), frames=(512, 512))
    config = config_lib.SearchConfig(model_dir="", data=DATA, space=huge)
    with pytest.raises(ValueError, match="--resolution=1024,1024 .*holds no network small"):
        config_lib.check_space_fits(space_lib.SearchSpace(huge), config, num_classes=4)
    small = space_lib.SpaceConfig(
        resolution=(32, 32), frames=(1, 2), frame_stride=(1, 4), blocks=(2, 3), filters=(8, 16)
    )
    config = config_lib.SearchConfig(model_dir="", data=DATA, space=small)
    config_lib.check_space_fits(space_lib.SearchSpace(small), config, num_classes=4)
