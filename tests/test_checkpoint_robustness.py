"""Checkpoints that evaluate, export and train meet in use: damaged, foreign, rotated away.

Each binary's cases run in one child process (`isolated.run_module_cases`);
the checkpoints are real ones, damaged on disk.
"""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.isolated import run_module, run_module_cases
from tests.mounts import tmpfs
from tvn_tf import model_dir as model_dir_lib

# A value no weight takes: its bytes mark the tensor to damage in the data file.
MARKER = np.float32(1234.5678)
# TensorFlow's lines of a restore that failed and left values unread.
RESTORE_WARNINGS = ("could not be found in the restored object", "unrestored values")


def _training_checkpoint(run: str, damage: str | None) -> str:
    """Saves the run's model as training does (model, Adam slots, step); damages one value.

    Args:
      run: A copy of the trained run; its checkpoints/ are replaced.
      damage: "optimizer" (one Adam slot), "model" (the classifier's kernel) or None.

    Returns:
      The checkpoint prefix.
    """
    model, _, _ = model_dir_lib.restore_model(run)
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)
    if damage == "optimizer":
        target = next(v for v in optimizer.variables if "momentum" in v.path)
    else:
        target = next(v for v in model.trainable_variables if v.path == "head/logits/kernel")
    if damage:
        target.assign(tf.fill(target.shape, MARKER))
    shutil.rmtree(os.path.join(run, model_dir_lib.CHECKPOINTS))
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=tf.Variable(5, dtype=tf.int64)
    )
    prefix = tf.train.CheckpointManager(
        checkpoint, os.path.join(run, model_dir_lib.CHECKPOINTS), max_to_keep=3
    ).save(checkpoint_number=5)
    if damage:  # One float of that tensor flipped: its checksum no longer matches.
        data = prefix + ".data-00000-of-00001"
        raw = bytearray(open(data, "rb").read())
        at = raw.find(MARKER.tobytes() * 4)
        assert at >= 0
        raw[at : at + 4] = np.float32(-1).tobytes()
        open(data, "wb").write(raw)
    return prefix


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_model_dir):
    """Copies of the trained run: training checkpoints with one optimizer value or one
    weight damaged, another model's checkpoint, and one whose data file went away."""
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for name in ("plain", "optimizer", "model"):
        run = str(root / name)
        shutil.copytree(trained_model_dir, run)
        paths[name] = run
    for damage in ("optimizer", "model"):
        _training_checkpoint(paths[damage], damage)
    # Another model: the first block twice as wide, so every shape of it differs.
    spec = model_dir_lib.read_spec(trained_model_dir)
    architecture = json.loads(json.dumps(spec.architecture))
    architecture["blocks"][0]["filters"] *= 2
    other = model_dir_lib.ModelSpec(spec.name, architecture, spec.class_names)
    paths["other"] = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=other.build()), str(root / "other" / "checkpoints"), 1
    ).save()
    # A checkpoint rotated away mid-read: its index still there, its data gone.
    gone = root / "gone"
    shutil.copytree(os.path.join(trained_model_dir, "checkpoints"), gone)
    for data in gone.glob("*.data-*"):
        data.unlink()
    paths["gone"] = str(gone / "ckpt-1")
    # Another model's checkpoints/ alone in a folder (no model.json, no train_config.json).
    paths["foreign"] = str(root / "foreign")
    shutil.copytree(root / "other" / "checkpoints", root / "foreign" / "checkpoints")
    return paths


def _one_line(result, binary: str) -> str:
    """The binary's one line: the only line of its own and the last; no TensorFlow noise."""
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not any(w in result.stderr for w in RESTORE_WARNINGS), result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith(f"{binary}:")]
    assert len(ours) == 1 and result.stderr.strip().splitlines()[-1] == ours[0], result.stderr
    return ours[0]


@pytest.fixture(scope="module")
def evaluated(runs, export_data, tmp_path_factory):
    data = [f"--data_dir={export_data}", "--split=logo", "--fold=1", "--eval_clips=2"]
    with tmpfs(
        tmp_path_factory.mktemp("ro"), read_only=True, copy={"run": runs["plain"]}
    ) as read_only:
        cases = {
            "optimizer": [f"--model_dir={runs['optimizer']}", *data],
            "model": [f"--model_dir={runs['model']}", *data],
            "other": [f"--model_dir={runs['plain']}", f"--checkpoint={runs['other']}", *data],
            "gone": [f"--model_dir={runs['plain']}", f"--checkpoint={runs['gone']}", *data],
            "clips": [f"--model_dir={runs['plain']}", *data, "--eval_clips=100000"],
            "read_only": [f"--model_dir={read_only}/run", *data],
        }
        results = run_module_cases("tvn_tf.evaluate", list(cases.values()))
    return dict(zip(cases, results))


def test_evaluate_reads_the_weights_of_a_checkpoint_whose_optimizer_value_is_damaged(
    evaluated, runs
):
    result = evaluated["optimizer"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 5
    assert json.loads(open(os.path.join(runs["optimizer"], "metrics.json")).read())["step"] == 5


def test_evaluate_refuses_a_damaged_weight_in_one_line(evaluated, runs):
    line = _one_line(evaluated["model"], "evaluate")
    assert f"{runs['model']}/checkpoints/ckpt-5: unreadable checkpoint" in line
    assert "Checksum does not match" in line
    assert not os.path.exists(os.path.join(runs["model"], "metrics.json"))


def test_evaluate_names_another_models_checkpoint_in_one_line(evaluated, runs):
    line = _one_line(evaluated["other"], "evaluate")
    assert f"{runs['other']} does not fit the model of {runs['plain']}/model.json" in line


def test_evaluate_says_a_checkpoint_went_away_rather_than_that_it_does_not_fit(evaluated, runs):
    line = _one_line(evaluated["gone"], "evaluate")
    assert f"{runs['gone']}: the checkpoint went away while it was read" in line
    assert "does not fit" not in line


def test_evaluate_refuses_more_clips_than_the_videos_give(evaluated, runs):
    line = _one_line(evaluated["clips"], "evaluate")
    # 12-frame videos, clips of 4 frames 2 apart (7 frames): 6 different starts.
    assert "--eval_clips=100000: the longest video of the test groups gives at most 6" in line
    assert not os.path.exists(os.path.join(runs["plain"], "metrics.json"))


def test_evaluate_refuses_a_read_only_run_folder_before_scoring(evaluated):
    line = _one_line(evaluated["read_only"], "evaluate")
    assert "/run: cannot write metrics.json into it (its file system is read-only)" in line
    assert "scoring" not in evaluated["read_only"].stderr


@pytest.fixture(scope="module")
def exported(runs, export_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    tiny = [
        f"--data_dir={export_data}",
        "--variants=float32",
        "--calibration_clips=2",
        "--augmented_calibration_clips=0",
        "--parity_clips=2",
        "--latency_runs=1",
    ]
    cases = {
        "optimizer": [f"--model_dir={runs['optimizer']}"],
        "model": [f"--model_dir={runs['model']}"],
        "other": [f"--model_dir={runs['plain']}", f"--checkpoint={runs['other']}"],
        "gone": [f"--model_dir={runs['plain']}", f"--checkpoint={runs['gone']}"],
    }
    for name, args in cases.items():
        (root / name).mkdir()
        args += [f"--output_dir={root / name / 'out'}", *tiny]
    results = run_module_cases("tvn_tf.export", list(cases.values()))
    return {name: (result, root / name) for name, result in zip(cases, results)}


def test_export_reads_the_weights_of_a_checkpoint_whose_optimizer_value_is_damaged(exported):
    result, folder = exported["optimizer"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(folder) == ["out"]
    info = json.loads((folder / "out" / "model_info.json").read_text())
    assert info["checkpoint"].endswith("checkpoints/ckpt-5")


@pytest.mark.parametrize(
    "case, expected",
    [
        ("model", "ckpt-5: unreadable checkpoint"),
        ("other", "does not fit the model of"),
        ("gone", "the checkpoint went away while it was read"),
    ],
)
def test_export_refuses_a_damaged_foreign_or_vanished_checkpoint_in_one_line(
    exported, case, expected
):
    result, folder = exported[case]
    assert expected in _one_line(result, "export")
    assert os.listdir(folder) == []


def test_train_on_a_folder_of_another_models_checkpoints_says_so(runs, export_data):
    result = run_module(
        "tvn_tf.train",
        f"--model_dir={runs['foreign']}",
        f"--data_dir={export_data}",
        "--model=tvn1",
        "--width_multiplier=0.25",
        "--image_size=32",
        "--batch_size=4",
    )
    line = _one_line(result, "train")
    assert f"{runs['foreign']} has no train_config.json, so its checkpoints/ hold another" in line
    assert "--data_format" not in line
    assert "model.json" not in os.listdir(runs["foreign"])  # Nothing of this run recorded.
