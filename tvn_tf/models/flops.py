"""FLOPs of a TVN counted the way TensorFlow's profiler counts them.

Each layer is traced into a graph for one clip and every op is priced by the
profiler's own registry (`tf.profiler` float_operation): a convolution or
matmul costs a multiply and an add per MAC, pooling its window area per output,
a mean one per input element, an elementwise op one per output element;
ReLU, sigmoid and reshapes cost nothing. Batch norm counts 0: it folds into
the preceding convolution at inference, and the original's fused batch norm
has no registered cost either.

The original figures (`original_tvn_figures.json`) were profiled on a graph
that also held the variable initializers, whose truncated-normal draws cost a
multiply and an add per kernel weight. `FlopCount.with_initializers` adds that
term and reproduces the original figures exactly; `forward` is the cost of
running the network.

This module needs TensorFlow (the profiler and graph tracing): it runs on the
TensorFlow backend only, unlike the rest of `tvn_tf.models`, which runs on JAX and
PyTorch too (docs/backends.md). Elsewhere use the README's per-clip figures.
"""

from __future__ import annotations

import dataclasses
import re

import keras
import numpy as np
import tensorflow as tf

# The profiler's per-op cost registry; no public alias exists in TF 2.
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.util import deprecation

# Batch norm sublayers are all named "bn" (`layers.batch_norm`); graph scopes
# may add a "_N" suffix.
_BATCH_NORM_SCOPE = re.compile(r"(^|/)bn(_\d+)?/")
_KERNEL_NAMES = ("kernel", "depthwise_kernel")


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs for one clip.

    Attributes:
      forward: The forward pass, multiply and add counted separately.
      initializers: What the original's profile also counted: a multiply and an
        add per kernel weight, from the initializers' random draws.
      per_layer: `(layer name, forward FLOPs)` for each top-level layer.
    """

    forward: int
    initializers: int
    per_layer: tuple[tuple[str, int], ...]

    @property
    def with_initializers(self) -> int:
        """The figure the original code's profile reports."""
        return self.forward + self.initializers


def graph_flops(graph: tf.Graph) -> int:
    """Sums the profiler's registered FLOPs over a graph's ops, skipping batch norm."""
    total = 0
    for op in graph.get_operations():
        if _BATCH_NORM_SCOPE.search(op.name):
            continue
        try:
            with deprecation.silence():  # The registry uses TF1 shape helpers.
                flops = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # No cost registered for this op type.
            continue
        total += int(flops or 0)
    return total


def _one_clip_shape(layer: keras.layers.Layer) -> tuple[int, ...]:
    # Folded layers see `frames` rows per clip; the first sees the 5D clip.
    rows = getattr(layer, "num_frames", 1)
    return (rows, *layer.input.shape[1:])


def count_flops(model: keras.Model) -> FlopCount:
    """Counts the FLOPs of one clip through `model`, layer by layer.

    Args:
      model: A `tvn.TinyVideoNetwork` (a functional model).

    Returns:
      The `FlopCount`.
    """
    per_layer = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        spec = tf.TensorSpec(_one_clip_shape(layer), layer.input.dtype)
        fn = tf.function(lambda x, layer=layer: layer(x, training=False), autograph=False)
        per_layer.append((layer.name, graph_flops(fn.get_concrete_function(spec).graph)))
    kernels = sum(
        int(np.prod(w.shape))
        for w in model.trainable_weights
        if w.path.rsplit("/", 1)[-1] in _KERNEL_NAMES
    )
    return FlopCount(
        forward=sum(f for _, f in per_layer), initializers=2 * kernels, per_layer=tuple(per_layer)
    )
