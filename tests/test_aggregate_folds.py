"""tools/aggregate_folds.py over real run folders."""

import json

import pytest

from tests.isolated import run_module, run_module_cases


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


def test_runs_that_are_not_distinct_test_folds_are_refused_by_name(tmp_path):
    fold1 = _fold(tmp_path, 1, 0.5, 0.4, 1.0)
    fold2 = _fold(tmp_path, 2, 0.6, 0.5, 1.0)
    again = tmp_path / "fold1_again"  # A second run of fold 1: it tested group 1 too.
    again.mkdir()
    (again / "metrics.json").write_text((tmp_path / "fold1" / "metrics.json").read_text())
    odd = {}
    for name, change in (
        ("validation", {"split": "validation"}),
        ("no_groups", {"groups": None}),
        ("no_accuracy", {"video_accuracy": None}),
    ):
        folder = tmp_path / name
        folder.mkdir()
        metrics = json.loads((tmp_path / "fold2" / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**metrics, **change}))
        odd[name] = str(folder)
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "metrics.json").write_text("[0.5]")
    cases = [  # (arguments, words of the one line)
        ([fold1, fold2, str(again)], [f"{again} and {fold1} both tested group(s) 1", "disjoint"]),
        ([fold1, fold2, fold1], [f"{fold1} is given twice"]),
        ([fold1, odd["validation"]], ["validation/metrics.json: holds validation metrics"]),
        ([fold1, odd["no_groups"]], ["no_groups/metrics.json: no 'groups'"]),
        ([fold1, odd["no_accuracy"]], ["no_accuracy/metrics.json: 'video_accuracy' is None"]),
        ([str(tmp_path / "list")], ["list/metrics.json: expected a JSON object"]),
        ([f"--glob={tmp_path}/nothing*"], ["--glob=", "matches nothing"]),
    ]
    results = run_module_cases("tools/aggregate_folds.py", [args for args, _ in cases])
    for result, (args, words) in zip(results, cases):
        assert result.returncode != 0, (args, result.stdout)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("aggregate_folds: ") and "Traceback" not in result.stderr, last
        for word in words:
            assert word in last, last
