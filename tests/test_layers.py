"""Each layer computes what the original block computes, and serializes."""

import math

import numpy as np
import pytest

from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import layers
from tvn_tf.models import tvn

from tests import layer_testing

RNG = np.random.default_rng(0)


def _clips(batch, frames, size, channels):
    return RNG.normal(size=(batch * frames, size, size, channels)).astype("float32")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


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


def test_squeeze_excite_matches_numpy_and_keeps_clips_apart():
    frames, channels = 3, 16
    layer = layers.SqueezeExcite(channels, 0.25, frames)
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
    layer = layers.ContextGate(channels, frames)
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


def test_inverted_bottleneck_expands_with_relu_and_projects_linearly():
    layer = layers.InvertedBottleneck(4, 12)
    x = _clips(1, 2, 3, 4)
    wide = layer(x, stage="expand")
    assert wide.shape[-1] == 12 and np.all(wide.numpy() >= 0)
    narrow = layer(wide, stage="project")
    assert narrow.shape[-1] == 4 and np.any(narrow.numpy() < 0)
    with pytest.raises(ValueError, match="stage is 'middle'"):
        layer(x, stage="middle")


def test_residual_projection_adds_projected_input():
    layer = layers.ResidualProjection(strides=2)
    res, out = _clips(1, 2, 8, 3), _clips(1, 2, 4, 6)
    y = layer(res, out, training=False).numpy()
    kernel = layer.conv.conv.kernel.numpy()[0, 0]
    expected = out + np.einsum("bhwc,cf->bhwf", res[:, ::2, ::2], kernel) / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_non_local_starts_as_identity_and_mixes_positions_within_a_clip():
    frames = 2
    layer = layers.NonLocal(4, frames, pool_size=2)
    x = _clips(2, frames, 4, 6)
    np.testing.assert_allclose(layer(x, training=False), x, atol=1e-6)
    layer.out.bn.gamma.assign(np.ones(6, "float32"))
    y = layer(x, training=False).numpy()
    assert not np.allclose(y, x)
    # Clip 0 alone gives the same result: attention never crosses clips.
    np.testing.assert_allclose(layer(x[:frames], training=False), y[:frames], atol=1e-5)


def test_block_skip_needs_unchanged_frames_and_strides_with_the_spatial_op():
    with_skip = layers.TinyBlock(layer_testing.block(), num_frames=4)
    assert with_skip.residual.strides == 2
    assert with_skip(_clips(1, 4, 8, 3), training=False).shape == (4, 4, 4, 16)
    # A temporal stride changes batch * frames: the original drops the skip.
    assert layers.TinyBlock(layer_testing.block(temporal_stride=2), num_frames=4).residual is None
    # A repeat (strides forced to 1) projects without stride.
    assert layers.TinyBlock(layer_testing.block(), num_frames=4, strides=1).residual.strides == 1
    # A pooling block of kernel 1 does not change the size: no stride either.
    assert (
        layers.TinyBlock(layer_testing.block(spatial_kernel=1), num_frames=4).residual.strides == 1
    )


def test_block_temporal_op_only_with_more_than_one_frame():
    assert layers.TinyBlock(layer_testing.block(), num_frames=1).temporal is None
    assert (
        layers.TinyBlock(layer_testing.block(), num_frames=2, use_temporal=False).temporal is None
    )
    assert layers.TinyBlock(layer_testing.block(temporal_stride=2), num_frames=3).output_frames == 2


def test_block_gating_on_the_wrong_width_says_so():
    block = layers.TinyBlock(
        layer_testing.block(spatial_type="maxpool", expand=0, squeeze=0.5), num_frames=1
    )
    with pytest.raises(ValueError, match="act on E = .* = 8 channels, but the tensor has 3"):
        block(_clips(1, 1, 8, 3))


def test_invalid_block_config_fails_at_construction():
    with pytest.raises(ValueError, match="field 'spatial_stride' is 0"):
        layers.TinyBlock(layer_testing.block(spatial_stride=0), num_frames=2)


def test_repeats_rule_strides_once_then_alternates_temporal_starting_off():
    arch = arch_lib.architecture_from_json(
        {
            "num_frames": 4,
            "frame_stride": 1,
            "image_size": 16,
            "blocks": [layer_testing.block(repeats=4, temporal_stride=2)],
        },
        "r",
    )
    model = tvn.build_model(arch, 3)
    blocks = [b for b in model.layers if isinstance(b, layers.TinyBlock)]
    assert [b.name for b in blocks] == ["block0_0", "block0_1", "block0_2", "block0_3"]
    assert [b.strides for b in blocks] == [0, 1, 1, 1]
    assert [b.temporal is not None for b in blocks] == [True, False, True, False]
    assert [b.temporal.strides for b in blocks if b.temporal] == [2, 1]
    assert [b.num_frames for b in blocks] == [4, 2, 2, 2]


def test_classification_head_is_clip_mean_dropout_dense():
    head = layers.ClassificationHead(5, num_frames=2)
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
    head = layers.SoftmaxPoolingHead(3, num_frames=frames)
    x = _clips(2, frames, 2, 5)
    out = head(x, training=False).numpy()
    per_frame = x.reshape(2, frames, 4, 5).mean(axis=2) @ head.classifier.kernel.numpy()
    per_frame += head.classifier.bias.numpy()
    weights = np.exp(per_frame / 2) / np.exp(per_frame / 2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, (per_frame * weights).sum(axis=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, input_shape, call_kwargs, output_shape",
    [case[1:] for case in layer_testing.LAYER_CASES],
    ids=[case[0] for case in layer_testing.LAYER_CASES],
)
def test_layer_contract(layer_cls, init_kwargs, input_shape, call_kwargs, output_shape):
    # mixed_bfloat16 and the other backends: test_backends.py, in child processes.
    layer_testing.run_layer_test(
        layer_cls, init_kwargs, input_shape, call_kwargs, output_shape, mixed_precision=False
    )
