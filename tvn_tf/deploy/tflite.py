"""Where TFLite is made: a trained Keras TVN to `.tflite` files, and running them.

Four variants, all with builtin ops only (a graph that would need Flex ops
fails with `FlexOpsError`, naming the ops):

    float32       the float model
    float16       float16 weights (half the size; CPUs compute in float32)
    dynamic_int8  int8 weights, activations quantised on the fly
    int8          full-integer: int8 weights and activations, calibrated on
                  representative clips; float32 input and output. `export`
                  makes it through `int8_analysis` (the debugger's per-layer
                  report, and layers kept in float with `--int8_denylist`)

Every variant takes the Keras model's input for one clip, float32
`[1, frames, size, size, 3]` in [-1, 1] (`tvn_tf.data.preprocessing.
preprocess_for_eval` of uint8 frames), and returns float32 logits
`[1, num_classes]`. The batch is fixed at 1 so that XNNPACK delegates the
whole static-shape graph.

    data = convert_model(model, "int8", representative_clips=clips)
    runner = TFLiteRunner(data, threads=2)
    logits = runner(clips)          # any number of clips, one at a time
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable

import numpy as np

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
# Bytes each variant's file takes per weight.
BYTES_PER_WEIGHT = {"float32": 4, "float16": 2, "dynamic_int8": 1, "int8": 1}
SIGNATURE = "clips"


class FlexOpsError(ValueError):
    """A conversion needed TensorFlow ops that TFLite has no builtin for."""


def filename(variant: str) -> str:
    """`model_<variant>.tflite`, the file name of a variant in an export."""
    check_variant(variant)
    return f"model_{variant}.tflite"


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"TFLite variant is {variant!r}; expected one of {', '.join(VARIANTS)}.")


def convert_model(
    model, variant: str, representative_clips: Iterable[np.ndarray] | None = None
) -> bytes:
    """Converts a Keras TVN to a TFLite flatbuffer (see `convert`), through a temporary SavedModel."""
    with tempfile.TemporaryDirectory(prefix="tvn_tflite_") as tmp:
        path = os.path.join(tmp, "saved_model")
        save_for_conversion(model, path)
        return convert(path, variant, representative_clips)


def save_for_conversion(model, path: str) -> None:
    """Writes the SavedModel that every variant is converted from.

    Its only signature, `clips`, is the Keras model in inference mode at batch
    1. Converting from a SavedModel (not a concrete function) freezes the
    weights into constants.
    """
    import keras
    import tensorflow as tf

    shape = (1, *model.input_shape[1:])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE,
        lambda clips: model(clips, training=False),
        input_signature=[tf.TensorSpec(shape, tf.float32, name="clips")],
    )
    archive.write_out(path, verbose=False)


def convert(
    saved_model_dir: str, variant: str, representative_clips: Iterable[np.ndarray] | None = None
) -> bytes:
    """Converts the SavedModel of `save_for_conversion` to one TFLite variant.

    Args:
      saved_model_dir: Written by `save_for_conversion`.
      variant: One of `VARIANTS`.
      representative_clips: For `int8`: clips `[frames, size, size, 3]` (or
        batches of them) from the training data, preprocessed as in evaluation,
        to calibrate the activation ranges. A few dozen clips are enough.

    Returns:
      The `.tflite` file's bytes.

    Raises:
      FlexOpsError: the model needs ops outside TFLite's builtins.
      ValueError: a bad variant, or `int8` without representative clips.
    """
    import tensorflow as tf

    converter = make_converter(saved_model_dir, variant, representative_clips)
    if variant == "int8":
        # Every op in int8: a kernel without an int8 form fails the conversion
        # instead of silently running in float.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        data = converter.convert()
    except Exception as e:  # ConverterError; its module moves between TF versions.
        flex = _flex_ops(str(e))
        if flex is not None:
            raise FlexOpsError(
                f"TFLite conversion ({variant}) needs TensorFlow ops that are not TFLite "
                f"builtins: {', '.join(flex) or 'see the converter log'}. Flex (SELECT_TF_OPS) "
                "is not allowed: rewrite the layer with builtin ops."
            ) from None
        raise
    custom = sorted({op for op in op_names(data) if op.startswith("Flex") or op == "CUSTOM"})
    if custom:
        raise FlexOpsError(
            f"TFLite conversion ({variant}) produced non-builtin ops: {', '.join(custom)}."
        )
    return data


def make_converter(
    saved_model_dir: str, variant: str, representative_clips: Iterable[np.ndarray] | None = None
):
    """The `tf.lite.TFLiteConverter` of one variant, builtin ops only (see `convert`).

    `int8_analysis.analyze` starts the int8 model from it too, so both int8
    paths share the settings.
    """
    import tensorflow as tf

    check_variant(variant)
    if variant == "int8" and representative_clips is None:
        raise ValueError("The int8 variant needs representative_clips to calibrate on.")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[SIGNATURE]
    )
    # Builtins only: no SELECT_TF_OPS, so a Flex op is a conversion error.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative_dataset(representative_clips)
    return converter


def _representative_dataset(clips: Iterable[np.ndarray]):
    def generate():
        for clip in clips:
            clip = np.asarray(clip, np.float32)
            for one in clip.reshape((-1, *clip.shape[-4:])):
                yield {"clips": one[None]}

    return generate


def _flex_ops(message: str) -> list[str] | None:
    """The TF op names in a converter error about ops TFLite lacks, or None."""
    if "TF Select" not in message and "flex op" not in message:
        return None
    listed = re.search(r"TF Select ops: ([^\n]*)", message)
    if listed:
        return sorted({name.strip() for name in listed.group(1).split(",") if name.strip()})
    return sorted(set(re.findall(r"'tf\.(\w+)' op is neither", message)))


def op_names(data: bytes) -> list[str]:
    """The op type of every node of a TFLite model, in execution order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    return [op["op_name"] for op in interpreter._get_ops_details()]  # No public op listing.


class TFLiteRunner:
    """Runs a TVN `.tflite` (LiteRT interpreter, XNNPACK) on clips, one at a time.

    Args:
      model: A `.tflite` path or its bytes.
      threads: Interpreter threads (XNNPACK uses the same pool).
    """

    def __init__(self, model: str | bytes, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=threads)
        else:
            self.interpreter = Interpreter(model_path=os.fspath(model), num_threads=threads)
        self.interpreter.allocate_tensors()
        (self._input,) = self.interpreter.get_input_details()
        (self._output,) = self.interpreter.get_output_details()

    @property
    def clip_shape(self) -> tuple[int, ...]:
        """One clip, `(frames, size, size, 3)`."""
        return tuple(int(d) for d in self._input["shape"][1:])

    @property
    def num_classes(self) -> int:
        """Logits per clip."""
        return int(self._output["shape"][-1])

    @property
    def input_dtype(self):
        return self._input["dtype"]

    def set_clip(self, clip: np.ndarray) -> None:
        """Sets the input to one clip `[frames, size, size, 3]` (float, normalised)."""
        clip = np.asarray(clip, np.float32)[None]
        scale, zero = self._input["quantization"]
        if self._input["dtype"] != np.float32 and scale:
            clip = np.round(clip / scale + zero).astype(self._input["dtype"])
        self.interpreter.set_tensor(self._input["index"], clip)

    def invoke(self) -> np.ndarray:
        """Runs the interpreter on the input set; returns float32 logits `[num_classes]`."""
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])[0]
        scale, zero = self._output["quantization"]
        if out.dtype != np.float32 and scale:
            out = (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        """Logits `[n, num_classes]` of clips `[n, frames, size, size, 3]`."""
        outputs = []
        for clip in clips:
            self.set_clip(clip)
            outputs.append(self.invoke())
        return np.stack(outputs)


def delegation(data_or_path: str | bytes, threads: int = 2) -> tuple[list[str], list[str]]:
    """Which ops of a `.tflite` model XNNPACK runs, and which fall back to TFLite's own kernels.

    The interpreter applies XNNPACK when tensors are allocated. With delegate
    node fusion off, every op XNNPACK takes is replaced by a delegate node of
    its own with the same outputs, so an op whose outputs no delegate node
    produces runs on TFLite's kernels.

    Args:
      data_or_path: The `.tflite` file's bytes or path.
      threads: Interpreter threads (XNNPACK's choice of ops does not depend on it).

    Returns:
      `(delegated, fallback)`: op types, in execution order.
    """
    from ai_edge_litert.interpreter import Interpreter

    kwargs = dict(num_threads=threads, experimental_disable_delegate_node_fusion=True)
    if isinstance(data_or_path, (bytes, bytearray)):
        interpreter = Interpreter(model_content=bytes(data_or_path), **kwargs)
    else:
        interpreter = Interpreter(model_path=os.fspath(data_or_path), **kwargs)
    ops = interpreter._get_ops_details()  # No public op listing.
    interpreter.allocate_tensors()
    nodes = interpreter._get_ops_details()[len(ops) :]
    produced = {tensor for node in nodes for tensor in node["outputs"]}
    delegated, fallback = [], []
    for op in ops:
        (delegated if set(op["outputs"]) <= produced else fallback).append(op["op_name"])
    return delegated, fallback


def count_flops(data_or_path: str | bytes) -> int:
    """FLOPs of one run of a `.tflite` model, from its graph alone.

    Counts convolutions, depthwise convolutions, fully connected layers and
    batch matmuls at 2 FLOPs per multiply-add, which is nearly all of a TVN's
    arithmetic; use the exported `model_info.json` figure (TensorFlow's
    profiler count of the Keras model) when there is one.
    """
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(data_or_path, (bytes, bytearray)):
        interpreter = Interpreter(model_content=bytes(data_or_path))
    else:
        interpreter = Interpreter(model_path=os.fspath(data_or_path))
    interpreter.allocate_tensors()
    # Python ints: numpy's int32 shape entries would wrap past 2**31 FLOPs (TVN-1 at 224).
    shapes = {
        t["index"]: tuple(int(d) for d in t["shape"]) for t in interpreter.get_tensor_details()
    }
    total = 0
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        inputs = [i for i in op["inputs"] if i >= 0]
        outputs = list(op["outputs"])
        if not outputs:
            continue
        out = shapes.get(outputs[0], ())
        out_elements = int(np.prod(out)) if out else 0
        if name == "CONV_2D":
            _, kh, kw, cin = shapes[inputs[1]]
            total += 2 * out_elements * kh * kw * cin
        elif name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = shapes[inputs[1]]
            total += 2 * out_elements * kh * kw
        elif name == "FULLY_CONNECTED":
            total += 2 * out_elements * shapes[inputs[1]][-1]
        elif name == "BATCH_MATMUL":
            a = shapes[inputs[0]]
            total += 2 * out_elements * a[-1]
    return total
