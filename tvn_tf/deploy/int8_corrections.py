"""Edits of an int8 TFLite flatbuffer that take out what calibration gets wrong.

Two corrections, each a rewrite of the flatbuffer that costs nothing at run
time (`tvn_tf.deploy.int8_analysis` applies them; `tvn_tf.deploy.quantization`
chooses when):

    narrow_sigmoid_inputs   each sigmoid input's calibrated range cut to
                            where the int8 sigmoid still changes
                            (docs/design.md, "int8: the sigmoid cut")
    correct_logit_bias      int8's mean shift of each logit taken out of
                            the classifier's bias (docs/design.md, "int8:
                            bias correction")
"""

from __future__ import annotations

import math

import numpy as np

# An int8 sigmoid's output has the step 1/256 from 0 (TFLite's quantization
# spec), so beyond +-ln(511) it rounds to its first or last level: sigmoid(x)
# is within half a step of 0 or of 1.
SIGMOID_SATURATION = math.log(511)


def builtin_code(model, op) -> int:
    """The builtin op type of `op` in a flatbuffer `model` (old and new code fields)."""
    op_code = model.operatorCodes[op.opcodeIndex]
    return max(op_code.builtinCode, op_code.deprecatedBuiltinCode)


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
    94.3%; so `quantization.choose_denylist` judges it per model
    (docs/design.md, "int8: the sigmoid cut").

    Only an input that nothing but sigmoids reads is cut; a range already
    inside the limits is kept.

    Args:
      calibrated: The calibrated float model (the debugger's
        `calibrated_model`): each tensor's range in its quantization
        parameters' `min` and `max`.
      limit: Where to cut.

    Returns:
      `(calibrated, narrowed)`: the model with the cut ranges, and per input
      cut (its `quantization_report.short_name`) its range before.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    from tvn_tf.deploy import quantization_report

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    graph = model.subgraphs[0]
    narrowed = {}
    for index in _sigmoid_only_inputs(model):
        tensor = graph.tensors[index]
        stats = tensor.quantization
        if stats is None or stats.min is None or stats.max is None or len(stats.min) != 1:
            continue
        low, high = float(stats.min[0]), float(stats.max[0])
        if low >= -limit and high <= limit:
            continue
        stats.min, stats.max = [max(low, -limit)], [min(high, limit)]
        narrowed[quantization_report.short_name(tensor.name.decode())] = (low, high)
    if not narrowed:
        return calibrated, {}
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), narrowed


def _sigmoid_only_inputs(model) -> list[int]:
    """The tensors of `model` that sigmoids read and nothing else does (not outputs), in op order."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = model.subgraphs[0]
    readers: dict[int, set[int]] = {}
    for op in graph.operators:
        for tensor in op.inputs:
            readers.setdefault(int(tensor), set()).add(builtin_code(model, op))
    inputs = []
    for op in graph.operators:
        if builtin_code(model, op) != schema.BuiltinOperator.LOGISTIC:
            continue
        index = int(op.inputs[0])
        if readers[index] == {schema.BuiltinOperator.LOGISTIC} and index not in graph.outputs:
            inputs.append(index)
    return inputs


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
    bias = _output_bias(model)
    if bias is None:
        return data, None
    buffer = model.buffers[bias.buffer]
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


def _output_bias(model):
    """The float32 or int32 bias tensor of the fully connected layer computing the output; or None.

    The output may pass through a dequantize after that layer.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    graph = model.subgraphs[0]
    producer = {out: op for op in graph.operators for out in op.outputs}
    op = producer.get(graph.outputs[0])
    if op is not None and builtin_code(model, op) == schema.BuiltinOperator.DEQUANTIZE:
        op = producer.get(op.inputs[0])
    if (
        op is None
        or builtin_code(model, op) != schema.BuiltinOperator.FULLY_CONNECTED
        or len(op.inputs) < 3
        or op.inputs[2] < 0
    ):
        return None
    bias = graph.tensors[op.inputs[2]]
    if model.buffers[bias.buffer].data is None or bias.type not in (
        schema.TensorType.FLOAT32,
        schema.TensorType.INT32,
    ):
        return None
    return bias
