"""Process set-up that has to happen before TensorFlow loads.

Two things are only settable through the environment TensorFlow reads when it loads:

1. oneDNN's AMX cap. Some virtual machines advertise AMX in /proc/cpuinfo and grant
   the kernel permission for it, yet trap the instructions: oneDNN then picks its
   AMX kernel for a bfloat16 MatMul and the process dies of SIGILL with no
   traceback. Where the CPU lists `amx_tile`, a tiny child process (no TensorFlow,
   tens of milliseconds) executes AMX instructions; unless it exits cleanly,
   `ONEDNN_MAX_CPU_ISA` is capped at AVX512_CORE_FP16 (everything but AMX). The
   answer is cached per machine. A user's own `ONEDNN_MAX_CPU_ISA` always wins.
   `import tvn_tf` runs it (`cap_amx`), so a notebook user is safe too; on a machine
   whose AMX works or is absent it changes no environment variable.
2. TensorFlow's start-up console noise (CUDA probing, `failed call to cuInit`, the
   oneDNN notice), which reads as a failure on a CPU-only machine:
   `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it, or absl's `-v`/`--verbosity`
   of 1 or more is on the command line (flags are parsed after TensorFlow loads,
   so argv is read here). Only the binaries and tools ask for it (`quiet_tensorflow`,
   through `tvn_tf.cli.start`), first thing, before they import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, MutableMapping, Sequence

log = logging.getLogger(__name__)

ISA_ENV = "ONEDNN_MAX_CPU_ISA"
LEGACY_ISA_ENV = "DNNL_MAX_CPU_ISA"  # oneDNN's older name, honoured too.
# oneDNN's ISA names (cpu_isa_t): AVX512_CORE_FP16 is Sapphire Rapids without AMX,
# and as a maximum it is harmless on CPUs that lack FP16/BF16 (oneDNN takes the best below).
NO_AMX_ISA = "AVX512_CORE_FP16"
PROBE_TIMEOUT_S = 20.0

# The probe child: stdlib only, run with `python -I -S` so it cannot import tvn_tf
# (no recursion) or anything else from the caller's paths. Exit 0: AMX executes;
# exit 3: the kernel refuses AMX (oneDNN then cannot use it either); killed by a
# signal: AMX traps. The code requests XTILEDATA permission (arch_prctl), then runs
# ldtilecfg, tilezero x3, tdpbf16ps (the bf16 instruction oneDNN uses), tilerelease.
PROBE_CODE = r"""
import ctypes, resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # A trap must not leave a core file.
libc = ctypes.CDLL(None, use_errno=True)
SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18
if libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:
    sys.exit(3)
code = bytes([
    0xC4, 0xE2, 0x78, 0x49, 0x07,  # ldtilecfg [rdi]
    0xC4, 0xE2, 0x7B, 0x49, 0xC0,  # tilezero tmm0
    0xC4, 0xE2, 0x7B, 0x49, 0xC8,  # tilezero tmm1
    0xC4, 0xE2, 0x7B, 0x49, 0xD0,  # tilezero tmm2
    0xC4, 0xE2, 0x6A, 0x5C, 0xC1,  # tdpbf16ps tmm0, tmm1, tmm2
    0xC4, 0xE2, 0x78, 0x49, 0xC0,  # tilerelease
    0xC3,                          # ret
])
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PROT_READ, PROT_WRITE, PROT_EXEC, MAP_PRIVATE, MAP_ANONYMOUS = 1, 2, 4, 2, 0x20
page = libc.mmap(None, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
if page in (None, ctypes.c_void_p(-1).value):
    sys.exit(4)
ctypes.memmove(page, code, len(code))
if libc.mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0:  # Never writable and executable.
    sys.exit(4)
# Tile config, palette 1: tmm0-2 are 16 rows x 64 bytes (C, A, B of a 16x16x32 bf16 product).
config = (ctypes.c_ubyte * 64)()
config[0] = 1
for tile in range(3):
    config[16 + 2 * tile] = 64  # colsb[tile], little-endian uint16
    config[48 + tile] = 16      # rows[tile]
ctypes.CFUNCTYPE(None, ctypes.c_void_p)(page)(ctypes.addressof(config))
sys.exit(0)
"""


def read_cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """The first CPU's model name and flags; ("", {}) where there is no /proc/cpuinfo."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return "", frozenset()
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def run_probe(code: str = PROBE_CODE, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Runs probe `code` in a child Python and classifies how it ended.

    Returns:
      "executes" (exit 0), "refused" (exit 3: no kernel permission), "traps" (killed
      by a signal, e.g. SIGILL), or "unknown" (any other exit, a timeout, no child).
    """
    try:
        child = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if child.returncode == 0:
        return "executes"
    if child.returncode == 3:
        return "refused"
    if child.returncode < 0:
        return "traps"
    return "unknown"


def cache_path(model: str, flags: frozenset[str], environ: MutableMapping[str, str]) -> str:
    """Where this machine's probe result lives: keyed by CPU model, flags and kernel."""
    key = "\n".join([model, " ".join(sorted(flags)), platform.release()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "tvn_tf", f"amx-probe-{digest}.json")


def amx_probe_result(
    model: str,
    flags: frozenset[str],
    environ: MutableMapping[str, str],
    probe: Callable[[], str] = run_probe,
) -> str:
    """The probe's answer for this machine, from the cache or by running `probe`.

    Definite answers are cached (written to a temporary name, then renamed); an
    unreadable or unwritable cache only costs a probe per process.
    """
    path = cache_path(model, flags, environ)
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)["amx"]
        if cached in ("executes", "refused", "traps"):
            return cached
    except (OSError, ValueError, KeyError, TypeError):
        pass
    result = probe()
    if result == "unknown":  # A timeout or odd exit may be transient: probe again next time.
        return result
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".amx-probe-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"amx": result, "cpu": model, "kernel": platform.release()}, f)
        os.replace(tmp, path)
    except OSError:
        pass
    return result


def amx_cap(
    environ: MutableMapping[str, str],
    flags: frozenset[str],
    result: Callable[[], str],
) -> str | None:
    """The `ONEDNN_MAX_CPU_ISA` to set, or None to leave oneDNN alone.

    None when the user chose an ISA, or the CPU lists no AMX (`result`, which may
    run the probe, is then not called). Otherwise AMX is capped unless the probe
    proved it executes: a refused, trapping or unknown AMX is never worth a SIGILL.
    """
    if ISA_ENV in environ or LEGACY_ISA_ENV in environ or "amx_tile" not in flags:
        return None
    return None if result() == "executes" else NO_AMX_ISA


def verbosity_from_argv(argv: Sequence[str]) -> int | None:
    """absl's `-v`/`--verbosity` value in `argv` (the last one wins), None if absent."""
    value = None
    for i, arg in enumerate(argv[1:], start=1):
        name, eq, rest = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name not in ("v", "verbosity"):
            continue
        text = rest if eq else (argv[i + 1] if i + 1 < len(argv) else "")
        try:
            value = int(text)
        except ValueError:
            pass  # e.g. pytest's bare -v: not absl's flag.
    return value


def cap_amx(
    environ: MutableMapping[str, str] = os.environ,
    cpuinfo: tuple[str, frozenset[str]] | None = None,
    probe: Callable[[], str] = run_probe,
    tensorflow_loaded: bool | None = None,
) -> None:
    """Caps oneDNN below AMX where AMX traps (see the module docstring); `import tvn_tf` runs it.

    On a CPU that does not list AMX, or whose AMX executes, nothing changes.

    Args:
      environ: the environment to edit (the process's own by default).
      cpuinfo: (model name, flags); /proc/cpuinfo by default.
      probe: runs the AMX probe child (`run_probe`); called only on a cache miss.
      tensorflow_loaded: whether TensorFlow was imported already (then the cap may
        come too late, and a warning says so); looked up in sys.modules by default.
    """
    if tensorflow_loaded is None:
        tensorflow_loaded = "tensorflow" in sys.modules
    model, flags = read_cpuinfo() if cpuinfo is None else cpuinfo
    isa = amx_cap(environ, flags, lambda: amx_probe_result(model, flags, environ, probe))
    if isa is None:
        return
    environ[ISA_ENV] = isa  # Inherited by child processes, which then skip all this.
    if tensorflow_loaded:
        log.warning(
            "tvn_tf: AMX does not execute on this CPU, but TensorFlow was imported "
            "before tvn_tf, so capping oneDNN may come too late and bfloat16 matmuls "
            "may die of SIGILL: import tvn_tf first, or set %s=%s.",
            ISA_ENV,
            isa,
        )
    else:
        log.warning(
            "tvn_tf: AMX is listed but does not execute on this CPU: oneDNN capped "
            "at %s=%s (set %s yourself to override).",
            ISA_ENV,
            isa,
            ISA_ENV,
        )


def quiet_tensorflow(
    environ: MutableMapping[str, str] = os.environ, argv: Sequence[str] | None = None
) -> None:
    """Silences TensorFlow's start-up logs unless `-v`/`--verbosity` >= 1 is in `argv`.

    The binaries and tools run it (through `tvn_tf.cli.start`) before TensorFlow
    loads; a library user's process is left as it is.

    Args:
      environ: the environment to edit (the process's own by default).
      argv: the command line (sys.argv by default).
    """
    verbosity = verbosity_from_argv(getattr(sys, "argv", []) if argv is None else argv)
    if verbosity is not None and verbosity >= 1:
        environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # The command line beats an inherited quiet.
    else:
        environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
