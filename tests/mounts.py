"""Real small and read-only file systems for tests (tmpfs mounts).

Tests run as root, which ignores permission bits: a read-only folder must be a
read-only mount, and a full disk a small one. Mounting needs CAP_SYS_ADMIN;
where it is not permitted, the test is skipped and says so.

    with tmpfs(tmp_path / "small", size="1m") as folder: ...        # fills up at 1 MiB
    with tmpfs(tmp_path / "ro", read_only=True, copy={"run": src}) as folder: ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode})")


@contextlib.contextmanager
def tmpfs(
    folder: str | os.PathLike,
    size: str = "16m",
    read_only: bool = False,
    copy: dict[str, str | os.PathLike] | None = None,
) -> Iterator[str]:
    """A tmpfs mounted at `folder` (created) for the block; unmounted after it.

    Args:
      folder: The mount point.
      size: Its size (`1m`: a write of more fails with ENOSPC).
      read_only: Remount it read-only once `copy` is in place.
      copy: Name -> folder to copy in before it turns read-only.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder)
    try:
        for name, source in (copy or {}).items():
            shutil.copytree(source, os.path.join(folder, name))
        if read_only:
            _mount("-o", "remount,ro", folder)
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], capture_output=True)
