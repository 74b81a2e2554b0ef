"""The classifiers on top of the last block: clip mean (`mean`) or softmax pooling.

`HEADS` maps the `head` setting of a model to its layer.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tvn_tf.models.layers import PACKAGE, clip_shape, fold_clips, regroup_frames, spatial_dims


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        h, w, c = spatial_dims(x)
        x = ops.mean(ops.reshape(x, (-1, self.num_frames, h * w, c)), axis=2)
        logits = self.classifier(self.dropout(x, training=training))
        weights = ops.softmax(logits / math.sqrt(self.num_frames), axis=1)
        return ops.sum(logits * weights, axis=1)


HEADS = {"mean": ClassificationHead, "softmax_pool": SoftmaxPoolingHead}
