"""Architecture search: what one candidate costs, and tournament against random at one budget.

    python tools/bench_search.py                        # the demo's flags, 30 candidates each
    python tools/bench_search.py --num_trials=60 --output_dir=runs/bench_search

Runs `python -m tvn_tf.search --flagfile=FLAGFILE` twice with the same budget,
space, proxy training and seeds: `--algorithm=tournament` into
OUTPUT_DIR/tournament and `--algorithm=random` into OUTPUT_DIR/random (plotted
against the tournament). A folder that already holds its study resumes it, so
a rerun only reports. Then prints, per algorithm, the median seconds per
candidate of each step (build and count, convert, time, train, evaluate on
the validation groups), the share of feasible candidates, and the best
feasible validation video accuracy found. The last line is one JSON object.
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

import tvn_tf  # noqa: E402,F401  (start-up settings before TensorFlow loads)
from tvn_tf import perf  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("flagfile_search", "flags/search_demo.cfg", "The search's flagfile.")
flags.DEFINE_string("output_dir", "runs/bench_search", "Where the two studies go.")
flags.DEFINE_integer("num_trials", 30, "Candidates per algorithm.", lower_bound=1)
flags.DEFINE_integer("search_seed", 0, "The search seed, the same for both.")

STEPS = ("build", "convert", "time", "train", "evaluate")


def run(algorithm: str, model_dir: str, extra: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "tvn_tf.search",
        f"--flagfile={FLAGS.flagfile_search}",
        f"--algorithm={algorithm}",
        f"--model_dir={model_dir}",
        f"--num_trials={FLAGS.num_trials}",
        f"--search_seed={FLAGS.search_seed}",
        "--final_epochs=0",
        *extra,
    ]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def summarize(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "trials.csv")) as f:
        rows = list(csv.DictReader(f))
    costs = {}
    for step in STEPS:
        values = [float(r[f"{step}_s"]) for r in rows if r[f"{step}_s"]]
        costs[f"{step}_s"] = round(statistics.median(values), 3) if values else None
    fitness = [float(r["fitness"]) for r in rows if r["fitness"]]
    return {
        "candidates": len(rows),
        "feasible": len(fitness),
        "best_validation_video_accuracy": max(fitness) if fitness else None,
        "median_seconds": costs,
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    tournament = os.path.join(FLAGS.output_dir, "tournament")
    random_dir = os.path.join(FLAGS.output_dir, "random")
    run("tournament", tournament, [])
    run("random", random_dir, [f"--compare_study={tournament}"])
    result = {
        "flagfile": FLAGS.flagfile_search,
        "num_trials": FLAGS.num_trials,
        "search_seed": FLAGS.search_seed,
        "tournament": summarize(tournament),
        "random": summarize(random_dir),
        "machine": perf.machine_description(),
    }
    for name in ("tournament", "random"):
        r = result[name]
        costs = ", ".join(f"{k[:-2]} {v}" for k, v in r["median_seconds"].items() if v is not None)
        print(
            f"{name}: {r['candidates']} candidates, {r['feasible']} feasible, best validation "
            f"video accuracy {r['best_validation_video_accuracy']}; median s per candidate: {costs}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
