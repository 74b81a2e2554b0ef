"""int8 quantization: the per-layer report, the analysis, the corrections, the denylist policy."""

import json
import os
import time

import keras
import numpy as np
import pytest

from tvn_tf import export as export_lib
from tvn_tf.deploy import clips as clips_lib
from tvn_tf.deploy import int8_analysis, int8_corrections, quantization, tflite
from tvn_tf.deploy import quantization_report as report_lib
from tvn_tf.models import flops as flops_lib


def test_quantization_report_ranks_every_quantized_layer(export_dir):
    layers = report_lib.read_report(os.path.join(export_dir, report_lib.REPORT_FILE))
    errors = [layer.rmse_over_scale for layer in layers]
    assert len(layers) > 20 and errors == sorted(errors, reverse=True)
    assert sum(layer.share for layer in layers) == pytest.approx(1, abs=0.01)
    assert len({layer.layer for layer in layers}) == len(layers)  # Names a denylist can use.
    # Every int8 output is at least rounded: about 1/sqrt(12) steps, never far below.
    assert all(layer.rmse_over_scale >= 0 and layer.scale > 0 for layer in layers)
    assert "logits" in {layer.layer for layer in layers}
    parity = json.load(open(os.path.join(export_dir, "parity.json")))
    assert set(parity["int8"]["float_layers"]) <= {layer.layer for layer in layers}


@pytest.fixture(scope="module")
def analysis(keras_model, tmp_path_factory):
    model, _ = keras_model
    path = str(tmp_path_factory.mktemp("q") / "saved_model")
    tflite.save_for_conversion(model, path)
    clips = np.random.default_rng(3).uniform(-1, 1, (8, 4, 32, 32, 3)).astype(np.float32)
    return int8_analysis.analyze(path, clips), clips


def test_report_clips_measure_fewer_clips_and_make_the_same_models(analysis, keras_model, tmp_path):
    analysis, clips = analysis
    model, _ = keras_model
    path = str(tmp_path / "saved_model")
    tflite.save_for_conversion(model, path)
    fewer = int8_analysis.analyze(path, clips, report_clips=2)
    # Every layer is still reported; only its error is measured on fewer clips.
    assert sorted(x.layer for x in fewer.layers) == sorted(x.layer for x in analysis.layers)
    assert fewer.output_layer == analysis.output_layer and fewer.narrowed == analysis.narrowed
    # The calibration is on every clip: the int8 models are the same, bias correction too.
    for denylist in ((), ["logits"]):
        for correct_bias in (False, True):
            assert fewer.quantized_model(denylist, correct_bias) == analysis.quantized_model(
                denylist, correct_bias
            )
    assert int8_analysis._spaced(clips, 3).tolist() == clips[[0, 4, 7]].tolist()
    assert int8_analysis._spaced(clips, None) is clips


def test_calibration_in_another_process_makes_the_same_models(analysis, keras_model, tmp_path):
    from tvn_tf.deploy import calibration

    analysis, clips = analysis
    model, _ = keras_model
    path = str(tmp_path / "saved_model")
    tflite.save_for_conversion(model, path)
    running = calibration.start(path, clips, str(tmp_path))
    calibrated = running.result()
    running.stop()
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]  # Its clips and output removed.
    assert calibrated == calibration.calibrate(path, clips)
    elsewhere = int8_analysis.analyze(path, clips, calibrated=calibrated)
    assert [x.layer for x in elsewhere.layers] == [x.layer for x in analysis.layers]
    for denylist in ((), ["logits"]):
        assert elsewhere.quantized_model(denylist) == analysis.quantized_model(denylist)


def _input_dtype_of(data: bytes, op_name: str):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    (op,) = [op for op in interpreter._get_ops_details() if op["op_name"] == op_name]
    return details[op["inputs"][0]]["dtype"]


def test_a_denylisted_layer_stays_float_and_the_rest_int8(analysis, keras_model):
    analysis, clips = analysis
    assert analysis.output_layer == "logits"
    full = analysis.quantized_model(())
    assert _input_dtype_of(full, "FULLY_CONNECTED") == np.int8
    kept = analysis.quantized_model(["logits"])
    assert _input_dtype_of(kept, "FULLY_CONNECTED") == np.float32
    ops = tflite.op_names(kept)
    # Float only after the last dequantize: no quantize/dequantize pair inside the network.
    assert ops.count("DEQUANTIZE") == 1 and ops[-2:] == ["DEQUANTIZE", "FULLY_CONNECTED"]
    model, _ = keras_model
    reference = model(clips, training=False).numpy()
    logits = tflite.TFLiteRunner(kept)(clips)
    # Within a tenth of the largest logit, as the tail's test (1.6% measured, on an AMD EPYC).
    np.testing.assert_allclose(logits, reference, atol=0.1 * np.abs(reference).max())


def _output_grid(data: bytes) -> tuple[float, float, float]:
    """The int8 classifier's output (before the dequantize): step, lowest and highest value."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    (op,) = [op for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
    step, zero_point = details[op["outputs"][0]]["quantization"]
    return step, (-128 - zero_point) * step, (127 - zero_point) * step


def test_bias_correction_takes_int8s_mean_logit_shift_out_of_the_classifier(analysis, keras_model):
    analysis, clips = analysis
    model, _ = keras_model
    reference = model(clips, training=False).numpy()
    for denylist in ([], ["logits"]):  # The bias in int32 steps, then in float32.
        raw = analysis.quantized_model(denylist, correct_bias=False)
        logits = tflite.TFLiteRunner(raw)(clips)
        # The shift taken out is int8's mean shift from float on the calibration clips.
        fixed = analysis.quantized_model(denylist)
        np.testing.assert_allclose(
            analysis.logit_offsets(denylist), (logits - reference).mean(axis=0), atol=2e-4
        )
        assert tflite.op_names(fixed) == tflite.op_names(raw)  # Only the bias changed.
        # A known shift comes out whole, but for the int8 output's own rounding, where
        # neither the logit nor the shifted one is at an end of the int8 output's range
        # (there it saturates, and the true value is unknown). Each class moves towards
        # the middle. Which logits sit at the ends depends on the CPU's float rounding
        # (on an Intel Xeon one class of this barely trained model saturates on every clip).
        step, low, high = _output_grid(raw) if not denylist else (0.0, -np.inf, np.inf)
        middle = (logits.min() + logits.max()) / 2
        towards_middle = np.where(logits.mean(axis=0) > middle, 1.0, -1.0)
        shift = towards_middle * [3.0, 2.0, 1.0] * (step or 0.01)
        fixed, offsets = int8_corrections.correct_logit_bias(raw, clips, logits - shift)
        np.testing.assert_allclose(offsets, shift, rtol=1e-4)
        target = logits - shift
        lowest, highest = np.minimum(logits, target), np.maximum(logits, target)
        inside = (lowest > low + step) & (highest < high - step)
        corrected = tflite.TFLiteRunner(fixed)(clips)
        assert inside.sum() >= len(clips), (logits, low, high)
        np.testing.assert_allclose(corrected[inside], target[inside], atol=1.01 * step + 1e-6)


# One block whose context gate (a 1x1 convolution and a sigmoid) the test gives
# channels switched off and on for good, as trained TVNs have: its input's
# calibrated range is then that of the extreme channels.
SATURATED_GATE_TVN = "tests/testdata/saturated_gate_tvn.json"


def test_sigmoid_inputs_are_cut_where_the_int8_sigmoid_saturates(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from tvn_tf.models import architecture as arch_lib
    from tvn_tf.models import tvn

    keras.utils.set_random_seed(4)
    model = tvn.TinyVideoNetwork(arch_lib.load_architecture_json(SATURATED_GATE_TVN), num_classes=4)
    gate = model.get_layer("block0_0").context_gate.gate
    kernel, bias = gate.get_weights()
    bias[:4], bias[4:8] = -500.0, 300.0
    gate.set_weights([kernel, bias])
    path = str(tmp_path / "saved_model")
    tflite.save_for_conversion(model, path)
    clips = np.random.default_rng(5).uniform(-1, 1, (16, 2, 16, 16, 3)).astype(np.float32)
    reference = model(clips, training=False).numpy()

    analysis = int8_analysis.analyze(path, clips)
    ((layer, (low, high)),) = analysis.narrowed.items()
    assert layer == "block0_0/context_gate/gate/BiasAdd"
    assert low < -450 and high > 250
    # Its error is measured inside the cut range: rounding, not the saturated channels.
    assert {x.layer: x for x in analysis.layers}[layer].rmse_over_scale < 1
    data = analysis.quantized_model((), correct_bias=False)
    interpreter = Interpreter(model_content=data)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    (sigmoid,) = [op for op in interpreter._get_ops_details() if op["op_name"] == "LOGISTIC"]
    step, _ = details[sigmoid["inputs"][0]]["quantization"]
    assert step == pytest.approx(2 * int8_corrections.SIGMOID_SATURATION / 255, rel=0.01)

    def error(analysis) -> float:
        logits = tflite.TFLiteRunner(analysis.quantized_model((), correct_bias=False))(clips)
        return float(np.sqrt(((logits - reference) ** 2).mean()) / reference.std())

    plain = int8_analysis.analyze(path, clips, narrow_sigmoids=False)
    assert plain.narrowed == {}
    assert error(analysis) < error(plain) / 3, (error(analysis), error(plain))
    # The same analysis makes the model with the ranges as calibrated too.
    uncut = analysis.quantized_model((), correct_bias=False, narrow=False)
    assert uncut == plain.quantized_model((), correct_bias=False)

    # auto tries the ranges as calibrated only when the cut misses the target.
    chosen, narrow, trace = quantization.choose_denylist(
        analysis, clips, reference, target_agreement=0.0
    )
    assert (chosen, narrow, [cut for _, cut, _ in trace]) == (["logits"], True, [True])
    chosen, narrow, trace = quantization.choose_denylist(
        analysis, clips, reference, target_agreement=1.01, max_added_layers=0
    )
    assert [(count, cut) for count, cut, _ in trace] == [(1, True), (1, False)]
    (_, _, cut_score), (_, _, uncut_score) = trace
    assert narrow == (cut_score >= uncut_score)
    _, narrow, trace = quantization.choose_denylist(
        analysis, clips, reference, target_agreement=1.01, max_added_layers=0, try_uncut=False
    )
    assert narrow and [(count, cut) for count, cut, _ in trace] == [(1, True)]

    # Export's --int8_sigmoid_ranges=cut|calibrated gives that model whatever it agrees.
    loaded = clips_lib.ExportClips(clips, clips, clips[:1], np.zeros(1, np.int64), (1,))
    for ranges, cut in (("cut", True), ("calibrated", False)):
        options = export_lib.ExportOptions(
            int8_denylist="logits", int8_bias_correction=False, int8_sigmoid_ranges=ranges
        )
        os.makedirs(tmp_path / ranges)
        made = export_lib._int8_model(
            model,
            path,
            loaded,
            str(tmp_path / ranges),
            options,
            time.perf_counter(),
            flops_lib.count_flops(model),
        )
        assert made.data == analysis.quantized_model(["logits"], correct_bias=False, narrow=cut)
        assert list(made.narrowed) == ([layer] if cut else [])


def test_denylist_patterns_name_whole_blocks_once_each(analysis):
    analysis, _ = analysis
    names = [layer.layer for layer in analysis.layers]
    block = sorted({name.split("/")[0] for name in names if name.startswith("block")})[-1]
    in_block = [name for name in names if name.startswith(block + "/")]
    assert len(in_block) > 1
    # A pattern gives every layer it matches, once, after the names before it.
    expanded = analysis.expand(["logits", f"{block}/*", in_block[0]])
    assert expanded[0] == "logits" and sorted(expanded[1:]) == sorted(in_block)
    tensor = {layer.layer: layer.tensor for layer in analysis.layers}
    assert analysis.tensors([f"{block}/*"]) == [tensor[name] for name in expanded[1:]]
    with pytest.raises(ValueError, match=r"no quantized layer named block9/\*; .*block3_1/\*"):
        analysis.expand(["logits", "block9/*"])


def test_auto_denylist_always_keeps_the_classifier_and_stops_at_the_target(analysis, keras_model):
    analysis, clips = analysis
    model, _ = keras_model
    reference = model(clips, training=False).numpy()
    tries = 2 if analysis.narrowed else 1  # Cut sigmoid ranges, then uncut (if any).
    chosen, narrow, trace = quantization.choose_denylist(
        analysis, clips, reference, target_agreement=0.0
    )
    # Met at once, yet the classifier stays float: the selection clips cannot vouch for it.
    assert chosen == ["logits"] and narrow and trace == [(1, tries == 2, trace[0][2])]
    # An unreachable target tries every candidate after it, keeping the best.
    chosen, narrow, trace = quantization.choose_denylist(
        analysis, clips, reference, target_agreement=1.01, max_added_layers=2
    )
    assert [count for count, _, _ in trace] == [c for c in (1, 2, 3) for _ in range(tries)]
    assert chosen[:1] == ["logits"]
    # The tail is in every model tried, with the classifier.
    tail = quantization.tail_layers(analysis)
    chosen, narrow, trace = quantization.choose_denylist(
        analysis, clips, reference, tail=tail, target_agreement=1.01, max_added_layers=0
    )
    assert (
        chosen == ["logits", *tail] and [count for count, _, _ in trace] == [1 + len(tail)] * tries
    )


def test_auto_keeps_the_tail_in_float_but_for_the_gate_convolutions(analysis, keras_model):
    from ai_edge_litert.interpreter import Interpreter

    analysis, clips = analysis
    ops = {layer.layer: layer.op for layer in analysis.layers}
    last = [name for name in ops if name.startswith("block4_0/")]  # The last block application.
    gate_convolutions = [
        name for name in last if name.split("/")[1] == "squeeze_excite" and ops[name] == "CONV_2D"
    ]
    assert len(gate_convolutions) == 2  # Squeeze and excite.
    tail = quantization.tail_layers(analysis)
    head = [name for name in ops if name.startswith("head/")]
    expected = [name for name in last if name not in gate_convolutions] + head
    assert sorted(tail) == sorted(expected)
    model, _ = keras_model
    share = quantization.tail_flops_share(flops_lib.count_flops(model))
    assert 0 < share < quantization.MAX_TAIL_FLOPS_SHARE

    data = analysis.quantized_model(["logits", *tail])
    interpreter = Interpreter(model_content=data)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    convolutions = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    # The gate convolutions (the network's last two) are int8; every other
    # op of the tail computes in float.
    *_, first, second, squeeze, excite = convolutions
    assert [details[op["inputs"][1]]["dtype"] for op in (squeeze, excite)] == [np.int8] * 2
    assert [details[op["inputs"][0]]["dtype"] for op in (first, second)] == [np.float32] * 2
    names = tflite.op_names(data)
    assert names.count("DEQUANTIZE") == 2 and names.count("QUANTIZE") == 2  # One pair inside.
    # The last block's average pooling runs in float, in XNNPACK; an int8 one would not.
    _, fallback = tflite.delegation(data)
    _, fallback_int8 = tflite.delegation(analysis.quantized_model(["logits"]))
    assert fallback.count("AVERAGE_POOL_2D") == fallback_int8.count("AVERAGE_POOL_2D") - 1
    reference = model(clips, training=False).numpy()
    # Within a tenth of the largest logit (1.3% measured, on an AMD EPYC).
    scale = np.abs(reference).max()
    np.testing.assert_allclose(tflite.TFLiteRunner(data)(clips), reference, atol=0.1 * scale)


@pytest.mark.parametrize(
    "value, parsed",
    [("auto", "auto"), ("none", ()), ("logits", ("logits",)), (" a, b ,", ("a", "b"))],
)
def test_int8_denylist_flag_values(value, parsed):
    assert quantization.parse_denylist(value) == parsed
