"""Native CPU kernels (XLA FFI) for the small recurrent steps that XLA:CPU compiles to scalar code.

Inside a ``lax.scan`` body, XLA:CPU reads and writes each step's slices (``dynamic-slice`` and
``dynamic-update-slice`` fused into the elementwise kernels) with unvectorised loops: at 32 units an LSTM step
spends most of its time there rather than in arithmetic. ``kernels.cc`` runs a whole LSTM or GRU sequence, forward and
backward, as two FFI calls instead, with each batch row's sequence on one thread.

The kernels are compiled on first use with the system's C++ compiler (``$CXX``, g++, c++ or clang++) for this
CPU, and cached in ``$RNNJAX_CACHE_DIR`` (default ``~/.cache/rnnjax``). Without a compiler, or with
``RNNJAX_NATIVE=0``, ``available()`` is False and ``rnnjax.fused`` uses its XLA path: the same function.
``RNNJAX_NATIVE_THREADS`` caps the threads per call (default: all cores).
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

_SOURCE = Path(__file__).with_name("kernels.cc")
_TARGETS = {
    "rnnjax_lstm_forward": "RnnjaxLstmForward",
    "rnnjax_lstm_backward": "RnnjaxLstmBackward",
    "rnnjax_gru_forward": "RnnjaxGruForward",
    "rnnjax_gru_backward": "RnnjaxGruBackward",
}
_lock = threading.Lock()
_state: dict = {}


def available() -> bool:
    """Whether the native kernels are built, loaded and registered (builds them on the first call)."""
    if os.environ.get("RNNJAX_NATIVE", "1") == "0":
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


def _cache_dir() -> Path:
    root = (
        os.environ.get("RNNJAX_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnnjax"
    )
    return Path(root)


def _cpu_signature() -> str:
    """The CPU's feature flags: ``-march=native`` builds are only reused on the same kind of CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def _build() -> Path:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
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
    target = _cache_dir() / f"native-{key}.so"
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
