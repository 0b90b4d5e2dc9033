"""Compiled XLA programs kept on disk for the experiment scripts, so that a second run skips its compilations.

``RNNJAX_XLA_CACHE`` names the folder (default ``$RNNJAX_CACHE_DIR/xla``, else ``~/.cache/rnnjax/xla``); ``0``
turns it off, and JAX's own ``JAX_COMPILATION_CACHE_DIR`` wins when set. At most 1 GiB is kept, least recently
used entries dropped first; JAX keys each entry by the program, the compiler options and the JAX and XLA
versions. Linux only, with ``filelock`` installed (a dependency; JAX needs it for the size limit). Nothing is
cached when the folder cannot be written, or on a machine where XLA does not load back a CPU program it compiled
there (its check of the compiling machine's CPU features refuses some hosts' own programs): that is tried once
per machine and JAX version and remembered in the folder. An entry JAX cannot read (damaged, e.g. cut short by
a full disk) is reported in one line and set aside as ``<entry>.damaged-<time>``; the program is compiled
again, and the next run keeps the new one.
"""

import glob
import hashlib
import os
import re
import sys
import time
import warnings
from pathlib import Path

MAX_BYTES = 1 << 30


def use_compilation_cache() -> None:
    """Turns on JAX's persistent compilation cache in the folder above (see the module docstring)."""
    setting = os.environ.get("RNNJAX_XLA_CACHE", "")
    if setting == "0" or os.environ.get("JAX_COMPILATION_CACHE_DIR") or sys.platform != "linux":
        return
    try:
        import filelock  # noqa: F401 - JAX needs it to keep the cache under its size limit
    except ImportError:
        return
    import jax

    folder = Path(setting or Path(os.environ.get("RNNJAX_CACHE_DIR") or Path.home() / ".cache" / "rnnjax") / "xla")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if not os.access(folder, os.W_OK | os.X_OK) or not _reloads_here(folder):
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _report_cache_warnings(folder)


_UNREADABLE = re.compile(r"Error reading persistent compilation cache entry for '([^']+)'")
_UNWRITABLE = re.compile(r"Error writing persistent compilation cache entry for '[^']+': (.*)", re.DOTALL)


def _report_cache_warnings(folder: Path) -> None:
    """Turns JAX's warnings about the cache into one line each: an entry it cannot read is set aside with that
    program's other entries (JAX names them ``<program>-<key>-cache``; the warning names only the program), so
    the next run writes a good one; a failed write (a full disk) is said once per run."""
    show, said = warnings.showwarning, []

    def showwarning(message, category, filename, lineno, file=None, line=None):
        unwritable = _UNWRITABLE.match(str(message))
        if unwritable is not None:
            if not said:
                said.append(1)
                print(f"rnnjax: cannot keep compiled programs in {folder} ({' '.join(unwritable.group(1).split())}); "
                      "this run compiles without keeping them", file=sys.stderr, flush=True)
            return None
        found = _UNREADABLE.match(str(message))
        if found is None:
            return show(message, category, filename, lineno, file, line)
        stamp, moved = time.strftime("%Y%m%d-%H%M%S"), []
        for entry in folder.glob(f"{glob.escape(found.group(1))}-*-cache"):
            try:
                entry.rename(entry.with_name(f"{entry.name}.damaged-{stamp}"))
                moved.append(entry.name)
            except OSError:
                pass
        print(f"rnnjax: compiled-program cache entry {', '.join(moved) or found.group(1)} in {folder} could not be "
              "read; set aside, and the program is compiled again", file=sys.stderr, flush=True)
        return None

    warnings.showwarning = showwarning


def _machine_key() -> str:
    """This machine's CPU (model and feature flags) and the JAX and jaxlib versions, hashed."""
    import jax
    import jaxlib

    try:
        cpu = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        cpu = ""
    lines = [line for line in cpu.splitlines() if line.startswith(("model name", "flags", "Features"))]
    identity = "\n".join([jax.__version__, jaxlib.__version__, *lines])
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _reloads_here(folder: Path) -> bool:
    """Whether XLA loads back a small CPU program it compiled and serialized here (remembered in ``folder``)."""
    marker = folder / f"reloads-{_machine_key()}"
    try:
        return marker.read_text().strip() == "yes"
    except OSError:
        pass
    import jax
    import jax.numpy as jnp
    from jax.experimental import serialize_executable

    try:
        compiled = jax.jit(lambda x: x * 2 + 1).lower(jnp.ones(3, jnp.float32)).compile()
        reloaded = serialize_executable.deserialize_and_load(*serialize_executable.serialize(compiled))
        works = bool((reloaded(jnp.ones(3, jnp.float32)) == 3).all())
    except Exception:  # noqa: BLE001 - any failure to load back means the cache would not serve this machine
        works = False
    temporary = folder / f".{marker.name}.{os.getpid()}"
    try:
        temporary.write_text("yes\n" if works else "no\n")
        temporary.replace(marker)
    except OSError:
        pass
    return works
