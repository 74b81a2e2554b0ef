"""Keras 3 layers that mirror the original Tiny Video Networks blocks.

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

_PACKAGE = "tvn_tf"
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


def _spatial_dims(x) -> tuple[Any, Any, Any]:
    """Height, width and channels of a folded tensor; static where known."""
    shape = x.shape
    dynamic = ops.shape(x)
    return tuple(shape[i] if shape[i] is not None else dynamic[i] for i in (1, 2, 3))


def fold_clips(x, num_frames: int):
    """`[batch * frames, h, w, c]` -> `[batch, frames * h, w, c]`: one image per clip."""
    h, w, c = _spatial_dims(x)
    return ops.reshape(x, (-1, num_frames * h, w, c))


def clip_mean(x, num_frames: int):
    """Mean over frames, height and width of each clip: `[batch, 1, 1, c]`."""
    return ops.mean(fold_clips(x, num_frames), axis=(1, 2), keepdims=True)


def scale_clips(x, gate, num_frames: int):
    """Multiplies every frame and position of each clip by its `[batch, 1, 1, c]` gate."""
    h, w, c = _spatial_dims(x)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
        h, w, c = _spatial_dims(x)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SqueezeExcite(keras.layers.Layer):
    """Spatio-temporal squeeze-and-excitation (Hu et al. 2018) per clip.

    Clip mean -> 1x1 conv (bias) to `max(int(filters * ratio), 8)` -> ReLU ->
    1x1 conv (bias) to `filters` -> sigmoid -> scales every frame and position.
    """

    def __init__(self, filters: int, ratio: float, num_frames: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.ratio = ratio
        self.num_frames = num_frames
        self.squeeze = keras.layers.Conv2D(
            max(int(filters * ratio), 8),
            1,
            activation="relu",
            kernel_initializer=conv_initializer(),
            name="squeeze",
            dtype=self.dtype_policy,
        )
        self.excite = keras.layers.Conv2D(
            filters,
            1,
            activation="sigmoid",
            kernel_initializer=conv_initializer(),
            name="excite",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.squeeze.build((None, 1, 1, input_shape[-1]))
        self.excite.build((None, 1, 1, self.squeeze.filters))

    def call(self, x):
        gate = self.excite(self.squeeze(clip_mean(x, self.num_frames)))
        return scale_clips(x, gate, self.num_frames)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "ratio": self.ratio,
            "num_frames": self.num_frames,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ContextGate(keras.layers.Layer):
    """Context gating (Xie et al. 2018) per clip: clip mean -> 1x1 conv -> sigmoid -> scale."""

    def __init__(self, filters: int, num_frames: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_frames = num_frames
        self.gate = keras.layers.Conv2D(
            filters,
            1,
            activation="sigmoid",
            kernel_initializer=conv_initializer(),
            name="gate",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.gate.build((None, 1, 1, input_shape[-1]))

    def call(self, x):
        return scale_clips(x, self.gate(clip_mean(x, self.num_frames)), self.num_frames)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "num_frames": self.num_frames}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class InvertedBottleneck(keras.layers.Layer):
    """The two ends of an inverted bottleneck (Sandler et al. 2018).

    `stage="expand"`: 1x1 conv to the wide width + BN + ReLU (always ReLU, as in
    the original). `stage="project"`: 1x1 conv back to the narrow width + BN, no
    activation. The block runs its spatial, temporal, SE and gating ops between
    the two calls.
    """

    def __init__(self, filters: int, expanded_filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.expanded_filters = expanded_filters
        self.expand_conv = ConvBN(
            expanded_filters, 1, 1, "relu", name="expand", dtype=self.dtype_policy
        )
        self.project_conv = ConvBN(filters, 1, 1, None, name="project", dtype=self.dtype_policy)

    def build(self, input_shape):
        # First called with the block input, at the narrow width.
        self.expand_conv.build(input_shape)
        self.project_conv.build((*input_shape[:-1], self.expanded_filters))

    def call(self, x, stage: str = "expand", training=None):
        if stage not in ("expand", "project"):
            raise ValueError(
                f"InvertedBottleneck stage is {stage!r}; expected 'expand' or 'project'."
            )
        layer = self.expand_conv if stage == "expand" else self.project_conv
        return layer(x, training=training)

    def stage_output_shape(self, input_shape, stage: str = "expand") -> tuple:
        """The output shape of one stage."""
        width = self.expanded_filters if stage == "expand" else self.filters
        return (*input_shape[:-1], width)

    def compute_output_shape(self, input_shape):
        return self.stage_output_shape(input_shape)

    def compute_output_spec(self, x, stage: str = "expand", training=None):
        # Keras passes only `*_shape` arguments to compute_output_shape; the stage is a keyword.
        return keras.KerasTensor(self.stage_output_shape(x.shape, stage), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "expanded_filters": self.expanded_filters,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResidualProjection(keras.layers.Layer):
    """Skip connection: `output + BN(conv1x1_stride(residual))`.

    The 1x1 conv projects the block input to the output's channel count; its
    stride is the block's spatial stride when the spatial size changed, else 1.
    The width is read from the output at build time.
    """

    def __init__(self, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.strides = strides

    def build(self, residual_shape, output_shape):
        self.conv = ConvBN(
            output_shape[-1], 1, self.strides, None, name="projection", dtype=self.dtype_policy
        )
        self.conv.build(residual_shape)

    def call(self, residual, output, training=None):
        return output + self.conv(residual, training=training)

    def compute_output_shape(self, residual_shape, output_shape):
        return output_shape

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NonLocal(keras.layers.Layer):
    """Embedded-Gaussian non-local block (Wang et al. 2018) over a whole clip.

    theta, phi, g: 1x1 convs to `bottleneck` channels; phi and g are max-pooled
    spatially by `pool_size` (the pooled representation); every position of
    the clip attends to every pooled position of the clip with softmax(theta .
    phi^T); the result goes through a 1x1 conv + BN (scale initialised to 0, so
    the block starts as identity) and is added to the input. Uses only matmul,
    softmax, reshape and 2D ops, all TFLite builtins.
    """

    def __init__(self, bottleneck: int, num_frames: int, pool_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.bottleneck = bottleneck
        self.num_frames = num_frames
        self.pool_size = pool_size
        conv = lambda name: keras.layers.Conv2D(
            bottleneck, 1, kernel_initializer=conv_initializer(), name=name, dtype=self.dtype_policy
        )
        self.theta, self.phi, self.g = conv("theta"), conv("phi"), conv("g")
        self.pool = (
            keras.layers.MaxPooling2D(
                pool_size, pool_size, "same", name="pool", dtype=self.dtype_policy
            )
            if pool_size > 1
            else None
        )
        self.out = None  # Its width is the input's: made in build.

    def build(self, input_shape):
        for conv in (self.theta, self.phi, self.g):
            conv.build(input_shape)
        self.out = ConvBN(
            input_shape[-1], 1, 1, None, gamma_zero=True, name="out", dtype=self.dtype_policy
        )
        self.out.build((*input_shape[:-1], self.bottleneck))

    def call(self, x, training=None):
        h, w, c = _spatial_dims(x)
        keys, values = self.phi(x), self.g(x)
        if self.pool is not None:
            keys, values = self.pool(keys), self.pool(values)
        per_clip = lambda t: ops.reshape(
            t, (-1, self.num_frames * t.shape[1] * t.shape[2], self.bottleneck)
        )
        query = per_clip(self.theta(x))
        attention = ops.softmax(
            ops.matmul(query, ops.transpose(per_clip(keys), (0, 2, 1))), axis=-1
        )
        y = ops.reshape(ops.matmul(attention, per_clip(values)), (-1, h, w, self.bottleneck))
        return x + self.out(y, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "bottleneck": self.bottleneck,
            "num_frames": self.num_frames,
            "pool_size": self.pool_size,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TinyBlock(keras.layers.Layer):
    """One application of a searched TVN block.

    In order: optional inverted-bottleneck expansion; the spatial op; the
    temporal op (when `use_temporal` and the clip has more than one frame); a
    plain 1x1 expansion to `E` channels (non-inverted blocks with `expand > 0`);
    squeeze-excitation; context gating; the inverted-bottleneck projection; the
    skip (only when the frame count did not change); the final activation; an
    optional non-local block.

    Args:
      block: The block's JSON form (see `architecture.BlockSpec.to_json`).
      num_frames: Frames per clip entering this application.
      strides: 0 to use the block's own strides; else both strides forced to
        this value (repeats use 1).
      use_temporal: Whether this application runs the temporal op.
    """

    def __init__(
        self,
        block: dict[str, Any],
        num_frames: int,
        strides: int = 0,
        use_temporal: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.block = dict(block)
        self.num_frames = num_frames
        self.strides = strides
        self.use_temporal = use_temporal
        spec = architecture.block_from_json(block, f"block {self.name}")
        spatial_stride = spec.spatial_stride if strides == 0 else strides
        self._build_convolutions(spec, spatial_stride)
        self._build_gates_and_skip(spec, spatial_stride)

    def _build_convolutions(self, spec: architecture.BlockSpec, spatial_stride: int) -> None:
        """Steps 1-3 and 5: bottleneck expansion, spatial and temporal ops, plain expansion."""
        expanded = spec.expanded_filters
        width = expanded if spec.inverted_bottleneck else spec.filters
        self.bottleneck = (
            InvertedBottleneck(spec.filters, expanded, name="bottleneck", dtype=self.dtype_policy)
            if spec.inverted_bottleneck and spec.expand > 0
            else None
        )
        self.spatial = SpatialOp(
            spec.spatial_type,
            spec.spatial_kernel,
            width,
            spatial_stride,
            spec.spatial_act,
            name="spatial",
            dtype=self.dtype_policy,
        )
        self.temporal = None
        self.output_frames = self.num_frames
        if self.use_temporal and self.num_frames > 1:
            self.temporal = TemporalOp(
                spec.temporal_type,
                spec.temporal_kernel,
                width,
                spec.temporal_stride if self.strides == 0 else self.strides,
                self.num_frames,
                spec.temporal_act,
                name="temporal",
                dtype=self.dtype_policy,
            )
            self.output_frames = self.temporal.output_frames
        self.expand = (
            ConvBN(expanded, 1, 1, None, name="expand", dtype=self.dtype_policy)
            if not spec.inverted_bottleneck and spec.expand > 0
            else None
        )

    def _build_gates_and_skip(self, spec: architecture.BlockSpec, spatial_stride: int) -> None:
        """Steps 6-10 and after: squeeze-excitation, gating, skip, activation, non-local."""
        expanded, frames = spec.expanded_filters, self.output_frames
        self.squeeze_excite = (
            SqueezeExcite(
                expanded,
                spec.squeeze,
                frames,
                name=architecture.SQUEEZE_EXCITE_SCOPE,
                dtype=self.dtype_policy,
            )
            if spec.squeeze > 0
            else None
        )
        self.context_gate = (
            ContextGate(
                expanded, frames, name=architecture.CONTEXT_GATE_SCOPE, dtype=self.dtype_policy
            )
            if spec.context_gate
            else None
        )
        # The skip needs batch * frames unchanged; its projection strides only
        # when the spatial op changed the spatial size.
        self.residual = None
        if spec.skip and frames == self.num_frames:
            changes_size = spec.spatial_kernel != 1 and spatial_stride > 1
            self.residual = ResidualProjection(
                spatial_stride if changes_size else 1, name="residual", dtype=self.dtype_policy
            )
        self.act = activation_layer(spec.act, "act", self.dtype_policy)
        self.non_local = (
            NonLocal(
                spec.non_local,
                frames,
                spec.non_local_pool,
                name="non_local",
                dtype=self.dtype_policy,
            )
            if spec.non_local > 0
            else None
        )

    def _shapes(self, input_shape, build: bool = False):
        """The output shape, running each sublayer's `build` on the way when `build`.

        Walks the sublayers in `call`'s order, so a block is built exactly as a
        first call would build it.
        """

        def step(layer, shape):
            if build:
                layer.build(shape)
            return layer.compute_output_shape(shape)

        shape = tuple(input_shape)
        if self.bottleneck is not None:
            shape = step(self.bottleneck, shape)  # The expand stage.
        shape = step(self.spatial, shape)
        if self.temporal is not None:
            shape = step(self.temporal, shape)
        if self.expand is not None:
            shape = step(self.expand, shape)
        self._check_gated_width(shape[-1])
        for layer in (self.squeeze_excite, self.context_gate):
            if layer is not None:
                shape = step(layer, shape)
        if self.bottleneck is not None:
            shape = self.bottleneck.stage_output_shape(shape, stage="project")
        if self.residual is not None:
            if build:
                self.residual.build(tuple(input_shape), shape)
            shape = self.residual.compute_output_shape(tuple(input_shape), shape)
        if build:
            self.act.build(shape)
        if self.non_local is not None:
            shape = step(self.non_local, shape)
        return tuple(shape)

    def _check_gated_width(self, channels: int | None) -> None:
        gated = self.squeeze_excite or self.context_gate
        if gated is not None and channels != gated.filters:
            raise ValueError(
                f"block {self.name}: squeeze-excitation and context gating act on "
                f"E = max(filters * expand, filters) = {gated.filters} channels, but the tensor "
                f"has {channels} here; give the block expand > 0 or filters equal to its "
                "input width."
            )

    def build(self, input_shape):
        self._shapes(input_shape, build=True)

    def compute_output_shape(self, input_shape):
        return self._shapes(input_shape)

    def call(self, x, training=None):
        residual = x
        if self.bottleneck is not None:
            x = self.bottleneck(x, stage="expand", training=training)
        x = self.spatial(x, training=training)
        if self.temporal is not None:
            x = self.temporal(x, training=training)
        if self.expand is not None:
            x = self.expand(x, training=training)
        self._check_gated_width(x.shape[-1])
        if self.squeeze_excite is not None:
            x = self.squeeze_excite(x)
        if self.context_gate is not None:
            x = self.context_gate(x)
        if self.bottleneck is not None:
            x = self.bottleneck(x, stage="project", training=training)
        if self.residual is not None:
            x = self.residual(residual, x, training=training)
        x = self.act(x)
        if self.non_local is not None:
            x = self.non_local(x, training=training)
        return x

    def get_config(self):
        return {
            **super().get_config(),
            "block": self.block,
            "num_frames": self.num_frames,
            "strides": self.strides,
            "use_temporal": self.use_temporal,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FoldFrames(keras.layers.Layer):
    """`[batch, frames, h, w, c]` -> `[batch * frames, h, w, c]`: time into the batch."""

    def call(self, x):
        return ops.reshape(x, (-1, *x.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, frames = input_shape[:2]
        return (None if batch is None else batch * frames, *input_shape[2:])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassificationHead(keras.layers.Layer):
    """Clip mean over frames, height and width -> dropout -> dense logits.

    The dense kernel starts as normal(stddev 0.01), as in the original.
    """

    def __init__(self, num_classes: int, num_frames: int, dropout_rate: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.dropout_rate = dropout_rate
        self.dropout = keras.layers.Dropout(dropout_rate, name="dropout", dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="logits",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.classifier.build(self._features_shape(input_shape))

    def _features_shape(self, input_shape) -> tuple:
        """What the classifier sees: one feature vector per clip."""
        return (regroup_frames(input_shape[0], self.num_frames, 1), input_shape[-1])

    def call(self, x, training=None):
        x = ops.mean(fold_clips(x, self.num_frames), axis=(1, 2))
        return self.classifier(self.dropout(x, training=training))

    def compute_output_shape(self, input_shape):
        return (regroup_frames(input_shape[0], self.num_frames, 1), self.num_classes)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "num_frames": self.num_frames,
            "dropout_rate": self.dropout_rate,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SoftmaxPoolingHead(ClassificationHead):
    """Per-frame logits pooled over time with softmax weights, for long multi-label video.

    The original's Charades head: spatial mean per frame -> dropout -> dense per
    frame; weights `softmax(logits / sqrt(frames))` over time act as a smooth max,
    and the output is the weighted sum of the per-frame logits.
    """

    def _features_shape(self, input_shape) -> tuple:
        """One feature vector per frame of each clip."""
        return (*clip_shape(input_shape, self.num_frames)[:2], input_shape[-1])

    def call(self, x, training=None):
        h, w, c = _spatial_dims(x)
        x = ops.mean(ops.reshape(x, (-1, self.num_frames, h * w, c)), axis=2)
        logits = self.classifier(self.dropout(x, training=training))
        weights = ops.softmax(logits / math.sqrt(self.num_frames), axis=1)
        return ops.sum(logits * weights, axis=1)
