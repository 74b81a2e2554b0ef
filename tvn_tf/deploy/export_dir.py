"""The export folder: refused when unsafe, locked while written, replaced all at once.

An export writes into a temporary folder beside `--output_dir` and renames it
at the end (`replace_with`), so a reader never sees half an export. One export
at a time per output folder: a second one is refused while the first runs (an
flock on `.OUT.export.lock` beside OUT, as `train` locks its --model_dir). A
full disk ends it with one line naming what the rest needs (`export_bytes`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import IO

from tvn_tf import atomic
from tvn_tf.deploy import tflite
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import memory


def export_bytes(model_dir: str, variants: Sequence[str]) -> int | None:
    """About what exporting the run in `model_dir` writes (its weights, once per file); None if unknown."""
    from tvn_tf import model_dir as model_dir_lib

    try:
        spec = model_dir_lib.read_spec(model_dir)
        arch = arch_lib.architecture_from_json(spec.architecture, spec.name)
        params = memory.estimate(arch, spec.num_classes).params
    except ValueError:
        return None
    # The SavedModel holds float32 weights; each variant its own.
    return params * (4 + sum(tflite.BYTES_PER_WEIGHT.get(v, 4) for v in variants))


def lock_file(output_dir: str) -> str:
    """The lock of an export folder: `.OUT.export.lock` beside it (OUT itself is made last)."""
    parent, name = os.path.split(output_dir)
    return os.path.join(parent, f".{name}.export.lock")


def lock_output_dir(output_dir: str) -> IO[str]:
    """Takes the exclusive lock of an export folder (`atomic.hold_lock` on `lock_file`).

    The lock file stays until the export ends (`atomic.release_lock`); a
    SIGKILLed export leaves it for the next export of that folder to take.

    Raises:
      ValueError: another export holds it (names its pid), or it cannot be created.
    """
    try:
        return atomic.hold_lock(
            lock_file(output_dir),
            f"--output_dir={output_dir} is being written by another export (pid {{pid}}, "
            "lock {lock}); wait for it to end, or choose another --output_dir.",
        )
    except OSError as e:
        raise ValueError(f"--output_dir={output_dir}: cannot create it ({e.strerror}).") from None


def check_output_dir(output_dir: str, model_dir: str, data_dir: str, overwrite: bool) -> None:
    """Refuses an output folder that cannot be written or whose replacement would lose data.

    `--overwrite` deletes the old output folder, so it must not be, or contain,
    the training run or the data (compared as real paths: links and `..` do not
    hide them); and it replaces folders only, never a file.

    Raises:
      ValueError: naming `--output_dir` and what is wrong.
    """
    real = os.path.realpath(output_dir)
    for flag, path in (("--model_dir", model_dir), ("--data_dir", data_dir)):
        if path and os.path.commonpath([real, os.path.realpath(path)]) == real:
            raise ValueError(
                f"--output_dir={output_dir} is or contains {flag}={path}; replacing it "
                "would delete that. Choose another output folder."
            )
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir={output_dir} is a file; expected a folder to create.")
    above = os.path.dirname(output_dir)
    while above and not os.path.exists(above) and os.path.dirname(above) != above:
        above = os.path.dirname(above)
    if os.path.exists(above) and not os.path.isdir(above):
        raise ValueError(
            f"--output_dir={output_dir}: {above} is a file; expected a folder to create."
        )
    if os.path.exists(output_dir) and not overwrite:
        raise ValueError(f"--output_dir={output_dir} exists; pass --overwrite to replace it.")


def make_temporary(output_dir: str) -> str:
    """Creates the temporary folder an export writes into, after removing what a killed one left.

    Raises:
      ValueError: it cannot be created (names `--output_dir`).
      atomic.NoSpaceError: its file system is full.
    """
    # What a killed export left: its temporary folder, or the old output it was replacing.
    for base in (os.path.basename(output_dir), os.path.basename(output_dir) + ".old"):
        atomic.remove_stale_temporaries(os.path.dirname(output_dir), base)
    tmp = atomic.temporary_path(output_dir)
    try:
        os.makedirs(tmp)
    except OSError as e:
        atomic.raise_if_no_space(e, tmp, None)
        raise ValueError(f"--output_dir={output_dir}: cannot create it ({e.strerror}).") from None
    return tmp


def discard(tmp: str, output_dir: str) -> None:
    """Removes what a failed export wrote."""
    shutil.rmtree(tmp, ignore_errors=True)
    atomic.remove_own_temporaries(os.path.dirname(output_dir))


def replace_with(tmp: str, output_dir: str) -> None:
    """Renames the finished temporary folder to `output_dir`, replacing an old one (--overwrite)."""
    if os.path.exists(output_dir):
        old = atomic.temporary_path(output_dir + ".old")
        os.replace(output_dir, old)
        os.replace(tmp, output_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, output_dir)
