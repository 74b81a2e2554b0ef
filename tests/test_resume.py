"""A rerun on a run folder: refused when it asks for another model, split or checkpoint state."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tvn_tf import model_dir as model_dir_lib
from tvn_tf import run_record
from tvn_tf.data import dataset as data_lib
from tvn_tf.data import splits
from tvn_tf.models import architecture as arch_lib
from tvn_tf.training import config as config_lib
from tvn_tf.training import resume


@pytest.fixture()
def run(tmp_path):
    """A run folder: its spec, its record (logo, test group 4), and one checkpoint index."""
    arch = arch_lib.load_architecture_json("tests/testdata/all_ops_tvn.json")
    spec = model_dir_lib.ModelSpec(arch.name, arch.to_json(), ("a", "b"))
    model_dir_lib.write_spec(str(tmp_path), spec)
    config = config_lib.TrainConfig(model_dir=str(tmp_path))
    data = data_lib.DataConfig(str(tmp_path / "data"), fold=4)
    split = splits.GroupSplit(train=(1, 2, 3, 5), validation=(), test=(4,))
    record = run_record.RunRecord(
        train=config.to_json(), data=data.to_json(), split=dataclasses.asdict(split)
    )
    run_record.write_run_record(str(tmp_path), record)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt-8.index").write_bytes(b"")
    return {"spec": spec, "config": config, "data": data, "split": split}


def test_the_same_run_may_resume(run):
    resume.check_model_dir(run["config"].model_dir, run["spec"], run["data"], run["split"])
    resume.check_state_flags(run["config"])


def test_another_split_or_model_is_refused(run):
    other = splits.GroupSplit(train=(1, 2, 4, 5), validation=(), test=(3,))
    data = data_lib.DataConfig(run["data"].data_dir, fold=3)
    with pytest.raises(ValueError, match=r"was trained with --split=logo --fold=4 "):
        resume.check_model_dir(run["config"].model_dir, run["spec"], data, other)
    spec = model_dir_lib.ModelSpec(run["spec"].name, run["spec"].architecture, ("a", "b", "c"))
    with pytest.raises(ValueError, match=r"holds a different model \(classes: 2 vs 3\)"):
        resume.check_model_dir(run["config"].model_dir, spec)


def test_other_checkpoint_state_flags_are_refused_naming_each(run):
    config = config_lib.TrainConfig(
        model_dir=run["config"].model_dir, optimizer="adamw", aux_classifiers=("block0_0",)
    )
    with pytest.raises(ValueError) as raised:
        resume.check_state_flags(config)
    message = str(raised.value)
    assert "ckpt-8 does not fit this run (--optimizer=adamw (the run's: momentum), " in message
    assert "--aux_classifiers=block0_0 (the run's: none)); rerun with the flags of " in message
    # What the record holds is as written.
    recorded = json.loads(open(f"{run['config'].model_dir}/train_config.json").read())
    assert recorded["train"]["optimizer"] == "momentum"
