"""Start-up set-up before TensorFlow loads: the AMX probe and cap, quiet logs.

This machine may have no AMX, so the decision logic is fed a CPU that lists
`amx_tile` plus a probe answer, while the probe itself runs real children:
one that really executes AMX instructions without permission (a real SIGILL on
any x86 CPU), one killed by SIGILL, and the full probe on this CPU. On a CPU
with AMX, `tests/testdata/amx_trap.c` (loaded with LD_PRELOAD) turns it into
one where AMX traps, and bfloat16 training runs there end to end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from tests.isolated import ROOT, run_module, run_python
from tvn_tf import platform_setup as ps

AMX_CPU = ("Intel(R) Xeon(R) Processor", frozenset({"avx512f", "amx_tile", "amx_bf16"}))
AMD_CPU = ("AMD EPYC", frozenset({"avx2", "avx512f"}))


def no_probe():
    raise AssertionError("the probe must not run here")


@pytest.mark.parametrize(
    "code, result",
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGILL)", "traps"),
        # The real AMX instructions without the kernel's permission: #UD or XFD, both SIGILL.
        (ps.PROBE_CODE.replace("if libc.syscall(", "if False and libc.syscall("), "traps"),
        ("import sys; sys.exit(0)", "executes"),
        ("import sys; sys.exit(3)", "refused"),
        ("import sys; sys.exit(1)", "unknown"),
        ("import tvn_tf", "unknown"),  # The child cannot import the package: no recursion.
    ],
)
def test_probe_classifies_how_the_child_ended(code, result):
    assert ps.run_probe(code) == result


def test_probe_that_hangs_is_unknown():
    assert ps.run_probe("import time; time.sleep(30)", timeout=0.5) == "unknown"


def test_real_probe_on_this_cpu():
    result = ps.run_probe()
    if "amx_tile" not in ps.read_cpuinfo()[1]:
        assert result == "refused"  # The kernel grants no AMX permission on a CPU without it.
    else:
        assert result in ("executes", "traps")


@pytest.mark.parametrize(
    "environ, cpu, probe, isa",
    [
        ({}, AMD_CPU, no_probe, None),
        ({}, AMX_CPU, lambda: "executes", None),  # Working AMX keeps its bf16 speed.
        ({}, AMX_CPU, lambda: "traps", ps.NO_AMX_ISA),
        ({}, AMX_CPU, lambda: "refused", ps.NO_AMX_ISA),
        ({}, AMX_CPU, lambda: "unknown", ps.NO_AMX_ISA),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, AMX_CPU, no_probe, None),  # The user wins.
        ({"DNNL_MAX_CPU_ISA": "AVX2"}, AMX_CPU, no_probe, None),
    ],
)
def test_amx_cap_decision(environ, cpu, probe, isa):
    assert ps.amx_cap(environ, cpu[1], probe) == isa


def test_cap_amx_caps_once_logs_one_line_and_caches(tmp_path, caplog):
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    with caplog.at_level(logging.WARNING):
        ps.cap_amx(environ, AMX_CPU, lambda: "traps", tensorflow_loaded=False)
    assert environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE_FP16"
    assert len(caplog.records) == 1
    assert "does not execute" in caplog.text and "ONEDNN_MAX_CPU_ISA" in caplog.text
    (cache,) = (tmp_path / "tvn_tf").iterdir()
    assert json.loads(cache.read_text())["amx"] == "traps"

    again = {"XDG_CACHE_HOME": str(tmp_path)}
    ps.cap_amx(again, AMX_CPU, no_probe, tensorflow_loaded=False)  # From the cache.
    assert again["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE_FP16"
    other_kernel_or_cpu = ("Another Xeon", AMX_CPU[1])
    assert ps.cache_path(*other_kernel_or_cpu, again) != str(cache)


def test_unknown_probe_is_not_cached_and_unwritable_cache_is_harmless(tmp_path):
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    ps.cap_amx(environ, AMX_CPU, lambda: "unknown", tensorflow_loaded=False)
    assert environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE_FP16"
    assert not (tmp_path / "tvn_tf").exists() or not any((tmp_path / "tvn_tf").iterdir())

    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")  # The cache root is a file: nothing can be written under it.
    environ = {"XDG_CACHE_HOME": str(blocker)}
    ps.cap_amx(environ, AMX_CPU, lambda: "executes", tensorflow_loaded=False)
    assert "ONEDNN_MAX_CPU_ISA" not in environ


def test_tensorflow_imported_first_warns_that_the_cap_may_be_late(tmp_path, caplog):
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    with caplog.at_level(logging.WARNING):
        ps.cap_amx(environ, AMX_CPU, lambda: "traps", tensorflow_loaded=True)
    assert len(caplog.records) == 1
    assert "imported before tvn_tf" in caplog.text


@pytest.mark.parametrize(
    "argv, verbosity",
    [
        (["bin"], None),
        (["bin", "-v", "1"], 1),
        (["bin", "-v=2"], 2),
        (["bin", "--verbosity=1"], 1),
        (["bin", "--verbosity", "-1"], -1),
        (["pytest", "-v", "tests/x.py"], None),  # Not absl's flag.
        (["bin", "--model=v"], None),
    ],
)
def test_verbosity_from_argv(argv, verbosity):
    assert ps.verbosity_from_argv(argv) == verbosity


@pytest.mark.parametrize(
    "environ, argv, level",
    [
        ({}, ["bin"], "3"),
        ({"TF_CPP_MIN_LOG_LEVEL": "1"}, ["bin"], "1"),  # The user's choice stays.
        ({"TF_CPP_MIN_LOG_LEVEL": "3"}, ["bin", "-v", "1"], "0"),  # The flag beats the env.
    ],
)
def test_tf_log_level(environ, argv, level):
    ps.quiet_tensorflow(environ, argv)
    assert environ["TF_CPP_MIN_LOG_LEVEL"] == level


def test_import_tvn_tf_changes_only_the_amx_cap_and_loads_no_tensorflow():
    changed = run_python("""
        import json, os, sys
        before = dict(os.environ)
        import tvn_tf
        after = dict(os.environ)
        changed = sorted(k for k in after if before.get(k) != after[k])
        print(json.dumps([changed, "tensorflow" in sys.modules]))
    """)
    assert changed[1] is False  # Importing the package does not load TensorFlow.
    assert set(changed[0]) <= {"ONEDNN_MAX_CPU_ISA"}
    if "amx_tile" not in ps.read_cpuinfo()[1]:
        assert changed[0] == []


TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.M)


def model_info_stderr(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tvn_tf.model_info",
            "--arch_json=tests/testdata/all_ops_tvn.json",
            "--num_classes=5",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": ROOT},
        cwd=ROOT,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    return child.stderr


def test_binary_console_is_quiet_by_default_and_verbose_with_v1():
    quiet = model_info_stderr()
    # TensorFlow 2.21 logs the CUDA-driver note, and on CPUs where oneDNN's custom
    # operations are on by default (AVX-512: AMD Zen 4, Intel Sapphire Rapids) the
    # oneDNN notice, before any log level applies; the rest must be quiet.
    for noise in ("cuInit", "E0000", "cpu_feature_guard"):
        assert noise not in quiet
    verbose = model_info_stderr("-v", "1")
    assert len(TF_LOG_LINE.findall(verbose)) > len(TF_LOG_LINE.findall(quiet))


BFLOAT16_MATMUL = """
import tensorflow as tf
a = tf.cast(tf.random.uniform((256, 256)), tf.bfloat16)
print(float(tf.reduce_sum(tf.cast(tf.matmul(a, a), tf.float32))))
"""


@pytest.mark.skipif(
    "amx_tile" not in ps.read_cpuinfo()[1] or not shutil.which("gcc"),
    reason="needs a CPU that lists AMX, and gcc to build the trap shim",
)
def test_where_amx_traps_bfloat16_training_is_capped_and_runs(tiny_data, tmp_path):
    shim = str(tmp_path / "amx_trap.so")
    source = os.path.join(ROOT, "tests", "testdata", "amx_trap.c")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", shim, source, "-ldl"], check=True)
    # No cap inherited from this process: the child must find the trap itself.
    env = {
        "LD_PRELOAD": shim,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        ps.ISA_ENV: None,
        ps.LEGACY_ISA_ENV: None,
    }

    # The shim really makes AMX trap: TensorFlow alone dies in oneDNN's bfloat16 matmul.
    raw = run_module("-c", BFLOAT16_MATMUL, env=env)
    assert raw.returncode == -signal.SIGILL, (raw.returncode, raw.stderr[-2000:])

    # The training binary, with nothing set by hand, caps oneDNN and trains in bfloat16.
    trained = run_module(
        "tvn_tf.train",
        f"--flagfile={ROOT}/flags/demo.cfg",
        f"--data_dir={tiny_data['records']}",
        f"--model_dir={tmp_path / 'run'}",
        "--width_multiplier=0.25",
        "--image_size=32",
        "--batch_size=8",
        "--train_steps=2",
        "--warmup_epochs=0",
        "--split=logo",
        "--fold=5",
        "--eval_clips=1",
        "--mixed_precision=mixed_bfloat16",
        env=env,
    )
    assert trained.returncode == 0, (trained.returncode, trained.stderr[-3000:])
    assert trained.stderr.count("AMX is listed but does not execute on this CPU") == 1
    assert (tmp_path / "run" / "metrics.json").exists()
