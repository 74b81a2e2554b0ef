"""The classifiers: clip mean and softmax pooling over frames."""

import numpy as np
import pytest

from tvn_tf.models import heads

from tests import layer_testing

RNG = np.random.default_rng(0)


def _clips(batch, frames, size, channels):
    return RNG.normal(size=(batch * frames, size, size, channels)).astype("float32")


def test_classification_head_is_clip_mean_dropout_dense():
    head = heads.ClassificationHead(5, num_frames=2)
    x = _clips(3, 2, 4, 6)
    logits = head(x, training=False).numpy()
    kernel, bias = head.classifier.kernel.numpy(), head.classifier.bias.numpy()
    expected = x.reshape(3, 2 * 4 * 4, 6).mean(axis=1) @ kernel + bias
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    assert 0.005 < kernel.std() < 0.015  # normal(0.01)
    assert head.dropout.rate == 0.5
    assert not np.allclose(head(x, training=True), logits)


def test_softmax_pooling_head_weights_frames_by_softmax():
    frames = 4
    head = heads.SoftmaxPoolingHead(3, num_frames=frames)
    x = _clips(2, frames, 2, 5)
    out = head(x, training=False).numpy()
    per_frame = x.reshape(2, frames, 4, 5).mean(axis=2) @ head.classifier.kernel.numpy()
    per_frame += head.classifier.bias.numpy()
    weights = np.exp(per_frame / 2) / np.exp(per_frame / 2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, (per_frame * weights).sum(axis=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", layer_testing.cases_of(heads), ids=lambda case: case[0])
def test_layer_contract(case):
    # mixed_bfloat16 and the other backends: test_backends.py, in child processes.
    _, layer_cls, init_kwargs, input_shape, call_kwargs, output_shape = case
    layer_testing.run_layer_test(
        layer_cls, init_kwargs, input_shape, call_kwargs, output_shape, mixed_precision=False
    )
