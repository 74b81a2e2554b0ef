"""Export and prepare on full and read-only disks, two exports at once, and a denylist typo.

The disks are real tmpfs mounts (`tests.mounts`); the exports real processes.
"""

import os
import signal
import time

import pytest

from tests.isolated import run_module, run_module_cases, start_module
from tests.mounts import tmpfs
from tvn_tf.deploy import export_dir as export_dir_lib

TINY = [
    "--variants=float32",
    "--calibration_clips=2",
    "--augmented_calibration_clips=0",
    "--parity_clips=2",
    "--latency_runs=1",
]


def _read(path) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _one_line(result, binary: str) -> str:
    """The binary's one line: non-zero exit, no traceback, its only line and the last."""
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith(f"{binary}:")]
    assert len(ours) == 1 and result.stderr.strip().splitlines()[-1] == ours[0], result.stderr
    return ours[0]


@pytest.fixture(scope="module")
def refused(tmp_path_factory, trained_model_dir, export_data):
    """Export's refusals in one child: a full disk, a read-only folder, an unknown layer."""
    root = tmp_path_factory.mktemp("export_refusals")
    run = [f"--model_dir={trained_model_dir}", f"--data_dir={export_data}"]
    with tmpfs(root / "full", size="1m") as full, tmpfs(root / "ro", read_only=True) as ro:
        (root / "typo").mkdir()
        cases = {
            "full": [*run, *TINY, f"--output_dir={full}/out"],
            "read_only": [*run, *TINY, f"--output_dir={ro}/out"],
            "typo": [
                *run,
                f"--output_dir={root / 'typo' / 'out'}",
                "--variants=int8",
                "--int8_denylist=logits,block9/nothing,block9/*,blk*,block0_0/*",
            ],
        }
        results = run_module_cases("tvn_tf.export", list(cases.values()))
        left = {"full": os.listdir(full), "read_only": os.listdir(ro)}
    left["typo"] = os.listdir(root / "typo")
    return {name: (result, left[name]) for name, result in zip(cases, results)}


def test_a_full_disk_ends_export_in_one_line_and_leaves_nothing(refused):
    result, left = refused["full"]
    line = _one_line(result, "export")
    assert line.startswith("export: no space left on "), line
    assert "/full/out (" in line and line.endswith(" MB needed)"), line
    assert left == []  # Neither out.tmp<PID> nor the lock file.


def test_a_read_only_output_folder_is_refused_in_one_line(refused):
    result, left = refused["read_only"]
    line = _one_line(result, "export")
    assert line.endswith("/ro/out: cannot create it (Read-only file system)."), line
    assert left == []


def test_an_unknown_denylist_layer_is_refused_before_any_calibration(refused):
    result, left = refused["typo"]
    line = _one_line(result, "export")
    assert "no quantized layer named block9/nothing, block9/*, blk*;" in line
    assert "quantization_report.csv" in line and "block4_0/*" in line
    assert "calibration clips" not in result.stderr  # Refused before the clips are read.
    assert left == []


def test_the_denylist_check_lets_every_layer_of_a_real_report_through(
    export_dir, trained_model_dir
):
    # The names calibration finds must all pass the check made before it.
    from tvn_tf import model_dir as model_dir_lib
    from tvn_tf.deploy import quantization, quantization_report

    model, _, _ = model_dir_lib.restore_model(trained_model_dir)
    layers = quantization_report.read_report(
        os.path.join(export_dir, quantization_report.REPORT_FILE)
    )
    names = [layer.layer for layer in layers] + [layer.tensor for layer in layers]
    quantization.check_denylist_names([*names, "block3_1/*", "head/*", "*/Relu"], model)


def test_a_second_export_to_the_same_folder_is_refused_while_the_first_runs(
    tmp_path, trained_model_dir, export_data
):
    output = tmp_path / "out"
    args = [
        f"--model_dir={trained_model_dir}",
        f"--data_dir={export_data}",
        f"--output_dir={output}",
        *TINY,
    ]
    first = start_module("tvn_tf.export", *args)
    lock = export_dir_lib.lock_file(str(output))
    try:
        while first.poll() is None and _read(lock) != str(first.pid):  # Locked and owned.
            time.sleep(0.1)
        # Held still while the second tries: the race is taken out of the test.
        first.send_signal(signal.SIGSTOP)
        second = run_module("tvn_tf.export", *args)
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=600)
    line = _one_line(second, "export")
    assert f"--output_dir={output} is being written by another export (pid {first.pid}" in line
    assert first.returncode == 0, err[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["out"]  # The lock went with the first export.
    assert "model_float32.tflite" in os.listdir(output)


def test_a_full_disk_ends_prepare_in_one_line_and_keeps_finished_shards(tmp_path, export_data):
    with tmpfs(tmp_path / "small", size="300k") as small:
        result = run_module(
            "tools/prepare_ucf50.py",
            f"--input_dir={export_data}",
            f"--output_dir={small}/records",
            "--workers=1",
            "--videos_per_shard=3",
        )
        left = sorted(os.listdir(f"{small}/records")) + sorted(
            os.listdir(f"{small}/records/.manifest_parts")
        )
    line = _one_line(result, "prepare_ucf50")
    assert line.startswith(f"prepare_ucf50: no space left on {small} while writing"), line
    assert " MB needed)" in line and "rerun to resume" in line
    assert not [name for name in left if ".tmp" in name], left
    shards = [name for name in left if name.endswith(".tfrecord")]
    assert shards and all(f"{shard}.jsonl" in left for shard in shards), left
