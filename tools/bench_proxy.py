"""Does the search's proxy rank networks as full training does? Spearman over candidates.

    python tools/bench_proxy.py                         # after tools/bench_search.py
    python tools/bench_proxy.py --bench_dir=runs/bench_search --num_candidates=16

Reads the studies tools/bench_search.py left in BENCH_DIR (seedS/tournament,
seedS/random: each one's trials.csv), pools their trained candidates (one per
distinct network, its first study's proxy fitness: validation video accuracy
after the brief training) and picks --num_candidates spread evenly over the
range of that fitness (`choose_candidates`). Each is trained with the full
recipe exactly as bench_search retrains a search's best (`bench_search.retrain`:
`python -m tvn_tf.train --flagfile=FLAGFILE_TRAIN`, the search flagfile's data
and split, its own resolution, no --aux_classifiers, --seed=TRAINING_SEED) into
STUDY/retrain/trialN/seedT, and tested once on the groups the search never read.
A network bench_search already retrained with that seed is not trained again;
nor is any training with a metrics.json, so a rerun resumes where it stopped.
A training whose loss stops being finite is recorded as diverged (its
diverged.json) and ranks below every trained candidate: the recipe gives
nothing for that network.

Prints one markdown table row per candidate (study, trial, parameters, latency,
proxy fitness, test video accuracy), then Spearman's rank correlation of proxy
fitness against held-out test accuracy with its bootstrap interval over the
candidates (`tvn_tf.search.statistics`). Writes BENCH_DIR/proxy_report.png (test
accuracy against proxy fitness) and BENCH_DIR/bench_proxy.json, the object also
printed as the last line: {"bench_dir", "flagfile_search", "flagfile_train",
"training_seed", "num_candidates", "pool", "candidates", "spearman",
"spearman_interval", "confidence", "report", "machine"}; each candidate has
"study", "trial", "params", "latency_ms", "proxy_fitness" and
"test_video_accuracy" (None, with "diverged_at_step", if it diverged); "pool"
is how many distinct trained networks there were.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys

import numpy as np
from absl import app
from absl import flags

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(TOOLS))
sys.path.insert(0, TOOLS)  # bench_search, whose retraining this shares.

from tvn_tf import cli  # noqa: E402  (the repository root is on the path now)

cli.start()

import bench_search  # noqa: E402  (after cli.start)

from tvn_tf import atomic  # noqa: E402
from tvn_tf import perf  # noqa: E402
from tvn_tf.search import records  # noqa: E402
from tvn_tf.search import report  # noqa: E402
from tvn_tf.search import statistics as search_stats  # noqa: E402
from tvn_tf.training import trainer  # noqa: E402

FLAGS = flags.FLAGS

RESULT_JSON = "bench_proxy.json"
DIVERGED_JSON = "diverged.json"
REPORT_PNG = "proxy_report.png"
CONFIDENCE = 0.95


def define_flags() -> None:
    """The bench's flags."""
    flags.DEFINE_string(
        "bench_dir", "runs/bench_search", "tools/bench_search.py's --output_dir: its studies."
    )
    flags.DEFINE_integer(
        "num_candidates", 12, "Candidates trained in full, spread over the proxy's range."
    )
    flags.DEFINE_string(
        "flagfile_search",
        "flags/search_motion.cfg",
        "The searches' flagfile: its data and split are the trainings'.",
    )
    flags.DEFINE_string(
        "flagfile_train", "flags/motion.cfg", "The full training recipe of the candidates."
    )
    flags.DEFINE_integer(
        "training_seed", 1, "Training seed (train's --seed): bench_search's first is reused."
    )


def studies(bench_dir: str) -> list[tuple[str, str]]:
    """(name, folder) of every study under BENCH_DIR with a trials.csv: seeds, then algorithms."""
    found = []
    for folder in glob.glob(os.path.join(bench_dir, "seed*", "*")):
        seed = re.fullmatch(r"seed(\d+)", os.path.basename(os.path.dirname(folder)))
        algorithm = os.path.basename(folder)
        if (
            seed
            and algorithm in bench_search.ALGORITHMS
            and os.path.isfile(os.path.join(folder, records.TRIALS_CSV))
        ):
            order = (int(seed.group(1)), bench_search.ALGORITHMS.index(algorithm))
            found.append((order, f"seed{seed.group(1)}/{algorithm}", folder))
    return [(name, folder) for _, name, folder in sorted(found)]


def candidate_pool(bench_dir: str) -> list[dict]:
    """Every distinct trained network of the studies, in study then trial order.

    A network trained in several studies (the same canonical form) keeps its
    first study's row: its proxy fitness is the same training on the same data.
    """
    pool, seen = [], set()
    for name, folder in studies(bench_dir):
        rows = sorted(bench_search.read_trials(folder), key=lambda r: int(r["number"]))
        for row in rows:
            fitness = bench_search.fitness(row)
            if fitness is None or row["canonical"] in seen:
                continue
            seen.add(row["canonical"])
            pool.append(
                {
                    "study": name,
                    "folder": folder,
                    "trial": int(row["number"]),
                    "params": int(row["params"]) if row["params"] else None,
                    "latency_ms": float(row["latency_ms"]) if row["latency_ms"] else None,
                    "proxy_fitness": fitness,
                    "architecture": row["architecture"],
                    "number": row["number"],
                }
            )
    return pool


def choose_candidates(pool: list[dict], count: int) -> list[dict]:
    """`count` candidates spread evenly over the range of proxy fitness, deterministically.

    For each of `count` evenly spaced targets from the lowest fitness to the
    highest, the candidate nearest to it not yet chosen (ties: the earlier in
    `pool`). Spreading over the range rather than drawing at random keeps the
    few high scorers in, which a pool crowded near chance would otherwise leave
    out: a rank correlation needs the whole range.

    Returns:
      The chosen candidates, in `pool` order.

    Raises:
      ValueError: fewer than `count` candidates in the pool, or `count` < 2.
    """
    if count < 2:
        raise ValueError(f"--num_candidates={count}; expected at least 2 (a rank correlation).")
    if len(pool) < count:
        raise ValueError(
            f"--num_candidates={count}, but the studies hold {len(pool)} distinct trained "
            "candidates; lower it, or run more searches."
        )
    values = [c["proxy_fitness"] for c in pool]
    left, chosen = list(range(len(pool))), []
    for target in np.linspace(min(values), max(values), count):
        pick = min(left, key=lambda i: (abs(values[i] - target), i))
        left.remove(pick)
        chosen.append(pick)
    return [pool[i] for i in sorted(chosen)]


def correlation(candidates: list[dict]) -> dict:
    """Spearman's rho of proxy fitness against test accuracy, with its bootstrap interval.

    A candidate whose full training diverged (test accuracy None) ranks below
    every trained one: the recipe gives nothing for it.
    """
    x = [c["proxy_fitness"] for c in candidates]
    y = [-1.0 if c["test_video_accuracy"] is None else c["test_video_accuracy"] for c in candidates]
    rho = search_stats.spearman(x, y)
    low, high = search_stats.spearman_interval(x, y, CONFIDENCE)
    rounded = lambda v: None if np.isnan(v) else round(v, 4)  # JSON has no NaN.
    return {"spearman": rounded(rho), "spearman_interval": [rounded(low), rounded(high)]}


def full_training(candidate: dict, seed: int, flags_train: list[str]) -> dict:
    """`{"test_video_accuracy"}` of the candidate's full training, or None and `"diverged_at_step"`.

    A training whose loss stops being finite ends with the trainer's one line
    ("Loss is nan at step N"); FOLDER/seedS/diverged.json keeps it, so a rerun
    does not train it again.
    """
    folder = bench_search.retrain_folder(candidate["folder"], candidate)
    marker = os.path.join(folder, f"seed{seed}", DIVERGED_JSON)
    if not os.path.exists(marker):
        try:
            test = bench_search.retrain(folder, candidate["architecture"], seed, flags_train)
            return {"test_video_accuracy": test["video_accuracy"]}
        except ValueError as e:
            found = trainer.NOT_FINITE.search(str(e))
            if not found:
                raise
            atomic.write_json(marker, {"step": int(found.group(1)), "message": str(e)})
    with open(marker) as f:
        return {"test_video_accuracy": None, "diverged_at_step": json.load(f)["step"]}


def bench_proxy(bench_dir: str, count: int, flags_train: list[str], seed: int) -> dict:
    """Chooses, trains (or reads) and correlates the candidates; writes the figure."""
    pool = candidate_pool(bench_dir)
    if not pool:
        raise ValueError(f"--bench_dir={bench_dir}: no study with a trained candidate there.")
    chosen = choose_candidates(pool, count)
    candidates = []
    for c in chosen:
        keys = ("study", "trial", "params", "latency_ms", "proxy_fitness")
        candidates.append({**{k: c[k] for k in keys}, **full_training(c, seed, flags_train)})
    result = correlation(candidates)
    path = os.path.join(bench_dir, REPORT_PNG)
    interval = result["spearman_interval"]
    diverged = sum(c["test_video_accuracy"] is None for c in candidates)
    report.plot_scatter(
        path,
        [c["proxy_fitness"] for c in candidates],
        [c["test_video_accuracy"] or 0.0 for c in candidates],
        "proxy fitness (validation video accuracy after the brief training)",
        "held-out test video accuracy after full training"
        + (f" ({diverged} diverged: at 0)" if diverged else ""),
        f"{len(candidates)} candidates: Spearman {result['spearman']}\n"
        f"({CONFIDENCE:.0%} bootstrap interval {interval[0]} to {interval[1]})",
    )
    return {
        "bench_dir": bench_dir,
        "num_candidates": count,
        "pool": len(pool),
        "candidates": candidates,
        **result,
        "confidence": CONFIDENCE,
        "report": path,
    }


def print_report(result: dict) -> None:
    """One table row per candidate, then the correlation in words."""
    print("| study | trial | parameters | latency ms | proxy fitness | test video accuracy |")
    print("|---|---|---|---|---|---|")
    for c in result["candidates"]:
        params = "-" if c["params"] is None else f"{c['params']:,}"
        latency = "-" if c["latency_ms"] is None else f"{c['latency_ms']:.2f}"
        test = c["test_video_accuracy"]
        test = f"diverged at step {c['diverged_at_step']}" if test is None else f"{test:.3f}"
        print(
            f"| {c['study']} | {c['trial']} | {params} | {latency} | "
            f"{c['proxy_fitness']:.3f} | {test} |"
        )
    low, high = result["spearman_interval"]
    print(
        f"Spearman rank correlation, proxy fitness against held-out test accuracy: "
        f"{result['spearman']} ({result['confidence']:.0%} bootstrap interval {low} to {high}) "
        f"over {len(result['candidates'])} of {result['pool']} trained candidates"
    )
    print(f"figure: {result['report']}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        flags_train = bench_search.train_flags(FLAGS.flagfile_train, FLAGS.flagfile_search)
        result = bench_proxy(
            FLAGS.bench_dir, FLAGS.num_candidates, flags_train, FLAGS.training_seed
        )
        result = {
            "bench_dir": result.pop("bench_dir"),
            "flagfile_search": FLAGS.flagfile_search,
            "flagfile_train": FLAGS.flagfile_train,
            "training_seed": FLAGS.training_seed,
            **result,
            "machine": perf.machine_description(),
        }
        atomic.write_json(os.path.join(FLAGS.bench_dir, RESULT_JSON), result)
    except ValueError as e:
        sys.exit(f"bench_proxy: {e}")
    print_report(result)
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
