"""A TinyBlock application follows the original's `tiny_block` step by step."""

import numpy as np
import pytest

from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import blocks, tvn

from tests import layer_testing

RNG = np.random.default_rng(0)


def _clips(batch, frames, size, channels):
    return RNG.normal(size=(batch * frames, size, size, channels)).astype("float32")


def test_inverted_bottleneck_expands_with_relu_and_projects_linearly():
    layer = blocks.InvertedBottleneck(4, 12)
    x = _clips(1, 2, 3, 4)
    wide = layer(x, stage="expand")
    assert wide.shape[-1] == 12 and np.all(wide.numpy() >= 0)
    narrow = layer(wide, stage="project")
    assert narrow.shape[-1] == 4 and np.any(narrow.numpy() < 0)
    with pytest.raises(ValueError, match="stage is 'middle'"):
        layer(x, stage="middle")


def test_residual_projection_adds_projected_input():
    layer = blocks.ResidualProjection(strides=2)
    res, out = _clips(1, 2, 8, 3), _clips(1, 2, 4, 6)
    y = layer(res, out, training=False).numpy()
    kernel = layer.conv.conv.kernel.numpy()[0, 0]
    expected = out + np.einsum("bhwc,cf->bhwf", res[:, ::2, ::2], kernel) / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_residual_projection_trains_through_the_same_function_at_any_size():
    import tensorflow as tf

    # At 64x64 with stride 2, TensorFlow's oneDNN backward pass of the strided 1x1
    # convolution corrupts the heap; training subsamples first instead. Same values.
    layer = blocks.ResidualProjection(strides=2)
    res, out = _clips(16, 1, 64, 3), _clips(16, 1, 32, 16)
    layer(res, out)
    strided = layer.conv(res, training=True).numpy()
    with tf.GradientTape() as tape:
        y = layer(res, out, training=True)
        loss = tf.reduce_sum(y**2)
    grads = tape.gradient(loss, layer.trainable_variables)
    np.testing.assert_allclose(y.numpy() - out, strided, rtol=1e-5, atol=1e-5)
    assert len(grads) == 3 and all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_block_skip_needs_unchanged_frames_and_strides_with_the_spatial_op():
    with_skip = blocks.TinyBlock(layer_testing.block_spec(), num_frames=4)
    assert with_skip.residual.strides == 2
    assert with_skip(_clips(1, 4, 8, 3), training=False).shape == (4, 4, 4, 16)
    # A temporal stride changes batch * frames: the original drops the skip.
    assert (
        blocks.TinyBlock(layer_testing.block_spec(temporal_stride=2), num_frames=4).residual is None
    )
    # A repeat (strides forced to 1) projects without stride.
    assert (
        blocks.TinyBlock(layer_testing.block_spec(), num_frames=4, strides=1).residual.strides == 1
    )
    # A pooling block of kernel 1 does not change the size: no stride either.
    assert (
        blocks.TinyBlock(layer_testing.block_spec(spatial_kernel=1), num_frames=4).residual.strides
        == 1
    )


def test_block_temporal_op_only_with_more_than_one_frame():
    assert blocks.TinyBlock(layer_testing.block_spec(), num_frames=1).temporal is None
    assert (
        blocks.TinyBlock(layer_testing.block_spec(), num_frames=2, use_temporal=False).temporal
        is None
    )
    assert (
        blocks.TinyBlock(layer_testing.block_spec(temporal_stride=2), num_frames=3).output_frames
        == 2
    )


def test_block_gating_on_the_wrong_width_says_so():
    block = blocks.TinyBlock(
        layer_testing.block_spec(spatial_type="maxpool", expand=0, squeeze=0.5), num_frames=1
    )
    with pytest.raises(ValueError, match="act on E = .* = 8 channels, but the tensor has 3"):
        block(_clips(1, 1, 8, 3))


def test_invalid_block_config_fails_at_construction():
    with pytest.raises(ValueError, match="field 'spatial_stride' is 0"):
        blocks.TinyBlock(layer_testing.block_spec(spatial_stride=0), num_frames=2)
    with pytest.raises(ValueError, match="field 'spatial_stride' is 0"):
        blocks.TinyBlock.from_config(
            {"block": layer_testing.block(spatial_stride=0), "num_frames": 2}
        )
    with pytest.raises(TypeError, match="expected an architecture.BlockSpec"):
        blocks.TinyBlock(layer_testing.block(), num_frames=2)


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
    model = tvn.TinyVideoNetwork(arch, 3)
    applied = [b for b in model.layers if isinstance(b, blocks.TinyBlock)]
    assert [b.name for b in applied] == ["block0_0", "block0_1", "block0_2", "block0_3"]
    assert [b.strides for b in applied] == [0, 1, 1, 1]
    assert [b.temporal is not None for b in applied] == [True, False, True, False]
    assert [b.temporal.strides for b in applied if b.temporal] == [2, 1]
    assert [b.num_frames for b in applied] == [4, 2, 2, 2]


def test_block_config_holds_all_activations_and_reads_a_missing_one_as_relu():
    config = blocks.TinyBlock(layer_testing.block_spec(), num_frames=2, name="b").get_config()
    assert {config["block"][k] for k in ("act", "spatial_act", "temporal_act")} == {"relu"}
    del config["block"]["act"], config["block"]["temporal_act"]
    config["block"]["spatial_act"] = "hswish"
    revived = blocks.TinyBlock.from_config(config).block
    assert (revived.act, revived.spatial_act, revived.temporal_act) == ("relu", "hswish", "relu")


@pytest.mark.parametrize("case", layer_testing.cases_of(blocks), ids=lambda case: case[0])
def test_layer_contract(case):
    # mixed_bfloat16 and the other backends: test_backends.py, in child processes.
    _, layer_cls, init_kwargs, input_shape, call_kwargs, output_shape = case
    layer_testing.run_layer_test(
        layer_cls, init_kwargs, input_shape, call_kwargs, output_shape, mixed_precision=False
    )
