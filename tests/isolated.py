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
from typing import IO, Any

import pytest

from tests import forkserver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
}
_FORK_SERVER = forkserver.Client(ROOT, ENV)


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
    target: str,
    *args: str,
    timeout: float = 600,
    env: dict[str, str | None] | None = None,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """Runs a module or script to its end, at ROOT; returns its exit status and output.

    A module or Python script runs in a fork of this worker's server, which has
    imported TensorFlow once (`tests.forkserver`); with `env` or `fresh` it runs
    in a new interpreter.

    Args:
      target: A module (`tvn_tf.export`), a script path from ROOT (`tools/x.py`),
        `-c` and code, or an executable (see `command`).
      *args: Its command-line arguments.
      timeout: Seconds before the child is killed (the test then errors).
      env: Variables set over `ENV` (`TF_CONFIG`, ...); None unsets one.
      fresh: A new interpreter even without `env`: for a test of what happens
        as the binary imports (what TensorFlow prints as it loads, which
        modules come along).
    """
    cmd = command(target, *args)
    forkable = target != "-c" and (target.endswith(".py") or os.sep not in target)
    if forkable and env is None and not fresh:
        script = os.path.join(ROOT, target) if target.endswith(".py") else target
        result = _FORK_SERVER.run(script, list(args), cmd, timeout)
        if result is not None:
            return result
    return subprocess.run(
        cmd,
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
    target: str,
    *args: str,
    env: dict[str, str | None] | None = None,
    output: bool | IO[str] = True,
) -> subprocess.Popen:
    """Starts a target of `command` (to kill, or to run beside another).

    `output`: True pipes stdout and stderr, False drops them, an open file gets both.
    The child's Ctrl-C (SIGINT) is at its default, as from a terminal, even where
    pytest itself was started in the background by a script (which ignores it).
    """
    if isinstance(output, bool):
        pipe = subprocess.PIPE if output else subprocess.DEVNULL
    else:
        pipe = output
    return subprocess.Popen(
        command(target, *args),
        stdout=pipe,
        stderr=pipe,
        text=True,
        env=_environment(env),
        cwd=ROOT,
        preexec_fn=_default_ctrl_c,
    )


def _default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_python(code: str, timeout: float = 300, env: dict[str, str | None] | None = None) -> Any:
    """Runs `code` in a fresh Python at the repository root; returns its result.

    Args:
      code: a snippet whose last line of stdout is one JSON value.
      timeout: seconds before the child is killed (the test then errors).
      env: Variables set over `ENV` (`KERAS_BACKEND`, ...); None unsets one.

    Returns:
      That JSON value, parsed. A child that exits non-zero or dies of a signal
      fails the calling test with how it ended and its stderr.
    """
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=_environment(env),
        cwd=ROOT,
        timeout=timeout,
    )
    if child.returncode != 0:
        rc = child.returncode
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
        pytest.fail(f"child Python ended with {how}:\n{child.stderr[-3000:]}", pytrace=False)
    return json.loads(child.stdout.strip().splitlines()[-1])


# The child of `run_module_cases`: imports the binary once, then ends each case as
# `python -m MODULE ARGS` would end a process, with that case's own output.
_CASES_CHILD = """
import importlib, importlib.util, json, os, sys, tempfile, traceback
from absl import app, flags

name = sys.argv[1]
cases = json.load(sys.stdin)
if name.endswith(".py"):  # A script: its flags are defined as it is loaded.
    spec = importlib.util.spec_from_file_location("_script", name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
else:
    module = importlib.import_module(name)
    if not hasattr(module, "main"):  # A package run as python -m PACKAGE.
        module = importlib.import_module(name + ".__main__")
if hasattr(module, "define_flags"):  # Binaries that define their flags under __main__.
    module.define_flags()


def parse(argv):  # As app.run parses a fresh process's flags: INFO unless --verbosity.
    rest = app.parse_flags_with_usage(argv)
    if flags.FLAGS["verbosity"].using_default_value:
        flags.FLAGS.verbosity = 0
    return rest


results = []
for args in cases:
    flags.FLAGS.unparse_flags()  # Every flag back to its default.
    captured = [tempfile.TemporaryFile(mode="w+"), tempfile.TemporaryFile(mode="w+")]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(captured[0].fileno(), 1)
    os.dup2(captured[1].fileno(), 2)
    try:
        app.run(module.main, argv=[name, *args], flags_parser=parse)
        code = 0
    except SystemExit as e:  # As the interpreter ends on it.
        code = e.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        code = code or 0
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in ((1, saved[0]), (2, saved[1])):
        os.dup2(copy, fd)
        os.close(copy)
    out, err = [f.seek(0) or f.read() for f in captured]
    for f in captured:
        f.close()
    results.append({"returncode": code, "stdout": out, "stderr": err})
print(json.dumps(results))
"""


def run_module_cases(
    module: str, cases: list[list[str]], timeout: float = 600
) -> list[subprocess.CompletedProcess]:
    """Runs an absl binary or script once per argument list, all in one child process.

    A binary's bad-input cases each end in a second or two after `import
    tensorflow`, which takes 6-7 s; one child for all of them pays it once.
    Between cases every flag goes back to its default (`FLAGS.unparse_flags`),
    and each case gets its own stdout and stderr (file descriptors, so
    TensorFlow's native lines too) and exit status, as `python -m MODULE ARGS`
    would end with them: `sys.exit("message")` prints the message and gives 1.
    Use it for cases that end in a refusal within seconds; a run whose
    training, kill or resume is under test belongs in its own process
    (`run_module`, `start_module`).

    Args:
      module: The binary, with a `main(argv)` for `app.run`: a module
        (`tvn_tf.train`), a package whose `__main__` has it (`tvn_tf.search`),
        or a script path from ROOT (`tools/profile_blocks.py`).
      cases: One argument list per run.
      timeout: Seconds for all of them.

    Returns:
      One `CompletedProcess` per case, in order (`args` the case's arguments).
    """
    target = os.path.join(ROOT, module) if module.endswith(".py") else module
    child = subprocess.run(
        [sys.executable, "-c", _CASES_CHILD, target],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=timeout,
    )
    if child.returncode != 0 or not child.stdout.strip():
        pytest.fail(
            f"the child running {module}'s cases ended with {child.returncode}:\n"
            f"{child.stderr[-3000:]}",
            pytrace=False,
        )
    results = json.loads(child.stdout.strip().splitlines()[-1])
    return [
        subprocess.CompletedProcess(args, r["returncode"], r["stdout"], r["stderr"])
        for args, r in zip(cases, results)
    ]
