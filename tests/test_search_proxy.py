"""The candidates' brief training: its split, its warm-up check, the retraining's record."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from tvn_tf import atomic, run_record
from tvn_tf.data import splits
from tvn_tf.search import config as config_lib
from tvn_tf.search import proxy
from tests.test_search_records import fake
from tests.test_search_study import DATASET


def test_candidates_never_see_the_test_groups():
    dataset = dataclasses.replace(DATASET, split=dataclasses.replace(DATASET.split, test=(4, 5)))
    split = proxy.search_split(dataset)
    assert (split.train, split.validation, split.test) == ((2, 3), (1,), ())


def test_a_warmup_as_long_as_the_proxy_training_is_refused():
    # 8 training videos in batches of 2: 4 steps per epoch.
    def config(**changes):
        values = {"batch_size": 2, "train_steps": 10, **changes}
        return config_lib.SearchConfig(
            model_dir="", data=None, proxy=dataclasses.replace(config_lib.PROXY, **values)
        )

    proxy.check_warmup(config(warmup_epochs=2), DATASET)  # 8 < 10 steps.
    proxy.check_warmup(config(warmup_epochs=0, train_steps=1), DATASET)
    with pytest.raises(ValueError, match="--warmup_epochs=2.5 is 10 steps, .*--train_steps"):
        proxy.check_warmup(config(warmup_epochs=2.5), DATASET)


def test_a_candidate_trains_on_its_training_groups_alone(tmp_path):
    """Scored apart (`score`): a folder trained under another split is the search's scratch."""
    folder = str(tmp_path / "candidate")
    assert proxy._training_split(folder, DATASET) == splits.GroupSplit(
        train=(2, 3), validation=(), test=()
    )
    record = run_record.RunRecord(
        train={}, data={}, split={"train": [2, 3], "validation": [1], "test": []}
    )
    os.makedirs(folder)
    run_record.write_run_record(folder, record)
    proxy._training_split(folder, DATASET)
    assert not os.path.exists(folder)  # Trained again from the start.
    os.makedirs(folder)
    same = dataclasses.replace(record, split={"train": [2, 3], "validation": [], "test": []})
    run_record.write_run_record(folder, same)
    proxy._training_split(folder, DATASET)
    assert os.listdir(folder) == ["train_config.json"]  # Resumed.


def test_the_best_is_retrained_once(tmp_path):
    """A rerun whose best and --final_epochs are those of final_metrics.json reads them."""
    config = config_lib.SearchConfig(model_dir=str(tmp_path), data=None, final_epochs=3)
    done = {"trial": 7, "epochs": 3, "split": "test", "video_accuracy": 0.5}
    atomic.write_json(str(tmp_path / "final_metrics.json"), done)
    assert proxy.retrain_best(config, fake(7, "COMPLETE", 0.9)) == done
    assert json.loads((tmp_path / "final_metrics.json").read_text()) == done
