"""The training binary under hostile use: Ctrl-C, kill -9 mid-save, a full disk, bad folders.

Every case is real: signals to a real process, a process killed while TensorFlow
writes a checkpoint, a real full file system (a small tmpfs) and a real
read-only one (a tmpfs mounted read-only: the tests run as root, who ignores
permission bits). A case that needs `mount` is skipped, with the reason, where
mounting is not permitted. All runs train TVN-1 scaled down (width x0.25,
32x32) for a few steps on the session's tiny demo data.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import pickle
import shutil
import signal
import time

import pytest

from tests.isolated import run_module, run_module_cases, start_module
from tests.mounts import tmpfs
from tvn_tf import model_dir as model_dir_lib


def run_flags(data, model_dir, *extra):
    return [
        f"--data_dir={data}",
        f"--model_dir={model_dir}",
        "--model=tvn1",
        "--width_multiplier=0.25",
        "--image_size=32",
        "--batch_size=4",
        "--split=logo",
        "--fold=4",
        "--eval_clips=1",
        "--warmup_epochs=0",
        *extra,
    ]


# The run every case starts from: two steps, a checkpoint after each, one training-only head.
RUN = ["--train_steps=2", "--checkpoint_every=1", "--aux_classifiers=block0_0"]


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    """A finished 2-step run (checkpoints 1 and 2) with `RUN`'s flags; copy it before changing it."""
    model_dir = tmp_path_factory.mktemp("robust") / "run"
    result = run_module("tvn_tf.train", *run_flags(tiny_data["records"], model_dir, *RUN))
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir


def train_errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("train: ")]


def one_line_refusal(result, expected: str) -> None:
    assert result.returncode not in (0, None), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = train_errors(result)
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]


# A process that starts saving a 64 MB checkpoint into FOLDER with TensorFlow's own
# CheckpointManager, and is killed by SIGKILL (from a thread that watches the folder)
# as soon as the save's temporary folder appears: what `kill -9` mid-save leaves.
_KILLED_MID_SAVE = """
import os, signal, sys, threading, time
import tensorflow as tf

folder = sys.argv[1]
temp = os.path.join(folder, "ckpt-99_temp")

def watch():
    while not os.path.isdir(temp):
        time.sleep(0.0005)
    os.kill(os.getpid(), signal.SIGKILL)

threading.Thread(target=watch, daemon=True).start()
checkpoint = tf.train.Checkpoint(v=tf.Variable(tf.random.uniform([16 * 2**20])))
tf.train.CheckpointManager(checkpoint, folder, max_to_keep=None).save(checkpoint_number=99)
print("the save finished before the kill")
"""


def test_ctrl_c_saves_its_step_and_a_kill_mid_save_leaves_nothing_behind(tiny_data, tmp_path):
    # --strategy=mirrored on one device: its input position is checkpointed too.
    model_dir = tmp_path / "run"
    flags = run_flags(
        tiny_data["records"], model_dir, "--strategy=mirrored", "--checkpoint_every=2"
    )
    process = start_module("tvn_tf.train", *flags, "--train_steps=100000")
    try:
        deadline = time.time() + 300
        while not (model_dir / "checkpoints" / "ckpt-2.index").exists():
            assert process.poll() is None and time.time() < deadline, process.communicate()[1]
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("train: ")]
    assert len(errors) == 1 and errors[0].endswith("; the same command resumes"), stderr[-3000:]
    step = int(errors[0].split("interrupted at step ")[1].split(";")[0])
    assert step >= 2 and (model_dir / "checkpoints" / f"ckpt-{step}.index").exists()

    # kill -9 while TensorFlow writes a checkpoint into the run's folder.
    killed = run_module("-c", _KILLED_MID_SAVE, str(model_dir / "checkpoints"), timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr[-2000:]
    leftover = model_dir / "checkpoints" / "ckpt-99_temp"
    assert leftover.is_dir()

    result = run_module("tvn_tf.train", *flags, f"--train_steps={step + 1}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resumed from {model_dir}/checkpoints/ckpt-{step} at step {step}." in result.stderr
    assert "ckpt-99_temp" in result.stderr and not leftover.exists()
    assert json.loads((model_dir / "metrics.json").read_text())["step"] == step + 1


def test_full_disk_names_the_file_system_and_keeps_the_checkpoints(
    tiny_data, finished_run, tmp_path
):
    size_mb = sum(p.stat().st_size for p in finished_run.rglob("*") if p.is_file()) // 2**20
    with tmpfs(tmp_path / "disk", size=f"{size_mb + 24}m") as mount:
        disk = pathlib.Path(mount)
        model_dir = shutil.copytree(finished_run, disk / "run")
        free = shutil.disk_usage(disk).free
        # Leaves 100 KB: the run's JSON files fit, a checkpoint does not.
        (disk / "filler").write_bytes(b"\0" * (free - 100 * 1024))
        result = run_module(
            "tvn_tf.train",
            *run_flags(tiny_data["records"], model_dir, *RUN[1:], "--train_steps=4"),
        )
        one_line_refusal(
            result,
            f"train: no space left on {disk} while writing {model_dir}/checkpoints/ckpt-3 (",
        )
        assert train_errors(result)[0].endswith(" MB needed)"), result.stderr[-2000:]
        left = sorted(os.listdir(model_dir / "checkpoints"))
        assert not [name for name in left if "temp" in name or "ckpt-3" in name], left
        latest = model_dir_lib.latest_intact_checkpoint(str(model_dir / "checkpoints"))
        assert latest == f"{model_dir}/checkpoints/ckpt-2"
        model_dir_lib.verify_checkpoint(f"{model_dir}/checkpoints/ckpt-1")


def test_unusable_model_dirs_and_changed_heads_are_refused_before_writing(
    tiny_data, finished_run, tmp_path
):
    data = tiny_data["records"]
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder\n")
    run = shutil.copytree(finished_run, tmp_path / "run")
    before = {p: p.read_bytes() for p in run.glob("*.json")}
    no_heads = [f for f in RUN if not f.startswith("--aux_classifiers")]
    cases = {
        "file": (
            run_flags(data, a_file, *RUN),
            f"--model_dir={a_file} is a file; expected a folder.",
        ),
        "no_heads": (
            run_flags(data, run, *no_heads),
            "ckpt-2 does not fit this run (--aux_classifiers=none (the run's: block0_0))",
        ),
        "other_heads": (
            run_flags(data, run, *no_heads, "--aux_classifiers=block1_0"),
            "(--aux_classifiers=block1_0 (the run's: block0_0))",
        ),
        # Refused from the architecture's arithmetic, before a weight is allocated.
        "too_large": (
            run_flags(data, tmp_path / "huge", *RUN, "--width_multiplier=32"),
            "of memory",
        ),
    }
    with contextlib.ExitStack() as stack:
        try:
            read_only = pathlib.Path(
                stack.enter_context(tmpfs(tmp_path / "ro", size="1m", read_only=True))
            )
        except pytest.skip.Exception as skipped:
            read_only = None
            reason = str(skipped)
        if read_only is not None:
            cases["read_only"] = (
                run_flags(data, read_only / "run", *RUN),
                f"--model_dir={read_only}/run: cannot write {read_only}/run (Read-only file system)",
            )
        results = run_module_cases("tvn_tf.train", [flags for flags, _ in cases.values()])
    for name, result in zip(cases, results):
        one_line_refusal(result, cases[name][1])
    assert a_file.read_text() == "not a folder\n"
    assert {p: p.read_bytes() for p in run.glob("*.json")} == before
    # The run's record kept its heads: its own command still resumes it.
    again = run_module("tvn_tf.train", *run_flags(data, run, *RUN))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Resumed from {run}/checkpoints/ckpt-2 at step 2." in again.stderr
    if read_only is None:
        pytest.skip(f"the read-only case: {reason}")


def test_no_space_error_names_the_file_system_file_and_size(tmp_path):
    from tvn_tf import atomic

    path = str(tmp_path / "ckpt-3")
    with pytest.raises(atomic.NoSpaceError) as raised:
        try:
            raise OSError(28, "No space left on device", path)
        except OSError as e:
            atomic.raise_if_no_space(e, path, 3 * 2**20 + 1)
    expected = f"no space left on {atomic.mount_point(path)} while writing {path} (4 MB needed)"
    assert str(raised.value) == expected
    assert str(pickle.loads(pickle.dumps(raised.value))) == expected
    assert str(atomic.NoSpaceError(path, None)).endswith(f"while writing {path}")
    # Any other error is the caller's to handle.
    atomic.raise_if_no_space(OSError(13, "Permission denied", path), path, None)
