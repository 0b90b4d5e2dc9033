"""The model interface the fit loop trains, and the user code a run directory names.

A ``Model`` is two pure functions: ``init(key) -> params`` (any pytree) and
``apply(params, batch, *, rng, train) -> logits`` on a batch ``{"tokens" [B, T] int32, "lengths" [B] int32,
"label" [B] int32}``: logits [B] for a binary model (probability ``sigmoid``), [B, C] for C classes
(``softmax``). A ``ModelSpec`` is one way to make one (``spec_model``); a researcher's own functions are another.

A run directory records the code it needs by name, ``"module:qualname"`` for a model factory and the module
that registered a cell, and ``load_object``/``import_modules`` bring them back in another process.
"""

import importlib
from collections.abc import Callable, Iterable
from typing import NamedTuple

import jax

from rnnjax import models
from rnnjax.cells import get_cell
from rnnjax.layers import Recurrent
from rnnjax.types import Batch, Params, PRNGKey


class Model(NamedTuple):
    """A model for the fit loop: ``init(key) -> params`` and ``apply(params, batch, *, rng, train) -> logits``."""

    init: Callable[[PRNGKey], Params]
    apply: Callable[..., jax.Array]


def spec_model(spec: models.ModelSpec, *, use_lengths: bool = True) -> Model:
    """A ModelSpec as a Model; ``use_lengths`` masks by ``batch["lengths"]`` (False: Keras-style pre-padding)."""

    def apply(params: Params, batch: Batch, *, rng: PRNGKey | None = None, train: bool = False) -> jax.Array:
        lengths = batch["lengths"] if use_lengths else None
        return models.apply_model(spec, params, batch["tokens"], lengths, train=train, rng=rng)

    return Model(init=lambda key: models.init_model(spec, key), apply=apply)


def object_name(obj: Callable) -> str:
    """``"module:qualname"`` of a function, the name ``load_object`` imports it by."""
    return f"{obj.__module__}:{obj.__qualname__}"


def load_object(name: str) -> Callable:
    """Imports the object ``"module:qualname"`` names.

    Raises:
        ValueError: a malformed name, or a module or attribute that cannot be imported, with the cause.
    """
    module_name, _, qualname = name.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"{name!r} is not a 'module:function' name, e.g. 'my_models:build'.")
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"cannot import {name!r} ({type(error).__name__}: {error}); run from the folder that holds "
            f"{module_name.split('.')[0]}, or add it to PYTHONPATH."
        ) from None
    return obj


def cell_modules(spec: models.ModelSpec) -> list[str]:
    """The modules that define the registered (non-stock) cells a spec uses, to import before rebuilding it."""
    names = {layer.cell for layer in spec.layers if isinstance(layer, Recurrent)}
    return sorted({get_cell(n).step.__module__ for n in names} - {"rnnjax.cells", "rnnjax.minimal"})


def import_modules(names: Iterable[str]) -> None:
    """Imports each module (a registered cell's, as ``cell_modules`` recorded), unless already imported.

    Raises:
        ValueError: a module that cannot be imported.
    """
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(
                f"cannot import {name!r}, the module that registers a cell this model uses ({error}); run from "
                "the folder that holds it, or add it to PYTHONPATH."
            ) from None

