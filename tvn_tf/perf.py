"""Timing helpers shared by the benchmarks: latency percentiles, the SGEMM ceiling.

Absolute times move between runs and machines, so every benchmark reports its
figures next to the machine's fp32 SGEMM rate measured in the same run.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Latency:
    """Per-run latency figures, in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    runs: int

    @property
    def per_second(self) -> float:
        """Runs per second at the median latency."""
        return 1000.0 / self.p50_ms


def time_runs(fn: Callable[[], object], runs: int = 20, warmup: int = 3) -> Latency:
    """Calls `fn` `warmup` times, then times `runs` calls one by one."""
    if runs < 1:
        raise ValueError(f"runs is {runs}; expected at least 1.")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return Latency(float(p50), float(p90), float(p99), runs)


def sgemm_gflops(size: int = 4096, repeats: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate (numpy's BLAS, its default threads), GFLOP/s.

    The best of `repeats` products of two `size` x `size` matrices, at
    `2 * size**3` FLOPs each: the practical fp32 ceiling a network can approach.
    """
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b  # Warm-up: thread pool and page faults.
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine_description() -> str:
    """CPU model and core count, e.g. 'Intel(R) Xeon(R) Platinum 8488C, 2 cores, x86_64'."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}"


def set_tensorflow_threads(threads: int) -> bool:
    """Sets TensorFlow's intra-op threads (inter-op: 1) for latency runs.

    Returns False, leaving them as they are, when TensorFlow already started
    running in this process (they can only be set before).
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        return False
    return True
