"""Clip and video accuracy, top-5, per-class accuracy and the confusion matrix."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np

from tvn_tf import atomic


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def average_clip_scores(scores: np.ndarray, video_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Averages the scores (e.g. softmax) of the clips of each video.

    Args:
      scores: [num_clips_total, num_classes] clip scores.
      video_ids: [num_clips_total] video id of each clip (str or bytes).

    Returns:
      (ids, mean_scores): the sorted unique ids and [len(ids), num_classes].
    """
    ids, inverse = np.unique(np.asarray(video_ids), return_inverse=True)
    sums = np.zeros((len(ids), scores.shape[1]), np.float64)
    np.add.at(sums, inverse, scores)
    return ids, sums / np.bincount(inverse, minlength=len(ids))[:, None]


def classification_metrics(
    clip_logits: np.ndarray, clip_labels: np.ndarray, video_ids: np.ndarray, num_classes: int
) -> dict:
    """Accuracy of clips and of videos (softmax averaged over each video's clips).

    Args:
      clip_logits: [clips, classes] logits of every evaluated clip (and crop).
      clip_labels: [clips] true labels.
      video_ids: [clips] the video each clip came from.
      num_classes: Width of the classifier.

    Returns:
      A dict: clip_accuracy, video_accuracy, top5_accuracy (video level),
      num_test_videos, num_test_clips, per_class_accuracy (video level; None
      for a class without test videos) and confusion (rows: true class,
      columns: predicted, video counts).
    """
    clip_labels = np.asarray(clip_labels)
    probs = softmax(np.asarray(clip_logits, np.float64))
    ids, video_probs = average_clip_scores(probs, video_ids)
    first_clip = {vid: i for i, vid in reversed(list(enumerate(np.asarray(video_ids))))}
    video_labels = np.array([clip_labels[first_clip[vid]] for vid in ids])
    predicted = video_probs.argmax(axis=1)
    top5 = np.argsort(-video_probs, axis=1)[:, :5]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (video_labels, predicted), 1)
    totals = confusion.sum(axis=1)
    per_class = [None if t == 0 else float(confusion[c, c] / t) for c, t in enumerate(totals)]
    return {
        "clip_accuracy": float(np.mean(probs.argmax(axis=1) == clip_labels)),
        "video_accuracy": float(np.mean(predicted == video_labels)),
        "top5_accuracy": float(np.mean([label in top for label, top in zip(video_labels, top5)])),
        "num_test_videos": int(len(ids)),
        "num_test_clips": int(len(clip_labels)),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
    }


def write_confusion(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], prefix: str, title: str = ""
) -> list[str]:
    """Writes the confusion matrix as `prefix.csv` and `prefix.png`; returns the paths."""
    matrix = np.asarray(confusion)
    csv_path, png_path = prefix + ".csv", prefix + ".png"
    tmp = atomic.temporary_path(csv_path)
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, matrix):
            writer.writerow([name, *row.tolist()])
    os.replace(tmp, csv_path)

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n = len(class_names)
    size = max(5.0, 0.22 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    rows = matrix.sum(axis=1, keepdims=True)
    ax.imshow(matrix / np.maximum(rows, 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), class_names, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if count > rows[i, 0] / 2 else "black",
                )
    ax.set_title(title or "Confusion matrix (videos, row-normalised colour)")
    fig.tight_layout()
    tmp = atomic.temporary_path(png_path) + ".png"  # savefig picks the format by suffix.
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png_path)
    return [csv_path, png_path]


def classes_below(
    per_class_accuracy: Sequence[float | None], class_names: Sequence[str], threshold: float = 0.5
) -> list[str]:
    """Names of the classes whose accuracy is below `threshold` (classes without videos skipped)."""
    return [
        name
        for name, accuracy in zip(class_names, per_class_accuracy)
        if accuracy is not None and accuracy < threshold
    ]


def per_class_lines(
    per_class_accuracy: Sequence[float | None],
    class_names: Sequence[str],
    confusion: Sequence[Sequence[int]],
) -> list[str]:
    """One line per class, worst first: accuracy, videos, and what its errors were called.

    A run that leaves a class unlearned shows it here in the terminal, with the
    class that swallowed it, without opening the confusion matrix.
    """
    matrix = np.asarray(confusion)
    width = max(len(name) for name in class_names)
    order = sorted(
        (c for c, a in enumerate(per_class_accuracy) if a is not None),
        key=lambda c: (per_class_accuracy[c], class_names[c]),
    )
    lines = []
    for c in order:
        row = matrix[c]
        line = f"  {class_names[c]:<{width}}  {per_class_accuracy[c]:6.1%}  {row[c]}/{row.sum()}"
        wrong = row.copy()
        wrong[c] = 0
        if wrong.any():
            line += f"  (most often taken for {class_names[int(wrong.argmax())]})"
        lines.append(line)
    return lines
