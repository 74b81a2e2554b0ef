"""Where a `.tflite` model's time goes, op by op, from LiteRT's own profiler.

LiteRT's `CompiledModel` records every op it runs when its runtime options
say `enable_profiling = true`: each XNNPACK operator inside the delegate
(e.g. `Convolution (NHWC, QC8) IGEMM`) and each op left to TFLite's own
kernels (its builtin name, e.g. `DEPTHWISE_CONV_2D`), the same events
`benchmark_model --enable_op_profiling` reports on a phone. ai-edge-litert's
Python API does not expose the profiler, but its `libLiteRt.so` exports the
C API (`litert/c/litert_profiler.h`, `litert_compiled_model.h`), which this
module calls through ctypes. The C signatures are those of ai-edge-litert
2.3.0, pinned in requirements.txt.

    profile = op_profile.profile("exports/demo/model_int8.tflite", threads=2)
    profile.fallback      # ops not in XNNPACK, in run order
    profile.by_type()     # time per op type, largest first

The profiled runs are slower than unprofiled ones (a timestamp per op); read
the shares, and time the model with `tvn_tf.benchmark`. LiteRT's console
lines (environment, accelerators) are kept off stderr unless something fails.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import dataclasses
import io
import os
import tempfile
from collections.abc import Iterator

import numpy as np

# litert/c/litert_profiler_event.h: LiteRtProfilerEventType.
_OPERATOR_INVOKE = 1 << 1  # An op on TFLite's own kernels.
_DELEGATE_PROFILED_OPERATOR_INVOKE = 1 << 3  # An op inside a delegate (XNNPACK).
_CPU_ACCELERATOR = 1  # kLiteRtHwAcceleratorCpu.
_LOCK_WRITE = 1  # kLiteRtTensorBufferLockModeWrite.


class _MemoryUsage(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("total", "in_use", "private")]


class _Event(ctypes.Structure):
    """`ProfiledEventData` of litert/c/litert_profiler_event.h."""

    _fields_ = [
        ("tag", ctypes.c_char_p),
        ("event_type", ctypes.c_int),
        ("start_timestamp_us", ctypes.c_uint64),
        ("elapsed_time_us", ctypes.c_uint64),
        ("begin_mem_usage", _MemoryUsage),
        ("end_mem_usage", _MemoryUsage),
        ("event_metadata1", ctypes.c_uint64),
        ("event_metadata2", ctypes.c_uint64),
        ("event_source", ctypes.c_int),
    ]


@dataclasses.dataclass(frozen=True)
class OpTime:
    """One op of the model and its mean time per run.

    Attributes:
      op: XNNPACK's operator name (`Fully Connected (NC, QS8, QC8W) GEMM`), or
        TFLite's builtin name (`DEPTHWISE_CONV_2D`) for an op XNNPACK did not take.
      delegated: Whether XNNPACK runs it.
      ms: Mean milliseconds per run (the profiler counts whole microseconds).
    """

    op: str
    delegated: bool
    ms: float


@dataclasses.dataclass(frozen=True)
class OpProfile:
    """The ops of one model in run order, from `runs` profiled runs.

    Attributes:
      ops: Every op once, in the order of the first run.
      runs: Profiled runs the times are averaged over.
      summary: LiteRT's own text report (run order, top ops, by type).
    """

    ops: tuple[OpTime, ...]
    runs: int
    summary: str

    @property
    def total_ms(self) -> float:
        """Sum of the ops' mean times."""
        return sum(op.ms for op in self.ops)

    @property
    def fallback(self) -> list[str]:
        """Ops on TFLite's own (reference) kernels, in run order."""
        return [op.op for op in self.ops if not op.delegated]

    def by_type(self) -> list[tuple[str, int, float, float]]:
        """`(op type, count, ms, share of total)` per op type, largest time first."""
        rows: dict[str, list] = {}
        for op in self.ops:
            row = rows.setdefault(op.op if op.delegated else f"{op.op} (TFLite kernel)", [0, 0.0])
            row[0] += 1
            row[1] += op.ms
        total = self.total_ms or 1.0
        return sorted(
            ((name, count, ms, ms / total) for name, (count, ms) in rows.items()),
            key=lambda row: -row[2],
        )


def _library() -> ctypes.CDLL:
    import ai_edge_litert

    return ctypes.CDLL(os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRt.so"))


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Sends the process's fd 2 to a file for the block; yields a list that gets its text."""
    captured: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


class _Api:
    """The few C functions used, with their argument types."""

    def __init__(self):
        lib = _library()
        p, size, out = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)
        signatures = {
            "LiteRtCreateEnvironment": (ctypes.c_int, p, out),
            "LiteRtCreateModelFromBuffer": (p, p, size, out),
            "LiteRtCreateOptions": (out,),
            "LiteRtSetOptionsHardwareAccelerators": (p, ctypes.c_int),
            "LiteRtCreateOpaqueOptions": (ctypes.c_char_p, p, p, out),
            "LiteRtAddOpaqueOptions": (p, p),
            "LiteRtCreateCompiledModel": (p, p, p, out),
            "LiteRtGetModelSignature": (p, size, out),
            "LiteRtGetNumSignatureInputs": (p, ctypes.POINTER(size)),
            "LiteRtGetNumSignatureOutputs": (p, ctypes.POINTER(size)),
            "LiteRtGetSignatureInputTensorByIndex": (p, size, out),
            "LiteRtGetSignatureOutputTensorByIndex": (p, size, out),
            "LiteRtGetRankedTensorType": (p, p),
            "LiteRtGetCompiledModelInputBufferRequirements": (p, size, size, out),
            "LiteRtGetCompiledModelOutputBufferRequirements": (p, size, size, out),
            "LiteRtCreateManagedTensorBufferFromRequirements": (p, p, p, out),
            "LiteRtGetTensorBufferSize": (p, ctypes.POINTER(size)),
            "LiteRtLockTensorBuffer": (p, out, ctypes.c_int),
            "LiteRtUnlockTensorBuffer": (p,),
            "LiteRtRunCompiledModel": (p, size, size, p, size, p),
            "LiteRtCompiledModelGetProfiler": (p, out),
            "LiteRtStartProfiler": (p,),
            "LiteRtStopProfiler": (p,),
            "LiteRtResetProfiler": (p,),
            "LiteRtGetNumProfilerEvents": (p, ctypes.POINTER(ctypes.c_int)),
            "LiteRtGetProfilerEvents": (p, ctypes.c_int, p),
            "LiteRtGetProfileSummary": (p, p, ctypes.POINTER(ctypes.c_void_p)),
        }
        for name, argtypes in signatures.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = ctypes.c_int, list(argtypes)
            setattr(self, name, self._checked(name, function))
        for name in (
            "LiteRtDestroyTensorBuffer",
            "LiteRtDestroyCompiledModel",
            "LiteRtDestroyModel",
            "LiteRtDestroyOptions",
            "LiteRtDestroyEnvironment",
        ):
            function = getattr(lib, name)
            function.restype, function.argtypes = None, [p]
            setattr(self, name, function)
        libc = ctypes.CDLL(None)
        libc.strdup.restype, libc.strdup.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
        libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
        self.strdup, self.free = libc.strdup, libc.free
        self.free_address = ctypes.cast(libc.free, ctypes.c_void_p)

    @staticmethod
    def _checked(name, function):
        def call(*args):
            status = function(*args)
            if status != 0:
                raise RuntimeError(f"LiteRT's {name} failed (LiteRtStatus {status}).")

        return call


def profile(
    model: str | bytes,
    threads: int = 2,
    runs: int = 20,
    warmup: int = 3,
    inputs: list[np.ndarray] | None = None,
) -> OpProfile:
    """Runs `model` on LiteRT's CPU accelerator (XNNPACK) with the profiler on.

    Args:
      model: A `.tflite` path or its bytes.
      threads: XNNPACK threads.
      runs: Profiled runs, after `warmup` unprofiled ones.
      warmup: Runs before profiling starts.
      inputs: One array per input of the first signature, its bytes matching
        the input's size. By default random bytes: float32 values in [-1, 1]
        where the size is a multiple of 4, int8 values otherwise. The times do
        not depend on the values.

    Returns:
      The per-op profile.

    Raises:
      FileNotFoundError: `model` is a path that does not exist.
      RuntimeError: LiteRT refused the model (its console lines are included).
    """
    if isinstance(model, (bytes, bytearray)):
        data = bytes(model)
    else:
        with open(model, "rb") as f:
            data = f.read()
    api = _Api()
    held: list = []  # (destroy function, handle), destroyed in reverse order.
    error = None
    with _captured_stderr() as log:
        try:
            result = _profile(api, data, threads, runs, warmup, inputs, held)
        except RuntimeError as e:
            error = e
        finally:
            for destroy, handle in reversed(held):
                destroy(handle)
    if error is not None:
        said = log[0].strip()
        raise RuntimeError(f"{error}" + (f" LiteRT said:\n{said}" if said else "")) from None
    return result


def _handle() -> ctypes.c_void_p:
    return ctypes.c_void_p()


def _profile(api, data, threads, runs, warmup, inputs, held) -> OpProfile:
    """Compiles `data` for the CPU with profiling on, fills its inputs, and profiles `runs` runs."""
    env, model, compiled = _compile(api, data, threads, held)
    signature = _handle()
    api.LiteRtGetModelSignature(model, 0, ctypes.byref(signature))
    input_buffers = _buffers(api, env, compiled, signature, "Input", held)
    output_buffers = _buffers(api, env, compiled, signature, "Output", held)
    _fill_inputs(api, input_buffers, inputs)

    def run() -> None:
        api.LiteRtRunCompiledModel(
            compiled, 0, len(input_buffers), input_buffers, len(output_buffers), output_buffers
        )

    profiler = _handle()
    api.LiteRtCompiledModelGetProfiler(compiled, ctypes.byref(profiler))  # Owned by `compiled`.
    for _ in range(warmup):
        run()
    api.LiteRtResetProfiler(profiler)
    api.LiteRtStartProfiler(profiler)
    for _ in range(runs):
        run()
    api.LiteRtStopProfiler(profiler)
    count = ctypes.c_int()
    api.LiteRtGetNumProfilerEvents(profiler, ctypes.byref(count))
    events = (_Event * count.value)()
    api.LiteRtGetProfilerEvents(profiler, count.value, events)
    text = ctypes.c_void_p()
    api.LiteRtGetProfileSummary(profiler, compiled, ctypes.byref(text))
    summary = ctypes.string_at(text).decode(errors="replace") if text.value else ""
    if text.value:
        api.free(text)
    return OpProfile(_ops(events, runs), runs, summary)


def _compile(api, data, threads, held):
    """`(env, model, compiled)`: `data` compiled for the CPU (XNNPACK on `threads`), profiling on.

    Each handle is appended to `held` with its destructor.
    """
    env = _handle()
    api.LiteRtCreateEnvironment(0, None, ctypes.byref(env))
    held.append((api.LiteRtDestroyEnvironment, env))
    buffer = ctypes.create_string_buffer(data, len(data))  # Must outlive the model.
    held.append((lambda _: None, buffer))
    model = _handle()
    api.LiteRtCreateModelFromBuffer(env, buffer, len(data), ctypes.byref(model))
    held.append((api.LiteRtDestroyModel, model))
    options = _handle()
    api.LiteRtCreateOptions(ctypes.byref(options))
    held.append((api.LiteRtDestroyOptions, options))
    api.LiteRtSetOptionsHardwareAccelerators(options, _CPU_ACCELERATOR)
    # litert/c/options: the runtime's and XNNPACK's options travel as TOML text.
    for identifier, toml in (
        (b"runtime_options_string", b"enable_profiling = true\n"),
        (b"xnnpack", f"num_threads = {threads}\n".encode()),
    ):
        opaque = _handle()
        api.LiteRtCreateOpaqueOptions(
            identifier, api.strdup(toml), api.free_address, ctypes.byref(opaque)
        )
        api.LiteRtAddOpaqueOptions(options, opaque)  # Owned by `options` from here.
    compiled = _handle()
    api.LiteRtCreateCompiledModel(env, model, options, ctypes.byref(compiled))
    held.append((api.LiteRtDestroyCompiledModel, compiled))
    return env, model, compiled


def _buffers(api, env, compiled, signature, kind: str, held) -> ctypes.Array:
    """The managed tensor buffers of the signature's inputs or outputs (`kind`: Input, Output)."""
    count = ctypes.c_size_t()
    getattr(api, f"LiteRtGetNumSignature{kind}s")(signature, ctypes.byref(count))
    array = (ctypes.c_void_p * count.value)()
    for i in range(count.value):
        tensor, requirements, buf = _handle(), _handle(), _handle()
        getattr(api, f"LiteRtGetSignature{kind}TensorByIndex")(signature, i, ctypes.byref(tensor))
        tensor_type = ctypes.create_string_buffer(1024)  # LiteRtRankedTensorType, opaque here.
        api.LiteRtGetRankedTensorType(tensor, tensor_type)
        getattr(api, f"LiteRtGetCompiledModel{kind}BufferRequirements")(
            compiled, 0, i, ctypes.byref(requirements)
        )
        api.LiteRtCreateManagedTensorBufferFromRequirements(
            env, tensor_type, requirements, ctypes.byref(buf)
        )
        held.append((api.LiteRtDestroyTensorBuffer, buf))
        array[i] = buf
    return array


def _fill_inputs(api, input_buffers, inputs) -> None:
    """Writes `inputs` (or, if None, random values: floats in [-1, 1] where they fit) into the buffers."""
    rng = np.random.default_rng(0)
    for i, buf in enumerate(input_buffers):
        size, address = ctypes.c_size_t(), _handle()
        api.LiteRtGetTensorBufferSize(buf, ctypes.byref(size))
        if inputs is not None:
            raw = np.ascontiguousarray(inputs[i]).tobytes()
            if len(raw) != size.value:
                raise ValueError(f"Input {i} has {len(raw)} bytes; the model takes {size.value}.")
        else:
            raw = rng.integers(-127, 128, size.value, dtype=np.int8).tobytes()
            if size.value % 4 == 0:  # Floats in [-1, 1] where the input is float32.
                raw = rng.uniform(-1, 1, size.value // 4).astype(np.float32).tobytes()
        api.LiteRtLockTensorBuffer(buf, ctypes.byref(address), _LOCK_WRITE)
        ctypes.memmove(address, raw, len(raw))
        api.LiteRtUnlockTensorBuffer(buf)


def _ops(events, runs: int) -> tuple[OpTime, ...]:
    """The op events of `runs` identical runs, folded into one run's ops with mean times.

    Events come in run order. A delegate numbers its nodes within its own
    partition, so the position in the run, not the node index, names an op.
    """
    ops = [
        (
            event.tag.decode(errors="replace"),
            event.event_type == _DELEGATE_PROFILED_OPERATOR_INVOKE,
            event.elapsed_time_us,
        )
        for event in events
        if event.event_type in (_OPERATOR_INVOKE, _DELEGATE_PROFILED_OPERATOR_INVOKE)
    ]
    per_run, left = divmod(len(ops), runs)
    first = [op[:2] for op in ops[:per_run]]
    if left or any(
        [op[:2] for op in ops[r * per_run : (r + 1) * per_run]] != first for r in range(1, runs)
    ):
        raise RuntimeError(f"LiteRT's profile of {runs} runs does not repeat one run's ops.")
    return tuple(
        OpTime(op=tag, delegated=delegated, ms=sum(op[2] for op in ops[i::per_run]) / runs / 1e3)
        for i, (tag, delegated) in enumerate(first)
    )


def to_csv(profile: OpProfile) -> str:
    """One row per op in run order: `position,op,delegated,ms,share`."""
    total = profile.total_ms or 1.0
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["position", "op", "delegated", "ms", "share"])
    for i, op in enumerate(profile.ops):
        writer.writerow([i, op.op, int(op.delegated), f"{op.ms:.4f}", f"{op.ms / total:.4f}"])
    return text.getvalue()


def describe(profile: OpProfile, top: int = 8) -> str:
    """A markdown table of time per op type, then which ops XNNPACK did not take."""
    rows = ["| op type | ops | ms | share |", "|---|---|---|---|"]
    by_type = profile.by_type()
    for name, count, ms, share in by_type[:top]:
        rows.append(f"| {name} | {count} | {ms:.2f} | {share:.1%} |")
    if len(by_type) > top:
        rest = by_type[top:]
        rows.append(
            f"| {len(rest)} other types | {sum(r[1] for r in rest)} | "
            f"{sum(r[2] for r in rest):.2f} | {sum(r[3] for r in rest):.1%} |"
        )
    fallback = profile.fallback
    rows.append(
        f"{len(profile.ops) - len(fallback)} of {len(profile.ops)} ops in XNNPACK"
        + (f"; on TFLite's own kernels: {', '.join(fallback)}" if fallback else "")
        + f" (LiteRT's profiler, mean of {profile.runs} runs, {profile.total_ms:.2f} ms in ops)"
    )
    return "\n".join(rows)
