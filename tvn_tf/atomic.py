"""Writes that never leave half a file, the locks of folders one process owns.

A file or folder is written as `PATH.tmp<PID>` and renamed to `PATH` when
complete, so the final name always holds finished work. The PID makes the name
unique per process: a rerun started while a killed run's worker processes are
still finishing never writes to the same temporary file. It also tells a later
run which leftovers are stale: those whose process is no longer alive.

`hold_lock` is the one lock of the project: a training's --model_dir and an
export's --output_dir are each owned by one process through it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
from typing import IO, Any

# `NAME.tmp<PID>`; an empty PID is the older `NAME.tmp` form, always stale.
_TEMPORARY = re.compile(r"^(?P<base>.+)\.tmp(?P<pid>\d*)$")


class NoSpaceError(OSError):
    """A write failed because its file system is full; str() is the one line to show.

    Every binary turns ENOSPC (Python's OSError, TensorFlow's ResourceExhaustedError
    "No space left on device") into this, so the message names the file system, the
    file and roughly what it needs whichever library did the writing.
    """

    def __init__(self, path: str, needed_bytes: int | None = None):
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        self.path = path
        self.needed_bytes = needed_bytes

    def __reduce__(self):  # Pickled by its own arguments (worker pools send it back).
        return (type(self), (self.path, self.needed_bytes))

    def __str__(self) -> str:
        needed = ""
        if self.needed_bytes is not None:
            needed = f" ({max(1, -(-self.needed_bytes // 2**20))} MB needed)"
        return f"no space left on {mount_point(self.path)} while writing {self.path}{needed}"


def mount_point(path: str) -> str:
    """The mount point of the file system that holds `path` (or would, if it is missing)."""
    path = os.path.abspath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def is_no_space(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is a full file system."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, NoSpaceError):
            return True
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        # tf.errors.ResourceExhaustedError, matched by name: this module stays TF-free.
        if type(error).__name__ == "ResourceExhaustedError" and "No space left" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def raise_if_no_space(error: BaseException, path: str, needed_bytes: int | None) -> None:
    """Re-raises `error` as NoSpaceError(path, needed_bytes) if it is a full file system.

    Call it in an `except` clause around a write; any other error is left to the caller.
    """
    if isinstance(error, NoSpaceError):
        raise error
    if is_no_space(error):
        raise NoSpaceError(path, needed_bytes) from error


def temporary_path(path: str) -> str:
    """The name to write `path` under before renaming it: `path.tmp<PID>`."""
    return f"{path}.tmp{os.getpid()}"


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` under its temporary name, then renames it into place.

    Raises:
      NoSpaceError: the file system is full (the temporary file is removed).
    """
    tmp = temporary_path(path)
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise_if_no_space(e, path, len(text.encode()))
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Someone else's process: alive.
        return True
    except OverflowError:  # Beyond any PID.
        return False
    return True


def _remove(path: str) -> bool:
    """Removes a file or folder; False if it vanished first (renamed by its writer)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        return True
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    return True


def _sweep(directory: str, doomed) -> list[str]:
    """Removes the names in `directory` for which `doomed(name)` holds; returns them."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        name for name in sorted(names) if doomed(name) and _remove(os.path.join(directory, name))
    ]


def remove_stale_temporaries(directory: str, base: str | None = None) -> list[str]:
    """Removes `NAME.tmp<PID>` files and folders in `directory` whose process is dead.

    Args:
      directory: Where to look (not recursive); a missing folder has none.
      base: Only `base.tmp<PID>`; None removes every stale `*.tmp<PID>`.

    Returns:
      The names removed.
    """

    def stale(name: str) -> bool:
        match = _TEMPORARY.match(name)
        if not match or (base is not None and match["base"] != base):
            return False
        return not (match["pid"] and pid_alive(int(match["pid"])))  # A live writer's stays.

    return _sweep(directory, stale)


def remove_own_temporaries(directory: str) -> list[str]:
    """Removes this process's temporary names in `directory` (after a failed write).

    Those are `NAME.tmp<PID>` and `NAME.tmp<PID>.SUFFIX` (an image library that
    picks the format by suffix) for this process's PID; folders included.

    Returns:
      The names removed.
    """
    own = re.compile(rf"^.+\.tmp{os.getpid()}(\.[^.]+)?$")
    return _sweep(directory, lambda name: bool(own.match(name)))


def write_json(path: str, data: Any) -> None:
    """Writes JSON to `path` through a temporary file, so readers never see half of it."""
    write_text(path, json.dumps(data, indent=1) + "\n")


class Busy(ValueError):
    """Another process holds a `hold_lock` lock; the message names its pid."""


def hold_lock(path: str, busy: str) -> IO[str]:
    """Takes an exclusive `flock` on `path`, held while the returned file is open.

    The kernel drops the lock when the process ends, even by SIGKILL, so a
    killed owner never blocks its successor. The file holds the owner's pid.
    A holder may remove the file when it is done (`release_lock`); a process
    that opened the old file before that retries on the new one.

    Args:
      path: The lock file; its folder is created.
      busy: The refusal when another process holds it, with `{pid}` for its
        pid and `{lock}` for `path`.

    Raises:
      Busy: another process holds it.
      NoSpaceError: the file system is full.
      OSError: the file cannot be created (callers name the flag).
    """
    while True:
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            f = open(path, "a+")  # noqa: SIM115  (the caller holds it open)
        except OSError as e:
            raise_if_no_space(e, path, None)
            raise
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "unknown"
            f.close()
            raise Busy(busy.format(pid=owner, lock=path)) from None
        try:  # The holder before may have removed the file between our open and lock.
            current = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        f.close()
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def release_lock(lock: IO[str]) -> None:
    """Removes the file of a `hold_lock` lock, then releases it."""
    try:
        os.remove(lock.name)
    except FileNotFoundError:
        pass
    lock.close()
