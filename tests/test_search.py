"""The search binary for real, on SQLite: a tiny search, its reports, resume, and bad input.

Candidates are tiny (32x32, 8-16 filters) and trained 3 steps on the session's
tiny demo data (4 classes x 5 groups): the point is the machinery, not accuracy.
"""

from __future__ import annotations

import csv
import json
import os

import optuna
import pytest

from tests.isolated import run_module, run_module_cases, run_python
from tvn_tf.models import architecture as arch_lib
from tvn_tf.search import records
from tvn_tf.search import storage as storage_lib
from tvn_tf.search import space as space_lib

TINY_SPACE = [
    "--resolution=32,32",
    "--frames=1,2",
    "--frame_stride=1,4",
    "--blocks=2,3",
    "--filters=8,16",
    "--repeats=1,1",
]


def search(*args, timeout=600):
    return run_module("tvn_tf.search", "--noprogress", *args, timeout=timeout)


def tiny_flags(data, model_dir, *extra):
    return [
        f"--data_dir={data}",
        f"--model_dir={model_dir}",
        "--split=logo",
        "--fold=5",
        "--num_validation_groups=1",
        *TINY_SPACE,
        "--train_steps=3",
        "--batch_size=8",
        "--warmup_epochs=0",
        "--eval_clips=1",
        "--latency_runs=3",
        "--heartbeat_interval=2",
        "--grace_period=30",
        *extra,
    ]


def trials_of(model_dir):
    storage = storage_lib.open_storage(f"sqlite:///{model_dir}/{records.STUDY_DB}")
    return optuna.load_study(study_name="search", storage=storage).get_trials()


def read_csv(model_dir):
    with open(os.path.join(model_dir, "trials.csv")) as f:
        return list(csv.DictReader(f))


def one_line_error(result, *words):
    assert result.returncode != 0, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("search: "), result.stderr[-2000:]
    for word in words:
        assert word in last, last
    return last


@pytest.fixture(scope="module")
def tournament(tiny_data, tmp_path_factory):
    """A finished 5-candidate tournament search (population 3, tournament 2), seeded with tvn1."""
    model_dir = str(tmp_path_factory.mktemp("search") / "tournament")
    flags = tiny_flags(
        tiny_data["records"],
        model_dir,
        "--num_trials=5",
        "--population=3",
        "--tournament_size=2",
        "--seed_architectures=tvn1",
        "--max_latency_ms=50",
        "--max_params=200000",
    )
    result = search(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"dir": model_dir, "flags": flags, "stdout": result.stdout}


def test_a_search_records_every_candidate(tournament):
    model_dir = tournament["dir"]
    summary = json.loads(tournament["stdout"].strip().splitlines()[-1])
    trials = trials_of(model_dir)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == summary["trials"] == 5
    space = space_lib.SearchSpace(
        space_lib.SpaceConfig((32, 32), (1, 2), (1, 4), (2, 3), (8, 16), (1, 1))
    )
    for t in finished:
        a = t.user_attrs
        arch = arch_lib.architecture_from_json(a["architecture"])
        assert space.contains(arch)
        assert a["canonical"] == space_lib.canonical_key(arch)
        assert a["params"] > 0 and a["flops"] > 0 and a["latency_ms"] > 0
        if t.state.name == "COMPLETE":  # Trained only when both constraints hold.
            assert a["params"] <= 200000 and a["latency_ms"] <= 50
            assert 0 <= t.value == a["fitness"] <= 1
        else:
            assert a["feasible"] is False and a["reason"]
    by_number = {t.number: t for t in finished}
    assert by_number[0].user_attrs["mutation"] == "seed tvn1"
    for t in finished:
        if t.number >= 3:  # After the random phase: a mutation of an earlier trial.
            parent = by_number[t.user_attrs["parent"]]
            assert parent.number < t.number and parent.state.name == "COMPLETE"
            child = arch_lib.architecture_from_json(t.user_attrs["architecture"])
            before = arch_lib.architecture_from_json(parent.user_attrs["architecture"])
            assert len(space_lib.differences(before, child)) == 1
        else:
            assert t.user_attrs["parent"] is None
    # No candidate evaluated twice.
    assert len({t.user_attrs["canonical"] for t in finished}) == 5


def test_reports_and_best_architecture_load_elsewhere(tournament):
    model_dir = tournament["dir"]
    rows = read_csv(model_dir)
    assert [int(r["number"]) for r in rows] == list(range(5))
    assert os.path.getsize(os.path.join(model_dir, "search_report.png")) > 10000
    best_file = os.path.join(model_dir, records.BEST_ARCHITECTURE)
    best = arch_lib.load_architecture_json(best_file)
    # The best: highest fitness, then the faster, then the older.
    best_row = min(
        (r for r in rows if r["fitness"]),
        key=lambda r: (-float(r["fitness"]), float(r["latency_ms"]), int(r["number"])),
    )
    assert json.loads(best_row["architecture"]) == json.loads(json.dumps(best.to_json()))
    info = run_module(
        "tvn_tf.model_info", f"--arch_json={best_file}", "--num_classes=4", timeout=300
    )
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout.strip().splitlines()[-1])["total_params"] == int(
        best_row["params"]
    )


def test_a_rerun_resumes_and_stops_at_the_budget(tournament):
    model_dir, flags = tournament["dir"], tournament["flags"]
    before = {t.number: t.user_attrs["canonical"] for t in trials_of(model_dir)}
    result = search(*flags)  # Same budget: nothing to do.
    assert result.returncode == 0, result.stderr[-2000:]
    assert {t.number: t.user_attrs["canonical"] for t in trials_of(model_dir)} == before
    result = search(*[f for f in flags if not f.startswith("--num_trials")], "--num_trials=6")
    assert result.returncode == 0, result.stderr[-2000:]
    after = trials_of(model_dir)
    assert len(after) == 6 and {t.number: t.user_attrs["canonical"] for t in after[:5]} == before
    assert after[5].user_attrs["parent"] is not None  # The tournament goes on.


def test_bad_input_is_one_line_and_leaves_the_study_alone(tiny_data, tournament, tmp_path):
    model_dir, flags = tournament["dir"], tournament["flags"]
    db = os.path.join(model_dir, records.STUDY_DB)
    count, mtime = len(trials_of(model_dir)), os.path.getmtime(db)
    other = [f for f in flags if not f.startswith("--population")] + ["--population=4"]
    fresh = str(tmp_path / "fresh")
    cases = [  # (arguments, words of the one line), all run in one child process.
        (other, ["other settings", "population"]),
        ([*flags, "--data_dir=" + str(tmp_path / "nowhere")], ["--data_dir"]),
        (tiny_flags(tiny_data["records"], fresh, "--storage=redis://x"), ["--storage"]),
        (
            tiny_flags(tiny_data["records"], fresh, "--storage=postgresql://u@127.0.0.1:1/db"),
            ["--storage", "cannot open"],
        ),
    ]
    results = run_module_cases("tvn_tf.search", [["--noprogress", *a] for a, _ in cases])
    for result, (_, words) in zip(results, cases):
        one_line_error(result, *words)
    assert len(trials_of(model_dir)) == count and os.path.getmtime(db) == mtime
    assert not os.path.exists(fresh)


def test_constraints_nothing_meets_stop_after_the_random_phase(tiny_data, tmp_path):
    model_dir = str(tmp_path / "impossible")
    result = search(
        *tiny_flags(
            tiny_data["records"],
            model_dir,
            "--algorithm=random",
            "--num_trials=50",
            "--population=2",
            "--tournament_size=1",
            "--max_params=10",
        )
    )
    one_line_error(result, "none of the 2 candidates", "--max_params=10", "fewest")
    assert len(trials_of(model_dir)) == 2


def test_random_search_in_int8_shares_the_space_and_plots_against_the_tournament(
    tiny_data, tournament, tmp_path
):
    model_dir = str(tmp_path / "random")
    flags = tiny_flags(
        tiny_data["records"],
        model_dir,
        "--algorithm=random",
        "--latency_variant=int8",
        "--num_trials=2",
        "--population=3",
        "--tournament_size=2",
        f"--compare_study={tournament['dir']}",
    )
    result = search(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    settings = {}
    for d in (model_dir, tournament["dir"]):
        storage = storage_lib.open_storage(f"sqlite:///{d}/{records.STUDY_DB}")
        study = optuna.load_study(study_name="search", storage=storage)
        settings[d] = study.user_attrs[records.SETTINGS_ATTR]
    assert settings[model_dir]["space"] == settings[tournament["dir"]]["space"]
    trials = trials_of(model_dir)
    assert all(t.user_attrs["mutation"] == "random" for t in trials)
    assert all(t.user_attrs["latency_ms"] > 0 for t in trials)  # Timed in full int8.
    assert os.path.getsize(os.path.join(model_dir, "search_report.png")) > 10000


def test_the_best_is_retrained_and_tested_once(tournament):
    model_dir = tournament["dir"]
    flags = [f for f in tournament["flags"] if not f.startswith("--num_trials")]
    result = search(*flags, "--num_trials=6", "--final_epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads(result.stdout.strip().splitlines()[-1])["final"]
    best = records.best_trial(trials_of(model_dir))
    assert final["trial"] == best.number and final["split"] == "test" and final["groups"] == [5]
    path = os.path.join(model_dir, "final_metrics.json")
    with open(path) as f:
        assert json.load(f) == final
    mtime = os.path.getmtime(path)
    again = search(*flags, "--num_trials=6", "--final_epochs=1")  # Tested once, not again.
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["final"] == final
    assert os.path.getmtime(path) == mtime


def test_bench_search_runs_both_algorithms_per_seed_and_ends_with_json(tiny_data, tmp_path):
    flagfile = tmp_path / "tiny_search.cfg"
    flags = tiny_flags(
        tiny_data["records"],
        "unused",
        "--max_latency_ms=50",
        "--noprogress",
        "--population=1",  # A tournament needs a population below the budget.
        "--tournament_size=1",
    )
    flagfile.write_text("\n".join(f for f in flags if not f.startswith("--model_dir")) + "\n")
    bench = [
        "tools/bench_search.py",
        f"--flagfile_search={flagfile}",
        f"--output_dir={tmp_path / 'bench'}",
        "--num_trials=2",
        "--noretrain",  # Retraining: tests/test_bench_search.py.
    ]
    # One seed (each search is a process with its own start-up): the pooling over
    # seeds is `test_bench_search_pools_seeds_into_min_mean_max`'s.
    result = run_module(*bench, "--search_seeds=1")
    assert result.returncode == 0, result.stderr[-3000:]
    per_seed = [line for line in result.stdout.splitlines() if line.startswith("seed ")]
    assert [line.split(":")[0] for line in per_seed] == ["seed 1 tournament", "seed 1 random"]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["search_seeds"] == [1]
    for name in ("tournament", "random"):
        (found,) = summary[name]["best_validation_video_accuracy"]
        assert 0.0 <= found <= 1.0
        assert summary[name]["best_validation_video_accuracy_min"] == found
        assert summary[name]["median_seconds"]["train_s"] > 0
    assert sorted(os.listdir(tmp_path / "bench")) == [
        "bench_search.json",
        "search_report.png",
        "seed1",
    ]
    assert sorted(os.listdir(tmp_path / "bench" / "seed1")) == ["random", "tournament"]

    bad = run_module(*bench, "--search_seeds=0,x")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--search_seeds" in bad.stderr.strip().splitlines()[-1]


def test_bench_search_pools_seeds_into_min_mean_max():
    summary = run_python(
        """
        import json, sys
        sys.path.insert(0, "tools")
        import bench_search

        def row(fitness, build):
            return {**{f"{step}_s": "" for step in bench_search.STEPS}, "fitness": fitness,
                    "build_s": build, "number": build}

        runs = [[row("0.5", "1"), row("", "3")], [row("0.75", "2"), row("0.25", "4")],
                [row("", "5")]]
        print(json.dumps(bench_search.summarize(runs)))
        """
    )
    # Per seed the best feasible candidate; a seed with none is None, left out of the pool.
    assert summary["best_validation_video_accuracy"] == [0.5, 0.75, None]
    assert summary["best_validation_video_accuracy_min"] == 0.5
    assert summary["best_validation_video_accuracy_mean"] == 0.625
    assert summary["best_validation_video_accuracy_max"] == 0.75
    assert summary["feasible_share"] == 0.6
    assert summary["median_validation_video_accuracy"] == [0.5, 0.5, None]
    assert summary["median_seconds"] == {
        "build_s": 3.0,
        **{f"{step}_s": None for step in ("convert", "time", "train", "evaluate")},
    }
