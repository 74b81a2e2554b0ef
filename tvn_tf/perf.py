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
    fastest_ms: float

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
    return _latency(_times_ms(fn, runs))


def _times_ms(fn: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds of each of `runs` calls of `fn`, one by one."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _latency(times: list[float]) -> Latency:
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return Latency(float(p50), float(p90), float(p99), len(times), float(min(times)))


@dataclasses.dataclass(frozen=True)
class PairedShare:
    """A model's share of the SGEMM rate, from SGEMM and model timings taken in turns.

    On a shared VM, interference only ever slows a measurement down: one SGEMM
    figure moves by a third from run to run, and a model's fastest run by a
    fifth from one round of a process to the next (AMD EPYC, TVN-1 float32 at
    224: 47-60 ms within one process). Each side's best over the whole run is
    what repeats, so SGEMM and the model are timed in alternating rounds (both
    sample the same minutes) and `share` is FLOPs / the fastest model run of
    all rounds / the best SGEMM rate of all rounds. Pricing each round by its
    own SGEMM and keeping the median round moved 3-9%
    between processes; keeping the best such round let one low SGEMM reading
    make a share of 101% against 88-96% for the same model. The per-round
    shares remain, for the spread.

    Attributes:
      latency: Latency over all rounds' timed runs.
      sgemm_gflops: Best SGEMM rate over the rounds.
      shares: Per round, FLOPs / that round's fastest run / that round's SGEMM.
      share: FLOPs / fastest run of all rounds / `sgemm_gflops`.
    """

    latency: Latency
    sgemm_gflops: float
    shares: tuple[float, ...]
    share: float

    @property
    def median(self) -> float:
        """The median round's share (for the spread; it moves more than `share`)."""
        return float(np.median(self.shares))


def paired_share(
    fn: Callable[[], object],
    flops: float,
    rounds: int = 10,
    runs: int = 120,
    warmup: int = 5,
    sgemm_repeats: int = 2,
    sgemm_size: int = 4096,
) -> PairedShare:
    """Times `fn` and SGEMM in `rounds` alternating rounds (see `PairedShare`).

    `runs` timed calls of `fn` are split evenly over the rounds; each round
    starts with one untimed call, since SGEMM just evicted the model's caches.

    Args:
      fn: One run of the model.
      flops: FLOPs of one call of `fn`.
      rounds: SGEMM-then-model rounds.
      runs: Timed calls of `fn` over all rounds; at least `rounds`.
      warmup: Untimed calls of `fn` before the first round.
      sgemm_repeats: Products per SGEMM measurement (`sgemm_gflops`).
      sgemm_size: Matrix size of each SGEMM measurement.

    Raises:
      ValueError: `rounds` below 1 or above `runs`.
    """
    if rounds < 1 or runs < rounds:
        raise ValueError(f"rounds={rounds}, runs={runs}: expected 1 <= rounds <= runs.")
    for _ in range(warmup):
        fn()
    times, sgemms, shares = [], [], []
    per_round = [runs // rounds + (i < runs % rounds) for i in range(rounds)]
    for count in per_round:
        sgemms.append(sgemm_gflops(size=sgemm_size, repeats=sgemm_repeats))
        fn()
        round_times = _times_ms(fn, count)
        times += round_times
        shares.append(flops / (min(round_times) / 1e3) / 1e9 / sgemms[-1])
    best = max(sgemms)
    share = flops / (min(times) / 1e3) / 1e9 / best
    return PairedShare(_latency(times), float(best), tuple(shares), float(share))


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


# The instruction sets that decide a CPU's int8 and bfloat16 speed, best first.
_ISA_FLAGS = ("amx_tile", "avx512_vnni", "avx_vnni", "avx512f", "avx2")


def machine_description() -> str:
    """CPU model, cores and vector ISA, e.g. 'AMD EPYC, 2 cores, x86_64, avx2'.

    The ISA part lists which of AMX, VNNI, AVX-512 and AVX2 the CPU reports
    (`/proc/cpuinfo` flags): int8 kernels are several times faster with VNNI,
    so figures from two CPUs of one name can differ for that reason alone.
    """
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model is None:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    isa = "+".join(name for name in _ISA_FLAGS if name in flags)
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}" + (f", {isa}" if isa else "")


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
