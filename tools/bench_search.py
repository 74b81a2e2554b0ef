"""Architecture search: tournament against random at one budget, over seeds, then retrained.

    python tools/bench_search.py                        # the motion data, 5 seeds, 30 candidates
    python tools/bench_search.py --search_seeds=0,1,2 --num_trials=60 --noretrain

For each search seed, runs `python -m tvn_tf.search --flagfile=FLAGFILE_SEARCH`
with `--algorithm=tournament` into OUTPUT_DIR/seedS/tournament, then with
`--algorithm=random` into OUTPUT_DIR/seedS/random: the same budget, space and
proxy, one after the other (each times its candidates on this machine).

With --retrain (the default), once both searches of a seed are done, each one's
best (highest validation accuracy, then lowest latency) is trained with
`python -m tvn_tf.train --flagfile=FLAGFILE_TRAIN` and the first of
--training_seeds, on the search flagfile's data and split (its --data_dir,
--data_format, --split, --num_folds, --fold), at its own resolution and without
the recipe's --aux_classifiers (TVN-1's block names), and tested once on the
groups the search never read. After all seeds the overall best (highest
validation accuracy of all searches) trains with the other training seeds too.
A training is STUDY/retrain/trialN/seedT (its network in
STUDY/retrain/trialN/architecture.json; its result the trainer's metrics.json).

A rerun resumes: a search whose trials.csv holds --num_trials finished
candidates is not started again (use a new --output_dir for other search
flags), a training with a metrics.json is not run again, and an unfinished one
resumes from its own checkpoints.

Prints per seed and algorithm the best validation video accuracy (and its
retrained test accuracy); a markdown table per algorithm of min / mean / max of
both over the seeds, the feasible share and the median seconds per candidate of
each step; the paired comparisons over the seeds, tournament minus random, of the best
validation accuracy, of the median one, and of the retrained test accuracy (mean
difference with its bootstrap interval, wins / losses / ties, sign test:
`tvn_tf.search.statistics`); the overall best's test accuracy per training seed.
Writes OUTPUT_DIR/search_report.png (best validation accuracy against candidates
trained, median and min-max over the seeds, both algorithms) and
OUTPUT_DIR/bench_search.json, the object also printed as the last line:
{"flagfile", "flagfile_train", "num_trials", "search_seeds", "training_seeds",
"tournament", "random", "comparison": {"validation", "median_validation", "test"},
"overall_best", "report", "machine"}. An algorithm: "best_validation_video_accuracy"
(per seed) and its "_min", "_mean", "_max"; "best_trial" (per seed);
"median_validation_video_accuracy" (per seed, of all its trained candidates: where
a search spends its budget, which its best alone does not show) and its "_min",
"_mean", "_max"; "test_video_accuracy"
(per seed, None without --retrain) and its "_min", "_mean", "_max";
"feasible_share"; "median_seconds". A comparison: "n", "mean_difference",
"interval", "confidence", "wins", "losses", "ties", "sign_test_p" ("test" is
None without --retrain). "overall_best": "search_seed", "algorithm", "trial",
"validation_video_accuracy", "params", "latency_ms", "training_seeds",
"test_video_accuracy" (per training seed) and its "_min", "_mean", "_max".
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

from tvn_tf import atomic  # noqa: E402  (after cli.start)
from tvn_tf import model_dir as model_dir_lib  # noqa: E402
from tvn_tf import perf  # noqa: E402
from tvn_tf.search import records  # noqa: E402
from tvn_tf.search import report  # noqa: E402
from tvn_tf.search import statistics as search_stats  # noqa: E402

FLAGS = flags.FLAGS

ALGORITHMS = ("tournament", "random")
STEPS = ("build", "convert", "time", "train", "evaluate")
# The search flagfile's flags that say which data and test groups the retrainings read.
DATA_FLAGS = ("data_dir", "data_format", "split", "num_folds", "fold")
RESULT_JSON = "bench_search.json"
RETRAIN_DIR = "retrain"
ARCHITECTURE_JSON = "architecture.json"


def define_flags() -> None:
    """The bench's flags; the searches' own come from --flagfile_search."""
    flags.DEFINE_string("flagfile_search", "flags/search_motion.cfg", "The search's flagfile.")
    flags.DEFINE_string(
        "output_dir", "runs/bench_search", "Where the studies go: seedS/tournament, seedS/random."
    )
    flags.DEFINE_integer("num_trials", 30, "Candidates per algorithm.", lower_bound=1)
    flags.DEFINE_list(
        "search_seeds",
        ["0", "1", "2", "3", "4"],
        "Search seeds (each search's --search_seed); each runs both algorithms with the same "
        "seed. The candidates' training seed is the flagfile's --seed.",
    )
    flags.DEFINE_bool(
        "retrain",
        True,
        "Train each search's best with --flagfile_train and test it once on the held-out groups.",
    )
    flags.DEFINE_string(
        "flagfile_train", "flags/motion.cfg", "The full training recipe of the retrainings."
    )
    flags.DEFINE_list(
        "training_seeds",
        ["1", "2", "3"],
        "Training seeds (train's --seed) of the retrainings: each search's best trains with "
        "the first, the overall best with all.",
    )


def study_dir(output_dir: str, seed: int, algorithm: str) -> str:
    """OUTPUT_DIR/seedS/ALGORITHM: one search's --model_dir."""
    return os.path.join(output_dir, f"seed{seed}", algorithm)


def read_trials(model_dir: str) -> list[dict]:
    """The rows of a search's `trials.csv`."""
    with open(os.path.join(model_dir, records.TRIALS_CSV)) as f:
        return list(csv.DictReader(f))


def fitness(row: dict) -> float | None:
    """A row's validation video accuracy; None for a candidate not trained."""
    value = row["fitness"]
    return float(value) if value not in ("", None) else None


def best_fitness(rows: list[dict]) -> float | None:
    """The best validation accuracy of the feasible (trained) candidates; None if none was."""
    found = [f for f in map(fitness, rows) if f is not None]
    return max(found) if found else None


def trained_fitness(rows: list[dict]) -> list[float]:
    """The fitness of each trained candidate, in trial order: the best-so-far curve's data."""
    ordered = sorted(rows, key=lambda r: int(r["number"]))
    return [f for f in map(fitness, ordered) if f is not None]


def best_row(rows: list[dict]) -> dict | None:
    """The study's best candidate as `records.best_trial` ranks: fitness, latency, number."""
    trained = [r for r in rows if fitness(r) is not None]
    if not trained:
        return None
    return min(trained, key=lambda r: (-fitness(r), _latency(r), int(r.get("number") or 0)))


def _latency(row: dict) -> float:
    """A row's measured latency (0 where unknown), the tie-break between equal fitness."""
    return float(row.get("latency_ms") or 0.0)


def is_finished(model_dir: str, num_trials: int) -> bool:
    """Whether the study's `trials.csv` holds `num_trials` finished (evaluated) candidates."""
    if not os.path.exists(os.path.join(model_dir, records.TRIALS_CSV)):
        return False
    rows = read_trials(model_dir)
    return sum(r["state"] in records.FINISHED for r in rows) >= num_trials


def call(cmd: list[str], what: str) -> None:
    """Runs a child to its end, its output on stderr as it comes.

    Raises:
      ValueError: naming `what`, the exit status and the child's last line, if it fails.
    """
    print(" ".join(cmd), file=sys.stderr, flush=True)
    tail = b""
    with subprocess.Popen(cmd, stdout=sys.stderr, stderr=subprocess.PIPE) as child:
        while chunk := child.stderr.read1(1 << 16):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            tail = (tail + chunk)[-4096:]
    if child.returncode:
        lines = tail.decode(errors="replace").replace("\r", "\n").splitlines()
        last = next((line.strip() for line in reversed(lines) if line.strip()), "no message")
        raise ValueError(f"{what} exited with status {child.returncode}: {last}")


def run_search(algorithm: str, model_dir: str, seed: int, extra: list[str]) -> None:
    """One search to its budget; a study already at its budget is not started again."""
    if is_finished(model_dir, FLAGS.num_trials):
        print(f"{model_dir}: finished, not searched again.", file=sys.stderr, flush=True)
        return
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
    call(cmd, f"the {algorithm} search with seed {seed}")


def flagfile_values(path: str, flag: str) -> dict[str, str]:
    """The flags a flagfile sets, as absl reads it (nested --flagfile lines in place).

    Raises:
      ValueError: naming `--flag` when the file cannot be read.
    """
    try:
        args = flags.FLAGS.read_flags_from_files([f"--flagfile={path}"], force_gnu=False)
    except flags.Error as e:
        raise ValueError(f"--{flag}={path}: {' '.join(str(e).split())}") from None
    values = {}
    for arg in args:
        name, _, value = arg.lstrip("-").partition("=")
        values[name] = value
    return values


def train_flags(flagfile_train: str, flagfile_search: str) -> list[str]:
    """The retrainings' flags: the recipe, then the search's data and split over its own."""
    flagfile_values(flagfile_train, "flagfile_train")  # Unreadable: refused before any search.
    search = flagfile_values(flagfile_search, "flagfile_search")
    data = [f"--{name}={search[name]}" for name in DATA_FLAGS if name in search]
    return [f"--flagfile={flagfile_train}", *data]


def retrain_folder(model_dir: str, row: dict) -> str:
    """STUDY/retrain/trialN: the trainings of one candidate of one study."""
    return os.path.join(model_dir, RETRAIN_DIR, f"trial{row['number']}")


def retrain(
    folder: str,
    architecture: str,
    seed: int,
    flags_train: list[str],
    aux_classifiers: tuple[str, ...] = (),
) -> dict:
    """Trains `architecture` (a trials.csv JSON) into FOLDER/seedS once, with `flags_train`.

    FOLDER/architecture.json is train's --arch_json. The recipe's
    --aux_classifiers name TVN-1's blocks, so they are replaced by
    `aux_classifiers` (none by default). A run whose `metrics.json` exists is
    done and not started again; an unfinished one resumes from its last
    checkpoint (the trainer's resume).

    Returns:
      "video_accuracy", "clip_accuracy", "split", "groups", "step",
      "per_class_accuracy": its final test.

    Raises:
      ValueError: the training failed, or its split has no test groups.
    """
    run_dir = os.path.join(folder, f"seed{seed}")
    metrics_path = os.path.join(run_dir, model_dir_lib.METRICS)
    if not os.path.exists(metrics_path):
        arch_path = os.path.join(folder, ARCHITECTURE_JSON)
        if not os.path.exists(arch_path):
            os.makedirs(folder, exist_ok=True)
            atomic.write_json(arch_path, json.loads(architecture))
        cmd = [
            sys.executable,
            "-m",
            "tvn_tf.train",
            *flags_train,
            f"--arch_json={arch_path}",
            "--image_size=0",  # The searched resolution, not the recipe's.
            f"--aux_classifiers={','.join(aux_classifiers)}",
            f"--seed={seed}",
            f"--model_dir={run_dir}",
        ]
        call(cmd, f"the training in {run_dir}")
    with open(metrics_path) as f:
        metrics = json.load(f)
    if metrics.get("split") != "test":
        raise ValueError(
            f"{metrics_path} was scored on {metrics.get('split')} groups: the search "
            "flagfile's split must hold test groups."
        )
    return {
        k: metrics.get(k)
        for k in (
            "video_accuracy",
            "clip_accuracy",
            "split",
            "groups",
            "step",
            "per_class_accuracy",
        )
    }


def spread(values: list[float | None], name: str) -> dict:
    """NAME_min, NAME_mean and NAME_max of the values that are not None."""
    found = [v for v in values if v is not None]
    return {
        f"{name}_min": min(found) if found else None,
        f"{name}_mean": round(statistics.mean(found), 4) if found else None,
        f"{name}_max": max(found) if found else None,
    }


def summarize(runs: list[list[dict]], tests: list[float | None] | None = None) -> dict:
    """One algorithm over the seeds: the best found and its test accuracy per seed, step costs."""
    rows = [r for run_rows in runs for r in run_rows]
    costs = {}
    for step in STEPS:
        values = [float(r[f"{step}_s"]) for r in rows if r[f"{step}_s"]]
        costs[f"{step}_s"] = round(statistics.median(values), 3) if values else None
    best = [best_fitness(run_rows) for run_rows in runs]
    bests = [best_row(run_rows) for run_rows in runs]
    medians = [
        round(statistics.median(found), 4) if (found := trained_fitness(run_rows)) else None
        for run_rows in runs
    ]
    tests = tests if tests is not None else [None] * len(runs)
    return {
        "best_validation_video_accuracy": best,
        **spread(best, "best_validation_video_accuracy"),
        "best_trial": [int(b["number"]) if b and "number" in b else None for b in bests],
        "median_validation_video_accuracy": medians,
        **spread(medians, "median_validation_video_accuracy"),
        "test_video_accuracy": tests,
        **spread(tests, "test_video_accuracy"),
        "feasible_share": round(sum(1 for r in rows if r["fitness"]) / max(len(rows), 1), 3),
        "median_seconds": costs,
    }


def overall_best(bests: dict[tuple[int, str], dict | None]) -> tuple[int, str, dict] | None:
    """(seed, algorithm, row) of the highest validation accuracy over all searches.

    Ties go to the lower latency, then the earlier seed, then the tournament.
    """
    found = [(seed, name, row) for (seed, name), row in bests.items() if row is not None]
    if not found:
        return None
    key = lambda f: (-fitness(f[2]), _latency(f[2]), f[0], ALGORITHMS.index(f[1]))
    return min(found, key=key)


def run_seed(
    seed: int, flags_train: list[str] | None, training_seed: int
) -> dict[str, tuple[list[dict], dict | None, float | None]]:
    """Both searches of one seed, then (with `flags_train`) each one's best retrained once.

    Returns:
      Algorithm -> (its trials.csv rows, its best row, the best's test video accuracy).
    """
    dirs = {name: study_dir(FLAGS.output_dir, seed, name) for name in ALGORITHMS}
    run_search("tournament", dirs["tournament"], seed, [])
    run_search("random", dirs["random"], seed, [f"--compare_study={dirs['tournament']}"])
    results = {}
    for name in ALGORITHMS:
        rows = read_trials(dirs[name])
        best, test = best_row(rows), None
        if flags_train is not None and best is not None:
            folder = retrain_folder(dirs[name], best)
            test = retrain(folder, best["architecture"], training_seed, flags_train)[
                "video_accuracy"
            ]
        feasible = sum(1 for r in rows if r["fitness"])
        trial = f" (trial {best['number']})" if best else ""
        retrained = "" if test is None else f"; retrained: test video accuracy {test}"
        print(
            f"seed {seed} {name}: {len(rows)} candidates, {feasible} feasible, best "
            f"validation video accuracy {best_fitness(rows)}{trial}{retrained}",
            flush=True,
        )
        results[name] = (rows, best, test)
    return results


def best_over_training_seeds(
    bests: dict[tuple[int, str], dict | None],
    flags_train: list[str] | None,
    training_seeds: list[int],
) -> dict | None:
    """The overall best, retrained with every training seed (None without --retrain)."""
    found = overall_best(bests)
    if flags_train is None or found is None:
        return None
    seed, name, row = found
    folder = retrain_folder(study_dir(FLAGS.output_dir, seed, name), row)
    tests = [
        retrain(folder, row["architecture"], s, flags_train)["video_accuracy"]
        for s in training_seeds
    ]
    return {
        "search_seed": seed,
        "algorithm": name,
        "trial": int(row["number"]),
        "validation_video_accuracy": fitness(row),
        "params": int(row["params"]) if row.get("params") else None,
        "latency_ms": float(row["latency_ms"]) if row.get("latency_ms") else None,
        "training_seeds": training_seeds,
        "test_video_accuracy": tests,
        **spread(tests, "test_video_accuracy"),
    }


def bench(seeds: list[int], flags_train: list[str] | None, training_seeds: list[int]) -> dict:
    """Every seed's searches (and retrainings), then the summary, comparison and figure."""
    runs = {name: [] for name in ALGORITHMS}
    tests = {name: [] for name in ALGORITHMS}
    bests = {}
    for seed in seeds:
        for name, (rows, best, test) in run_seed(seed, flags_train, training_seeds[0]).items():
            runs[name].append(rows)
            tests[name].append(test)
            bests[(seed, name)] = best
    retrained = flags_train is not None
    summaries = {
        name: summarize(runs[name], tests[name] if retrained else None) for name in ALGORITHMS
    }
    validation = [summaries[n]["best_validation_video_accuracy"] for n in ALGORITHMS]
    medians = [summaries[n]["median_validation_video_accuracy"] for n in ALGORITHMS]
    comparison = {
        "validation": search_stats.paired_comparison(*validation),
        "median_validation": search_stats.paired_comparison(*medians),
        "test": search_stats.paired_comparison(tests["tournament"], tests["random"])
        if retrained
        else None,
    }
    path = os.path.join(FLAGS.output_dir, records.REPORT_PNG)
    bands = {
        f"{name} ({len(seeds)} seeds)": search_stats.best_so_far_band(
            [trained_fitness(rows) for rows in runs[name]]
        )
        for name in ALGORITHMS
    }
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    report.plot_bands(
        path, bands, f"{FLAGS.flagfile_search}: {FLAGS.num_trials} candidates per search"
    )
    return {
        "flagfile": FLAGS.flagfile_search,
        "flagfile_train": FLAGS.flagfile_train if retrained else None,
        "num_trials": FLAGS.num_trials,
        "search_seeds": seeds,
        "training_seeds": training_seeds if retrained else None,
        **summaries,
        "comparison": comparison,
        "overall_best": best_over_training_seeds(bests, flags_train, training_seeds),
        "report": path,
        "machine": perf.machine_description(),
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _triple(summary: dict, name: str) -> str:
    return " / ".join(_fmt(summary[f"{name}_{k}"]) for k in ("min", "mean", "max"))


def comparison_line(what: str, c: dict) -> str:
    """One paired comparison (tournament minus random over the seeds) in words."""
    if not c["n"]:
        return f"tournament - random, {what}: no seed with both figures."
    low, high = c["interval"]
    return (
        f"tournament - random, {what}: mean difference {c['mean_difference']:+.3f} "
        f"({c['confidence']:.0%} bootstrap interval {low:+.3f} to {high:+.3f}); "
        f"{c['wins']} higher, {c['losses']} lower, {c['ties']} tied over {c['n']} seeds; "
        f"sign test p = {c['sign_test_p']:.3f}"
    )


def print_report(result: dict) -> None:
    """The per-algorithm table, the paired comparisons and the overall best."""
    print(
        "| algorithm | best validation video accuracy, min / mean / max | retrained test "
        "video accuracy, min / mean / max | feasible | median s per candidate |"
    )
    print("|---|---|---|---|---|")
    for name in ALGORITHMS:
        r = result[name]
        costs = ", ".join(f"{k[:-2]} {v}" for k, v in r["median_seconds"].items() if v is not None)
        print(
            f"| {name} | {_triple(r, 'best_validation_video_accuracy')} | "
            f"{_triple(r, 'test_video_accuracy')} | {r['feasible_share']:.0%} | {costs} |"
        )
    print(comparison_line("best validation video accuracy", result["comparison"]["validation"]))
    print(
        comparison_line(
            "median validation video accuracy of the trained candidates",
            result["comparison"]["median_validation"],
        )
    )
    if result["comparison"]["test"] is not None:
        print(comparison_line("retrained test video accuracy", result["comparison"]["test"]))
    best = result["overall_best"]
    if best is not None:
        tests = ", ".join(
            f"seed {s}: {_fmt(t)}"
            for s, t in zip(best["training_seeds"], best["test_video_accuracy"])
        )
        print(
            f"overall best: search seed {best['search_seed']} {best['algorithm']} trial "
            f"{best['trial']}, validation {_fmt(best['validation_video_accuracy'])}; retrained "
            f"test video accuracy {tests} (min / mean / max {_triple(best, 'test_video_accuracy')})"
        )
    print(f"figure: {result['report']}")


def integers_flag(flag: str, example: str) -> list[int]:
    """A list flag's values as integers; ValueError naming the flag."""
    values = FLAGS[flag].value
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        numbers = []
    if not numbers:
        raise ValueError(f"--{flag}={','.join(values)}; expected integers, e.g. {example}.")
    return numbers


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        seeds = integers_flag("search_seeds", "0,1,2,3,4")
        training_seeds = integers_flag("training_seeds", "1,2,3")
        flags_train = None
        if FLAGS.retrain:
            flags_train = train_flags(FLAGS.flagfile_train, FLAGS.flagfile_search)
        result = bench(seeds, flags_train, training_seeds)
        atomic.write_json(os.path.join(FLAGS.output_dir, RESULT_JSON), result)
    except ValueError as e:
        sys.exit(f"bench_search: {e}")
    print_report(result)
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
