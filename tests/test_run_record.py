"""A run's record (`train_config.json`): its one writer and reader, and the data it names."""

import dataclasses
import json

import pytest

from tvn_tf import run_record


def test_data_config_lays_the_given_data_flags_over_the_runs(tmp_path):
    stored = {"data_dir": "/data/a", "data_format": "tfrecord", "split": "kfold", "fold": 3}
    stored.update(num_folds=5, num_validation_groups=1)
    (tmp_path / "train_config.json").write_text(
        json.dumps({"train": {}, "data": stored, "split": {}})
    )
    defaults = {"data_dir": None, "split": "logo", "fold": 1, "num_validation_groups": 0}
    config = run_record.data_config(str(tmp_path), {"fold": 2}, defaults)
    assert config.to_json() == {**stored, "fold": 2}  # The run's split, not the flags' defaults.
    # Without train_config.json: the given flags over their defaults, and data_dir is needed.
    bare = tmp_path / "bare"
    bare.mkdir()
    config = run_record.data_config(str(bare), {"data_dir": "/data/b"}, defaults)
    assert (config.data_dir, config.split, config.fold) == ("/data/b", "logo", 1)
    with pytest.raises(ValueError, match="--data_dir is required: .*bare has no train_config.json"):
        run_record.data_config(str(bare), {"fold": 2}, defaults)


def test_run_record_reads_back_as_written_and_keeps_its_file_format(tmp_path):
    record = run_record.RunRecord(
        train={"model_dir": str(tmp_path), "epochs": 3, "aux_classifiers": []},
        data={"data_dir": "/data/a", "split": "logo", "fold": 4},
        split={"train": (1, 2, 3), "validation": (), "test": (4,)},
        total_steps=12,
        steps_per_epoch=4,
    )
    run_record.write_run_record(str(tmp_path), record)
    written = json.loads((tmp_path / "train_config.json").read_text())
    assert list(written) == ["train", "data", "split", "total_steps", "steps_per_epoch"]
    assert written["split"] == {"train": [1, 2, 3], "validation": [], "test": [4]}
    read = run_record.read_run_record(str(tmp_path))
    assert read == dataclasses.replace(record, split=written["split"])
    assert run_record.read_run_record(str(tmp_path / "none")) is None
    # A record without the step counts reads back with None for them.
    (tmp_path / "train_config.json").write_text(
        json.dumps({"train": {}, "data": {}, "split": {"test": [4]}})
    )
    old = run_record.read_run_record(str(tmp_path))
    assert (old.total_steps, old.steps_per_epoch, old.split) == (None, None, {"test": [4]})
    for broken in ('{"train": {}, "data": {}}', '{"train": {}, "data": {}, "split": 3}', "{"):
        (tmp_path / "train_config.json").write_text(broken)
        with pytest.raises(ValueError, match="train_config.json: unreadable run config"):
            run_record.read_run_record(str(tmp_path))
