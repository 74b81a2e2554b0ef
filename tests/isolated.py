"""Child processes for tests: the binaries and tools as a user runs them, and snippets.

One environment for all of them (`ENV`): the repository importable, TensorFlow's
start-up lines off, no GPU. A snippet also runs here when its native kernels may
crash: a bfloat16 matmul can die of SIGILL inside oneDNN (AMX on a CPU that traps
it), and in a child that fails one test instead of killing the whole pytest process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
}


def command(target: str, *args: str) -> list[str]:
    """The command line of a target, by its form.

    Args:
      target: a module (`tvn_tf.train`); a Python script (`tools/x.py`, from
        ROOT); `-c`, the first of `args` then being Python code; or any other
        executable by its path (`tools/android_benchmark.sh`, from ROOT, or an
        absolute path such as the venv's `saved_model_cli`).
      *args: Its command-line arguments.
    """
    if target == "-c":
        return [sys.executable, "-c", textwrap.dedent(args[0]), *args[1:]]
    if target.endswith(".py"):
        return [sys.executable, os.path.join(ROOT, target), *args]
    if os.sep in target:
        return [os.path.join(ROOT, target), *args]
    return [sys.executable, "-m", target, *args]


def run_module(
    target: str, *args: str, timeout: float = 600, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess:
    """Runs a module or script to its end, at ROOT; returns its exit status and output.

    Args:
      target: A module (`tvn_tf.export`), a script path from ROOT (`tools/x.py`),
        `-c` and code, or an executable (see `command`).
      *args: Its command-line arguments.
      timeout: Seconds before the child is killed (the test then errors).
      env: Variables set over `ENV` (`TF_CONFIG`, ...); None unsets one.
    """
    return subprocess.run(
        command(target, *args),
        capture_output=True,
        text=True,
        env=_environment(env),
        cwd=ROOT,
        timeout=timeout,
    )


def _environment(env: dict[str, str | None] | None) -> dict[str, str]:
    """`ENV` with `env` set over it; a None value unsets that variable."""
    merged = {**ENV, **(env or {})}
    return {name: value for name, value in merged.items() if value is not None}


def start_module(
    target: str, *args: str, env: dict[str, str | None] | None = None, output: bool = True
) -> subprocess.Popen:
    """Starts a target of `command` (to kill, or to run beside another); `output=False` drops it."""
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(
        command(target, *args),
        stdout=pipe,
        stderr=pipe,
        text=True,
        env=_environment(env),
        cwd=ROOT,
    )


def run_python(code: str, timeout: float = 300) -> Any:
    """Runs `code` in a fresh Python at the repository root; returns its result.

    Args:
      code: a snippet whose last line of stdout is one JSON value.
      timeout: seconds before the child is killed (the test then errors).

    Returns:
      That JSON value, parsed. A child that exits non-zero or dies of a signal
      fails the calling test with how it ended and its stderr.
    """
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=timeout,
    )
    if child.returncode != 0:
        rc = child.returncode
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
        pytest.fail(f"child Python ended with {how}:\n{child.stderr[-3000:]}", pytrace=False)
    return json.loads(child.stdout.strip().splitlines()[-1])
