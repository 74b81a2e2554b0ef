"""tools/aggregate_folds.py over real run folders."""

import json

import pytest

from tests.isolated import run_module


def _run(*args):
    return run_module("tools/aggregate_folds.py", *args, timeout=60)


def _fold(root, k, video, clip, top5):
    folder = root / f"fold{k}"
    folder.mkdir()
    metrics = {
        "video_accuracy": video,
        "clip_accuracy": clip,
        "top5_accuracy": top5,
        "num_test_videos": 10,
        "groups": [k],
        "step": 100,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return str(folder)


def test_mean_and_standard_deviation_over_folds(tmp_path):
    for k, video in ((1, 0.5), (2, 0.7), (3, 0.9)):
        _fold(tmp_path, k, video, video - 0.1, 1.0)
    result = _run(f"--glob={tmp_path}/fold*")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["folds"] == 3 and summary["num_test_videos"] == 30
    assert summary["video_accuracy_mean"] == pytest.approx(0.7)
    assert summary["video_accuracy_std"] == pytest.approx(0.2)  # sample standard deviation
    assert summary["clip_accuracy_mean"] == pytest.approx(0.6)
    assert "the UCF50 protocol has 25 folds; 3 given" in result.stderr


def test_a_fold_without_metrics_is_named(tmp_path):
    done = _fold(tmp_path, 1, 0.5, 0.4, 1.0)
    (tmp_path / "fold2").mkdir()
    result = _run(done, str(tmp_path / "fold2"))
    assert result.returncode != 0
    assert "fold2/metrics.json: missing; has this fold finished training?" in result.stderr
    assert "Traceback" not in result.stderr
