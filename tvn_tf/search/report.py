"""What a person looks at after a search: trials.csv, best_architecture.json, search_report.png."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

import optuna

from tvn_tf import atomic
from tvn_tf.search import config as config_lib
from tvn_tf.search import records
from tvn_tf.search import storage as storage_lib

CSV_FIELDS = (
    "number",
    "state",
    "feasible",
    "fitness",
    "latency_ms",
    "params",
    "flops",
    "parent",
    "mutation",
    "reason",
    "canonical",
    "image_size",
    "num_frames",
    "frame_stride",
    "num_blocks",
    "build_s",
    "convert_s",
    "time_s",
    "train_s",
    "evaluate_s",
    "worker",
    "architecture",
)


def trial_rows(trials) -> list[dict[str, Any]]:
    """One row per candidate (trials failed as over budget or as dead workers' are left out)."""
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        a = t.user_attrs
        if a.get(records.OVER_BUDGET) or records.ARCHITECTURE not in a:
            continue
        arch, timings = a[records.ARCHITECTURE], a.get(records.TIMINGS, {})
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "feasible": a.get(records.FEASIBLE),
                "fitness": t.value if t.state.name == "COMPLETE" else None,
                "latency_ms": a.get(records.LATENCY_MS),
                "params": a.get(records.PARAMS),
                "flops": a.get(records.FLOPS),
                "parent": a.get(records.PARENT),
                "mutation": a.get(records.MUTATION),
                "reason": a.get(records.REASON),
                "canonical": a.get(records.CANONICAL),
                "image_size": arch["image_size"],
                "num_frames": arch["num_frames"],
                "frame_stride": arch["frame_stride"],
                "num_blocks": len(arch["blocks"]),
                **{
                    f"{k}_s": timings.get(k)
                    for k in ("build", "convert", "time", "train", "evaluate")
                },
                "worker": a.get(records.WORKER),
                "architecture": json.dumps(arch, sort_keys=True),
            }
        )
    return rows


def write_csv(path: str, rows) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, out.getvalue())


def best_so_far(rows) -> tuple[list[int], list[float]]:
    """Best fitness after each candidate, in trial order (0 until a feasible one trains)."""
    xs, ys, best = [], [], 0.0
    for i, row in enumerate(rows, 1):
        if row["fitness"] is not None:
            best = max(best, row["fitness"])
        xs.append(i)
        ys.append(best)
    return xs, ys


def pareto_front(points) -> list[tuple[float, float]]:
    """(latency, fitness) points no other point beats on both (faster and at least as accurate)."""
    front, best = [], -1.0
    for latency, fitness in sorted(points, key=lambda p: (p[0], -p[1])):
        if fitness > best:
            front.append((latency, fitness))
            best = fitness
    return front


def plot(path: str, rows, max_latency_ms: float, title: str, compare=None) -> None:
    """Fitness against latency (Pareto front, limit line) and best fitness over trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    trained = [(r["latency_ms"], r["fitness"]) for r in rows if r["fitness"] is not None]
    infeasible = [r["latency_ms"] for r in rows if r["feasible"] is False and r["latency_ms"]]
    if trained:
        left.scatter(*zip(*trained), s=14, alpha=0.6, label="trained candidates")
        front = pareto_front(trained)
        left.step(*zip(*front), where="post", color="C3", label="Pareto front")
    if infeasible:
        left.scatter(
            infeasible,
            [0] * len(infeasible),
            marker="x",
            s=14,
            color="grey",
            label="infeasible (not trained)",
        )
    if max_latency_ms:
        left.axvline(
            max_latency_ms, color="k", linestyle="--", label=f"limit {max_latency_ms:g} ms"
        )
    latencies = [r["latency_ms"] for r in rows if r["latency_ms"]]
    if latencies and max(latencies) > 20 * min(latencies):
        left.set_xscale("log")  # Candidates span orders of magnitude.
    left.set_xlabel("measured latency (ms per clip)")
    left.set_ylabel("validation video accuracy")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    xs, ys = best_so_far(rows)
    right.plot(xs, ys, label=title)
    if compare is not None:
        cx, cy = best_so_far(compare[1])
        right.plot(cx, cy, label=compare[0])
    right.set_xlabel("candidates evaluated")
    right.set_ylabel("best validation video accuracy")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    _save_figure(fig, path)


def load_compare(spec: str) -> tuple[str, list[dict]]:
    """`--compare_study`: a search's --model_dir, or STORAGE_URL[#STUDY_NAME].

    Returns:
      The curve's label ("ALGORITHM (STUDY)") and the study's `trial_rows`.

    Raises:
      ValueError: one line naming --compare_study, when it names no study.
    """
    url, _, name = spec.partition("#")
    if "://" not in url:
        url = storage_lib.storage_url("", url)
        if not os.path.exists(storage_lib.sqlite_path(url)):
            raise ValueError(f"--compare_study={spec}: no {records.STUDY_DB} there.")
    path = storage_lib.sqlite_path(url)
    if path is not None and not os.path.isfile(path):  # Never a new database for a comparison.
        raise ValueError(f"--compare_study={spec}: no study database at {path}.")
    storage = storage_lib.open_storage(url, flag="--compare_study")
    with storage_lib.quiet_optuna():
        names = storage_lib.study_names(storage)
        if not names or (name and name not in names):
            raise ValueError(
                f"--compare_study={spec}: no such study (the database has "
                f"{', '.join(names) or 'none'})."
            )
        study = optuna.load_study(study_name=name or names[0], storage=storage)
    algorithm = study.user_attrs.get(records.SETTINGS_ATTR, {}).get("algorithm", "other")
    return f"{algorithm} ({study.study_name})", trial_rows(study.get_trials(deepcopy=False))


def write_all(study: optuna.Study, config: config_lib.SearchConfig) -> None:
    """trials.csv, best_architecture.json and search_report.png in the model dir."""
    os.makedirs(config.model_dir, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    rows = trial_rows(trials)
    write_csv(os.path.join(config.model_dir, records.TRIALS_CSV), rows)
    best = records.best_trial(trials)
    if best is not None:
        atomic.write_json(
            os.path.join(config.model_dir, records.BEST_ARCHITECTURE),
            best.user_attrs[records.ARCHITECTURE],
        )
    compare = load_compare(config.compare_study) if config.compare_study else None
    plot(
        os.path.join(config.model_dir, records.REPORT_PNG),
        rows,
        config.max_latency_ms,
        f"{config.algorithm} ({config.study_name})",
        compare,
    )


def _save_figure(fig, path: str) -> None:
    """Writes `fig` as a PNG under a temporary name, then renames it into place."""
    import matplotlib.pyplot as plt

    tmp = atomic.temporary_path(path)
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def plot_bands(path: str, bands: dict[str, tuple], title: str) -> None:
    """Several algorithms' best-so-far curves over seeds: median line, min-max shading.

    Args:
      path: The PNG to write (atomically).
      bands: Label -> `statistics.best_so_far_band`'s (x, median, low, high).
      title: The figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    for i, (label, (x, median, low, high)) in enumerate(bands.items()):
        if not len(x):
            continue
        # Steps centred on each candidate, so that the last one shows too.
        ax.step(x, median, where="mid", color=f"C{i}", label=f"{label}: median")
        ax.fill_between(
            x, low, high, step="mid", color=f"C{i}", alpha=0.2, label=f"{label}: min-max"
        )
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("candidates trained")
    ax.set_ylabel("best validation video accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_scatter(path: str, x, y, xlabel: str, ylabel: str, title: str) -> None:
    """One point per candidate, `y` against `x` (accuracies), with the diagonal for reference.

    Both axes run from 0 to the largest value rounded up to a tenth (at most 1).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = min(1.0, math.ceil(max([*x, *y, 0.0]) * 10 - 1e-9) / 10) or 1.0
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    ax.scatter(x, y, s=24, alpha=0.8)
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(-0.02 * top, 1.02 * top)
    ax.set_ylim(-0.02 * top, 1.02 * top)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save_figure(fig, path)
