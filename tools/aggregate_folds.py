"""Mean and standard deviation of cross-validation runs (e.g. the 25 UCF50 folds).

    python tools/aggregate_folds.py runs/tvn1/fold*
    python tools/aggregate_folds.py --glob='runs/tvn1/fold*'

Reads MODEL_DIR/metrics.json of each run (written by tvn_tf.train or
tvn_tf.evaluate) and prints one row per fold, then the mean and the sample
standard deviation over folds; the last line is one JSON object.
"""

from __future__ import annotations

import glob
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import flags  # noqa: E402

from tvn_tf import cli  # noqa: E402

cli.start()

from tvn_tf import model_dir as model_dir_lib  # noqa: E402  (after cli.start)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the tool's flags (not on import)."""
    flags.DEFINE_string("glob", None, "A glob of model dirs, instead of listing them.")


KEYS = ("video_accuracy", "clip_accuracy", "top5_accuracy")


def _read_fold(model_dir: str) -> dict:
    """One run's row: its metrics.json, checked to be one test fold's figures."""
    path = os.path.join(model_dir, model_dir_lib.METRICS)
    try:
        with open(path) as f:
            metrics = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; has this fold finished training?") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read it ({e}).") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}).") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected a JSON object of metrics.")
    for key in KEYS:
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{path}: '{key}' is {value!r}; expected a number in [0, 1].")
    split, groups = metrics.get("split", "test"), metrics.get("groups")
    if split != "test":
        raise ValueError(
            f"{path}: holds {split} metrics, not a test fold's; evaluate the run on its test "
            "groups (tvn_tf.evaluate --groups=test)."
        )
    if not isinstance(groups, list) or not groups:
        raise ValueError(
            f"{path}: no 'groups' (the test groups of the run), so its fold cannot be told "
            "apart from the others; evaluate the run again with tvn_tf.evaluate."
        )
    return {
        "model_dir": model_dir,
        "groups": groups,
        "num_test_videos": metrics.get("num_test_videos"),
        **{k: metrics[k] for k in KEYS},
    }


def check_folds(rows: list[dict]) -> None:
    """Refuses runs that are not distinct folds: the same folder twice, or shared test groups.

    Averaging runs that tested the same groups would report one fold's figure
    (or a mix) as a cross-validation mean.
    """
    seen_dirs: dict[str, str] = {}
    tested: dict[str, str] = {}
    for row in rows:
        real = os.path.realpath(row["model_dir"])
        if real in seen_dirs:
            raise ValueError(
                f"{row['model_dir']} is given twice (also as {seen_dirs[real]}); "
                "pass each fold's run once."
            )
        seen_dirs[real] = row["model_dir"]
        repeated = sorted({str(g) for g in row["groups"]} & set(tested))
        if repeated:
            other = tested[repeated[0]]
            raise ValueError(
                f"{row['model_dir']} and {other} both tested group(s) {', '.join(repeated)}; "
                "folds must test disjoint groups (one run per fold, e.g. --split=logo "
                "--fold=1..25)."
            )
        for group in row["groups"]:
            tested[str(group)] = row["model_dir"]


def aggregate(model_dirs: list[str]) -> dict:
    """Reads each run's metrics.json; returns per-fold rows and mean/std per metric.

    Raises:
      ValueError: none given; a directory without readable test metrics; or runs
        that are not distinct folds (`check_folds`).
    """
    if not model_dirs:
        raise ValueError("no model dirs given; pass them as arguments or with --glob.")
    rows = [_read_fold(model_dir) for model_dir in model_dirs]
    check_folds(rows)
    summary = {"folds": len(rows), "num_test_videos": sum(r["num_test_videos"] or 0 for r in rows)}
    for key in KEYS:
        values = [r[key] for r in rows]
        summary[f"{key}_mean"] = statistics.fmean(values)
        summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"rows": rows, "summary": summary}


def main(argv):
    dirs = sorted(glob.glob(FLAGS.glob)) if FLAGS.glob else argv[1:]
    if FLAGS.glob and not dirs:
        sys.exit(f"aggregate_folds: --glob={FLAGS.glob} matches nothing.")
    try:
        result = aggregate(dirs)
    except ValueError as e:
        sys.exit(f"aggregate_folds: {e}")
    print(
        f"{'model_dir':40s} {'groups':>10s} {'videos':>7s} {'video acc':>10s} "
        f"{'clip acc':>9s} {'top-5':>7s}"
    )
    for r in result["rows"]:
        print(
            f"{r['model_dir'][-40:]:40s} {str(r['groups']):>10s} {r['num_test_videos']!s:>7s} "
            f"{r['video_accuracy']:10.4f} {r['clip_accuracy']:9.4f} {r['top5_accuracy']:7.4f}"
        )
    s = result["summary"]
    print(
        f"{s['folds']} folds, {s['num_test_videos']} test videos: video accuracy "
        f"{s['video_accuracy_mean']:.4f} +/- {s['video_accuracy_std']:.4f}, clip accuracy "
        f"{s['clip_accuracy_mean']:.4f} +/- {s['clip_accuracy_std']:.4f}, top-5 "
        f"{s['top5_accuracy_mean']:.4f} +/- {s['top5_accuracy_std']:.4f}"
    )
    if s["folds"] != 25:
        print(f"note: the UCF50 protocol has 25 folds; {s['folds']} given.", file=sys.stderr)
    print(json.dumps(s))


if __name__ == "__main__":
    cli.run(main, define_flags)
