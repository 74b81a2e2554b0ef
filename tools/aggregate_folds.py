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

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from tvn_tf import model_dir as model_dir_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("glob", None, "A glob of model dirs, instead of listing them.")

KEYS = ("video_accuracy", "clip_accuracy", "top5_accuracy")


def aggregate(model_dirs: list[str]) -> dict:
    """Reads each run's metrics.json; returns per-fold rows and mean/std per metric.

    Raises:
      ValueError: if a directory has no metrics.json, or none is given.
    """
    if not model_dirs:
        raise ValueError("no model dirs given; pass them as arguments or with --glob.")
    rows = []
    for model_dir in model_dirs:
        path = os.path.join(model_dir, model_dir_lib.METRICS)
        try:
            with open(path) as f:
                metrics = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"{path}: missing; has this fold finished training?") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e}).") from None
        rows.append(
            {
                "model_dir": model_dir,
                "groups": metrics.get("groups"),
                "num_test_videos": metrics.get("num_test_videos"),
                **{k: metrics[k] for k in KEYS},
            }
        )
    summary = {"folds": len(rows), "num_test_videos": sum(r["num_test_videos"] or 0 for r in rows)}
    for key in KEYS:
        values = [r[key] for r in rows]
        summary[f"{key}_mean"] = statistics.fmean(values)
        summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"rows": rows, "summary": summary}


def main(argv):
    dirs = sorted(glob.glob(FLAGS.glob)) if FLAGS.glob else argv[1:]
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
    app.run(main)
