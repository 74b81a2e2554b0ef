"""The built model: I/O contract, saving, tracing, TFLite builtins, model_info."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tvn_tf import model_dir as model_dir_lib
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import heads, tvn

from tests import layer_testing
from tests.isolated import run_module, run_python

ALL_OPS = "tests/testdata/all_ops_tvn.json"


@pytest.fixture(scope="module")
def model():
    """A small model with every op type (see testdata/all_ops_tvn.json), trained a step.

    One training step moves the batch-norm statistics off their initial values,
    so the round trips below compare non-trivial weights.
    """
    keras.utils.set_random_seed(1)
    net = tvn.TinyVideoNetwork(arch_lib.load_architecture_json(ALL_OPS), num_classes=5)
    net.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(np.random.rand(4, 4, 32, 32, 3).astype("float32"), np.arange(4) % 5, verbose=0)
    return net


@pytest.fixture(scope="module")
def clips():
    return np.random.default_rng(3).random((3, 4, 32, 32, 3), dtype=np.float32)


def test_io_contract(model, clips):
    assert model.input_shape == (None, 4, 32, 32, 3)
    assert model.output_shape == (None, 5)
    assert model(clips, training=False).dtype == "float32"
    assert tvn.feature_shape(model) == [2, 4, 4, 32]


def test_each_clip_is_independent_of_the_rest_of_the_batch(model, clips):
    together = model(clips, training=False).numpy()
    for i in range(len(clips)):
        np.testing.assert_allclose(
            model(clips[i : i + 1], training=False), together[i : i + 1], rtol=1e-5, atol=1e-5
        )


def test_frame_order_matters(model, clips):
    swapped = clips[:, ::-1]
    assert not np.allclose(model(clips, training=False), model(swapped, training=False))


@pytest.mark.parametrize("head", sorted(tvn.HEADS))
def test_config_is_the_architecture_and_head_and_rebuilds_an_identical_model(head):
    layer_testing.run_model_test(arch_lib.load_architecture_json(ALL_OPS), 5, head)


def test_config_round_trip_keeps_trainable_and_name():
    arch = arch_lib.get_architecture("tvn_mobile_2")
    net = tvn.TinyVideoNetwork(arch, 3, dropout_rate=0.2, name="mine")
    net.trainable = False
    clone = tvn.TinyVideoNetwork.from_config(net.get_config())
    assert (clone.name, clone.trainable, clone.dropout_rate) == ("mine", False, 0.2)
    assert clone.architecture.blocks == arch.blocks


def test_spec_builds_through_the_config_and_keeps_each_blocks_activations():
    # A model.json block that names only its spatial activation ends in ReLU with
    # hard-swish spatial ops (its `act` is ReLU on its own), as it was trained.
    arch = arch_lib.get_architecture("tvn_mobile_1")
    stored = arch.to_json()
    for block in stored["blocks"]:
        del block["act"]
        if block["spatial_act"] == "relu":
            del block["spatial_act"]
    spec = model_dir_lib.ModelSpec.from_json(
        {"name": arch.name, "architecture": stored, "class_names": ["a", "b"], "head": "mean"}
    )
    assert spec.architecture == arch.to_json()
    net = spec.build()
    assert type(net) is tvn.TinyVideoNetwork
    assert net.get_config() == {**spec.model_config(), "trainable": True}
    assert net.get_layer("block1_0").block == arch.blocks[1]
    assert net.get_layer("block1_0").spatial.pointwise.act.__class__.__name__ == "HardSwish"


def test_keras_save_and_load_give_identical_outputs(model, clips, tmp_path):
    path = tmp_path / "tvn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(clips, training=False), model(clips, training=False))
    assert json.dumps(loaded.get_config()) == json.dumps(model.get_config())


def test_one_trace_serves_batch_sizes_1_and_3(model, clips):
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    assert forward(clips[:1]).shape == (1, 5)
    assert forward(clips).shape == (3, 5)
    assert forward.experimental_get_tracing_count() == 1


def test_the_model_rejects_bad_arguments():
    arch = arch_lib.load_architecture_json(ALL_OPS)
    with pytest.raises(ValueError, match="num_classes is 0"):
        tvn.TinyVideoNetwork(arch, 0)
    with pytest.raises(ValueError, match="head is 'max'; expected one of mean, softmax_pool"):
        tvn.TinyVideoNetwork(arch, 5, head="max")


def test_mixed_precision_keeps_float32_logits():
    # bfloat16 matmuls run in a child: where oneDNN's AMX kernel traps, only this test fails.
    dtypes = run_python(f"""
        import json

        from tvn_tf.models import architecture as arch_lib, tvn  # tvn_tf first: it sets up TF.
        import keras
        import numpy as np

        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        net = tvn.TinyVideoNetwork(arch_lib.load_architecture_json({ALL_OPS!r}), 5)
        logits = net(np.zeros((1, 4, 32, 32, 3), "float32"))
        print(json.dumps([net.get_layer("block0_0").compute_dtype, logits.dtype.name]))
    """)
    assert dtypes == ["bfloat16", "float32"]


def test_converts_to_tflite_builtins_and_matches_keras(model, clips, tmp_path):
    saved = str(tmp_path / "saved_model")
    model.export(saved, format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # No Flex.
    path = tmp_path / "tvn.tflite"
    path.write_bytes(converter.convert())

    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    ((name, detail),) = runner.get_input_details().items()  # The runner resizes itself.
    assert list(detail["shape_signature"]) == [-1, 4, 32, 32, 3]
    (out,) = runner(**{name: clips}).values()
    np.testing.assert_allclose(out, model(clips, training=False), rtol=1e-4, atol=1e-4)


def test_softmax_pool_head_model_builds_and_converts(tmp_path):
    net = tvn.TinyVideoNetwork(arch_lib.load_architecture_json(ALL_OPS), 4, head="softmax_pool")
    assert isinstance(net.get_layer("head"), heads.SoftmaxPoolingHead)
    assert net(np.zeros((2, 4, 32, 32, 3), "float32")).shape == (2, 4)


def _model_info(*args):
    return run_module("tvn_tf.model_info", *args, timeout=300)


def test_model_info_tvn1_prints_table_and_json():
    result = _model_info("--model=tvn1", "--num_classes=50")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    info = json.loads(lines[-1])
    assert info == {
        "model": "tvn1",
        "num_classes": 50,
        "input_shape": [None, 2, 224, 224, 3],
        "trainable_params": 25822560,
        "total_params": 25840480,
        "flops": info["flops"],
        "feature_shape": [1, 10, 10, 2048],
    }
    assert info["flops"] == pytest.approx(8.73e9, rel=0.02)
    assert any(line.startswith("block3_1") and "SE, gate" in line for line in lines)


def test_model_info_custom_json_with_scaling():
    result = _model_info(
        f"--arch_json={ALL_OPS}",
        "--num_classes=7",
        "--width_multiplier=2",
        "--resolution_multiplier=2",
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["model"] == "all_ops_tvn_r2_w2"
    assert info["input_shape"] == [None, 4, 64, 64, 3]
    assert info["feature_shape"] == [2, 8, 8, 64]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=tvn9"], "model_info: --model: Unknown model 'tvn9'"),
        (["--arch_json=tests/testdata/nope.json"], "nope.json: cannot read architecture file"),
        (["--width_multiplier=0"], "width_multiplier"),
        (["--num_classes=0"], "num_classes"),
    ],
)
def test_model_info_bad_input_exits_with_one_clear_message(args, message):
    result = _model_info(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_tf_checkpoint_round_trip_restores_every_weight(model, clips, tmp_path):
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh = tvn.TinyVideoNetwork(arch_lib.load_architecture_json(ALL_OPS), num_classes=5)
    tf.train.Checkpoint(model=fresh).restore(
        path
    ).expect_partial().assert_existing_objects_matched()
    np.testing.assert_array_equal(fresh(clips, training=False), model(clips, training=False))
