"""Per-clip context ops of a TVN block: squeeze-excitation, context gating, non-local.

Each pools or attends over a whole clip (every frame and position) of the folded
`[batch * frames, h, w, c]` tensor, so it knows the clip's frame count. See
`layers` for the conventions every layer here keeps.
"""

from __future__ import annotations

import keras
from keras import ops

from tvn_tf.models.layers import (
    PACKAGE,
    ConvBN,
    clip_mean,
    conv_initializer,
    scale_clips,
    spatial_dims,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        h, w, c = spatial_dims(x)
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
