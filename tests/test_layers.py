"""The ops of a block compute what the original's compute, and every layer serializes."""

import math

import keras
import numpy as np
import pytest

from tvn_tf.models import blocks, gates, heads, layers

from tests import layer_testing

RNG = np.random.default_rng(0)


def _clips(batch, frames, size, channels):
    return RNG.normal(size=(batch * frames, size, size, channels)).astype("float32")


def test_hard_swish_values():
    x = np.array([-5, -3, -1.5, 0, 1, 3, 4], "float32")
    expected = x * np.clip(x + 3, 0, 6) / 6
    np.testing.assert_allclose(layers.HardSwish()(x), expected, atol=1e-6)


def test_conv_bn_is_bias_free_same_padded_with_original_batch_norm():
    layer = layers.ConvBN(6, 4, 2, "relu")
    y = layer(_clips(2, 1, 9, 3))
    assert y.shape == (2, 5, 5, 6)  # SAME: ceil(9 / 2)
    assert [w.path.rsplit("/", 1)[-1] for w in layer.trainable_weights] == [
        "kernel",
        "gamma",
        "beta",
    ]
    assert layer.bn.momentum == 0.9 and layer.bn.epsilon == 1e-5
    assert np.all(y.numpy() >= 0)


@pytest.mark.parametrize(
    "op, channels, out_size",
    [("std", 5, 4), ("depth", 5, 4), ("1std", 5, 4), ("maxpool", 3, 4), ("avgpool", 3, 4)],
)
def test_spatial_ops(op, channels, out_size):
    layer = layers.SpatialOp(op, 3, 5, 2)
    assert layer(_clips(1, 2, 8, 3)).shape == (2, out_size, out_size, channels)
    assert [type(op).__name__ for op in (layer.pointwise, layer.window) if op] == {
        "std": ["ConvBN", "ConvBN"],
        "depth": ["ConvBN", "ConvBN"],
        "1std": ["ConvBN"],
        "maxpool": ["MaxPooling2D"],
        "avgpool": ["AveragePooling2D"],
    }[op]
    if op == "depth":
        assert layer.window.depthwise
    no_op = layers.SpatialOp(op, 1, 5, 2)  # Kernel 1: no op at all.
    assert no_op.pointwise is None and no_op.window is None


def test_spatial_avgpool_matches_numpy():
    x = _clips(1, 1, 4, 2)
    y = layers.SpatialOp("avgpool", 2, 2, 2)(x).numpy()
    expected = x.reshape(1, 2, 2, 2, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_temporal_maxpool_runs_along_frames_per_clip():
    # Clip b, frame t holds the value 10 * b + t everywhere.
    batch, frames = 2, 3
    x = np.stack(
        [np.full((4, 4, 2), 10 * b + t, "float32") for b in range(batch) for t in range(frames)]
    )
    layer = layers.TemporalOp("maxpool", 2, 2, 2, num_frames=frames)
    y = layer(x).numpy()
    assert layer.output_frames == 2 == math.ceil(frames / 2)
    # SAME windows: frames {0, 1} and {2}.
    np.testing.assert_array_equal(y[:, 0, 0, 0], [1, 2, 11, 12])


def test_temporal_1d_conv_is_a_conv_along_time():
    frames, size, channels = 3, 2, 2
    x = _clips(1, frames, size, channels)
    layer = layers.TemporalOp("1d", 2, 4, 1, num_frames=frames, activation="relu")
    y = layer(x, training=False).numpy()
    kernel = layer.window.conv.kernel.numpy()  # (2, 1, C, F)
    assert kernel.shape == (2, 1, channels, 4)
    # SAME with an even kernel pads after: frame t sees frames t and t + 1.
    padded = np.concatenate([x, np.zeros_like(x[:1])])
    expected = sum(
        np.einsum("thwc,cf->thwf", padded[k : k + frames], kernel[k, 0]) for k in range(2)
    )
    expected = np.maximum(expected / np.sqrt(1 + 1e-5), 0)  # Fresh BN at inference.
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_temporal_kernel_one_is_no_op():
    layer = layers.TemporalOp("1d", 1, 4, 2, num_frames=4)
    x = _clips(1, 4, 3, 2)
    np.testing.assert_array_equal(layer(x), x)
    assert layer.output_frames == 4


@pytest.mark.parametrize("case", layer_testing.cases_of(layers), ids=lambda case: case[0])
def test_layer_contract(case):
    # mixed_bfloat16 and the other backends: test_backends.py, in child processes.
    _, layer_cls, init_kwargs, input_shape, call_kwargs, output_shape = case
    layer_testing.run_layer_test(
        layer_cls, init_kwargs, input_shape, call_kwargs, output_shape, mixed_precision=False
    )


def test_every_layer_has_a_contract_case():
    covered = {case[1] for case in layer_testing.LAYER_CASES}
    for module in (layers, gates, blocks, heads):
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, keras.layers.Layer)
                and obj.__module__ == module.__name__
            ):
                assert obj in covered, f"{module.__name__}.{obj.__name__} has no LAYER_CASES entry"
