"""Export: the serving SavedModel, the four TFLite variants, parity, and bad input."""

import json
import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.isolated import ENV, run_module_cases, start_module
from tvn_tf import export as export_lib
from tvn_tf.deploy import int8_corrections, tflite
from tvn_tf.data import preprocessing

# Parity bounds on the small test model (logits of magnitude ~1-10): float
# variants match to rounding, int8 weights move logits by a few percent.
MAX_ABS_DIFF = {"float32": 1e-4, "float16": 0.05, "dynamic_int8": 0.5, "int8": 1.0}
MIN_AGREEMENT = {"float32": 1.0, "float16": 1.0, "dynamic_int8": 0.9, "int8": 0.8}


def test_export_writes_every_file(export_dir):
    names = sorted(os.listdir(export_dir))
    assert names == [
        "labels.txt",
        "model_dynamic_int8.tflite",
        "model_float16.tflite",
        "model_float32.tflite",
        "model_info.json",
        "model_int8.tflite",
        "parity.json",
        "quantization_report.csv",
        "saved_model",
    ]
    with open(os.path.join(export_dir, "labels.txt")) as f:
        assert f.read().splitlines() == ["BouncingBall", "OrbitingDot", "SlidingSquare"]
    info = json.load(open(os.path.join(export_dir, "model_info.json")))
    assert (info["num_frames"], info["frame_stride"], info["image_size"]) == (4, 2, 32)
    assert info["flops"] > 1e6


def test_parity_report_is_within_bounds(export_dir):

    parity = json.load(open(os.path.join(export_dir, "parity.json")))
    assert parity["num_clips"] == 18  # Group 1: 3 classes x 2 videos x 3 clips.
    assert parity["eval_groups"] == [1]
    assert 0 <= parity["keras"]["accuracy"] <= 1
    for variant in tflite.VARIANTS:
        figures = parity[variant]
        corrected = {
            "logit_bias_correction",
            "top1_agreement_before_bias_correction",
            "narrowed_sigmoid_inputs",
        }
        assert set(figures) == {
            "max_abs_diff",
            "top1_agreement",
            "top1_agreement_interval95",
            "accuracy",
            "latency_p50_ms",
            "float_layers",
            "xnnpack_ops",
            "fallback_ops",
        } | (corrected if variant == "int8" else set())
        assert figures["latency_p50_ms"] > 0 and figures["xnnpack_ops"] > 0
        assert figures["max_abs_diff"] <= MAX_ABS_DIFF[variant], variant
        assert figures["top1_agreement"] >= MIN_AGREEMENT[variant], variant
        low, high = figures["top1_agreement_interval95"]
        assert low <= figures["top1_agreement"] <= high and high - low > 0.05  # 18 clips.
    assert parity["float32"]["accuracy"] == parity["keras"]["accuracy"]
    assert parity["float32"]["fallback_ops"] == []  # XNNPACK runs every float op.
    assert len(parity["int8"]["logit_bias_correction"]) == 3  # One shift per class.
    assert 0 <= parity["int8"]["top1_agreement_before_bias_correction"] <= 1
    cut = int8_corrections.SIGMOID_SATURATION
    for low, high in parity["int8"]["narrowed_sigmoid_inputs"].values():
        assert low < -cut or high > cut
    assert parity["threads"] == 2 and "cores" in parity["machine"]


def test_agreement_interval_is_wilsons_and_narrows_with_clips():
    from tvn_tf.deploy import parity as parity_lib

    low, high = parity_lib.interval95(1.0, 120)
    assert high == 1.0 and low == pytest.approx(0.969, abs=1e-3)  # Not zero wide at 100%.
    low, high = parity_lib.interval95(0.98, 160)
    assert low == pytest.approx(0.945, abs=1e-3) and high == pytest.approx(0.993, abs=1e-3)
    narrow = parity_lib.interval95(0.98, 1280)
    assert low < narrow[0] < 0.98 < narrow[1] < high
    assert parity_lib.interval95(0.5, 0) == (0.0, 1.0)


def test_variant_line_gives_the_agreement_before_bias_correction():
    from tvn_tf.deploy import parity as parity_lib

    entry = {
        "top1_agreement": 0.9805,
        "top1_agreement_interval95": [0.9716, 0.9866],
        "accuracy": 0.6,
        "latency_p50_ms": 4.5,
        "float_layers": ["logits"],
        "xnnpack_ops": 71,
        "fallback_ops": [],
        "top1_agreement_before_bias_correction": 0.9758,
    }
    report = {"keras": {"accuracy": 0.5}, "num_clips": 1280, "threads": 2, "int8": entry}
    assert parity_lib.describe_variant("int8", report) == (
        "int8: top-1 agreement with Keras 98.0% (95%: 97.2%-98.7%), accuracy 60.0% "
        "(Keras 50.0%) on 1280 clips, 4.50 ms p50 (2 threads), float layers: logits, "
        "agreement before bias correction 97.6%, all 71 ops in XNNPACK"
    )


@pytest.mark.parametrize("variant", tflite.VARIANTS)
def test_each_variant_runs_in_the_interpreter_like_keras(export_dir, keras_model, variant):
    model, _ = keras_model
    path = os.path.join(export_dir, tflite.filename(variant))
    ops = set(tflite.op_names(open(path, "rb").read()))
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)
    runner = tflite.TFLiteRunner(path, threads=2)
    assert runner.clip_shape == (4, 32, 32, 3)
    clips = np.random.default_rng(5).uniform(-1, 1, (4, 4, 32, 32, 3)).astype(np.float32)
    reference = model(clips, training=False).numpy()
    np.testing.assert_allclose(runner(clips), reference, atol=MAX_ABS_DIFF[variant])


def test_int8_variant_computes_in_int8(export_dir):
    from ai_edge_litert.interpreter import Interpreter

    from tvn_tf.deploy import quantization_report

    interpreter = Interpreter(model_path=os.path.join(export_dir, "model_int8.tflite"))
    convs = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    # Every convolution computes in int8 but those `auto` kept in float (the tail's).
    float_layers = json.load(open(os.path.join(export_dir, "parity.json")))["int8"]["float_layers"]
    dtypes = {
        quantization_report.short_name(details[op["outputs"][0]]["name"]): details[op["inputs"][0]][
            "dtype"
        ]
        for op in convs
    }
    assert len(dtypes) == len(convs)
    int8 = [name for name in dtypes if name not in float_layers]
    assert len(int8) > len(convs) / 2 and {dtypes[name] for name in int8} == {np.int8}
    assert {dtypes[name] for name in dtypes if name in float_layers} <= {np.float32}
    assert interpreter.get_input_details()[0]["dtype"] == np.float32  # Float I/O.


# Runs with -I: no PYTHONPATH, no current folder, so tvn_tf cannot be imported.
_FRESH_PROCESS = r"""
import importlib.util, json, sys
import numpy as np
import tensorflow as tf
assert importlib.util.find_spec("tvn_tf") is None
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = {}
for name in ("small", "wide"):
  frames = np.load(sys.argv[2] + "/" + name + ".npy")
  result = serve(frames=tf.constant(frames))
  out[name] = {k: v.numpy().tolist() if v.dtype != tf.string else
               [[s.decode() for s in row] for row in v.numpy()] for k, v in result.items()}
print(json.dumps(out))
"""


def test_saved_model_round_trip_in_a_process_without_tvn_tf(export_dir, keras_model, tmp_path):
    model, spec = keras_model
    rng = np.random.default_rng(0)
    frames = {
        "small": rng.integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8),
        "wide": rng.integers(0, 256, (3, 4, 48, 80, 3), dtype=np.uint8),
    }
    for name, value in frames.items():
        np.save(tmp_path / f"{name}.npy", value)
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _FRESH_PROCESS,
            os.path.join(export_dir, "saved_model"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for name, value in frames.items():
        clips = preprocessing.preprocess_for_eval(tf.constant(value), spec.input.image_size)
        expected = tf.nn.softmax(model(clips, training=False)).numpy()
        np.testing.assert_allclose(served[name]["probabilities"], expected, atol=1e-5)
        top = np.argsort(-expected, axis=1)[:, :3]
        assert served[name]["top5_indices"] == top.tolist()
        assert served[name]["top5_names"] == [[spec.class_names[i] for i in row] for row in top]


def test_saved_model_cli_lists_the_signature(export_dir, run_module):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = run_module(
        cli,
        "show",
        "--dir",
        os.path.join(export_dir, "saved_model"),
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for text in (
        "inputs['frames']",
        "DT_UINT8",
        "(-1, 4, -1, -1, 3)",
        "outputs['probabilities']",
        "outputs['top5_indices']",
        "outputs['top5_names']",
        "DT_STRING",
    ):
        assert text in result.stdout


class MatrixInverse(keras.layers.Layer):
    """Needs tf.MatrixInverse, which TFLite has only as a Flex op."""

    def call(self, x):
        return tf.reshape(tf.linalg.inv(tf.reshape(x[:, 0, :3, :3, 0], (-1, 3, 3))), (-1, 9))


def test_a_layer_that_needs_flex_fails_loudly():
    clips = keras.Input((2, 8, 8, 3))
    model = keras.Model(clips, MatrixInverse()(clips))
    with pytest.raises(tflite.FlexOpsError, match="not TFLite builtins: MatrixInverse.*Flex"):
        tflite.convert_model(model, "float32")


def test_int8_needs_representative_clips(tmp_path):
    with pytest.raises(ValueError, match="int8 variant needs representative_clips"):
        tflite.convert(str(tmp_path), "int8")


# Export runs refused before any work, each in a folder of its own (`refusals`).
BAD_INPUT = [
    (["--model_dir=/nonexistent/run"], "/nonexistent/run: not a model directory"),
    (["--variants=float32,float64"], "--variants: unknown 'float64'"),
    (["--data_dir=/nonexistent/data"], "--data_dir=/nonexistent/data: no such directory"),
    (
        ["--augmented_calibration_clips=-1"],
        "--augmented_calibration_clips=-1: -1 is not a non-negative integer",
    ),
]
MODEL_DIR_TARGETS = ["run", "runs", "link"]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory, trained_model_dir, export_data):
    """The export binary's refusals, all run in one child process.

    Each fails within a second of TensorFlow's import (6-7 s), which one child
    pays once (`isolated.run_module_cases`). Returns `{case: (result, folder)}`;
    each case's folder holds what it was given, to check nothing changed.
    """
    root = tmp_path_factory.mktemp("refusals")
    cases = {}

    def folder(name):
        path = root / name
        path.mkdir()
        return path

    defaults = {"--model_dir": trained_model_dir, "--data_dir": export_data}
    for i, (args, _) in enumerate(BAD_INPUT):
        given = {a.split("=")[0] for a in args}
        full = args + [f"{k}={v}" for k, v in defaults.items() if k not in given]
        cases[f"bad_input{i}"] = (
            folder(f"bad_input{i}"),
            [f"--output_dir={root / f'bad_input{i}' / 'out'}", *full],
        )
    exists = folder("exists")
    (exists / "out").mkdir()
    cases["exists"] = (
        exists,
        [
            f"--model_dir={trained_model_dir}",
            f"--output_dir={exists / 'out'}",
            f"--data_dir={export_data}",
        ],
    )
    for target in MODEL_DIR_TARGETS:
        base = folder(f"target_{target}")
        run = _copy_of_the_run(base, trained_model_dir)
        (base / "link").symlink_to(run)  # The same folder by another name.
        output = {"run": run, "runs": run.parent, "link": base / "link"}[target]
        cases[f"target_{target}"] = (
            base,
            [
                f"--model_dir={run}",
                f"--output_dir={output}",
                f"--data_dir={export_data}",
                "--overwrite",
            ],
        )
    for under in (False, True):
        base = folder(f"file_{under}")
        file = base / "notes.txt"
        file.write_text("keep me")
        output = file / "export" if under else file
        cases[f"file_{under}"] = (
            base,
            [
                f"--model_dir={trained_model_dir}",
                f"--output_dir={output}",
                f"--data_dir={export_data}",
                "--overwrite",
            ],
        )
    results = run_module_cases("tvn_tf.export", [args for _, args in cases.values()])
    return {name: (result, base) for (name, (base, _)), result in zip(cases.items(), results)}


@pytest.mark.parametrize("index", range(len(BAD_INPUT)), ids=[m for _, m in BAD_INPUT])
def test_bad_input_exits_with_one_clear_message_and_writes_nothing(index, refusals):
    result, base = refusals[f"bad_input{index}"]
    assert result.returncode != 0
    assert BAD_INPUT[index][1] in result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(base) == []


def test_existing_output_dir_needs_overwrite(refusals):
    result, base = refusals["exists"]
    assert result.returncode != 0
    assert "exists; pass --overwrite" in result.stderr
    assert os.listdir(base / "out") == []


def test_a_failure_midway_leaves_no_output(tmp_path, monkeypatch, trained_model_dir, export_data):
    def fail(*args, **kwargs):
        raise RuntimeError("conversion broke")

    monkeypatch.setattr(tflite, "convert", fail)
    from tvn_tf.data import dataset as data_lib

    dataset = data_lib.load_dataset(data_lib.DataConfig(data_dir=export_data))
    options = export_lib.ExportOptions(variants=("float32",), calibration_clips=2, parity_clips=2)
    with pytest.raises(RuntimeError, match="conversion broke"):
        export_lib.export(trained_model_dir, str(tmp_path / "out"), dataset, options=options)
    assert os.listdir(tmp_path) == []


def test_unknown_sigmoid_ranges_is_refused_before_any_work(
    tmp_path, trained_model_dir, export_data
):
    from tvn_tf.data import dataset as data_lib

    dataset = data_lib.load_dataset(data_lib.DataConfig(data_dir=export_data))
    options = export_lib.ExportOptions(int8_sigmoid_ranges="clipped")
    with pytest.raises(ValueError, match="--int8_sigmoid_ranges='clipped': expected one of auto"):
        export_lib.export(trained_model_dir, str(tmp_path / "out"), dataset, options=options)
    assert os.listdir(tmp_path) == []


def test_evaluate_and_export_read_a_run_without_train_config_alike(
    tmp_path, trained_model_dir, export_data, run_module
):
    # A model folder written by other means: both binaries take the data flags alone.
    run = _copy_of_the_run(tmp_path, trained_model_dir)
    assert not os.path.exists(run / "train_config.json")
    for module, *args in (
        ("tvn_tf.evaluate",),
        ("tvn_tf.export", f"--output_dir={tmp_path / 'out'}"),
    ):
        result = run_module(module, f"--model_dir={run}", *args)
        assert result.returncode != 0
        assert f"--data_dir is required: {run} has no train_config.json" in result.stderr
    evaluated = run_module(
        "tvn_tf.evaluate", f"--model_dir={run}", f"--data_dir={export_data}", "--fold=2"
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["groups"] == [2]
    nowhere = run_module("tvn_tf.evaluate", f"--model_dir={tmp_path}/nowhere")
    assert f"evaluate: {tmp_path}/nowhere: not a model directory" in nowhere.stderr


def _copy_of_the_run(tmp_path, trained_model_dir):
    """A private copy of the test run: a test that fails must not delete the shared one."""
    run = tmp_path / "runs" / "run"
    shutil.copytree(trained_model_dir, run)
    return run


@pytest.mark.parametrize("target", MODEL_DIR_TARGETS)
def test_output_dir_that_is_or_holds_the_model_dir_is_refused(target, refusals, trained_model_dir):
    result, base = refusals[f"target_{target}"]
    run = base / "runs" / "run"
    output = {"run": run, "runs": run.parent, "link": base / "link"}[target]
    assert result.returncode != 0
    assert f"--output_dir={output} is or contains --model_dir" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(run)) == sorted(os.listdir(trained_model_dir))


@pytest.mark.parametrize("under", [False, True])
def test_output_dir_that_is_a_file_or_under_one_gets_one_line(under, refusals):
    result, base = refusals[f"file_{under}"]
    file = base / "notes.txt"
    output = file / "export" if under else file
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    # One line of ours (TensorFlow prints its start-up notes before it).
    ours = [line for line in result.stderr.splitlines() if line.startswith("export:")]
    assert len(ours) == 1 and ours[0].startswith(f"export: --output_dir={output}"), ours
    assert result.stderr.strip().splitlines()[-1] == ours[0]
    assert file.read_text() == "keep me" and os.listdir(base) == ["notes.txt"]


def test_a_killed_exports_temporary_folder_is_cleaned_by_the_next(
    tmp_path, trained_model_dir, export_data, run_module
):
    output = tmp_path / "out"
    args = [
        f"--model_dir={trained_model_dir}",
        f"--output_dir={output}",
        f"--data_dir={export_data}",
        "--variants=float32",
        "--calibration_clips=2",
        "--parity_clips=2",
    ]
    killed = start_module("tvn_tf.export", *args, output=False)
    leftover = tmp_path / f"out.tmp{killed.pid}"
    deadline = time.monotonic() + 300
    while not leftover.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    assert leftover.exists()

    # The rerun also spells --eval_clips by its old name, which works with a warning.
    result = run_module("tvn_tf.export", *args, "--clips_per_video=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert "model_float32.tflite" in os.listdir(output)
    assert "--clips_per_video is deprecated" in result.stderr
    assert "use --eval_clips=1" in result.stderr


def test_delegation_names_the_ops_that_fall_back_from_xnnpack(export_dir):
    ops = tflite.op_names(open(os.path.join(export_dir, "model_float32.tflite"), "rb").read())
    delegated, fallback = tflite.delegation(os.path.join(export_dir, "model_float32.tflite"))
    assert len(delegated) == len(ops) and fallback == []
    # int8 hard-swish and attention have no XNNPACK kernel in this LiteRT: they fall back.
    delegated, fallback = tflite.delegation(os.path.join(export_dir, "model_int8.tflite"))
    assert len(delegated) + len(fallback) == len(
        tflite.op_names(open(os.path.join(export_dir, "model_int8.tflite"), "rb").read())
    )
    assert "HARD_SWISH" in fallback and "CONV_2D" not in fallback


def test_unknown_denylist_layer_gives_one_clear_message(
    tmp_path, trained_model_dir, export_data, run_module
):
    output = tmp_path / "out"
    result = run_module(
        "tvn_tf.export",
        f"--model_dir={trained_model_dir}",
        f"--output_dir={output}",
        f"--data_dir={export_data}",
        "--variants=int8",
        "--int8_denylist=logits,block9/nothing,block9/*",
        "--calibration_clips=2",
        "--augmented_calibration_clips=2",
        "--parity_clips=2",
    )
    assert result.returncode != 0
    assert "--int8_denylist: no quantized layer named block9/nothing, block9/*;" in result.stderr
    assert "quantization_report.csv" in result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []
