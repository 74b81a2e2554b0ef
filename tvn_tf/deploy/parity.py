"""How far each exported variant is from the Keras model it came from.

For every variant, on the same evaluation clips: the largest absolute
difference of its logits from the Keras model's, the share of clips whose top-1
class agrees with the Keras model's (with its 95% interval: on 160 clips a
98% agreement has the interval 94.5-99.3%), and its own clip accuracy, next
to the Keras model's accuracy. The report is `parity.json` in an export:

    {"num_clips": 120, "compared": "logits",
     "keras": {"accuracy": 0.93},
     "float32": {"max_abs_diff": 2e-06, "top1_agreement": 1.0,
                 "top1_agreement_interval95": [0.969, 1.0], "accuracy": 0.93},
     "int8": {"max_abs_diff": 0.41, "top1_agreement": 0.99,
              "top1_agreement_interval95": [0.952, 0.998], "accuracy": 0.92,
              "latency_p50_ms": 13.7, "float_layers": ["logits"],
              "xnnpack_ops": 71, "fallback_ops": [],
              "logit_bias_correction": [0.013, -0.056, ...],
              "top1_agreement_before_bias_correction": 0.98}, ...}

`export` adds each variant's median latency (batch 1, the report's `threads`),
the layers it keeps in float (`--int8_denylist`), how many of its ops XNNPACK
runs and the types of those that fall back to TFLite's kernels
(`tflite.delegation`); for int8, the per-class logit shift its bias
correction took out and the agreement without it
(`int8_corrections.correct_logit_bias`).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping

import numpy as np


def keras_logits(model, clips: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """The Keras model's logits `[n, num_classes]` for clips `[n, frames, size, size, 3]`."""
    import tensorflow as tf

    forward = tf.function(
        lambda x: model(x, training=False), reduce_retracing=True, autograph=False
    )
    return np.concatenate(
        [
            forward(tf.constant(clips[i : i + batch_size])).numpy()
            for i in range(0, len(clips), batch_size)
        ]
    )


def interval95(share: float, count: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a share (agreement) measured on `count` clips.

    Wilson's rather than the normal approximation's: it stays inside [0, 1]
    and is not zero wide at 100%. Clips of one video are correlated, so the
    true uncertainty is larger; this is the least of it. (SciPy's
    `binomtest(...).proportion_ci(method="wilson")` computes the same; SciPy
    is not among the dependencies, and the formula is two lines.)
    """
    if count <= 0:
        return 0.0, 1.0
    z2 = 1.96**2
    center = (share + z2 / (2 * count)) / (1 + z2 / count)
    half = math.sqrt(share * (1 - share) / count + z2 / (4 * count**2)) * 1.96 / (1 + z2 / count)
    return max(0.0, center - half), min(1.0, center + half)


def variant_parity(reference: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> dict:
    """`{"max_abs_diff", "top1_agreement", "top1_agreement_interval95", "accuracy"}`."""
    if reference.shape != logits.shape:
        raise ValueError(f"logits have shape {logits.shape}; expected {reference.shape}.")
    predicted = logits.argmax(-1)
    agreement = float((predicted == reference.argmax(-1)).mean())
    return {
        "max_abs_diff": float(np.abs(logits - reference).max()),
        "top1_agreement": agreement,
        "top1_agreement_interval95": [
            round(bound, 4) for bound in interval95(agreement, len(predicted))
        ],
        "accuracy": float((predicted == labels).mean()),
    }


def parity_report(
    reference: np.ndarray, labels: np.ndarray, variants: Mapping[str, np.ndarray]
) -> dict:
    """The `parity.json` content.

    Args:
      reference: The Keras model's logits `[n, num_classes]`.
      labels: The true labels `[n]`.
      variants: Each variant's logits on the same clips, by variant name.
    """
    labels = np.asarray(labels)
    report = {
        "num_clips": int(len(labels)),
        "compared": "logits",
        "keras": {"accuracy": float((reference.argmax(-1) == labels).mean())},
    }
    for name, logits in variants.items():
        report[name] = variant_parity(reference, np.asarray(logits), labels)
    return report


def describe_variant(name: str, report: dict) -> str:
    """One line on a variant of a `parity.json` report, as `export` prints it."""
    entry = report[name]
    line = f"{name}: top-1 agreement with Keras {entry['top1_agreement']:.1%}"
    if "top1_agreement_interval95" in entry:
        low, high = entry["top1_agreement_interval95"]
        line += f" (95%: {low:.1%}-{high:.1%})"
    line += (
        f", accuracy {entry['accuracy']:.1%} (Keras {report['keras']['accuracy']:.1%}) "
        f"on {report['num_clips']} clips"
    )
    if "latency_p50_ms" in entry:
        line += f", {entry['latency_p50_ms']:.2f} ms p50 ({report.get('threads', '?')} threads)"
    if entry.get("float_layers"):
        line += f", float layers: {', '.join(entry['float_layers'])}"
    if "top1_agreement_before_bias_correction" in entry:
        before = entry["top1_agreement_before_bias_correction"]
        line += f", agreement before bias correction {before:.1%}"
    if entry.get("fallback_ops"):
        counts = collections.Counter(entry["fallback_ops"])
        ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items())
        line += f", NOT in XNNPACK: {ops}"
    elif "xnnpack_ops" in entry:
        line += f", all {entry['xnnpack_ops']} ops in XNNPACK"
    return line
