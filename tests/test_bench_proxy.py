"""tools/bench_proxy.py: the candidates it picks, and its report on finished trainings.

The studies are written as a search writes them (`report.write_csv`) and every
candidate's full training as the trainer ends it (metrics.json in
STUDY/retrain/trialN/seed1), so the bench trains nothing; the training itself
is tools/bench_search.py's `retrain` (tests/test_bench_search.py).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.isolated import run_module, run_python
from tvn_tf.search import report

# seed -> algorithm -> proxy fitness per candidate in trial order (None: infeasible).
STUDIES = {
    0: {
        "tournament": [0.05, 0.1, 0.9, 0.3, None, 0.05],
        "random": [0.05, 0.15, 0.2, 0.05, 0.6],
    },
    1: {
        "tournament": [0.05, 0.4, 0.45, 0.7, 0.05],
        "random": [0.1, 0.05, None, 0.25, 0.5, 0.35],
    },
}
DUPLICATE = ("seed1/random", 0)  # The same network as seed0/tournament trial 1.
DIVERGED = ("seed0/tournament", 0)  # Its full training's loss became nan at step 7.


def canonical(study: str, number: int) -> str:
    return "seed0/tournament-1" if (study, number) == DUPLICATE else f"{study}-{number}"


def test_candidates_are_spread_over_the_proxy_range_deterministically():
    chosen = run_python(
        """
        import json, sys
        sys.path.insert(0, "tools")
        import bench_proxy

        pool = [{"proxy_fitness": f, "name": i} for i, f in enumerate(
            [0.05] * 20 + [0.1, 0.12, 0.2, 0.3, 0.31, 0.5, 0.55, 0.7, 0.9, 0.95])]
        picks = [[c["name"] for c in bench_proxy.choose_candidates(pool, n)] for n in (12, 12, 3)]
        try:
            bench_proxy.choose_candidates(pool[:5], 12)
        except ValueError as e:
            picks.append(str(e))
        print(json.dumps(picks))
        """
    )
    twelve, again, three, error = chosen
    assert twelve == again  # Deterministic.
    assert len(twelve) == 12 and len(set(twelve)) == 12 and twelve == sorted(twelve)
    # Both ends and everything above the crowd at chance: 2 of the 20 at 0.05 suffice.
    assert twelve == [0, 1, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29]
    assert three == [0, 25, 29]  # Lowest, the nearest to the middle (0.5), highest.
    assert error.startswith("--num_candidates=12, but the studies hold 5 distinct trained")


@pytest.fixture
def bench_dir(tmp_path):
    """Finished studies, every trained candidate fully trained (test = proxy - 0.05) but one.

    `DIVERGED`'s full training stopped on a nan loss, as its marker says.
    """
    out = tmp_path / "bench"
    for seed, algorithms in STUDIES.items():
        for name, fitness in algorithms.items():
            study = out / f"seed{seed}" / name
            os.makedirs(study)
            rows = []
            for number, f in enumerate(fitness):
                rows.append(
                    {
                        "number": number,
                        "state": "COMPLETE" if f is not None else "PRUNED",
                        "fitness": f,
                        "latency_ms": 1.0 + number,
                        "params": 1000 * (number + 1),
                        "canonical": canonical(f"seed{seed}/{name}", number),
                        "architecture": json.dumps({"name": f"net{number}"}),
                    }
                )
                if f is None:
                    continue
                run = study / "retrain" / f"trial{number}" / "seed1"
                os.makedirs(run)
                if (f"seed{seed}/{name}", number) == DIVERGED:
                    marker = {"step": 7, "message": "train: Loss is nan at step 7; lower ..."}
                    (run / "diverged.json").write_text(json.dumps(marker))
                    continue
                metrics = {"video_accuracy": f - 0.05, "split": "test", "groups": [10, 11, 12]}
                (run / "metrics.json").write_text(json.dumps(metrics))
            report.write_csv(str(study / "trials.csv"), rows)
    (tmp_path / "search.cfg").write_text(f"--data_dir={tmp_path / 'no_data'}\n")
    (tmp_path / "train.cfg").write_text("--epochs=1\n")
    return out


def test_bench_proxy_reports_rank_correlation_on_finished_trainings(bench_dir):
    result = run_module(
        "tools/bench_proxy.py",
        f"--bench_dir={bench_dir}",
        f"--flagfile_search={bench_dir.parent / 'search.cfg'}",
        f"--flagfile_train={bench_dir.parent / 'train.cfg'}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tvn_tf.train" not in result.stderr  # Every training was done.
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    with open(bench_dir / "bench_proxy.json") as f:
        assert json.load(f) == summary
    with open(bench_dir / "proxy_report.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert summary["pool"] == 19  # 20 trained rows, one network twice.
    candidates = summary["candidates"]
    assert len(candidates) == summary["num_candidates"] == 12
    assert DUPLICATE not in {(c["study"], c["trial"]) for c in candidates}
    fitness = [c["proxy_fitness"] for c in candidates]
    assert min(fitness) == 0.05 and max(fitness) == 0.9
    for c in candidates:
        if (c["study"], c["trial"]) == DIVERGED:  # The lowest proxy fitness, ranked last.
            assert c["test_video_accuracy"] is None and c["diverged_at_step"] == 7
        else:
            assert c["test_video_accuracy"] == pytest.approx(c["proxy_fitness"] - 0.05)
    # Test accuracy is a monotone function of the proxy: a perfect ranking.
    assert summary["spearman"] == 1.0 and summary["spearman_interval"] == [1.0, 1.0]
    assert summary["training_seed"] == 1 and summary["confidence"] == 0.95
    rows = [line for line in result.stdout.splitlines() if line.startswith("| seed")]
    assert len(rows) == 12
    assert rows[0].startswith("| seed0/tournament | 0 |") and "| diverged at step 7 |" in rows[0]
    assert any(line.startswith("Spearman rank correlation") for line in result.stdout.splitlines())

    few = run_module(
        "tools/bench_proxy.py",
        f"--bench_dir={bench_dir}",
        f"--flagfile_search={bench_dir.parent / 'search.cfg'}",
        f"--flagfile_train={bench_dir.parent / 'train.cfg'}",
        "--num_candidates=20",
        timeout=300,
    )
    assert few.returncode != 0 and "Traceback" not in few.stderr
    last = few.stderr.strip().splitlines()[-1]
    assert last.startswith("bench_proxy: --num_candidates=20, but the studies hold 19"), last
