"""Where int8 error is found and kept out: TensorFlow's QuantizationDebugger on a TVN.

Full-integer TFLite rounds every activation to 256 levels. Where that loses the
model's decisions, the debugger (`tf.lite.experimental.QuantizationDebugger`)
says which layer adds the error: it runs an instrumented int8 model in which
every quantized op's output is compared with the same op computed in float on
the same (dequantized) inputs. Each layer's error is reported as its RMSE in
units of its own quantization step (`rmse_over_scale`; about 0.29 is plain
rounding, well above 1 means the int8 form of that op loses information).

The debugger cannot see one kind of error: a sigmoid gate whose input range
is stretched by a few saturated channels. Its calibrated range (the min and
max over the calibration clips; -530 to 229 in one weak TVN-1's last
squeeze-excite) sets a step so coarse that the gates of the other channels
move by many output steps, yet each op rounds only to its own step, so every
layer looks rounding-level. `narrow_sigmoid_inputs` cuts each sigmoid's input
range to where the int8 sigmoid still changes (docs/design.md, "int8: the sigmoid cut");
`auto` keeps the cut unless the selection clips agree better without it
(`--int8_sigmoid_ranges` of export overrides that).

Selective quantization keeps the layers named in a denylist (names, or
patterns such as `block3_1/*`) in float (the debugger's `denylisted_nodes`);
`choose_denylist` picks them for `--int8_denylist=auto`: always the
classifier, and the network's tail (`tail_layers`: the head and the last
block application but for its gate convolutions) where it is cheap, then the
worst layers by `rmse_over_scale`, added one at a time while the int8 model
still disagrees with the float one on the selection clips, at most
`max_added_layers` of them.

Bias correction (`correct_logit_bias`) then removes what int8 shifts
systematically: each logit's mean shift on the calibration clips is taken
out of the classifier's bias.

    analysis = analyze(saved_model_dir, calibration_clips)
    write_report(analysis.layers, "quantization_report.csv")
    share = tail_flops_share(flops.count_flops(keras_model))
    tail = tail_layers(analysis) if share <= MAX_TAIL_FLOPS_SHARE else []
    denylist, narrow, _ = choose_denylist(analysis, selection_clips, reference_logits, tail=tail)
    data = analysis.quantized_model(denylist, narrow=narrow)
    offsets = analysis.logit_offsets(denylist, narrow)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fnmatch
import io
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from tvn_tf.models import architecture

REPORT_FILE = "quantization_report.csv"
REPORT_FIELDS = ("layer", "op", "rmse_over_scale", "share", "scale", "num_elements", "tensor")

# An int8 sigmoid's output has the step 1/256 from 0 (TFLite's quantization
# spec), so beyond +-ln(511) it rounds to its first or last level: sigmoid(x)
# is within half a step of 0 or of 1.
SIGMOID_SATURATION = math.log(511)
_IN_RANGE_MSE = "mean_squared_error_in_range"

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


@dataclasses.dataclass(frozen=True)
class LayerError:
    """The int8 error one layer adds, from the QuantizationDebugger.

    Attributes:
      layer: Where in the Keras model, e.g. `block0_0/context_gate/gate/Sigmoid`
        (`short_name` of `tensor`).
      op: TFLite op type, e.g. `CONV_2D`, `LOGISTIC`.
      rmse_over_scale: RMSE of the int8 output against the float op on the same
        inputs, in quantization steps of that output.
      share: This layer's part of the sum of `rmse_over_scale` over all layers.
      scale: The output's quantization step.
      num_elements: Elements of the output tensor.
      tensor: The op's output tensor in the TFLite graph (the debugger's name).
    """

    layer: str
    op: str
    rmse_over_scale: float
    share: float
    scale: float
    num_elements: int
    tensor: str


def short_name(tensor: str) -> str:
    """A TFLite tensor name as a Keras layer path.

    The converter names a fused op's output by all the TF ops fused into it,
    `;`-separated, each under the model's scope and with Keras' `_1` tracing
    suffixes: `tvn1_1/block0_0_1/spatial_1/conv_1/act_1/Relu;tvn1_1/...` becomes
    `block0_0/spatial/conv/act/Relu`. The model's output tensor
    (`StatefulPartitionedCall:0`, the classifier's) is `logits`.
    """
    first = tensor.split(";")[0]
    parts = first.split("/")
    if len(parts) < 2:  # The signature's output tensor: the logits.
        return "logits" if first.startswith("StatefulPartitionedCall") else first
    *scopes, op = parts[1:]
    return "/".join([scope.removesuffix("_1") for scope in scopes] + [op])


class Analysis:
    """A calibrated TVN and its per-layer int8 errors; makes int8 models from it.

    Calibration runs once; `quantized_model` with any denylist, with the
    sigmoid inputs' ranges cut or as calibrated, reuses it, and makes each
    model (and its bias correction) once.

    Attributes:
      layers: Per-layer errors (of the model with the sigmoid inputs' ranges
        cut), worst first.
      output_layer: The layer whose output is the model's (the classifier).
      narrowed: Per sigmoid input whose range `narrow_sigmoid_inputs` cuts,
        its calibrated `(min, max)`; empty when none reaches past the cut.
    """

    def __init__(
        self,
        debugger,
        layers: list[LayerError],
        output_layer: str,
        calibration_clips: np.ndarray,
        threads: int = 2,
        narrowed: dict[str, tuple[float, float]] | None = None,
        calibrated: bytes | None = None,
    ):
        """Wraps a debugger that has run.

        Args:
          debugger: The `QuantizationDebugger`; its `calibrated_model` has the
            ranges of `narrowed` cut.
          calibrated: The calibrated model before the cut (None: nothing cut).
        """
        self._debugger = debugger
        self.layers = layers
        self.output_layer = output_layer
        self.narrowed = dict(narrowed or {})
        self._calibrated = {True: debugger.calibrated_model}
        self._calibrated[False] = calibrated if self.narrowed and calibrated else None
        self._clips = calibration_clips
        self._threads = threads
        self._float_logits = None
        # Per (ranges cut, denylist as tensor names): the int8 model, and the
        # corrected one with its offsets. `auto` and export ask for the same
        # models again.
        self._models: dict[tuple, bytes] = {}
        self._corrected: dict[tuple, tuple[bytes, np.ndarray | None]] = {}

    def _key(self, denylist: Sequence[str], narrow: bool) -> tuple:
        # Without anything to cut, both ask for the same model.
        return (narrow or self._calibrated[False] is None, *self.tensors(denylist))

    def quantized_model(
        self, denylist: Sequence[str] = (), correct_bias: bool = True, narrow: bool = True
    ) -> bytes:
        """The int8 model (float input and output) with `denylist` layers kept in float.

        Args:
          denylist: Layers (short or tensor names) to keep in float.
          correct_bias: Take int8's mean logit shift on the calibration clips
            out of the classifier's bias (`correct_logit_bias`); the shift is
            then `logit_offsets(denylist, narrow)`.
          narrow: With the sigmoid inputs' ranges of `narrowed` cut; False: as
            calibrated.
        """
        import tensorflow as tf

        key = self._key(denylist, narrow)
        if key not in self._models:
            with _quiet():
                self._debugger.calibrated_model = self._calibrated[key[0]]
                # Setting the options re-quantizes the calibrated model; no new calibration.
                self._debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_nodes=list(key[1:]) or None
                )
                self._models[key] = self._debugger.get_nondebug_quantized_model()
        if not correct_bias:
            return self._models[key]
        if key not in self._corrected:
            if self._float_logits is None:
                from tvn_tf.deploy import tflite

                # The calibrated model computes in float (its ranges are only
                # recorded): Keras' logits to rounding.
                runner = tflite.TFLiteRunner(self._calibrated[True], threads=self._threads)
                self._float_logits = runner(self._clips)
            self._corrected[key] = correct_logit_bias(
                self._models[key], self._clips, self._float_logits, threads=self._threads
            )
        return self._corrected[key][0]

    def logit_offsets(self, denylist: Sequence[str] = (), narrow: bool = True) -> np.ndarray | None:
        """Per class, the mean logit shift taken out by `quantized_model(denylist, narrow=narrow)`.

        None when no such model was made with bias correction, or its output
        is not a fully connected layer's.
        """
        corrected = self._corrected.get(self._key(denylist, narrow))
        return None if corrected is None else corrected[1]

    def expand(self, layers: Sequence[str]) -> list[str]:
        """The short names of `layers`, in the order given, without repeats.

        Each entry is a short name, a tensor name, or a shell-style pattern
        over the short names (`block3_1/*`: every quantized layer of that
        block), so a denylist can keep a whole block or the head in float
        without listing its layers.

        Raises:
          ValueError: a name that is no quantized layer, or a pattern that
            matches none, naming `--int8_denylist`.
        """
        short = {}
        for layer in self.layers:
            short[layer.layer] = short[layer.tensor] = layer.layer
        names, unknown = [], []
        for name in layers:
            if name in short:
                found = [short[name]]
            elif any(c in name for c in "*?["):
                found = [x.layer for x in self.layers if fnmatch.fnmatchcase(x.layer, name)]
            else:
                found = []
            if not found:
                unknown.append(name)
            names += [layer for layer in found if layer not in names]
        if unknown:
            raise ValueError(
                f"--int8_denylist: no quantized layer named {', '.join(unknown)}; the "
                f"layers are the `layer` column of {REPORT_FILE} (e.g. "
                f"{', '.join(layer.layer for layer in self.layers[:3])}), or patterns "
                "over it such as block3_1/*."
            )
        return names

    def tensors(self, layers: Sequence[str]) -> list[str]:
        """The TFLite tensor names of `layers` (as `expand` takes them).

        Raises:
          ValueError: as `expand`.
        """
        tensor = {layer.layer: layer.tensor for layer in self.layers}
        return [tensor[name] for name in self.expand(layers)]


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
            f"the `layer` column of {REPORT_FILE}: under the model's layers "
            f"({', '.join(top)}), e.g. {example}/..., or patterns over it such as "
            f"{example}/*."
        )


@contextlib.contextmanager
def _quiet():
    """Silences the debugger's use of the deprecated `tf.lite.Interpreter` (its own choice)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        yield


def _clip_generator(clips: np.ndarray):
    """The debugger's `debug_dataset`: one `[1, frames, size, size, 3]` clip per sample."""

    def generate():
        for clip in np.asarray(clips, np.float32):
            yield [clip[None]]

    return generate


def analyze(
    saved_model_dir: str,
    calibration_clips: np.ndarray,
    threads: int = 2,
    narrow_sigmoids: bool = True,
) -> Analysis:
    """Calibrates the model on `calibration_clips` and measures each layer's int8 error.

    The converter allows float builtins next to int8 ones (so that a denylisted
    layer can run in float), unlike `tflite.convert`'s int8 variant, which
    fails on an op without an int8 kernel: here such an op would stay float,
    between a dequantize and a quantize. Every op a TVN uses has an int8
    kernel (`tflite.convert` makes them all int8-only).

    Args:
      saved_model_dir: Written by `tflite.save_for_conversion`.
      calibration_clips: float32 `[n, frames, size, size, 3]`, evaluation
        preprocessing; the calibration, the debugger's error measurement and
        the bias correction all run on them.
      threads: Interpreter threads for the bias correction.
      narrow_sigmoids: Find the sigmoid inputs whose calibrated range reaches
        past where the int8 sigmoid saturates (`narrow_sigmoid_inputs`), and
        measure the layers' errors with those ranges cut. False: nothing is
        cut (`Analysis.narrowed` is empty).

    Returns:
      The `Analysis`, its layers worst first.
    """
    import tensorflow as tf

    from tvn_tf.deploy import tflite

    clips = np.asarray(calibration_clips, np.float32)
    if clips.ndim != 5 or not len(clips):
        raise ValueError(
            f"calibration clips have shape {clips.shape}; expected [n, frames, size, size, 3]."
        )
    # Builtins in int8 or float: a denylisted layer runs in float.
    converter = tflite.make_converter(saved_model_dir, "int8", clips)
    with _quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=_clip_generator(clips),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(),
        )
        calibrated, narrowed = debugger.calibrated_model, {}
        if narrow_sigmoids:
            debugger.calibrated_model, narrowed = narrow_sigmoid_inputs(calibrated)
        if narrowed:
            # A narrowed input clips what the sigmoid saturates on anyway: its
            # error is measured inside its range. Setting the options quantizes
            # the narrowed model anew.
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                layer_direct_compare_metrics={_IN_RANGE_MSE: _in_range_mse}
            )
        debugger.run()
    with io.StringIO() as buffer:
        debugger.layer_statistics_dump(buffer)
        rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    layers = _layer_errors(rows, in_range=narrowed.keys())
    # The debugger lists layers in graph order: the last one computes the logits.
    output = short_name(rows[-1]["tensor_name"]) if rows else ""
    return Analysis(debugger, layers, output, clips, threads, narrowed, calibrated)


def narrow_sigmoid_inputs(
    calibrated: bytes, limit: float = SIGMOID_SATURATION
) -> tuple[bytes, dict[str, tuple[float, float]]]:
    """Cuts each sigmoid input's calibrated range to `[-limit, limit]`.

    Min/max calibration gives a gate's input (the squeeze-excite or context
    gate's 1x1 convolution) the range of its most extreme channel. A channel
    the model switches fully on or off can sit at -530 while the others
    decide between -4 and 4; the step becomes 3, and rounding moves each of
    their gates by up to 0.37. Beyond +-ln(511) the int8 sigmoid's
    output is its first or last level whatever the input, so clipping the
    input there changes no output, and the step shrinks to at most 0.049.
    The op before it then saturates at the new ends. It costs nothing at run
    time. On three weak TVN-1 demo models trained on an Intel Xeon, held-out
    top-1 agreement with Keras went from 90.1% to 95.4% (57% to 94% before
    the logit bias correction), from 98.0% to 98.4%, and from 96.2% down to
    94.3%; so `choose_denylist` judges it per model (docs/design.md,
    "int8: the sigmoid cut").

    Only an input that nothing but sigmoids reads is cut; a range already
    inside the limits is kept.

    Args:
      calibrated: The calibrated float model (the debugger's
        `calibrated_model`): each tensor's range in its quantization
        parameters' `min` and `max`.
      limit: Where to cut.

    Returns:
      `(calibrated, narrowed)`: the model with the cut ranges, and per input
      cut (its `short_name`) its range before.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    graph = model.subgraphs[0]

    readers: dict[int, set[int]] = {}
    for op in graph.operators:
        for tensor in op.inputs:
            readers.setdefault(int(tensor), set()).add(_builtin_code(model, op))
    narrowed = {}
    for op in graph.operators:
        if _builtin_code(model, op) != schema.BuiltinOperator.LOGISTIC:
            continue
        index = int(op.inputs[0])
        tensor = graph.tensors[index]
        stats = tensor.quantization
        if (
            readers[index] != {schema.BuiltinOperator.LOGISTIC}
            or index in graph.outputs
            or stats is None
            or stats.min is None
            or stats.max is None
            or len(stats.min) != 1
        ):
            continue
        low, high = float(stats.min[0]), float(stats.max[0])
        if low >= -limit and high <= limit:
            continue
        stats.min, stats.max = [max(low, -limit)], [min(high, limit)]
        narrowed[short_name(tensor.name.decode())] = (low, high)
    if not narrowed:
        return calibrated, {}
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), narrowed


def _builtin_code(model, op) -> int:
    """The builtin op type of `op` in a flatbuffer `model` (old and new code fields)."""
    op_code = model.operatorCodes[op.opcodeIndex]
    return max(op_code.builtinCode, op_code.deprecatedBuiltinCode)


def _in_range_mse(
    float_values: np.ndarray, quantized: np.ndarray, scale: float, zero_point: int
) -> float:
    """A debugger metric: the int8 output's squared error against float clipped to its range."""
    low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
    values = (quantized.astype(np.float64) - zero_point) * scale
    return float(np.mean((values - np.clip(float_values, low, high)) ** 2))


def _layer_errors(rows: list[dict], in_range: Iterable[str] = ()) -> list[LayerError]:
    """`LayerError`s, worst first, from the debugger's CSV rows.

    Args:
      rows: The debugger's `layer_statistics_dump`.
      in_range: Layers (short names) whose error is taken inside their range
        (`_in_range_mse`): the sigmoid inputs cut by `narrow_sigmoid_inputs`.
    """
    in_range = set(in_range)
    measured = []
    for row in rows:
        scale = float(row["scale"])
        metric = (
            _IN_RANGE_MSE if short_name(row["tensor_name"]) in in_range else "mean_squared_error"
        )
        rmse = float(np.sqrt(float(row[metric])))
        measured.append(
            (row["tensor_name"], row["op_name"], rmse / scale if scale else 0.0, scale, row)
        )
    total = sum(m[2] for m in measured) or 1.0
    layers = [
        LayerError(
            layer=short_name(name),
            op=op,
            rmse_over_scale=ratio,
            share=ratio / total,
            scale=scale,
            num_elements=int(float(row["num_elements"])),
            tensor=name,
        )
        for name, op, ratio, scale, row in measured
    ]
    return sorted(layers, key=lambda layer: -layer.rmse_over_scale)


def write_report(layers: Sequence[LayerError], path: str) -> None:
    """Writes `quantization_report.csv` (worst layer first) through a temporary file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, REPORT_FIELDS)
        writer.writeheader()
        for layer in layers:
            row = dataclasses.asdict(layer)
            row["rmse_over_scale"] = f"{layer.rmse_over_scale:.4f}"
            row["share"] = f"{layer.share:.4f}"
            row["scale"] = f"{layer.scale:.6g}"
            writer.writerow(row)
    os.replace(tmp, path)


def read_report(path: str) -> list[LayerError]:
    """The layers of a `quantization_report.csv`, in file order."""
    with open(path, newline="") as f:
        return [
            LayerError(
                layer=row["layer"],
                op=row["op"],
                rmse_over_scale=float(row["rmse_over_scale"]),
                share=float(row["share"]),
                scale=float(row["scale"]),
                num_elements=int(row["num_elements"]),
                tensor=row["tensor"],
            )
            for row in csv.DictReader(f)
        ]


def correct_logit_bias(
    data: bytes, clips: np.ndarray, reference: np.ndarray, threads: int = 2
) -> tuple[bytes, np.ndarray | None]:
    """Takes int8's mean shift of each logit on `clips` out of the classifier's bias.

    Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization
    Through Weight Equalization and Bias Correction", section 4.2, with the
    shift measured on data). Rounding every activation to 256 levels moves
    the logits by an amount that is partly the same on every clip: on five
    weak demo models the int8 model's mean shift per class reached 0.05-0.19
    (logits spanning about 17), measured alike on training and on held-out
    clips. A weak model has many clips whose top two logits are closer than
    that, so the shift flips them; subtracting it from the classifier's bias
    undoes it at no cost at run time. It raised agreement with the float
    model on four of the five models and lowered it on one, where the shift
    depends on the logit's own value (docs/design.md, "int8: bias correction").

    The classifier's bias is float32 when the classifier is kept in float, and
    int32 in steps of `input scale * weight scale` (per output channel) when
    it is int8; either is rewritten in place, nothing else changes.

    Args:
      data: A TFLite model whose output is a fully connected layer's
        (optionally through a dequantize).
      clips: float32 clips to measure the shift on (the calibration clips).
      reference: The float model's logits on `clips`.
      threads: Interpreter threads.

    Returns:
      `(data, offsets)`: the corrected model and the per-class shift taken
      out; `(data, None)`, unchanged, when the output is not a fully connected
      layer's with a bias (e.g. the softmax-pooling head).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from tvn_tf.deploy import tflite

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    graph = model.subgraphs[0]
    producer = {out: op for op in graph.operators for out in op.outputs}

    op = producer.get(graph.outputs[0])
    if op is not None and _builtin_code(model, op) == schema.BuiltinOperator.DEQUANTIZE:
        op = producer.get(op.inputs[0])
    if (
        op is None
        or _builtin_code(model, op) != schema.BuiltinOperator.FULLY_CONNECTED
        or len(op.inputs) < 3
        or op.inputs[2] < 0
    ):
        return data, None
    bias = graph.tensors[op.inputs[2]]
    buffer = model.buffers[bias.buffer]
    if buffer.data is None or bias.type not in (
        schema.TensorType.FLOAT32,
        schema.TensorType.INT32,
    ):
        return data, None
    logits = tflite.TFLiteRunner(data, threads=threads)(clips)
    offsets = (logits - np.asarray(reference, np.float32)).mean(axis=0)
    if bias.type == schema.TensorType.FLOAT32:
        values = np.frombuffer(bytes(buffer.data), "<f4") - offsets
        buffer.data = values.astype("<f4").view(np.uint8)
    else:
        steps = np.asarray(bias.quantization.scale, np.float64)  # One, or one per channel.
        values = np.frombuffer(bytes(buffer.data), "<i4").astype(np.int64)
        values -= np.round(offsets / steps).astype(np.int64)
        limit = np.iinfo(np.int32)
        buffer.data = np.clip(values, limit.min, limit.max).astype("<i4").view(np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), offsets


def tail_layers(analysis: Analysis) -> list[str]:
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
    analysis: Analysis,
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

    Every model tried keeps the classifier (the layer whose output is the
    logits) and `tail` in float; after them, the layers whose int8 error is
    above `min_rmse_over_scale` steps, worst first, are added one at a time
    while the int8 model's top-1 agreement with `reference` on `clips` is
    under `target_agreement`, up to `max_added_layers`.

    The classifier is always kept in float, whatever `clips` show: its
    rounding lands on the logits themselves (one output step, the logit
    range / 255, flips every clip whose two top logits are closer than that,
    several percent of a weak model's clips), while each inner layer's
    rounding is damped by the layers after it. It costs one small matrix
    product and puts a dequantize at the end. Selection clips are
    training clips, on which even a weak model is confident, so int8 agrees
    there (100% on a weak demo model) while it flips held-out clips: on all
    1,280 held-out clips of each of five weak demo models, the classifier in
    float raised agreement by 0.1 to 1.1 points, at no measurable latency.
    The tail (`tail_layers`) is kept for the same reason: on 1,280 held-out
    clips each, it raised agreement on three weak demo models trained on an
    Intel Xeon from 95.4-98.4% to 96.5-99.1%, and on three trained on an AMD
    EPYC from 98.8 / 95.3 / 96.4% to 99.1 / 97.3 / 98.6% (confident ones:
    99.8% either way; 100% to 99.9%, one clip), while the selection clips
    could not tell (docs/design.md, "int8: the tail").
    `--int8_denylist=none` gives the fully quantized model.

    Each denylist is tried with the sigmoid inputs' ranges cut
    (`Analysis.narrowed`) and, if that is under the target and there is
    anything to cut, as calibrated. The cut makes every gate closer to float,
    yet on one of three weak models it lowered held-out agreement (96.2% to
    94.3%) while the logits' RMS error fell, and the selection clips showed
    the same drop (96.1% to 94.5%). The model with the best agreement is
    returned: the shortest denylist, and the cut ranges, among equals.

    Args:
      analysis: From `analyze`.
      clips: Selection clips (training data, never the test clips).
      reference: The float model's logits on `clips`.
      tail: Layers kept in float with the classifier in every model tried
        (`tail_layers`, or none).
      target_agreement: Stop once agreement on `clips` reaches it.
      max_added_layers: At most this many layers added after the classifier
        and `tail`.
      min_rmse_over_scale: Only layers with at least this much int8 error
        (in quantization steps) are added.
      threads: Interpreter threads.
      correct_bias: Judge each model with bias correction, as it will ship
        (`Analysis.quantized_model`).
      try_uncut: Also try the sigmoid ranges as calibrated. False: every
        model tried has them cut (`narrow` is then always True).

    Returns:
      `(denylist, narrow, trace)`: the chosen layers, whether the sigmoid
      inputs' ranges are cut (`quantized_model`'s `narrow`), and (number of
      float layers, ranges cut, agreement) for each model tried.
    """
    from tvn_tf.deploy import tflite

    base = [analysis.output_layer] + [x for x in tail if x != analysis.output_layer]
    added = [
        layer.layer
        for layer in analysis.layers
        if layer.rmse_over_scale >= min_rmse_over_scale and layer.layer not in base
    ][:max_added_layers]
    best, best_narrow, best_score = [], True, -1.0
    trace = []
    for count in range(len(added) + 1):
        denylist = base + added[:count]
        for narrow in (True, False) if analysis.narrowed and try_uncut else (True,):
            data = analysis.quantized_model(denylist, correct_bias=correct_bias, narrow=narrow)
            score = agreement(tflite.TFLiteRunner(data, threads=threads)(clips), reference)
            trace.append((len(denylist), narrow and bool(analysis.narrowed), score))
            if score > best_score:
                best, best_narrow, best_score = denylist, narrow, score
            if score >= target_agreement:
                return list(best), best_narrow, trace
    return list(best), best_narrow, trace
