"""Fast implementations attached to stock cell definitions: importing this package attaches them.

Each fast path computes the same function as ``scan.run``'s masked scan over one stock cell's ``recur``, faster,
and is attached to that ``recur`` function object in ``scan.FAST_PATHS``, so ``scan.run`` uses it only while
that definition is the one in use: a user who replaces or re-registers a cell gets the cell they wrote. Each
attachment also names the SHA-256 of the source its kernels were written for (the ``recur`` and the rnnjax
functions it calls): a ``recur`` whose source was edited keeps its plain ``lax.scan`` form (with a warning)
until its fast path is brought up to date and its digest renewed (``definition_digest``; a test checks every
stock cell is attached). ``import rnnjax`` imports this package; the core runs without it.

    rules.py         hand-written backward rules per cell (forward/backward step pairs, weight gradients)
    fused.py         the masked whole-sequence loop over a rule (custom VJP); native kernels where they apply
    native_calls.py  the native CPU kernels as JAX functions (XLA FFI calls and their VJPs)
    native.py        building, loading and configuring the C++ kernels in native.cc
"""

import hashlib
import inspect
import types
import warnings
from collections.abc import Callable

from rnnjax import cells, scan
from rnnjax.kernels import fused

# stock cell -> the definition_digest of its recur that fused.py's rules and native.cc implement
WRITTEN_FOR = {
    "simple_rnn": "942a02cb27980f6563506c104ff600b600157a05525d445a46cebd58e9616969",
    "lstm": "339f2198b43ffeeca837552925f377c4bae1c944295a9b6d9ae0debac1e46165",
    "gru": "c8afffb0453a4a935209c12d202df7f94b158f776ce7374fb7b76d2cb9266983",
}


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def definition_digest(fn: Callable) -> str:
    """SHA-256 of the source of ``fn`` and of every rnnjax function it calls (recursively), or "" when the
    source cannot be read."""
    seen: dict[str, str] = {}

    def visit(f) -> None:
        key = f"{f.__module__}.{f.__qualname__}"
        if key in seen:
            return
        try:
            seen[key] = inspect.getsource(f)
        except (OSError, TypeError):
            seen[key] = ""
        for name in sorted(_code_names(f.__code__)):
            target = f.__globals__.get(name)
            if isinstance(target, types.FunctionType) and target.__module__.startswith("rnnjax"):
                visit(target)

    visit(fn)
    if not all(seen.values()):
        return ""
    return hashlib.sha256("\n".join(seen[k] for k in sorted(seen)).encode()).hexdigest()


def _attach(name: str) -> None:
    recur = cells.CELLS[name].recur
    digest = definition_digest(recur)
    if digest and digest != WRITTEN_FOR[name]:
        warnings.warn(
            f"rnnjax: cells.{recur.__name__} differs from the definition its fast path implements; it runs as the "
            "plain scan (update rnnjax/kernels and kernels.WRITTEN_FOR to restore the fast path).",
            stacklevel=2,
        )
        return
    scan.FAST_PATHS[recur] = fused.fast_path(name)


for _name in WRITTEN_FOR:
    _attach(_name)
