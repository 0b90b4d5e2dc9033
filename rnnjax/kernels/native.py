"""Native CPU kernels (XLA FFI) for the small recurrent steps that XLA:CPU compiles to scalar code: build and load.

Inside a ``lax.scan`` body, XLA:CPU reads and writes each step's slices (``dynamic-slice`` and
``dynamic-update-slice`` fused into the elementwise kernels) with unvectorised loops: at 32 units an LSTM step
spends most of its time there rather than in arithmetic. ``native.cc`` runs a whole SimpleRNN, LSTM or GRU
sequence, forward and backward, as two FFI calls instead, with each batch row's sequence on one thread
(``native_calls.py`` makes them JAX functions).

The kernels are compiled on first use with the system's C++ compiler (g++, c++ or clang++) for this CPU and
cached in ``~/.cache/rnnjax``, each library with its SHA-256 beside it (``<name>.so.sha256``). A cached file is
loaded only when its bytes match that digest: a truncated library crashes the process when it is mapped, so a
damaged, foreign or undigested file is rebuilt under a temporary name and renamed over it, never loaded. Without
a compiler, or after ``configure(enabled=False)``, ``available()`` is False and ``rnnjax.kernels.fused`` uses its
XLA path: the same function. So does a failed build (compiler error, read-only cache folder, full disk), after
one warning naming the cache file and the cause. ``configure`` also sets the compiler, the cache folder and the
threads per call (the experiment scripts map environment variables onto it); a setting applies to functions
traced after it. The kernels give first derivatives (``jax.grad``); for higher ones (Hessians),
``configure(enabled=False)`` uses the XLA path, which supports them.
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
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
    "rnnjax_simple_rnn_forward": "RnnjaxSimpleRnnForward",
    "rnnjax_simple_rnn_backward": "RnnjaxSimpleRnnBackward",
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
    compiler = _compiler()
    target = _cache_file(compiler, Path(_settings["cache_dir"])) if compiler else Path(_settings["cache_dir"])
    try:
        if not compiler:
            raise RuntimeError("no C++ compiler found; install g++ to build them")
        _ensure_built(target, compiler)
        library = ctypes.CDLL(str(target))
        handlers = {name: getattr(library, symbol) for name, symbol in _TARGETS.items()}
    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as error:
        cause = " ".join(str(error).split())  # one line, whatever the compiler printed
        warnings.warn(
            f"rnnjax: native CPU kernels unavailable ({target}: {cause}); using the XLA path.", stacklevel=3
        )
        return False
    for name, handler in handlers.items():
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler), platform="cpu")
    _state["library"] = library  # keeps the handlers loaded
    return True


def _cpu_signature() -> str:
    """The CPU's feature flags: ``-march=native`` builds are only reused on the same kind of CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def _compiler() -> str | None:
    return _settings["compiler"] or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def _flags() -> list[str]:
    return [
        "-O3",
        "-march=native",
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-pthread",
        f"-I{jax.ffi.include_dir()}",
    ]


def _cache_file(compiler: str, cache_dir: Path) -> Path:
    """The cache entry for this source, compiler, flags, JAX version and kind of CPU."""
    parts = [_SOURCE.read_bytes(), " ".join([compiler, *_flags()]).encode(), jax.__version__.encode()]
    key = hashlib.sha256(b"\0".join([*parts, _cpu_signature().encode()])).hexdigest()[:16]
    return cache_dir / f"native-{key}.so"


def _digest_file(target: Path) -> Path:
    return target.with_name(f"{target.name}.sha256")


def _verified(target: Path) -> bool:
    """Whether ``target`` holds exactly the bytes its digest records, read without mapping them.

    A truncated library crashes the process (SIGBUS) when ``dlopen`` maps it, and another library under the same
    name lacks our symbols, so nothing is loaded that this check has not passed.
    """
    try:
        if not target.is_file():
            return False
        data = target.read_bytes()
        recorded = _digest_file(target).read_text().split()[:1]
    except (OSError, UnicodeDecodeError):
        return False
    return recorded == [hashlib.sha256(data).hexdigest()]


def _ensure_built(target: Path, compiler: str) -> None:
    """Builds ``target`` unless it verifies; a damaged file is replaced by rename, never loaded or deleted."""
    for _ in range(2):  # a second build if another process published its own between ours and the check
        if _verified(target):
            return
        _build(target, compiler)
    if not _verified(target):
        raise RuntimeError("the built file does not match its digest (changed by another process?)")


def _build(target: Path, compiler: str) -> None:
    """Compiles into a temporary file beside ``target``, then publishes it and its digest, each by atomic rename.

    Concurrent builders each publish complete files, and a reader that finds the library before its digest
    rebuilds rather than loads, so no process maps another's half-written file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _temporary(target)
    try:
        done = subprocess.run(
            [compiler, *_flags(), str(_SOURCE), "-o", str(partial)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            first = next(
                (line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip()[:200]
            )
            raise RuntimeError(f"{Path(compiler).name} failed: {first}")
        digest = _synced_digest(partial)
        if _verified(target):  # another process finished first: keep its file
            partial.unlink()
            return
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _write_atomically(_digest_file(target), f"{digest}  {target.name}\n".encode())


def _synced_digest(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes, once they are on disk."""
    with open(path, "rb+") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
        os.fsync(f.fileno())
    return digest


def _temporary(target: Path) -> Path:
    """A new empty file with a unique name beside ``target`` (same folder, so a rename replaces atomically)."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    return Path(name)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = _temporary(path)
    try:
        partial.write_bytes(data)
        _synced_digest(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
