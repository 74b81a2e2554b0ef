"""Runs a Python snippet in a child process, for tests whose native kernels may crash.

A bfloat16 matmul can die of SIGILL inside oneDNN (AMX on a CPU that traps it);
in a child that fails one test instead of killing the whole pytest process.
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


def run_python(code: str, timeout: float = 300) -> Any:
    """Runs `code` in a fresh Python at the repository root; returns its result.

    Args:
      code: a snippet whose last line of stdout is one JSON value.
      timeout: seconds before the child is killed (the test then errors).

    Returns:
      That JSON value, parsed. A child that exits non-zero or dies of a signal
      fails the calling test with how it ended and its stderr.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )
    if child.returncode != 0:
        rc = child.returncode
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
        pytest.fail(f"child Python ended with {how}:\n{child.stderr[-3000:]}", pytrace=False)
    return json.loads(child.stdout.strip().splitlines()[-1])
