"""A fast allocator for the experiment scripts: tcmalloc when installed, else glibc malloc tunables.

With glibc's default malloc, the large per-step buffers of recurrent training are returned to the kernel
after each step and faulted in again on the next (tens of thousands of page faults per step, a large share of
the step's time). tcmalloc keeps them; glibc can be told to keep them too. Both must be set before the
interpreter starts, so ``use_fast_allocator`` re-executes the script once with the environment set.
Set ``RNNJAX_FAST_MALLOC=0`` to run with the allocator as it is.
"""

import os
import sys
from pathlib import Path

TCMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",  # Debian/Ubuntu: apt-get install libtcmalloc-minimal4
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",  # Fedora/RHEL: gperftools-libs
)
# Keep freed memory in the process: never trim the heap top, and serve blocks up to 32 MiB (glibc's maximum)
# from the heap rather than from fresh mmaps.
GLIBC_TUNABLES = "glibc.malloc.trim_threshold=68719476736:glibc.malloc.mmap_threshold=33554432:glibc.malloc.top_pad=67108864"
_MARK = "RNNJAX_FAST_MALLOC_SET"


def use_fast_allocator() -> None:
    """Re-executes the current command once with tcmalloc preloaded (or glibc tunables) on Linux."""
    if sys.platform != "linux" or os.environ.get("RNNJAX_FAST_MALLOC", "1") == "0" or os.environ.get(_MARK):
        return
    env = dict(os.environ, **{_MARK: "1"})
    found = next((p for p in TCMALLOC_PATHS if Path(p).exists()), None)
    if found:
        env["LD_PRELOAD"] = ":".join(filter(None, [env.get("LD_PRELOAD"), found]))
    else:
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), GLIBC_TUNABLES]))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], env)
