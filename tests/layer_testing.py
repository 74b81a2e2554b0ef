"""A contract every TVN layer keeps on every Keras backend, and the cases that check it.

`run_layer_test` needs only Keras and NumPy (no pytest, no TensorFlow), so a child
process on the JAX or PyTorch backend runs the same checks as the TensorFlow tests:
`run_layer_cases()` runs all of `LAYER_CASES` and returns what failed.

    from tests.layer_testing import run_layer_test
    run_layer_test(gates.ContextGate, {"filters": 8, "num_frames": 2}, (4, 5, 5, 8))
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tvn_tf.models import architecture, blocks, gates, heads, layers, tvn

MIXED = "mixed_bfloat16"


def _shapes(input_shape) -> list[tuple]:
    """One shape, or a list of shapes for a layer that takes several inputs."""
    if input_shape and isinstance(input_shape[0], (tuple, list)):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]


def _dynamic(shape: tuple) -> tuple:
    return (None, *shape[1:])


def run_layer_test(
    layer_cls: type[keras.layers.Layer],
    init_kwargs: Mapping[str, Any],
    input_shape: Sequence[Any],
    call_kwargs: Mapping[str, Any] | None = None,
    expected_output_shape: tuple | None = None,
    mixed_precision: bool = True,
) -> None:
    """Checks one layer configuration; raises AssertionError on the first broken rule.

    Args:
      layer_cls: A layer class of `tvn_tf.models` (`layers`, `gates`, `blocks`, `heads`).
      init_kwargs: Its constructor arguments.
      input_shape: The shape of a concrete input (batch first), or a list of
        shapes for a layer called on several tensors.
      call_kwargs: Extra keyword arguments of `call` (`training` is always given
        when `call` takes it).
      expected_output_shape: The concrete output shape, when the caller knows it.
      mixed_precision: Also check the layer under the `mixed_bfloat16` policy.

    The rules: `get_config` / `from_config` round-trip (and through Keras
    serialization under the `tvn_tf>` package); a symbolic call with a dynamic
    batch builds it and gives `compute_output_shape`'s shape; a concrete call
    gives `compute_output_shape(input_shape)`; under `mixed_bfloat16` every
    sublayer computes in bfloat16 and keeps float32 variables.
    """
    call_kwargs = dict(call_kwargs or {})
    shapes = _shapes(input_shape)

    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, f"{layer_cls.__name__}: from_config changes the config"
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"].startswith("tvn_tf>"), serialized["registered_name"]
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is layer_cls and revived.get_config() == config

    # Symbolic, dynamic batch: builds from shapes, never traces `call`.
    symbolic = layer_cls(**init_kwargs)
    inputs = [keras.KerasTensor(_dynamic(s)) for s in shapes]
    out = symbolic(*inputs, **call_kwargs)
    dynamic_shapes = [_dynamic(s) for s in shapes]
    expected = symbolic.compute_output_shape(*dynamic_shapes, **call_kwargs)
    assert tuple(out.shape) == tuple(expected), (
        f"{layer_cls.__name__}: symbolic output {out.shape} != compute_output_shape {expected}"
    )
    assert symbolic.built

    # Concrete: the shape the layer states is the shape it computes.
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=s).astype("float32") for s in shapes]
    training = {"training": False} if _takes_training(layer) else {}
    y = layer(*arrays, **call_kwargs, **training)
    stated = tuple(layer.compute_output_shape(*shapes, **call_kwargs))
    assert tuple(y.shape) == stated, (
        f"{layer_cls.__name__}: output {tuple(y.shape)} != compute_output_shape {stated}"
    )
    if expected_output_shape is not None:
        assert tuple(y.shape) == tuple(expected_output_shape), (
            tuple(y.shape),
            expected_output_shape,
        )
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(y)))

    if mixed_precision:
        _check_mixed_precision(layer_cls, init_kwargs, arrays, {**call_kwargs, **training})


def _takes_training(layer: keras.layers.Layer) -> bool:
    return layer._call_has_training_arg  # pylint: disable=protected-access


def _check_mixed_precision(layer_cls, init_kwargs, arrays, call_kwargs) -> None:
    """Under `mixed_bfloat16`, every sublayer computes in bfloat16 over float32 variables."""
    layer = layer_cls(**init_kwargs, dtype=MIXED)
    y = layer(*arrays, **call_kwargs)
    name = layer_cls.__name__
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16", f"{name}: output {y.dtype}"
    for sub in layer._flatten_layers(include_self=True):  # pylint: disable=protected-access
        assert sub.dtype_policy.name == MIXED, f"{name}/{sub.name}: {sub.dtype_policy.name}"
        assert sub.compute_dtype == "bfloat16", f"{name}/{sub.name}: computes {sub.compute_dtype}"
    for variable in layer.weights:
        assert variable.dtype == "float32", f"{name}: {variable.path} is {variable.dtype}"


def block_spec(**overrides: Any) -> architecture.BlockSpec:
    """`block(**overrides)` as the `BlockSpec` a `TinyBlock` takes."""
    return architecture.block_from_json(block(**overrides))


def block(**overrides: Any) -> dict[str, Any]:
    """A valid block's JSON form, with `overrides`."""
    data = {
        "filters": 8,
        "expand": 2,
        "repeats": 1,
        "spatial_type": "std",
        "spatial_kernel": 3,
        "spatial_stride": 2,
        "temporal_type": "1d",
        "temporal_kernel": 2,
        "temporal_stride": 1,
        "skip": 1,
        "squeeze": 0.0,
        "context_gate": 0,
        "non_local": 0,
    }
    data.update(overrides)
    return data


# (id, layer class, constructor kwargs, concrete input shape, call kwargs, output shape).
# Folded inputs are [clips * frames, h, w, c].
LAYER_CASES: list[tuple[str, type, dict[str, Any], Any, dict[str, Any], tuple]] = [
    ("hard_swish", layers.HardSwish, {}, (2, 3, 3, 4), {}, (2, 3, 3, 4)),
    (
        "conv_bn",
        layers.ConvBN,
        {"filters": 4, "kernel_size": (2, 1), "strides": (2, 1), "activation": "hswish"},
        (2, 5, 3, 3),
        {},
        (2, 3, 3, 4),
    ),
    (
        "conv_bn_depthwise",
        layers.ConvBN,
        {"filters": 3, "kernel_size": 3, "strides": 2, "activation": "relu", "depthwise": True},
        (2, 5, 5, 3),
        {},
        (2, 3, 3, 3),
    ),
    *[
        (
            f"spatial_{op}",
            layers.SpatialOp,
            {"op": op, "kernel_size": 3, "filters": 5, "strides": 2, "activation": "hswish"},
            (4, 7, 7, 3),
            {},
            (4, 4, 4, 3 if op.endswith("pool") else 5),
        )
        for op in ("std", "depth", "1std", "maxpool", "avgpool")
    ],
    *[
        (
            f"temporal_{op}",
            layers.TemporalOp,
            {"op": op, "kernel_size": 3, "filters": 6, "strides": 2, "num_frames": 5},
            (10, 3, 3, 4),
            {},
            (6, 3, 3, 6 if op == "1d" else 4),
        )
        for op in ("1d", "maxpool", "avgpool")
    ],
    (
        "temporal_kernel_1",
        layers.TemporalOp,
        {"op": "1d", "kernel_size": 1, "filters": 6, "strides": 2, "num_frames": 5},
        (10, 3, 3, 4),
        {},
        (10, 3, 3, 4),
    ),
    (
        "squeeze_excite",
        gates.SqueezeExcite,
        {"filters": 16, "ratio": 0.3, "num_frames": 2},
        (4, 3, 3, 16),
        {},
        (4, 3, 3, 16),
    ),
    (
        "context_gate",
        gates.ContextGate,
        {"filters": 8, "num_frames": 2},
        (4, 3, 3, 8),
        {},
        (4, 3, 3, 8),
    ),
    (
        "inverted_bottleneck",
        blocks.InvertedBottleneck,
        {"filters": 4, "expanded_filters": 16},
        (2, 3, 3, 4),
        {},
        (2, 3, 3, 16),
    ),
    (
        "residual_projection",
        blocks.ResidualProjection,
        {"strides": 2},
        [(2, 6, 6, 3), (2, 3, 3, 8)],
        {},
        (2, 3, 3, 8),
    ),
    (
        "non_local",
        gates.NonLocal,
        {"bottleneck": 8, "num_frames": 2, "pool_size": 2},
        (4, 4, 4, 6),
        {},
        (4, 4, 4, 6),
    ),
    (
        "tiny_block_inverted",
        blocks.TinyBlock,
        {
            "block": block_spec(**{"inv-bottle": 1, "act": "hswish", "squeeze": 0.5}),
            "num_frames": 4,
        },
        (8, 8, 8, 3),
        {},
        (8, 4, 4, 8),
    ),
    (
        "tiny_block_temporal_stride",
        blocks.TinyBlock,
        {
            "block": block_spec(temporal_stride=2, context_gate=1, spatial_type="depth"),
            "num_frames": 3,
        },
        (6, 8, 8, 3),
        {},
        (4, 4, 4, 16),
    ),
    (
        "tiny_block_pool_non_local",
        blocks.TinyBlock,
        {
            "block": block_spec(
                spatial_type="maxpool", temporal_type="avgpool", expand=0, filters=3, non_local=8
            ),
            "num_frames": 2,
            "strides": 1,
            "use_temporal": True,
        },
        (4, 6, 6, 3),
        {},
        (4, 6, 6, 3),
    ),
    ("fold_frames", layers.FoldFrames, {}, (3, 2, 4, 4, 5), {}, (6, 4, 4, 5)),
    (
        "classification_head",
        heads.ClassificationHead,
        {"num_classes": 7, "num_frames": 2, "dropout_rate": 0.3},
        (6, 3, 3, 5),
        {},
        (3, 7),
    ),
    (
        "softmax_pooling_head",
        heads.SoftmaxPoolingHead,
        {"num_classes": 7, "num_frames": 4},
        (8, 2, 2, 5),
        {},
        (2, 7),
    ),
]


def run_model_test(
    arch: architecture.Architecture, num_classes: int, head: str = "mean", batch: int = 2
) -> None:
    """Checks `tvn.TinyVideoNetwork`'s config contract for one architecture and head.

    The config is JSON and holds the architecture's JSON form and the head
    settings; `from_config` (directly and through Keras serialization under the
    `tvn_tf>` package) rebuilds a model with the same config, the same variables
    and, given the same weights, the same outputs bit for bit.
    """
    model = tvn.TinyVideoNetwork(arch, num_classes, head=head)
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config, "the config is not plain JSON"
    assert config["architecture"] == arch.to_json()
    assert (config["name"], config["num_classes"], config["head"]) == (arch.name, num_classes, head)
    serialized = keras.saving.serialize_keras_object(model)
    assert serialized["registered_name"] == "tvn_tf>TinyVideoNetwork", serialized["registered_name"]
    for clone in (
        tvn.TinyVideoNetwork.from_config(config),
        keras.saving.deserialize_keras_object(serialized),
    ):
        assert type(clone) is tvn.TinyVideoNetwork and clone.get_config() == config
        assert [v.path for v in clone.weights] == [v.path for v in model.weights]
        clone.set_weights(model.get_weights())
        clips = np.random.default_rng(0).normal(
            size=(batch, arch.num_frames, arch.image_size, arch.image_size, 3)
        )
        clips = clips.astype("float32")
        expected = keras.ops.convert_to_numpy(model(clips, training=False))
        assert expected.shape == (batch, num_classes) and expected.dtype == np.float32
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(clone(clips, training=False)), expected
        )


def small_architecture() -> architecture.Architecture:
    """Two blocks (one repeated, with a temporal stride and every gate) at 16 pixels."""
    return architecture.architecture_from_json(
        {
            "num_frames": 4,
            "frame_stride": 1,
            "image_size": 16,
            "blocks": [
                block(repeats=2, temporal_stride=2, squeeze=0.5, context_gate=1),
                block(**{"inv-bottle": 1, "act": "hswish", "spatial_act": "hswish"}),
            ],
        },
        "small",
    )


def cases_of(module) -> list[tuple]:
    """The `LAYER_CASES` of the layers defined in `module` (e.g. `tvn_tf.models.gates`)."""
    return [case for case in LAYER_CASES if case[1].__module__ == module.__name__]


def run_layer_cases() -> dict[str, str]:
    """Runs every case of `LAYER_CASES` and the model's; returns `{case id: error}` of failures."""
    failures = {}
    for case_id, cls, kwargs, shape, call_kwargs, expected in LAYER_CASES:
        try:
            run_layer_test(cls, kwargs, shape, call_kwargs, expected)
        except Exception:  # Reported to the parent, which fails the test with it.
            failures[case_id] = traceback.format_exc(limit=-3)
    for head in tvn.HEADS:
        try:
            run_model_test(small_architecture(), 3, head)
        except Exception:
            failures[f"model_{head}"] = traceback.format_exc(limit=-3)
    return failures
