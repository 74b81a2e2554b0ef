"""The int8 error each layer adds, as `quantization_report.csv` holds it.

TensorFlow's QuantizationDebugger (`tvn_tf.deploy.int8_analysis`) runs an
instrumented int8 model in which every quantized op's output is compared with
the same op computed in float on the same (dequantized) inputs. Each layer's
error is reported here as its RMSE in units of its own quantization step
(`rmse_over_scale`; about 0.29 is plain rounding, well above 1 means the int8
form of that op loses information), worst first.

    layers = layer_errors(debugger_rows, in_range=narrowed)
    write_report(layers, "quantization_report.csv")
    read_report("quantization_report.csv") == layers  # to the CSV's rounding
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Sequence

import numpy as np

REPORT_FILE = "quantization_report.csv"
REPORT_FIELDS = ("layer", "op", "rmse_over_scale", "share", "scale", "num_elements", "tensor")
# The debugger metric of `in_range_mse`.
IN_RANGE_MSE = "mean_squared_error_in_range"


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


def in_range_mse(
    float_values: np.ndarray, quantized: np.ndarray, scale: float, zero_point: int
) -> float:
    """A debugger metric: the int8 output's squared error against float clipped to its range."""
    low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
    values = (quantized.astype(np.float64) - zero_point) * scale
    return float(np.mean((values - np.clip(float_values, low, high)) ** 2))


def layer_errors(rows: list[dict], in_range: Iterable[str] = ()) -> list[LayerError]:
    """`LayerError`s, worst first, from the debugger's CSV rows.

    Args:
      rows: The debugger's `layer_statistics_dump`.
      in_range: Layers (short names) whose error is taken inside their range
        (`in_range_mse`): the sigmoid inputs cut by
        `int8_corrections.narrow_sigmoid_inputs`.
    """
    in_range = set(in_range)
    measured = []
    for row in rows:
        scale = float(row["scale"])
        metric = (
            IN_RANGE_MSE if short_name(row["tensor_name"]) in in_range else "mean_squared_error"
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
