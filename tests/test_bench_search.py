"""tools/bench_search.py on finished studies: the report, the comparison, the figure, the resume.

The studies are written as a search writes them (`report.write_csv`: trials.csv
in OUTPUT_DIR/seedS/ALGORITHM) and the retrainings as the trainer ends them
(metrics.json in STUDY/retrain/trialN/seedT), so the bench finds all its work
done and reports without starting a search or a training; a missing piece is
started (and fails here: the data folder does not exist), which says it was not
skipped. The search and the training themselves run in tests/test_search.py
and tests/test_train.py.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.isolated import run_module
from tvn_tf.search import report

# seed -> algorithm -> (fitness, latency) per candidate in trial order; None: infeasible.
STUDIES = {
    0: {
        "tournament": [(0.5, 1.0), (0.8, 2.0), (0.8, 1.5), (None, 9.0)],  # Best: trial 2.
        "random": [(0.6, 1.0), (None, 8.0), (0.4, 1.0), (0.3, 1.0)],
    },
    1: {
        "tournament": [(0.7, 1.0), (0.2, 1.0), (0.1, 1.0), (0.6, 1.0)],
        "random": [(0.3, 1.0), (0.7, 1.0), (None, 7.0), (0.5, 1.0)],
    },
    2: {
        "tournament": [(0.4, 1.0), (0.6, 1.0), (0.5, 1.0), (0.9, 1.0)],  # The overall best.
        "random": [(0.5, 1.0), (0.2, 1.0), (0.1, 1.0), (0.4, 1.0)],
    },
}
# (seed, algorithm) -> (best trial, test accuracy with training seed 1).
RETRAINED = {
    (0, "tournament"): (2, 0.70),
    (0, "random"): (0, 0.60),
    (1, "tournament"): (0, 0.65),
    (1, "random"): (1, 0.66),
    (2, "tournament"): (3, 0.80),
    (2, "random"): (0, 0.50),
}
OVERALL_SEEDS = {2: 0.78, 3: 0.82}  # The overall best's other training seeds.


def trial_row(number: int, fitness: float | None, latency: float) -> dict:
    trained = fitness is not None
    return {
        "number": number,
        "state": "COMPLETE" if trained else "PRUNED",
        "feasible": trained,
        "fitness": fitness,
        "latency_ms": latency,
        "params": 1000 + number,
        "canonical": f"net{number}",
        "architecture": json.dumps({"name": f"net{number}"}),
        "build_s": 1.0,
        "convert_s": 3.5,
        "time_s": 0.5,
        "train_s": 10.0 if trained else None,
        "evaluate_s": 2.0 if trained else None,
    }


def write_metrics(run_dir, accuracy: float) -> None:
    os.makedirs(run_dir, exist_ok=True)
    metrics = {"video_accuracy": accuracy, "clip_accuracy": accuracy, "split": "test"}
    metrics.update(groups=[10, 11, 12], step=1000)
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f)


@pytest.fixture
def bench(tmp_path):
    """Finished studies and retrainings in the bench's layout, and its flags."""
    out = tmp_path / "bench"
    for seed, algorithms in STUDIES.items():
        for name, candidates in algorithms.items():
            study = out / f"seed{seed}" / name
            os.makedirs(study)
            rows = [trial_row(i, f, latency) for i, (f, latency) in enumerate(candidates)]
            report.write_csv(str(study / "trials.csv"), rows)
            trial, accuracy = RETRAINED[(seed, name)]
            write_metrics(study / "retrain" / f"trial{trial}" / "seed1", accuracy)
    overall = out / "seed2" / "tournament" / "retrain" / "trial3"
    for seed, accuracy in OVERALL_SEEDS.items():
        write_metrics(overall / f"seed{seed}", accuracy)
    search_cfg, train_cfg = tmp_path / "search.cfg", tmp_path / "train.cfg"
    data = tmp_path / "no_data"
    search_cfg.write_text(f"--data_dir={data}\n--split=kfold\n--num_folds=4\n--fold=4\n")
    train_cfg.write_text("--data_dir=data/elsewhere\n--epochs=1\n--num_validation_groups=0\n")
    flags = [
        f"--flagfile_search={search_cfg}",
        f"--flagfile_train={train_cfg}",
        f"--output_dir={out}",
        "--num_trials=4",
        "--search_seeds=0,1,2",
    ]
    return {"out": out, "flags": flags, "overall": overall, "data": str(data)}


def test_bench_reports_finished_work_without_running_it(bench):
    result = run_module("tools/bench_search.py", *bench["flags"], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tvn_tf.search" not in result.stderr and "tvn_tf.train" not in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    with open(bench["out"] / "bench_search.json") as f:
        assert json.load(f) == summary
    with open(bench["out"] / "search_report.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    tournament, random = summary["tournament"], summary["random"]
    assert tournament["best_validation_video_accuracy"] == [0.8, 0.7, 0.9]
    assert tournament["best_trial"] == [2, 0, 3]  # Seed 0: of two at 0.8, the faster.
    assert random["best_validation_video_accuracy"] == [0.6, 0.7, 0.5]
    assert tournament["test_video_accuracy"] == [0.70, 0.65, 0.80]
    assert random["test_video_accuracy"] == [0.60, 0.66, 0.50]
    assert random["test_video_accuracy_mean"] == pytest.approx(0.5867, abs=1e-4)
    assert tournament["feasible_share"] == pytest.approx(11 / 12, abs=1e-3)
    assert tournament["median_seconds"]["train_s"] == 10.0

    validation = summary["comparison"]["validation"]  # Differences 0.2, 0, 0.4.
    assert (validation["wins"], validation["losses"], validation["ties"]) == (2, 0, 1)
    assert validation["mean_difference"] == pytest.approx(0.2)
    assert validation["sign_test_p"] == pytest.approx(0.5)
    assert validation["interval"][0] <= 0.2 <= validation["interval"][1]
    # The median of each search's trained candidates: 0.8, 0.4, 0.55 against 0.4, 0.5, 0.3.
    assert tournament["median_validation_video_accuracy"] == [0.8, 0.4, 0.55]
    median = summary["comparison"]["median_validation"]
    assert (median["wins"], median["losses"]) == (2, 1)
    assert median["mean_difference"] == pytest.approx(0.1833, abs=1e-4)
    test = summary["comparison"]["test"]  # Differences 0.1, -0.01, 0.3.
    assert (test["wins"], test["losses"], test["n"]) == (2, 1, 3)
    assert test["sign_test_p"] == pytest.approx(1.0)

    best = summary["overall_best"]
    assert (best["search_seed"], best["algorithm"], best["trial"]) == (2, "tournament", 3)
    assert best["training_seeds"] == [1, 2, 3]
    assert best["test_video_accuracy"] == [0.80, 0.78, 0.82]
    assert best["test_video_accuracy_min"] == 0.78 and best["test_video_accuracy_max"] == 0.82

    lines = result.stdout.splitlines()
    per_seed = [line.split(":")[0] for line in lines if line.startswith("seed ")]
    assert per_seed == [f"seed {s} {n}" for s in (0, 1, 2) for n in ("tournament", "random")]
    assert "| tournament | 0.700 / 0.800 / 0.900 | 0.650 / 0.717 / 0.800 |" in result.stdout
    assert any(line.startswith("tournament - random, best validation") for line in lines)
    assert any(line.startswith("tournament - random, median validation") for line in lines)
    assert any(line.startswith("overall best: search seed 2 tournament trial 3") for line in lines)

    # Without --retrain: the searches alone, nothing retrained or compared on test.
    plain = run_module("tools/bench_search.py", *bench["flags"], "--noretrain", timeout=300)
    assert plain.returncode == 0, plain.stderr[-3000:]
    summary = json.loads(plain.stdout.strip().splitlines()[-1])
    assert summary["tournament"]["test_video_accuracy"] == [None, None, None]
    assert summary["comparison"]["test"] is None and summary["overall_best"] is None
    assert summary["comparison"]["validation"]["wins"] == 2


def test_bench_starts_what_is_unfinished(bench):
    # A budget the studies have not reached: the search is started again (and fails
    # here, its data folder missing).
    more = run_module("tools/bench_search.py", *bench["flags"], "--num_trials=5", timeout=300)
    assert more.returncode != 0 and "Traceback" not in more.stderr
    last = more.stderr.strip().splitlines()[-1]
    assert last.startswith("bench_search: the tournament search with seed 0 exited"), last

    # A training without its metrics.json: started, with the recipe, the search's data
    # and split over the recipe's, the searched resolution and no auxiliary heads.
    os.remove(bench["overall"] / "seed3" / "metrics.json")
    again = run_module("tools/bench_search.py", *bench["flags"], timeout=300)
    assert again.returncode != 0 and "Traceback" not in again.stderr
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bench_search: the training in {bench['overall'] / 'seed3'} exited")
    assert "exited with status 1: train: " in last  # The training's own last line.
    (command,) = [line for line in again.stderr.splitlines() if "tvn_tf.train" in line]
    for part in (f"--data_dir={bench['data']}", "--split=kfold", "--image_size=0", "--seed=3"):
        assert part in command.split(), part
    assert command.split().index(f"--data_dir={bench['data']}") > command.split().index(
        f"--flagfile={bench['flags'][1].split('=', 1)[1]}"
    )
    assert "--aux_classifiers=" in command.split()
    with open(bench["overall"] / "architecture.json") as f:
        assert json.load(f) == {"name": "net3"}
    assert "tvn_tf.search" not in again.stderr  # The finished searches were not.
