"""Where int8 error is found: TensorFlow's QuantizationDebugger on a TVN.

Full-integer TFLite rounds every activation to 256 levels. Where that loses the
model's decisions, the debugger (`tf.lite.experimental.QuantizationDebugger`)
says which layer adds the error: it runs an instrumented int8 model in which
every quantized op's output is compared with the same op computed in float on
the same (dequantized) inputs (`tvn_tf.deploy.quantization_report`).

The debugger cannot see one kind of error: a sigmoid gate whose input range
is stretched by a few saturated channels. Its calibrated range sets a step so
coarse that the gates of the other channels move by many output steps, yet
each op rounds only to its own step, so every layer looks rounding-level.
`analyze` therefore measures the layers with the sigmoid inputs' ranges cut
(`int8_corrections.narrow_sigmoid_inputs`), and `Analysis` makes int8 models
with them cut or as calibrated.

Selective quantization keeps the layers named in a denylist (names, or
patterns such as `block3_1/*`) in float (the debugger's `denylisted_nodes`);
`tvn_tf.deploy.quantization` decides which.

    analysis = analyze(saved_model_dir, calibration_clips)
    quantization_report.write_report(analysis.layers, "quantization_report.csv")
    data = analysis.quantized_model(["logits"], narrow=True)
    offsets = analysis.logit_offsets(["logits"], narrow=True)
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import warnings
from collections.abc import Sequence

import numpy as np

from tvn_tf.deploy import int8_corrections
from tvn_tf.deploy import quantization_report as report_lib


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
        layers: list[report_lib.LayerError],
        output_layer: str,
        calibration_clips: np.ndarray,
        threads: int = 2,
        narrowed: dict[str, tuple[float, float]] | None = None,
        calibrated: bytes | None = None,
        float_logits: np.ndarray | None = None,
    ):
        """Wraps a debugger that has run.

        Args:
          debugger: The `QuantizationDebugger`; its `calibrated_model` has the
            ranges of `narrowed` cut.
          calibrated: The calibrated model before the cut (None: nothing cut).
          float_logits: The float model's logits on the calibration clips, for
            the bias correction (None: computed by the calibrated model).
        """
        self._debugger = debugger
        self.layers = layers
        self.output_layer = output_layer
        self.narrowed = dict(narrowed or {})
        self._calibrated = {True: debugger.calibrated_model}
        self._calibrated[False] = calibrated if self.narrowed and calibrated else None
        self._clips = calibration_clips
        self._threads = threads
        self._float_logits = float_logits
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
            out of the classifier's bias (`int8_corrections.correct_logit_bias`);
            the shift is then `logit_offsets(denylist, narrow)`.
          narrow: With the sigmoid inputs' ranges of `narrowed` cut; False: as
            calibrated.
        """
        key = self._key(denylist, narrow)
        if key not in self._models:
            self._models[key] = self._quantize(self._calibrated[key[0]], list(key[1:]))
        if not correct_bias:
            return self._models[key]
        if key not in self._corrected:
            if self._float_logits is None:
                from tvn_tf.deploy import tflite

                # The calibrated model computes in float (its ranges are only
                # recorded): Keras' logits to rounding, but on TFLite's own
                # kernels, one clip at a time (about 0.2 s of TVN-1 at 224).
                runner = tflite.TFLiteRunner(self._calibrated[True], threads=self._threads)
                self._float_logits = runner(self._clips)
            self._corrected[key] = int8_corrections.correct_logit_bias(
                self._models[key], self._clips, self._float_logits, threads=self._threads
            )
        return self._corrected[key][0]

    def _quantize(self, calibrated: bytes, denylist: list[str]) -> bytes:
        """The debugger's non-debug int8 model of `calibrated`, `denylist` tensors in float.

        What `QuantizationDebugger.get_nondebug_quantized_model` returns once
        its options name `denylist`, without the instrumented model and its
        interpreter that setting the options also builds.
        """
        from tensorflow.lite.python import convert

        with quiet():
            return convert.mlir_quantize(
                calibrated,
                disable_per_channel=self._debugger.converter._experimental_disable_per_channel,
                fully_quantize=False,
                enable_numeric_verify=False,
                denylisted_ops=None,
                denylisted_nodes=denylist or None,
            )

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
                f"layers are the `layer` column of {report_lib.REPORT_FILE} (e.g. "
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


@contextlib.contextmanager
def quiet():
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


def _spaced(clips: np.ndarray, count: int | None) -> np.ndarray:
    """At most `count` of `clips`, evenly spaced from the first to the last (None: all)."""
    if count is None or count >= len(clips):
        return clips
    return clips[np.linspace(0, len(clips) - 1, max(count, 1)).round().astype(int)]


def analyze(
    saved_model_dir: str,
    calibration_clips: np.ndarray,
    threads: int = 2,
    narrow_sigmoids: bool = True,
    report_clips: int | None = None,
    calibrated: bytes | None = None,
    float_logits: np.ndarray | None = None,
) -> Analysis:
    """Calibrates the model on `calibration_clips` and measures each layer's int8 error.

    The converter allows float builtins next to int8 ones (so that a denylisted
    layer can run in float), unlike `tflite.convert`'s int8 variant: here an op
    without an int8 kernel would stay float, between a dequantize and a
    quantize. Every op a TVN uses has one (`tflite.convert` makes them all int8).

    Args:
      saved_model_dir: Written by `tflite.save_for_conversion`.
      calibration_clips: float32 `[n, frames, size, size, 3]`, evaluation
        preprocessing; the calibration, the debugger's error measurement and
        the bias correction all run on them.
      threads: Interpreter threads for the bias correction.
      narrow_sigmoids: Cut the sigmoid inputs' ranges where the int8 sigmoid
        saturates (`narrow_sigmoid_inputs`) and measure the errors so; False:
        nothing is cut (`Analysis.narrowed` is empty).
      report_clips: Measure the layers' errors on at most this many of the
        clips, evenly spaced (None: all): the instrumented model runs on one
        thread without XNNPACK, about as slowly per clip as the calibration.
      calibrated: These clips' calibrated model from `calibration.calibrate`
        (another process); None: calibrated here.

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
    if calibrated is not None:
        converter.convert = lambda: calibrated  # The debugger's calibration, done already.
    with quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=_clip_generator(_spaced(clips, report_clips)),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(),
        )
        calibrated, narrowed = debugger.calibrated_model, {}
        if narrow_sigmoids:
            debugger.calibrated_model, narrowed = int8_corrections.narrow_sigmoid_inputs(calibrated)
        rows = _layer_rows(debugger, narrowed)
    layers = report_lib.layer_errors(rows, in_range=narrowed.keys())
    # The debugger lists layers in graph order: the last one computes the logits.
    output = report_lib.short_name(rows[-1]["tensor_name"]) if rows else ""
    return Analysis(debugger, layers, output, clips, threads, narrowed, calibrated, float_logits)


def _layer_rows(debugger, narrowed: dict) -> list[dict]:
    """Runs the debugger on its clips; its per-layer statistics, as CSV rows."""
    import tensorflow as tf

    if narrowed:
        # A narrowed input clips what the sigmoid saturates on anyway: its
        # error is measured inside its range. Setting the options quantizes
        # the narrowed model anew.
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={report_lib.IN_RANGE_MSE: report_lib.in_range_mse}
        )
    debugger.run()
    with io.StringIO() as buffer:
        debugger.layer_statistics_dump(buffer)
        return list(csv.DictReader(io.StringIO(buffer.getvalue())))
