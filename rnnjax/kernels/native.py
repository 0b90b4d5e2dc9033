"""Native CPU kernels (XLA FFI) for the small recurrent steps that XLA:CPU compiles to scalar code: build and load.

Inside a ``lax.scan`` body, XLA:CPU reads and writes each step's slices (``dynamic-slice`` and
``dynamic-update-slice`` fused into the elementwise kernels) with unvectorised loops: at 32 units an LSTM step
spends most of its time there rather than in arithmetic. ``native.cc`` runs a whole LSTM or GRU sequence, forward
and backward, as two FFI calls instead, with each batch row's sequence on one thread (``native_calls.py`` makes
them JAX functions).

The kernels are compiled on first use with the system's C++ compiler (g++, c++ or clang++) for this CPU and
cached in ``~/.cache/rnnjax``. Without a compiler, or after ``configure(enabled=False)``, ``available()`` is
False and ``rnnjax.kernels.fused`` uses its XLA path: the same function. ``configure`` also sets the compiler, the
cache folder and the threads per call (the experiment scripts map environment variables onto it); a setting
applies to functions traced after it. The kernels give first derivatives (``jax.grad``); for higher ones
(Hessians), ``configure(enabled=False)`` uses the XLA path, which supports them.
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import threading
import warnings
from pathlib import Path

import jax

_SOURCE = Path(__file__).with_name("native.cc")
_TARGETS = {
    "rnnjax_lstm_forward": "RnnjaxLstmForward",
    "rnnjax_lstm_backward": "RnnjaxLstmBackward",
    "rnnjax_gru_forward": "RnnjaxGruForward",
    "rnnjax_gru_backward": "RnnjaxGruBackward",
}
_lock = threading.Lock()
_state: dict = {}
_settings = {"enabled": True, "compiler": None, "cache_dir": Path.home() / ".cache" / "rnnjax", "threads": 0}


def configure(
    *,
    enabled: bool | None = None,
    compiler: str | None = None,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> None:
    """Changes how the native kernels are used; arguments left as None keep their current value.

    Args:
        enabled: False makes ``available()`` False, so every recurrence takes the XLA path.
        compiler: the C++ compiler to build with (default: the first of g++, c++, clang++ on the PATH).
        cache_dir: where built kernels are kept (default ``~/.cache/rnnjax``).
        threads: threads per kernel call, 0 for one per core (the rows of a batch are split between them).
    """
    if threads is not None and threads < 0:
        raise ValueError(f"native.configure: threads must be >= 0 (0: one per core), got {threads}.")
    for name, value in (
        ("enabled", enabled),
        ("compiler", compiler),
        ("cache_dir", cache_dir),
        ("threads", threads),
    ):
        if value is not None:
            _settings[name] = Path(value) if name == "cache_dir" else value


def threads() -> int:
    """The configured threads per kernel call (0: one per core)."""
    return int(_settings["threads"])


def available() -> bool:
    """Whether the native kernels are built, loaded and registered (builds them on the first call)."""
    if not _settings["enabled"]:
        return False
    with _lock:
        if "ok" not in _state:
            _state["ok"] = _load()
    return _state["ok"]


def _load() -> bool:
    try:
        library = ctypes.CDLL(str(_build()))
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        warnings.warn(f"rnnjax: native CPU kernels unavailable ({error}); using the XLA path.", stacklevel=3)
        return False
    for target, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
    _state["library"] = library  # keeps the handlers loaded
    return True


def _cpu_signature() -> str:
    """The CPU's feature flags: ``-march=native`` builds are only reused on the same kind of CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def _build() -> Path:
    compiler = _settings["compiler"] or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not compiler:
        raise RuntimeError("no C++ compiler found; install g++ to build them")
    flags = [
        "-O3",
        "-march=native",
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-pthread",
        f"-I{jax.ffi.include_dir()}",
    ]
    key = hashlib.sha256(
        b"\0".join(
            [
                _SOURCE.read_bytes(),
                " ".join([compiler, *flags]).encode(),
                jax.__version__.encode(),
                _cpu_signature().encode(),
            ]
        )
    ).hexdigest()[:16]
    target = Path(_settings["cache_dir"]) / f"native-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    done = subprocess.run(
        [compiler, *flags, str(_SOURCE), "-o", str(partial)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        first = next(
            (line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip()[:200]
        )
        raise RuntimeError(f"{Path(compiler).name} failed: {first}")
    os.replace(partial, target)  # atomic: concurrent builders each publish a complete file
    return target
