"""Temporary names for write-then-rename, and cleaning those a killed process left.

A file or folder is written as `PATH.tmp<PID>` and renamed to `PATH` when
complete, so the final name always holds finished work. The PID makes the name
unique per process: a rerun started while a killed run's worker processes are
still finishing never writes to the same temporary file. It also tells a later
run which leftovers are stale: those whose process is no longer alive.
"""

from __future__ import annotations

import errno
import os
import re
import shutil

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


def remove_stale_temporaries(directory: str, base: str | None = None) -> list[str]:
    """Removes `NAME.tmp<PID>` files and folders in `directory` whose process is dead.

    Args:
      directory: Where to look (not recursive); a missing folder has none.
      base: Only `base.tmp<PID>`; None removes every stale `*.tmp<PID>`.

    Returns:
      The names removed.
    """
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in sorted(names):
        match = _TEMPORARY.match(name)
        if not match or (base is not None and match["base"] != base):
            continue
        if match["pid"] and pid_alive(int(match["pid"])):
            continue  # A live writer (this run's, or a concurrent one's).
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except FileNotFoundError:  # Renamed by its writer meanwhile.
                continue
        removed.append(name)
    return removed


def remove_own_temporaries(directory: str) -> list[str]:
    """Removes this process's temporary names in `directory` (after a failed write).

    Those are `NAME.tmp<PID>` and `NAME.tmp<PID>.SUFFIX` (an image library that
    picks the format by suffix) for this process's PID; folders included.

    Returns:
      The names removed.
    """
    own = re.compile(rf"^.+\.tmp{os.getpid()}(\.[^.]+)?$")
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in sorted(names):
        if not own.match(name):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except FileNotFoundError:
                continue
        removed.append(name)
    return removed
