"""One process per test worker that has imported TensorFlow, forked once per binary run.

Most of the suite's time went into child processes importing TensorFlow, Keras
and the project (about 6 s of CPU each, for runs that then take a few seconds).
`run` instead asks a server, started once per pytest worker with the same
environment as every child (`isolated.ENV`), to fork: the fork is a fresh
process that runs the binary's `__main__` as `python -m MODULE ARGS` or
`python SCRIPT ARGS` would, with its own argv, working folder, environment,
stdout and stderr (file descriptors, so native lines too), and ends with the
exit status the interpreter would give: `sys.exit("message")` prints it and
gives 1, an uncaught exception prints its traceback and gives 1, Ctrl-C ends it
by SIGINT, a signal ends it as it would.

The server imports modules only; it never runs a TensorFlow op, so no thread
pool exists when it forks. What a fork cannot give is a process that imports
afresh: a run whose subject is the import itself (what TensorFlow prints as it
loads, which modules a binary pulls in, a variable read at import such as
`KERAS_BACKEND`) passes `fresh=True` or an `env` to `isolated.run_module`,
which then starts a real interpreter. So does any call while the server is busy
(two runs at once, from threads) or has died.

    python -m tests.forkserver      # the server: JSON requests on stdin, replies on stdout
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback

# Imported by the server before it forks: what most runs import anyway.
PRELOAD = (
    "numpy",
    "tensorflow",
    "keras",
    "absl.app",
    "absl.flags",
    "tvn_tf.cli",
    "tvn_tf.models.tvn",
    "tvn_tf.data.pipeline",
    "tvn_tf.training.trainer",
    "tvn_tf.deploy.tflite",
)
START_TIMEOUT = 300


def serve() -> None:
    """The server's loop: for each request line, fork, reply with the pid, then the status."""
    started = dict(os.environ)
    for name in PRELOAD:
        __import__(name)
    # What importing set (the AMX cap of `tvn_tf.platform_setup`): every run keeps it.
    set_by_import = {k: v for k, v in os.environ.items() if started.get(k) != v}
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # Anything printed by the server itself goes to its stderr.
    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    replies.flush()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request, set_by_import)  # Never returns.
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


def _child(request: dict, set_by_import: dict) -> None:
    """In the fork: becomes `python [-m] TARGET ARGS` with the request's folder, env and output."""
    code = 1
    try:
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, fd)
            os.close(out)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**request["env"], **set_by_import})
        code = _run(request["target"], request["args"])
    except BaseException:  # Only a failure of this function itself.
        traceback.print_exc()
    _exit(code)


def _run(target: str, args: list[str]) -> int:
    """Runs the target's `__main__`; the exit status the interpreter would give."""
    try:
        if target.endswith(".py"):
            sys.argv = [target, *args]
            sys.path[0] = os.path.dirname(target)
            runpy.run_path(target, run_name="__main__")
        else:
            sys.argv = [target, *args]  # runpy puts the module's file first, as -m does.
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:
        traceback.print_exc()
        return 1


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _exit(code: int) -> None:
    """Ends as the interpreter ends: waits for threads, runs atexit, flushes, exits."""
    try:
        threading._shutdown()  # pylint: disable=protected-access
        atexit._run_exitfuncs()  # pylint: disable=protected-access
    except BaseException:
        traceback.print_exc()
    _flush()
    os._exit(code)


class Client:
    """A pytest worker's handle on its server; `run` returns None where it cannot serve."""

    def __init__(self, root: str, env: dict[str, str]):
        self._root = root
        self._env = env
        self._server: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._broken = False

    def _start(self) -> subprocess.Popen | None:
        if self._server is not None and self._server.poll() is None:
            return self._server
        if self._broken:
            return None
        self._server = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self._env,
            cwd=self._root,
        )
        if self._reply(self._server, START_TIMEOUT) is None:
            self._broken = True  # Never ready: real processes from now on.
            self.close()
            return None
        return self._server

    @staticmethod
    def _reply(server: subprocess.Popen, timeout: float) -> dict | None:
        ready, _, _ = select.select([server.stdout], [], [], timeout)
        line = server.stdout.readline() if ready else ""
        return json.loads(line) if line else None

    def run(
        self, target: str, args: list[str], cmd: list[str], timeout: float
    ) -> subprocess.CompletedProcess | None:
        """Runs `target` in a fork as `cmd` would run it; None if the server cannot.

        Raises:
          subprocess.TimeoutExpired: as `subprocess.run` does (the fork is killed).
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            server = self._start()
            if server is None:
                return None
            with tempfile.TemporaryDirectory(prefix="fork_") as tmp:
                out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
                request = {"target": target, "args": args, "cwd": self._root, "env": self._env}
                request.update(stdout=out, stderr=err)
                server.stdin.write(json.dumps(request) + "\n")
                server.stdin.flush()
                started = self._reply(server, 60)
                if started is None:
                    self.close()
                    return None
                ended = self._reply(server, timeout)
                if ended is None:
                    os.kill(started["pid"], signal.SIGKILL)
                    self._reply(server, 60)
                    raise subprocess.TimeoutExpired(cmd, timeout)
                with open(out) as f_out, open(err) as f_err:
                    stdout, stderr = f_out.read(), f_err.read()
            return subprocess.CompletedProcess(cmd, ended["returncode"], stdout, stderr)
        finally:
            self._lock.release()

    def close(self) -> None:
        if self._server is not None and self._server.poll() is None:
            self._server.kill()
            self._server.wait()
        self._server = None


if __name__ == "__main__":
    serve()
