"""Architecture search: what one candidate costs, and tournament against random at one budget.

    python tools/bench_search.py                        # the demo's flags, 30 candidates each
    python tools/bench_search.py --search_seeds=0,1,2 --num_trials=60

For each search seed, runs `python -m tvn_tf.search --flagfile=FLAGFILE` twice
with the same budget, space and proxy training: `--algorithm=tournament` into
OUTPUT_DIR/seedS/tournament and `--algorithm=random` into OUTPUT_DIR/seedS/random
(plotted against the tournament). A folder that already holds its study
resumes it, so a rerun only reports. The searches run one after the other,
never side by side: each times its candidates on this machine.

Prints, per seed and algorithm, the best feasible validation video accuracy
found and the share of feasible candidates; then, per algorithm, the min /
mean / max of the best over the seeds and the median seconds per candidate of
each step (build and count, convert, time, train, evaluate on the validation
groups) over all seeds. The last line is one JSON object:
{"flagfile", "num_trials", "search_seeds", "tournament": {...}, "random": {...},
"machine"}, each algorithm with "best_validation_video_accuracy" (one per
seed), "_min", "_mean", "_max", "feasible_share" and "median_seconds".
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tvn_tf import cli  # noqa: E402  (the repository root is on the path now)

cli.start()

from tvn_tf import perf  # noqa: E402  (after cli.start)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The bench's flags; the searches' own come from --flagfile_search."""
    flags.DEFINE_string("flagfile_search", "flags/search_demo.cfg", "The search's flagfile.")
    flags.DEFINE_string(
        "output_dir", "runs/bench_search", "Where the studies go: seedS/tournament, seedS/random."
    )
    flags.DEFINE_integer("num_trials", 30, "Candidates per algorithm.", lower_bound=1)
    flags.DEFINE_list(
        "search_seeds",
        ["0"],
        "Search seeds (each search's --search_seed); each runs both algorithms with the same "
        "seed. The candidates' training seed is the flagfile's --seed.",
    )


STEPS = ("build", "convert", "time", "train", "evaluate")


def run(algorithm: str, model_dir: str, seed: int, extra: list[str]) -> None:
    """One search to its budget (or a report only, if its study is complete); exits on failure."""
    cmd = [
        sys.executable,
        "-m",
        "tvn_tf.search",
        f"--flagfile={FLAGS.flagfile_search}",
        f"--algorithm={algorithm}",
        f"--model_dir={model_dir}",
        f"--num_trials={FLAGS.num_trials}",
        f"--search_seed={seed}",
        "--final_epochs=0",
        *extra,
    ]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    status = subprocess.run(cmd).returncode
    if status:
        sys.exit(
            f"bench_search: the {algorithm} search with seed {seed} exited with status {status} "
            "(its message is above)."
        )


def read_trials(model_dir: str) -> list[dict]:
    """The rows of a search's `trials.csv`."""
    with open(os.path.join(model_dir, "trials.csv")) as f:
        return list(csv.DictReader(f))


def best_fitness(rows: list[dict]) -> float | None:
    """The best validation accuracy of the feasible (trained) candidates; None if none was."""
    fitness = [float(r["fitness"]) for r in rows if r["fitness"]]
    return max(fitness) if fitness else None


def summarize(runs: list[list[dict]]) -> dict:
    """One algorithm over the seeds: the best found per seed, and pooled step costs."""
    rows = [r for run_rows in runs for r in run_rows]
    costs = {}
    for step in STEPS:
        values = [float(r[f"{step}_s"]) for r in rows if r[f"{step}_s"]]
        costs[f"{step}_s"] = round(statistics.median(values), 3) if values else None
    best = [best_fitness(run_rows) for run_rows in runs]
    found = [b for b in best if b is not None]
    return {
        "best_validation_video_accuracy": best,
        "best_validation_video_accuracy_min": min(found) if found else None,
        "best_validation_video_accuracy_mean": round(statistics.mean(found), 4) if found else None,
        "best_validation_video_accuracy_max": max(found) if found else None,
        "feasible_share": round(sum(1 for r in rows if r["fitness"]) / max(len(rows), 1), 3),
        "median_seconds": costs,
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        seeds = [int(s) for s in FLAGS.search_seeds]
    except ValueError:
        seeds = []
    if not seeds:
        sys.exit(
            f"bench_search: --search_seeds={','.join(FLAGS.search_seeds)}; expected integers, "
            "e.g. 0,1,2."
        )
    runs = {"tournament": [], "random": []}
    for seed in seeds:
        tournament = os.path.join(FLAGS.output_dir, f"seed{seed}", "tournament")
        random_dir = os.path.join(FLAGS.output_dir, f"seed{seed}", "random")
        run("tournament", tournament, seed, [])
        run("random", random_dir, seed, [f"--compare_study={tournament}"])
        for name, model_dir in (("tournament", tournament), ("random", random_dir)):
            rows = read_trials(model_dir)
            runs[name].append(rows)
            feasible = sum(1 for r in rows if r["fitness"])
            print(
                f"seed {seed} {name}: {len(rows)} candidates, {feasible} feasible, best "
                f"validation video accuracy {best_fitness(rows)}",
                flush=True,
            )
    result = {
        "flagfile": FLAGS.flagfile_search,
        "num_trials": FLAGS.num_trials,
        "search_seeds": seeds,
        "tournament": summarize(runs["tournament"]),
        "random": summarize(runs["random"]),
        "machine": perf.machine_description(),
    }
    for name in ("tournament", "random"):
        r = result[name]
        costs = ", ".join(f"{k[:-2]} {v}" for k, v in r["median_seconds"].items() if v is not None)
        print(
            f"{name}: best validation video accuracy min / mean / max "
            f"{r['best_validation_video_accuracy_min']} / "
            f"{r['best_validation_video_accuracy_mean']} / "
            f"{r['best_validation_video_accuracy_max']}; feasible {r['feasible_share']:.0%}; "
            f"median s per candidate: {costs}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
