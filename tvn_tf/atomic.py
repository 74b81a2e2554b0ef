"""Temporary names for write-then-rename, and cleaning those a killed process left.

A file or folder is written as `PATH.tmp<PID>` and renamed to `PATH` when
complete, so the final name always holds finished work. The PID makes the name
unique per process: a rerun started while a killed run's worker processes are
still finishing never writes to the same temporary file. It also tells a later
run which leftovers are stale: those whose process is no longer alive.
"""

from __future__ import annotations

import os
import re
import shutil

# `NAME.tmp<PID>`; an empty PID is the older `NAME.tmp` form, always stale.
_TEMPORARY = re.compile(r"^(?P<base>.+)\.tmp(?P<pid>\d*)$")


def temporary_path(path: str) -> str:
    """The name to write `path` under before renaming it: `path.tmp<PID>`."""
    return f"{path}.tmp{os.getpid()}"


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` under its temporary name, then renames it into place."""
    tmp = temporary_path(path)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


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
