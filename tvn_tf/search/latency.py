"""A candidate's latency on this machine, timed with nothing else running.

    with machine_lock(exclusive=False):   # A training: many at once.
        ...
    latency_ms = measure(model, arch, variant="float32", threads=2, runs=10, timings={})

`measure` converts the candidate to TFLite, loads it as `tvn_tf.benchmark`
does and times batch-1 runs, holding the machine lock exclusive: timing never
runs beside a training on the same machine, whichever search worker started it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator

import keras
import numpy as np

from tvn_tf import perf
from tvn_tf.deploy import loading, tflite
from tvn_tf.models import architecture as arch_lib


@contextlib.contextmanager
def machine_lock(exclusive: bool) -> Iterator[None]:
    """Training holds it shared, timing exclusive; a gate keeps trainings from starving timing.

    The lock is per user and machine (files in the temporary folder), so it
    orders every search worker of this user on this machine.
    """
    folder = tempfile.gettempdir()
    uid = os.getuid()
    with (
        open(os.path.join(folder, f"tvn_search_{uid}.gate"), "a") as gate,
        open(os.path.join(folder, f"tvn_search_{uid}.lock"), "a") as lock,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if not exclusive:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


def _calibration_clips(arch: arch_lib.Architecture, variant: str) -> list[np.ndarray] | None:
    """Fixed random clips for full-integer calibration (int8), else None."""
    if variant != "int8":
        return None
    rng = np.random.default_rng(0)
    shape = (arch.num_frames, arch.image_size, arch.image_size, 3)
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(4)]


def measure(
    model: keras.Model,
    arch: arch_lib.Architecture,
    *,
    variant: str,
    threads: int,
    runs: int,
    timings: dict[str, float],
) -> float:
    """The median batch-1 latency in ms of `model` as a TFLite `variant` on `threads` threads.

    Converts with `deploy.tflite`, loads with `deploy.loading` and times with
    `perf.time_runs` (3 warm-up runs, then `runs`), as `tvn_tf.benchmark`
    does, under the exclusive machine lock. Adds the seconds spent converting
    and timing to `timings` ("convert", "time").

    Raises:
      Exception: the converter's errors, as they come (they vary).
    """
    with machine_lock(exclusive=True):
        start = time.perf_counter()
        data = tflite.convert_model(model, variant, _calibration_clips(arch, variant))
        timings["convert"] = time.perf_counter() - start
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tvn_search_") as tmp:
            path = os.path.join(tmp, "candidate.tflite")
            with open(path, "wb") as f:
                f.write(data)
            runner = loading.load(path, threads=threads)
            latency = perf.time_runs(runner.timed_call(), runs=runs, warmup=3)
        timings["time"] = time.perf_counter() - start
    return round(latency.p50_ms, 3)  # Rounded as tvn_tf.benchmark reports it.
