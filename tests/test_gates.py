"""Squeeze-excitation, context gating and non-local blocks compute the original's ops per clip."""

import numpy as np
import pytest

from tvn_tf.models import gates

from tests import layer_testing

RNG = np.random.default_rng(0)


def _clips(batch, frames, size, channels):
    return RNG.normal(size=(batch * frames, size, size, channels)).astype("float32")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_squeeze_excite_matches_numpy_and_keeps_clips_apart():
    frames, channels = 3, 16
    layer = gates.SqueezeExcite(channels, 0.25, frames)
    x = _clips(2, frames, 4, channels)
    y = layer(x).numpy()
    assert layer.squeeze.filters == 8  # max(int(16 * 0.25), 8)
    w1, b1 = layer.squeeze.kernel.numpy()[0, 0], layer.squeeze.bias.numpy()
    w2, b2 = layer.excite.kernel.numpy()[0, 0], layer.excite.bias.numpy()
    for clip in range(2):
        frames_of_clip = x[clip * frames : (clip + 1) * frames]
        gate = _sigmoid(np.maximum(frames_of_clip.mean(axis=(0, 1, 2)) @ w1 + b1, 0) @ w2 + b2)
        np.testing.assert_allclose(
            y[clip * frames : (clip + 1) * frames], frames_of_clip * gate, rtol=1e-5, atol=1e-6
        )


def test_context_gate_matches_numpy():
    frames, channels = 2, 4
    layer = gates.ContextGate(channels, frames)
    x = _clips(2, frames, 3, channels)
    y = layer(x).numpy()
    w, b = layer.gate.kernel.numpy()[0, 0], layer.gate.bias.numpy()
    for clip in range(2):
        part = x[clip * frames : (clip + 1) * frames]
        np.testing.assert_allclose(
            y[clip * frames : (clip + 1) * frames],
            part * _sigmoid(part.mean(axis=(0, 1, 2)) @ w + b),
            rtol=1e-5,
        )


def test_non_local_starts_as_identity_and_mixes_positions_within_a_clip():
    frames = 2
    layer = gates.NonLocal(4, frames, pool_size=2)
    x = _clips(2, frames, 4, 6)
    np.testing.assert_allclose(layer(x, training=False), x, atol=1e-6)
    layer.out.bn.gamma.assign(np.ones(6, "float32"))
    y = layer(x, training=False).numpy()
    assert not np.allclose(y, x)
    # Clip 0 alone gives the same result: attention never crosses clips.
    np.testing.assert_allclose(layer(x[:frames], training=False), y[:frames], atol=1e-5)


@pytest.mark.parametrize("case", layer_testing.cases_of(gates), ids=lambda case: case[0])
def test_layer_contract(case):
    # mixed_bfloat16 and the other backends: test_backends.py, in child processes.
    _, layer_cls, init_kwargs, input_shape, call_kwargs, output_shape = case
    layer_testing.run_layer_test(
        layer_cls, init_kwargs, input_shape, call_kwargs, output_shape, mixed_precision=False
    )
