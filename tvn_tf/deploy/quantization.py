"""Which layers the int8 model keeps in float, and the int8 model export ships.

The conversion policy on top of the debugger's analysis
(`tvn_tf.deploy.int8_analysis`): `--int8_denylist` (`parse_denylist`;
`check_denylist_names` refuses a typo before minutes of calibration),
`--int8_sigmoid_ranges` (`SIGMOID_RANGES`) and `--int8_bias_correction`.

`choose_denylist` picks the layers for `--int8_denylist=auto`: always the
classifier, and the network's tail (`tail_layers`: the head and the last
block application but for its gate convolutions) where it is cheap
(`tail_flops_share` at most `MAX_TAIL_FLOPS_SHARE`), then the worst layers of
the report by `rmse_over_scale`, added one at a time while the int8 model
still disagrees with the float one on the selection clips, at most
`max_added_layers` of them. `auto` keeps the sigmoid inputs' ranges cut
(`int8_corrections.narrow_sigmoid_inputs`) unless the selection clips agree
better without the cut.

    analysis = int8_analysis.analyze(saved_model_dir, calibration_clips)
    share = tail_flops_share(flops.count_flops(keras_model))
    tail = tail_layers(analysis) if share <= MAX_TAIL_FLOPS_SHARE else []
    denylist, narrow, _ = choose_denylist(analysis, selection_clips, reference_logits, tail=tail)
    data = analysis.quantized_model(denylist, narrow=narrow)

`int8_model` runs all of it for `export` and returns an `Int8Model`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import numpy as np

from tvn_tf.deploy import int8_corrections
from tvn_tf.deploy import quantization_report as report_lib
from tvn_tf.models import architecture

# `--int8_sigmoid_ranges`: cut where the int8 sigmoid saturates, as
# calibrated, or (auto) cut unless `choose_denylist` finds calibrated ones
# agree better.
SIGMOID_RANGES = ("auto", "cut", "calibrated")
# `tail_layers`: the scopes of a block's gates, whose convolutions run on one
# pooled vector per clip, and the ops that hold weights.
GATE_SCOPES = (architecture.SQUEEZE_EXCITE_SCOPE, architecture.CONTEXT_GATE_SCOPE)
_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_BLOCK = re.compile(r"^block(\d+)_(\d+)/")
# `auto` keeps the tail in float only where the last block application holds
# at most this share of the model's FLOPs. TVN-1's holds 4.0%, and keeping it
# in float (its gate convolutions int8) cost 8-9% over the fully quantized
# model at 224 (2 threads, AMD EPYC with AVX-512 VNNI; docs/design.md): a float FLOP
# took about 3 times an int8 one, so 5% should cost about 10%, inside the 15%
# a user may pay for agreement.
MAX_TAIL_FLOPS_SHARE = 0.05


def parse_denylist(value: str) -> str | tuple[str, ...]:
    """`--int8_denylist`: "auto", "none" (-> `()`), or comma-separated names and patterns."""
    value = value.strip()
    if value == "auto":
        return "auto"
    if value == "none":
        return ()
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise ValueError(f"--int8_denylist={value!r}: expected auto, none or layer names.")
    return names


def check_denylist_names(layers: Sequence[str], model) -> None:
    """Refuses, before any conversion, denylist entries that can name no layer of `model`.

    The names `Analysis.expand` takes are known only after calibration, but
    each starts with a top-level Keras layer of the model (`block3_1/...`,
    `head/Mean`; the classifier is `logits`), or is a TFLite tensor name under
    the model's own scope. An entry that starts otherwise, or a pattern whose
    literal start fits no layer, is refused here with `expand`'s message, so
    a typo costs seconds, not a calibration. `expand` still checks the rest.

    Raises:
      ValueError: naming `--int8_denylist` and the entries that fit no layer.
    """
    top = [layer.name for layer in model.layers if layer.name != "clips"] + ["logits"]
    scopes = (model.name, f"{model.name}_1", "StatefulPartitionedCall")
    unknown = []
    for name in layers:
        first = name.split(";")[0].split("/")[0]
        if first.startswith(scopes):
            continue  # A tensor name, as the report's `tensor` column gives it.
        if any(c in name for c in "*?["):
            prefix = re.split(r"[*?\[]", name, maxsplit=1)[0]
            fits = any(
                (f"{layer}/").startswith(prefix) or prefix.startswith(f"{layer}/") for layer in top
            )
        else:
            fits = name == "logits" or ("/" in name and first in top)
        if not fits:
            unknown.append(name)
    if unknown:
        blocks = [layer for layer in top if _BLOCK.match(layer + "/")]
        example = blocks[-1] if blocks else top[0]
        raise ValueError(
            f"--int8_denylist: no quantized layer named {', '.join(unknown)}; the layers are "
            f"the `layer` column of {report_lib.REPORT_FILE}: under the model's layers "
            f"({', '.join(top)}), e.g. {example}/..., or patterns over it such as "
            f"{example}/*."
        )


def tail_layers(analysis) -> list[str]:
    """The head and the last block application's layers, but for its gate convolutions.

    Where int8 loses a weak model's decisions, the error is in the tail: the
    last block's gates and pooled features feed the classifier directly, with
    nothing after them to damp their rounding, and keeping any one op of that
    path in float does not help (its output is quantized again for the next
    int8 op); only the whole path does (docs/design.md, "int8: the tail"). The
    last block runs on the fewest positions, so its convolutions are cheap
    in float. Its gate convolutions (squeeze-excitation and context gate,
    most of TVN-1's weights) run on one pooled vector per clip: a
    matrix-vector product whose time is reading the weights, 4 times the
    bytes in float, so they stay int8, between a quantize and a dequantize
    (two pairs in TVN-1: 0.08 ms of its 9.1 ms at 224 with the input's
    quantize and the tail's dequantize, on an AMD EPYC).

    Args:
      analysis: An `int8_analysis.Analysis`.

    Returns:
      Short layer names (`LayerError.layer`); empty when the model has no
      block.
    """
    blocks = {
        (int(m.group(1)), int(m.group(2))): m.group(0)
        for m in (_BLOCK.match(layer.layer) for layer in analysis.layers)
        if m
    }
    if not blocks:
        return []
    last = blocks[max(blocks)]
    tail = []
    for layer in analysis.layers:
        if layer.layer.startswith("head/"):
            tail.append(layer.layer)
        elif layer.layer.startswith(last):
            scope = layer.layer[len(last) :].split("/")[0]
            if not (scope in GATE_SCOPES and layer.op in _WEIGHTED_OPS):
                tail.append(layer.layer)
    return tail


def tail_flops_share(flops) -> float:
    """The last block application's share of a TVN's forward FLOPs.

    Args:
      flops: The model's `flops.FlopCount` (`flops.count_flops`).
    """
    blocks = [f for name, f in flops.per_layer if _BLOCK.match(name + "/")]
    return blocks[-1] / flops.forward if blocks and flops.forward else 0.0


def agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Share of clips whose top-1 class in `logits` is the one in `reference`."""
    return float((np.argmax(logits, -1) == np.argmax(reference, -1)).mean())


def choose_denylist(
    analysis,
    clips: np.ndarray,
    reference: np.ndarray,
    *,
    tail: Sequence[str] = (),
    target_agreement: float = 0.99,
    max_added_layers: int = 3,
    min_rmse_over_scale: float = 1.0,
    threads: int = 2,
    correct_bias: bool = True,
    try_uncut: bool = True,
) -> tuple[list[str], bool, list[tuple[int, bool, float]]]:
    """Picks the layers to keep in float, and the sigmoid ranges (`--int8_denylist=auto`).

    Every model tried keeps the classifier and `tail` in float; after them,
    the worst layers are added one at a time while the int8 model's top-1
    agreement with `reference` on `clips` is under `target_agreement`
    (`_candidates`). Each denylist is tried with the sigmoid inputs' ranges
    cut (`Analysis.narrowed`) and, if that is under the target and there is
    anything to cut, as calibrated: the cut makes every gate closer to float,
    yet on one of three weak models it lowered held-out agreement (96.2% to
    94.3%) while the logits' RMS error fell, and the selection clips showed
    the same drop (96.1% to 94.5%). The model with the best agreement is
    returned: the shortest denylist, and the cut ranges, among equals.

    Args:
      analysis: An `int8_analysis.Analysis`.
      clips: Selection clips (training data, never the test clips).
      reference: The float model's logits on `clips`.
      tail: Layers kept in float with the classifier in every model tried
        (`tail_layers`, or none).
      target_agreement: Stop once agreement on `clips` reaches it.
      max_added_layers: At most this many layers added after the classifier and `tail`.
      min_rmse_over_scale: Only layers with this much int8 error (in steps) are added.
      threads: Interpreter threads.
      correct_bias: Judge each model with bias correction, as it will ship
        (`Analysis.quantized_model`).
      try_uncut: Also try the sigmoid ranges as calibrated (False: always cut).

    Returns:
      `(denylist, narrow, trace)`: the chosen layers, whether the sigmoid
      inputs' ranges are cut (`quantized_model`'s `narrow`), and (number of
      float layers, ranges cut, agreement) for each model tried.
    """
    from tvn_tf.deploy import tflite

    best, best_narrow, best_score, trace = [], True, -1.0, []
    for denylist in _candidates(analysis, tail, max_added_layers, min_rmse_over_scale):
        for narrow in (True, False) if analysis.narrowed and try_uncut else (True,):
            data = analysis.quantized_model(denylist, correct_bias=correct_bias, narrow=narrow)
            score = agreement(tflite.TFLiteRunner(data, threads=threads)(clips), reference)
            trace.append((len(denylist), narrow and bool(analysis.narrowed), score))
            if score > best_score:
                best, best_narrow, best_score = denylist, narrow, score
            if score >= target_agreement:
                return list(best), best_narrow, trace
    return list(best), best_narrow, trace


def _candidates(
    analysis, tail: Sequence[str], max_added_layers: int, min_rmse_over_scale: float
) -> list[list[str]]:
    """The denylists `choose_denylist` tries, in order: the classifier and `tail`, then one more layer each.

    The classifier is always kept in float, whatever the selection clips
    show: its rounding lands on the logits themselves (one output step, the
    logit range / 255, flips every clip whose two top logits are closer than
    that, several percent of a weak model's clips), while each inner layer's
    rounding is damped by the layers after it. It costs one small matrix
    product and puts a dequantize at the end. Selection clips are training
    clips, on which even a weak model is confident, so int8 agrees there
    (100% on a weak demo model) while it flips held-out clips: on all 1,280
    held-out clips of each of five weak demo models, the classifier in float
    raised agreement by 0.1 to 1.1 points, at no measurable latency. The tail
    (`tail_layers`) is kept for the same reason: on 1,280 held-out clips
    each, it raised agreement on three weak demo models trained on an Intel
    Xeon from 95.4-98.4% to 96.5-99.1%, and on three trained on an AMD EPYC
    from 98.8 / 95.3 / 96.4% to 99.1 / 97.3 / 98.6% (confident ones: 99.8%
    either way; 100% to 99.9%, one clip), while the selection clips could not
    tell (docs/design.md, "int8: the tail").
    """
    base = [analysis.output_layer] + [x for x in tail if x != analysis.output_layer]
    added = [
        layer.layer
        for layer in analysis.layers
        if layer.rmse_over_scale >= min_rmse_over_scale and layer.layer not in base
    ][:max_added_layers]
    return [base + added[:count] for count in range(len(added) + 1)]


@dataclasses.dataclass(frozen=True)
class Int8Model:
    """The full-int8 model `int8_model` makes, and what `parity.json` says of it.

    Attributes:
      data: The model (bias-corrected where asked and possible).
      float_layers: The layers it keeps in float.
      uncorrected: The same model without bias correction (`data` when not corrected).
      offsets: The per-class logit shift the correction took out; None: not corrected.
      narrowed: The sigmoid inputs whose range was cut, with their range before.
    """

    data: bytes
    float_layers: list[str]
    uncorrected: bytes
    offsets: np.ndarray | None
    narrowed: dict[str, tuple[float, float]]


def int8_model(
    analysis,
    *,
    denylist: str,
    sigmoid_ranges: str = "auto",
    bias_correction: bool = True,
    threads: int = 2,
    selection: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
    flops=None,
    log: Callable[[str], None] = lambda message: None,
) -> Int8Model:
    """The int8 model of `--int8_denylist`, `--int8_sigmoid_ranges` and `--int8_bias_correction`.

    `auto` judges each denylist on the selection clips, clips the calibration
    did not see, each with the bias correction that the shipped model gets.

    Args:
      analysis: From `int8_analysis.analyze` (with the sigmoid inputs found
        unless `sigmoid_ranges` is "calibrated").
      denylist: `--int8_denylist` (`parse_denylist`).
      sigmoid_ranges: One of `SIGMOID_RANGES`.
      bias_correction: Correct the classifier's bias for int8's mean logit shift.
      threads: Interpreter threads.
      selection: For `auto`: gives the selection clips and the float model's
        logits on them.
      flops: For `auto`: the Keras model's `flops.FlopCount` (`tail_flops_share`).
      log: Prints one progress line.
    """
    names, narrow = parse_denylist(denylist), True
    if names == "auto":
        tail = _auto_tail(analysis, flops, log)
        clips, reference = selection()
        names, narrow, trace = choose_denylist(
            analysis,
            clips,
            reference,
            tail=tail,
            threads=threads,
            correct_bias=bias_correction,
            try_uncut=sigmoid_ranges == "auto",
        )
        _log_trace(trace, bool(analysis.narrowed), log)
    else:  # Names and patterns (block3_1/*) -> the layers, as parity.json lists them.
        names = analysis.expand(names)
    narrowed = analysis.narrowed if narrow else {}
    _log_sigmoid_ranges(analysis, narrowed, sigmoid_ranges, log)
    data = analysis.quantized_model(names, correct_bias=bias_correction, narrow=narrow)
    log(f"int8 keeps in float: {', '.join(names) or 'nothing'}")
    offsets = analysis.logit_offsets(names, narrow) if bias_correction else None
    if offsets is None:
        return Int8Model(data, list(names), data, None, narrowed)
    log(
        "int8 bias correction: mean logit shift on the calibration clips taken out of the "
        f"classifier's bias (largest {abs(offsets).max():.3f})"
    )
    uncorrected = analysis.quantized_model(names, correct_bias=False, narrow=narrow)
    return Int8Model(data, list(names), uncorrected, offsets, narrowed)


def _auto_tail(analysis, flops, log: Callable[[str], None]) -> list[str]:
    """`tail_layers` where the last block is cheap enough in float, else none (logged)."""
    share, tail = tail_flops_share(flops), tail_layers(analysis)
    if share > MAX_TAIL_FLOPS_SHARE:
        log(
            f"--int8_denylist=auto: the last block holds {share:.1%} of the FLOPs (over "
            f"{MAX_TAIL_FLOPS_SHARE:.0%}), too costly in float; it stays int8"
        )
        return []
    if tail:
        log(
            f"--int8_denylist=auto: the head and the last block ({share:.1%} of the FLOPs) "
            "stay float but for its gate convolutions"
        )
    return tail


def _log_trace(trace: list[tuple[int, bool, float]], narrowed: bool, log) -> None:
    """Logs each model `choose_denylist` tried and its agreement."""
    tried = ", ".join(
        f"{count} float{'' if cut or not narrowed else ' (sigmoid ranges uncut)'}: {score:.1%}"
        for count, cut, score in trace
    )
    log(
        "--int8_denylist=auto: agreement on training clips the calibration did not use, "
        f"with {tried}"
    )


def _log_sigmoid_ranges(analysis, narrowed: dict, sigmoid_ranges: str, log) -> None:
    """Logs which sigmoid input ranges the int8 model has cut, or why none."""
    if narrowed:
        cut = "; ".join(
            f"{layer} [{low:.4g}, {high:.4g}]" for layer, (low, high) in narrowed.items()
        )
        log(
            f"int8: calibrated range of {len(narrowed)} sigmoid input(s) cut to "
            f"+-{int8_corrections.SIGMOID_SATURATION:.2f}, where the int8 sigmoid saturates: {cut}"
        )
    elif analysis.narrowed:
        log("int8: sigmoid input ranges kept as calibrated (they agreed better uncut)")
    elif sigmoid_ranges == "calibrated":
        log("int8: sigmoid input ranges kept as calibrated (--int8_sigmoid_ranges)")
