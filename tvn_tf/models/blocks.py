"""One application of a searched TVN block (`TinyBlock`) and its two block-only parts.

`TinyBlock` takes its block as an `architecture.BlockSpec` and builds the
original's `tiny_block` step by step (see `TinyBlock`); `InvertedBottleneck` and
`ResidualProjection` exist only inside it.
"""

from __future__ import annotations

import keras

from tvn_tf.models import architecture
from tvn_tf.models.gates import ContextGate, NonLocal, SqueezeExcite
from tvn_tf.models.layers import PACKAGE, ConvBN, SpatialOp, TemporalOp, activation_layer


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        if training and self.strides > 1:
            return output + self._subsampled(residual, training)
        return output + self.conv(residual, training=training)

    def _subsampled(self, residual, training):
        """The strided 1x1 convolution as subsampling, then the same kernel at stride 1.

        The two are the same function: SAME padding pads nothing for a 1x1 kernel,
        so the strided convolution reads every `strides`-th pixel from the first.
        Training takes this form because TensorFlow's CPU (oneDNN) backward pass of a
        strided 1x1 convolution corrupts the heap at some shapes (64x64 input,
        stride 2: the process aborts); inference and export keep the strided
        convolution, which XNNPACK runs (it does not delegate a strided slice).
        """
        x = residual[:, :: self.strides, :: self.strides, :]
        kernel = keras.ops.cast(self.conv.conv.kernel, x.dtype)
        x = keras.ops.conv(x, kernel, strides=1, padding="same")
        return self.conv.bn(x, training=training)

    def compute_output_shape(self, residual_shape, output_shape):
        return output_shape

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TinyBlock(keras.layers.Layer):
    """One application of a searched TVN block.

    In order: optional inverted-bottleneck expansion; the spatial op; the
    temporal op (when `use_temporal` and the clip has more than one frame); a
    plain 1x1 expansion to `E` channels (non-inverted blocks with `expand > 0`);
    squeeze-excitation; context gating; the inverted-bottleneck projection; the
    skip (only when the frame count did not change); the final activation; an
    optional non-local block.

    Args:
      block: The block (its `repeats` is the builder's business, not this
        application's). The config holds its JSON form (`BlockSpec.to_json`).
      num_frames: Frames per clip entering this application.
      strides: 0 to use the block's own strides; else both strides forced to
        this value (repeats use 1).
      use_temporal: Whether this application runs the temporal op.
    """

    def __init__(
        self,
        block: architecture.BlockSpec,
        num_frames: int,
        strides: int = 0,
        use_temporal: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(block, architecture.BlockSpec):
            raise TypeError(
                f"TinyBlock block is a {type(block).__name__}; expected an "
                "architecture.BlockSpec (architecture.block_from_json reads its JSON form)."
            )
        self.block = block
        self.num_frames = num_frames
        self.strides = strides
        self.use_temporal = use_temporal
        spatial_stride = block.spatial_stride if strides == 0 else strides
        self._build_convolutions(block, spatial_stride)
        self._build_gates_and_skip(block, spatial_stride)

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
            "block": self.block.to_json(),
            "num_frames": self.num_frames,
            "strides": self.strides,
            "use_temporal": self.use_temporal,
        }

    @classmethod
    def from_config(cls, config):
        """Reads the block as stored (`architecture.with_named_activations`)."""
        config = dict(config)
        block = architecture.with_named_activations(config.pop("block"))
        return cls(architecture.block_from_json(block, f"block {config.get('name')}"), **config)
