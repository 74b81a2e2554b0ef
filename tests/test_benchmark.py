"""The latency harness: its JSON, each model kind, and the Android parser and script."""

import dataclasses
import json
import os
import stat

import pytest

from tests.isolated import ROOT, run_module_cases
from tvn_tf.deploy import android
from tvn_tf import benchmark

RECORDED = os.path.join(ROOT, "tests", "testdata", "benchmark_model_output.txt")


@pytest.fixture(scope="module")
def out(export_dir):
    return export_dir


def test_tflite_benchmark_prints_figures_then_one_json_line(out, run_module):
    result = run_module(
        "tvn_tf.benchmark",
        f"--model_path={out}/model_int8.tflite",
        "--runs=5",
        "--warmup=1",
        "--threads=2",
        "--rounds=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert tuple(figures) == benchmark.JSON_FIELDS
    assert figures["threads"] == 2
    assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"]
    assert figures["clips_per_s"] == pytest.approx(1000 / figures["p50_ms"], rel=0.01)
    info = json.load(open(os.path.join(out, "model_info.json")))
    assert figures["flops"] == info["flops"]
    assert figures["sgemm_gflops"] > 1
    # The share prices the fastest run by the best SGEMM: within the rounds' own shares.
    assert figures["rounds"] == 2
    assert 0 < figures["share_of_sgemm_min"] <= figures["share_of_sgemm_median"]
    assert figures["share_of_sgemm_min"] <= figures["share_of_sgemm"]
    assert "cores" in figures["machine"]
    text = "\n".join(lines[:-1])
    assert "p50" in text and "SGEMM" in text and "FLOPs" in text


@pytest.mark.parametrize("kind", ["saved_model", "export_folder", "keras"])
def test_saved_model_and_keras_are_timed_too(out, kind, trained_model_dir):
    path = {
        "saved_model": os.path.join(out, "saved_model"),
        "export_folder": out,
        "keras": trained_model_dir,
    }[kind]
    figures = benchmark.benchmark(path, threads=2, runs=3, warmup=1, measure_sgemm=False)
    assert tuple(figures) == benchmark.JSON_FIELDS
    assert figures["p50_ms"] > 0 and figures["flops"] > 1e6
    assert figures["sgemm_gflops"] is None and figures["share_of_sgemm"] is None


def test_tflite_flops_without_model_info_come_from_the_graph(out):
    from tvn_tf.deploy import tflite

    counted = tflite.count_flops(os.path.join(out, "model_float32.tflite"))
    profiled = json.load(open(os.path.join(out, "model_info.json")))["flops"]
    # The graph count leaves out elementwise ops: a little below the profiler's.
    assert 0.8 * profiled < counted <= profiled


def test_tflite_flops_past_two_to_the_31_are_counted_in_python_ints(tmp_path, run_module):
    """TVN-1 at 224 has 2 GFLOP convolutions: the count must not wrap in int32 shapes."""
    import tensorflow as tf

    from tvn_tf.deploy import tflite

    conv = tf.function(
        lambda x: tf.nn.conv2d(x, tf.ones([3, 3, 64, 64]) / 576, 1, "SAME"),
        input_signature=[tf.TensorSpec([1, 224, 224, 64])],
    )
    path = tmp_path / "big.tflite"
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [conv.get_concrete_function()], conv
    )
    path.write_bytes(converter.convert())
    expected = 2 * 224 * 224 * 64 * 3 * 3 * 64  # 3.7e9 > 2**31
    counted = tflite.count_flops(str(path))
    assert type(counted) is int and counted == expected
    # The benchmark's JSON line takes it (it failed on numpy integers).
    result = run_module(
        "tvn_tf.benchmark", f"--model_path={path}", "--runs=1", "--warmup=0", "--nosgemm"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["flops"] == expected


def test_bad_model_path_gives_one_clear_message(tmp_path, run_module):
    (tmp_path / "notes.txt").write_text("hello")
    result = run_module("tvn_tf.benchmark", f"--model_path={tmp_path}/notes.txt", "--runs=1")
    assert result.returncode != 0
    assert (
        "notes.txt: not a .tflite file, a SavedModel folder or a model directory" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_android_parser_reads_the_recorded_benchmark_model_output():
    parsed = android.parse(open(RECORDED).read())
    assert parsed["threads"] == 4 and parsed["calls"] == 1
    assert parsed["stat"]["count"] == 50 and parsed["stat"]["avg"] == 41377.6
    assert parsed["summary"]["Init"] == 187214
    figures = android.to_benchmark_json(parsed, "model_int8.tflite", 8.7e9, "Pixel 7")
    assert tuple(figures) == benchmark.JSON_FIELDS
    assert figures["p50_ms"] == pytest.approx(41.378)  # No median printed: the average.
    assert figures["p90_ms"] is None and figures["p99_ms"] is None
    assert figures["clips_per_s"] == pytest.approx(24.17, abs=0.01)
    assert figures["sgemm_gflops"] is None and figures["machine"] == "Pixel 7"


def _call(timed_us: int, *, percentiles: bool = False) -> str:
    """One benchmark_model call's output with one timed run, in the tool's format."""
    timed = f"count=1 curr={timed_us}"
    if percentiles:
        timed += f" p5={timed_us} median={timed_us} p95={timed_us}"
    return (
        f"INFO: Num threads: [2]\n"
        f"INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but "
        f"terminate if exceeding 150 seconds.\n"
        f"INFO: count=9 first=70001 curr=52000 min=51000 max=70001 avg=54000 std=5000\n\n"
        f"INFO: Running benchmark for at least 1 iterations and at least 0 seconds but "
        f"terminate if exceeding 150 seconds.\n"
        f"INFO: {timed}\n\n"
        f"INFO: Inference timings in us: Init: 90000, First inference: 70001, "
        f"Warmup (avg): 54000, Inference (avg): {timed_us}\n"
    )


def test_android_parser_takes_percentiles_over_repeated_calls():
    runs = [50000 + 1000 * i for i in range(10)]
    parsed = android.parse("".join(_call(r, percentiles=i % 2 == 0) for i, r in enumerate(runs)))
    assert parsed["runs_us"] == runs and parsed["threads"] == 2
    figures = android.to_benchmark_json(parsed, "m.tflite", None, "phone")
    assert figures["p50_ms"] == pytest.approx(54.5)
    assert figures["p90_ms"] == pytest.approx(58.1)
    assert figures["p99_ms"] == pytest.approx(58.91)


def test_android_parser_rejects_a_failed_run():
    with pytest.raises(android.BenchmarkOutputError, match="no finished benchmark"):
        android.parse("ERROR: Could not open '/data/local/tmp/tvn/x.tflite'.\n")


def test_android_script_end_to_end_with_a_recorded_phone(out, tmp_path, run_module):
    """The script against a fake adb that replays the recorded benchmark_model output."""
    fake = tmp_path / "bin" / "adb"
    fake.parent.mkdir()
    fake.write_text(f"""#!/usr/bin/env bash
echo "$@" >> {tmp_path}/adb.log
case "$*" in
  *getprop\\ ro.product.model*) echo "Pixel 7" ;;
  *getprop*) echo "x" ;;
  *benchmark_model\\ --graph*) cat {RECORDED} ;;
esac
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    model = tmp_path / "model_int8.tflite"
    model.write_bytes(open(os.path.join(out, "model_int8.tflite"), "rb").read())
    (tmp_path / "model_info.json").write_text(open(os.path.join(out, "model_info.json")).read())
    binary = tmp_path / "benchmark_model"
    binary.write_text("")
    result = run_module(
        "tools/android_benchmark.sh",
        str(model),
        "--threads=4",
        f"--benchmark_model={binary}",
        env={"PATH": f"{fake.parent}:{os.environ['PATH']}"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert tuple(figures) == benchmark.JSON_FIELDS
    assert figures["p50_ms"] == pytest.approx(41.378) and figures["threads"] == 4
    assert figures["machine"].startswith("Pixel 7")
    assert figures["flops"] == json.load(open(os.path.join(out, "model_info.json")))["flops"]
    log = (tmp_path / "adb.log").read_text()
    assert "push" in log and "--num_threads=4" in log
    assert (tmp_path / "model_int8.benchmark_model.txt").exists()


def test_paired_share_divides_each_round_by_its_own_sgemm():
    from tvn_tf import perf

    calls = []
    result = perf.paired_share(
        lambda: calls.append(1), 1e6, rounds=3, runs=7, warmup=2, sgemm_repeats=1, sgemm_size=128
    )
    # 2 warm-up calls, then per round one untimed call and its share of the 7 timed ones.
    assert len(calls) == 2 + 3 + 7 and result.latency.runs == 7
    assert len(result.shares) == 3 and min(result.shares) <= result.median <= max(result.shares)
    # The fastest run over the best SGEMM lies within the rounds' own shares.
    assert min(result.shares) <= result.share <= max(result.shares)
    assert result.sgemm_gflops > 0
    with pytest.raises(ValueError, match="rounds=3, runs=2"):
        perf.paired_share(lambda: None, 1e6, rounds=3, runs=2)


def test_paired_share_prices_each_round_by_its_fastest_run():
    import itertools
    import time

    from tvn_tf import perf

    # Per round: the untimed call, then one fast run among slow ones.
    pauses = itertools.cycle([0.03, 0.001, 0.03, 0.03])
    result = perf.paired_share(
        lambda: time.sleep(next(pauses)), 1e6, rounds=2, runs=6, warmup=0, sgemm_size=128
    )
    assert result.latency.p50_ms >= 25  # The median run is a slow one...
    from_median = 1e6 / 0.03 / 1e9 / result.sgemm_gflops
    assert result.share > 5 * from_median  # ...but the share is the fast one's.


def test_android_parser_takes_model_path_and_the_old_model_flag(out, run_module):
    model = os.path.join(out, "model_int8.tflite")
    flops = json.load(open(os.path.join(out, "model_info.json")))["flops"]
    for flag in ("--model_path", "--model"):
        result = run_module("tvn_tf.deploy.android", f"--input={RECORDED}", f"{flag}={model}")
        assert result.returncode == 0, result.stderr[-3000:]
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        assert figures["model"] == model and figures["flops"] == flops
        warned = "android_benchmark: warning: --model is deprecated" in result.stderr
        assert warned == (flag == "--model")


def test_block_profile_times_every_prefix_in_the_real_interpreter(tmp_path, run_module):
    """tools/profile_blocks.py: one row per block application and the head, in order."""
    from tvn_tf.models import architecture, flops, scaling, tvn

    # TVN-1's first two blocks (three applications): each prefix is an int8 conversion.
    arch = scaling.scale_architecture(architecture.get_architecture("tvn1"), width=0.25)
    arch = dataclasses.replace(arch, name="tvn1_front", image_size=32, blocks=arch.blocks[:2])
    arch_json = tmp_path / "front.json"
    arch_json.write_text(json.dumps(arch.to_json()))
    result = run_module(
        "tools/profile_blocks.py",
        f"--arch_json={arch_json}",
        "--variant=int8",
        "--rounds=1",
        "--runs_per_round=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    layers = [row["layer"] for row in figures["blocks"]]
    assert layers == ["block0_0", "block0_1", "block1_0", "head"]
    per_layer = dict(flops.count_flops(tvn.TinyVideoNetwork(arch, num_classes=10)).per_layer)
    assert all(row["flops"] == per_layer[row["layer"]] for row in figures["blocks"])
    # Own times are differences of cumulative ones: they add up to the whole model's.
    assert sum(row["ms"] for row in figures["blocks"]) == pytest.approx(
        figures["total_ms"], abs=0.01
    )
    assert figures["total_ms"] > 0 and figures["variant"] == "int8"
    assert "| block0_0 |" in result.stdout


def test_block_profile_refuses_a_bad_architecture(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"num_frames": 2}')
    result, small = run_module_cases(
        "tools/profile_blocks.py", [[f"--arch_json={bad}"], ["--image_size=16"]]
    )
    assert result.returncode != 0
    assert "profile_blocks: " in result.stderr and "bad.json" in result.stderr
    assert "Traceback" not in result.stderr
    assert small.returncode != 0
    assert "profile_blocks: --image_size=16; expected at least 32." in small.stderr
    assert "Traceback" not in small.stderr


@pytest.mark.parametrize("variant", ["int8", "dynamic_int8"])
def test_op_profile_lists_every_op_and_agrees_with_the_delegation_check(
    out, tmp_path, run_module, variant
):
    """LiteRT's own profiler, through its C API: the ops XNNPACK did not take are the
    ones the interpreter's delegation check finds, and every op has a time."""
    import csv

    from tvn_tf.deploy import tflite

    model = os.path.join(out, f"model_{variant}.tflite")
    path = tmp_path / "ops.csv"
    result = run_module(
        "tvn_tf.benchmark",
        f"--model_path={model}",
        "--runs=2",
        "--warmup=1",
        "--nosgemm",
        f"--op_profile={path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(path)))
    assert [int(row["position"]) for row in rows] == list(range(len(rows)))
    assert all(float(row["ms"]) >= 0 for row in rows)
    assert sum(float(row["share"]) for row in rows) == pytest.approx(1, abs=0.01)
    profiled_fallback = [row["op"] for row in rows if row["delegated"] == "0"]
    assert profiled_fallback == tflite.delegation(model)[1]
    if variant == "int8":  # The test model holds ops XNNPACK has no int8 kernel for.
        assert "HARD_SWISH" in profiled_fallback
    assert "| op type | ops | ms | share |" in result.stdout
    assert "LiteRT's profiler" in result.stdout
    # LiteRT's console lines (environment, accelerators) stay off the console.
    assert "environment.cc" not in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["p50_ms"] > 0


def test_op_profile_refuses_what_it_cannot_profile(out, tmp_path, run_module):
    cases = [
        (
            f"{out}/saved_model",
            tmp_path / "ops.csv",
            "benchmark: --op_profile needs a .tflite --model_path",
        ),
        (
            f"{out}/model_int8.tflite",
            tmp_path / "missing" / "ops.csv",
            "missing/ops.csv: its folder does not exist.",
        ),
    ]
    for model, target, message in cases:
        result = run_module("tvn_tf.benchmark", f"--model_path={model}", f"--op_profile={target}")
        assert result.returncode != 0
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "ops.csv")
