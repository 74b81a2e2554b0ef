"""A search's study: its settings, created once, resumed, refused when it would start over."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pytest

from tvn_tf.data import dataset as data_lib
from tvn_tf.data import splits
from tvn_tf.search import config as config_lib
from tvn_tf.search import records
from tvn_tf.search import space as space_lib
from tvn_tf.search import study as study_lib

DATASET = data_lib.Dataset(
    config=None,
    class_names=("a", "b"),
    videos_per_group={1: 3, 2: 4, 3: 4},
    split=splits.GroupSplit(train=(2, 3), validation=(1,), test=()),
)
SPACE = space_lib.SearchSpace(space_lib.SpaceConfig())


def config(tmp_path, **changes):
    return config_lib.SearchConfig(
        model_dir=str(tmp_path / "search"),
        data=None,
        heartbeat_interval=1,
        grace_period=5,
        **changes,
    )


def test_the_settings_a_study_records():
    """Studies already stored hold exactly these keys and values (a default worker's)."""
    settings = study_lib.settings(config_lib.SearchConfig(model_dir="", data=None), SPACE, DATASET)
    assert settings.pop("space") == SPACE.to_json()
    assert settings == {
        "algorithm": "tournament",
        "population": 200,
        "tournament_size": 50,
        "seed": 0,  # The search's seed (--search_seed).
        "seed_architectures": [],
        "max_params": 0,
        "max_latency_ms": 0.0,
        "latency_variant": "float32",
        "threads": 2,
        "proxy": {
            "train_steps": 100,
            "batch_size": 16,
            "learning_rate": 0.4,
            "warmup_epochs": 1.0,
            "weight_decay": 0.0001,
            "label_smoothing": 0.1,
            "dropout_rate": 0.5,
            "optimizer": "momentum",
            "eval_clips": 2,
            "seed": 1,  # The candidates' training seed (--seed).
        },
        "classes": ["a", "b"],
        "train_groups": [2, 3],
        "validation_groups": [1],
    }


def test_a_study_is_created_once_resumed_and_refused_with_other_settings(tmp_path):
    first = config(tmp_path)
    settings = study_lib.settings(first, SPACE, DATASET)
    study = study_lib.open_study(first, settings)
    study.enqueue_trial({}, user_attrs={"mark": 1})
    assert study.user_attrs[records.SETTINGS_ATTR] == json.loads(json.dumps(settings))
    again = study_lib.open_study(first, settings)
    assert again.study_name == "search" and len(again.get_trials()) == 1
    other = dataclasses.replace(first, population=4)
    with pytest.raises(ValueError, match="holds study 'search' with other settings \\(population"):
        study_lib.open_study(other, study_lib.settings(other, SPACE, DATASET))
    assert study_lib.differences({"a": 1, "b": [1]}, {"a": 1, "b": [2], "c": 3}) == [
        "b: [1] (study) vs [2] (now)",
        "c: null (study) vs 3 (now)",
    ]


def test_records_without_their_study_are_never_started_over(tmp_path):
    lost = config(tmp_path)
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "trials.csv").write_text("number,state\n")
    settings = study_lib.settings(lost, SPACE, DATASET)
    with pytest.raises(ValueError, match="holds trials.csv of a search, but .*search.db has no"):
        study_lib.open_study(lost, settings)
    assert sorted(p.name for p in (tmp_path / "search").iterdir()) == ["trials.csv"]
    # A study database holding another study: --study_name=other would start over.
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'search' / 'search.db'}", study_name="x")
    with pytest.raises(ValueError, match="has no study 'other' to resume"):
        study_lib.open_study(dataclasses.replace(lost, study_name="other"), settings)
    assert study_lib.records_in(str(tmp_path / "search")) == ["trials.csv"]
