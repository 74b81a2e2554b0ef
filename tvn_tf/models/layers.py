"""Keras 3 layers that mirror the original Tiny Video Networks ops, and their shape helpers.

The ops of a block are here (convolution + batch norm, the spatial and temporal
ops, activations, folding time into the batch); the per-clip gates are in
`gates`, the block itself in `blocks`, the classifiers in `heads`.

Every layer works on clips with time folded into the batch,
`[batch * frames, height, width, channels]`, and knows the (static) number of
frames per clip, as the original code does. Ops along time reshape to
`[batch, frames, height * width, channels]` and use 2D convolution or pooling
with a `(k, 1)` window, so the whole network converts to TFLite builtins (no
Conv3D, no 3D pooling, no Flex ops).

The semantics follow the released TensorFlow 1 code block by block
(`tiny_video_nets/layers.py` and `tiny_video_net.py` in google-research):
convolutions have no bias, SAME padding and variance-scaling (2.0, fan-in,
truncated normal) kernels; every convolution is followed by batch norm with
momentum 0.9 and epsilon 1e-5.

The layers are written in `keras.ops` only and run on the TensorFlow, JAX and
PyTorch backends. Every layer made of sublayers builds them from shapes in
`build` and states its output in `compute_output_shape`, so building a model
never traces `call` on a symbolic tensor: a reshape to
`[batch, frames, h * w, c]` cannot be checked against a dynamic batch by JAX's
or PyTorch's shape inference, only run on a real one.
"""

from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

import keras
from keras import ops

from tvn_tf.models import architecture

PACKAGE = "tvn_tf"  # Registered names are `tvn_tf>ClassName`.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv_initializer() -> keras.initializers.Initializer:
    """The original's kernel initializer: variance scaling 2.0, fan-in, truncated normal."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="truncated_normal"
    )


def batch_norm(name: str | None = None, gamma_zero: bool = False, dtype=None) -> keras.layers.Layer:
    """The original's batch norm (momentum 0.9, epsilon 1e-5, centre and scale)."""
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_initializer="zeros" if gamma_zero else "ones",
        name=name,
        dtype=dtype,
    )


def spatial_dims(x) -> tuple[Any, Any, Any]:
    """Height, width and channels of a folded tensor; static where known."""
    shape = x.shape
    dynamic = ops.shape(x)
    return tuple(shape[i] if shape[i] is not None else dynamic[i] for i in (1, 2, 3))


def fold_clips(x, num_frames: int):
    """`[batch * frames, h, w, c]` -> `[batch, frames * h, w, c]`: one image per clip."""
    h, w, c = spatial_dims(x)
    return ops.reshape(x, (-1, num_frames * h, w, c))


def clip_mean(x, num_frames: int):
    """Mean over frames, height and width of each clip: `[batch, 1, 1, c]`."""
    return ops.mean(fold_clips(x, num_frames), axis=(1, 2), keepdims=True)


def scale_clips(x, gate, num_frames: int):
    """Multiplies every frame and position of each clip by its `[batch, 1, 1, c]` gate."""
    h, w, c = spatial_dims(x)
    return ops.reshape(fold_clips(x, num_frames) * gate, (-1, h, w, c))


def regroup_frames(folded: int | None, num_frames: int, new_frames: int) -> int | None:
    """The folded batch `clips * num_frames` once each clip has `new_frames` frames.

    None (a dynamic batch) stays None.
    """
    return None if folded is None else folded // num_frames * new_frames


def clip_shape(input_shape, num_frames: int) -> tuple:
    """`[batch * frames, h, w, c]` -> the `[batch, frames, h * w, c]` view of ops along time."""
    folded, h, w, c = input_shape
    positions = None if h is None or w is None else h * w
    return (regroup_frames(folded, num_frames, 1), num_frames, positions, c)


@keras.saving.register_keras_serializable(package=PACKAGE)
class HardSwish(keras.layers.Layer):
    """`x * relu6(x + 3) / 6` (Howard et al. 2019), written as the original does."""

    def call(self, x):
        return x * ops.relu6(x + 3.0) * (1.0 / 6.0)

    def compute_output_shape(self, input_shape):
        return input_shape


def activation_layer(
    name: str | None, layer_name: str | None = None, dtype=None
) -> keras.layers.Layer | None:
    """Returns the layer for `'relu'`, `'hswish'`, or None for no activation."""
    if name is None:
        return None
    if name == "relu":
        return keras.layers.ReLU(name=layer_name, dtype=dtype)
    if name == "hswish":
        return HardSwish(name=layer_name, dtype=dtype)
    raise ValueError(f"Activation is {name!r}; expected one of {architecture.ACTIVATIONS} or None.")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvBN(keras.layers.Layer):
    """Convolution (no bias, SAME) + batch norm + optional activation.

    Args:
      filters: Output channels.
      kernel_size: An int or a `(kh, kw)` pair.
      strides: An int or a `(sh, sw)` pair.
      activation: `'relu'`, `'hswish'` or None.
      depthwise: A depthwise convolution (multiplier 1) instead; `filters` must
        then equal the input channels.
      gamma_zero: Initialise the batch norm scale to 0 (the layer starts as 0).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int] = 1,
        strides: int | Sequence[int] = 1,
        activation: str | None = None,
        depthwise: bool = False,
        gamma_zero: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.activation = activation
        self.depthwise = depthwise
        self.gamma_zero = gamma_zero
        if depthwise:
            self.conv = keras.layers.DepthwiseConv2D(
                kernel_size,
                strides=strides,
                padding="same",
                depth_multiplier=1,
                use_bias=False,
                depthwise_initializer=conv_initializer(),
                name="depthwise",
                dtype=self.dtype_policy,
            )
        else:
            self.conv = keras.layers.Conv2D(
                filters,
                kernel_size,
                strides=strides,
                padding="same",
                use_bias=False,
                kernel_initializer=conv_initializer(),
                name="conv",
                dtype=self.dtype_policy,
            )
        self.bn = batch_norm("bn", gamma_zero, self.dtype_policy)
        self.act = activation_layer(activation, "act", self.dtype_policy)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, x, training=None):
        x = self.bn(self.conv(x), training=training)
        return self.act(x) if self.act is not None else x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "activation": self.activation,
            "depthwise": self.depthwise,
            "gamma_zero": self.gamma_zero,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpatialOp(keras.layers.Layer):
    """The block's spatial op on each frame.

    `std`: 1x1 conv + kxk conv; `depth`: 1x1 conv + kxk depthwise conv;
    `1std`: the kxk conv alone; `maxpool` / `avgpool`: kxk pooling (channels
    unchanged). A kernel of 1 means no op at all.
    """

    def __init__(
        self,
        op: str,
        kernel_size: int,
        filters: int,
        strides: int = 1,
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if op not in architecture.SPATIAL_TYPES:
            raise ValueError(
                f"SpatialOp op is {op!r}; expected one of {architecture.SPATIAL_TYPES}."
            )
        self.op = op
        self.kernel_size = kernel_size
        self.filters = filters
        self.strides = strides
        self.activation = activation
        # Sublayers are attributes, not a list: tf.train.Checkpoint tracks attributes.
        self.pointwise = None
        self.window = None
        if kernel_size == 1:
            return
        if op in ("std", "depth"):
            self.pointwise = ConvBN(
                filters, 1, 1, activation, name="pointwise", dtype=self.dtype_policy
            )
        if op in ("std", "1std"):
            self.window = ConvBN(
                filters, kernel_size, strides, activation, name="conv", dtype=self.dtype_policy
            )
        elif op == "depth":
            self.window = ConvBN(
                filters,
                kernel_size,
                strides,
                activation,
                depthwise=True,
                name="depthwise",
                dtype=self.dtype_policy,
            )
        elif op == "maxpool":
            self.window = keras.layers.MaxPooling2D(
                kernel_size, strides, "same", name="pool", dtype=self.dtype_policy
            )
        else:
            self.window = keras.layers.AveragePooling2D(
                kernel_size, strides, "same", name="pool", dtype=self.dtype_policy
            )

    def build(self, input_shape):
        if self.pointwise is not None:
            self.pointwise.build(input_shape)
            input_shape = self.pointwise.compute_output_shape(input_shape)
        if self.window is not None:
            self.window.build(input_shape)

    def call(self, x, training=None):
        if self.pointwise is not None:
            x = self.pointwise(x, training=training)
        if isinstance(self.window, ConvBN):
            return self.window(x, training=training)
        return x if self.window is None else self.window(x)

    def compute_output_shape(self, input_shape):
        if self.pointwise is not None:
            input_shape = self.pointwise.compute_output_shape(input_shape)
        if self.window is not None:
            input_shape = self.window.compute_output_shape(input_shape)
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "op": self.op,
            "kernel_size": self.kernel_size,
            "filters": self.filters,
            "strides": self.strides,
            "activation": self.activation,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemporalOp(keras.layers.Layer):
    """The block's op along time: `1d` conv, `maxpool` or `avgpool` over frames.

    The folded input is viewed as `[batch, frames, h * w, c]` and a `(k, 1)`
    window with stride `(s, 1)` and SAME padding runs along frames, so clips of
    `num_frames` frames come out with `ceil(num_frames / s)` frames. A kernel of 1
    means no op.
    """

    def __init__(
        self,
        op: str,
        kernel_size: int,
        filters: int,
        strides: int,
        num_frames: int,
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if op not in architecture.TEMPORAL_TYPES:
            raise ValueError(
                f"TemporalOp op is {op!r}; expected one of {architecture.TEMPORAL_TYPES}."
            )
        self.op = op
        self.kernel_size = kernel_size
        self.filters = filters
        self.strides = strides
        self.num_frames = num_frames
        self.activation = activation
        self.window = None
        if kernel_size == 1:
            self.output_frames = num_frames
            return
        self.output_frames = math.ceil(num_frames / strides)
        window, stride = (kernel_size, 1), (strides, 1)
        if op == "1d":
            self.window = ConvBN(
                filters, window, stride, activation, name="conv", dtype=self.dtype_policy
            )
        elif op == "maxpool":
            self.window = keras.layers.MaxPooling2D(
                window, stride, "same", name="pool", dtype=self.dtype_policy
            )
        else:
            self.window = keras.layers.AveragePooling2D(
                window, stride, "same", name="pool", dtype=self.dtype_policy
            )

    def build(self, input_shape):
        if self.window is not None:
            self.window.build(clip_shape(input_shape, self.num_frames))

    def call(self, x, training=None):
        if self.window is None:
            return x
        h, w, c = spatial_dims(x)
        x = ops.reshape(x, (-1, self.num_frames, h * w, c))
        x = self.window(x, training=training) if isinstance(self.window, ConvBN) else self.window(x)
        return ops.reshape(x, (-1, h, w, x.shape[-1]))

    def compute_output_shape(self, input_shape):
        if self.window is None:
            return tuple(input_shape)
        folded, h, w, _ = input_shape
        channels = self.window.compute_output_shape(clip_shape(input_shape, self.num_frames))[-1]
        return (regroup_frames(folded, self.num_frames, self.output_frames), h, w, channels)

    def get_config(self):
        return {
            **super().get_config(),
            "op": self.op,
            "kernel_size": self.kernel_size,
            "filters": self.filters,
            "strides": self.strides,
            "num_frames": self.num_frames,
            "activation": self.activation,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FoldFrames(keras.layers.Layer):
    """`[batch, frames, h, w, c]` -> `[batch * frames, h, w, c]`: time into the batch."""

    def call(self, x):
        return ops.reshape(x, (-1, *x.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, frames = input_shape[:2]
        return (None if batch is None else batch * frames, *input_shape[2:])
