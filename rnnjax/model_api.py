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
import jax.numpy as jnp

from rnnjax import models, scan
from rnnjax.cells import get_cell
from rnnjax.dropout import dropout
from rnnjax.layers import Dropout, Recurrent, SpatialDropout1D, embedding_table
from rnnjax.types import Batch, Params, PRNGKey


class Model(NamedTuple):
    """A model for the fit loop: ``init(key) -> params`` and ``apply(params, batch, *, rng, train) -> logits``.

    The three optional functions split ``apply`` around the embedded sequence, where adversarial training
    perturbs it (``rnnjax.training.adversarial``); a model that has them trains with AT and VAT:

    * ``embed(params, batch, *, rng, train) -> embedded [B, T, E]``: the word vectors (and the dropout on them);
    * ``from_embedded(params, embedded, batch, *, rng, train) -> logits``, so that
      ``apply(p, b, rng=k, train=t) == from_embedded(p, embed(p, b, rng=k, train=t), b, rng=k, train=t)``;
    * ``mask(batch) -> [B, T] bool``: the real words a perturbation may move.
    """

    init: Callable[[PRNGKey], Params]
    apply: Callable[..., jax.Array]
    embed: Callable[..., jax.Array] | None = None
    from_embedded: Callable[..., jax.Array] | None = None
    mask: Callable[[Batch], jax.Array] | None = None


def spec_model(spec: models.ModelSpec, *, use_lengths: bool = True) -> Model:
    """A ModelSpec as a Model, split around its embedding; ``use_lengths`` masks by ``batch["lengths"]``
    (False: Keras-style pre-padding)."""

    def apply(params: Params, batch: Batch, *, rng: PRNGKey | None = None, train: bool = False) -> jax.Array:
        lengths = batch["lengths"] if use_lengths else None
        return models.apply_model(spec, params, batch["tokens"], lengths, train=train, rng=rng)

    embed, from_embedded, mask = _split(spec, use_lengths)
    return Model(lambda key: models.init_model(spec, key), apply, embed, from_embedded, mask)


def _split(spec: models.ModelSpec, use_lengths: bool):
    """``embed``, ``from_embedded`` and ``mask`` of a ModelSpec whose first layer is its Embedding.

    ``embed`` is the Embedding's rows (``layers.embedding_table``: normalised with ``frequencies``) and the
    dropout layers right above it, with the keys ``apply_model`` gives them. ``from_embedded`` runs
    ``models.apply_model`` itself, with those dropout rates at 0, on a batch-sized embedding table: row
    ``1 + b*T + t`` holds ``embedded[b, t]`` and position ``(b, t)`` reads it, so every layer above (dropout
    keys, masks, attention) is the one ``apply`` runs. Row 0 is zeros, read by id-0 positions only with
    ``mask_zero`` (they are masked there).
    """
    names = models.layer_names(spec)
    embedding = spec.layers[0]
    above = 1  # the dropout layers right above the embedding act on the embedded sequence
    while above < len(spec.layers) and isinstance(spec.layers[above], (SpatialDropout1D, Dropout)):
        above += 1
    upper = spec
    for index in range(1, above):
        upper = models.replace_layer(upper, index, rate=0.0)

    def embed(params: Params, batch: Batch, *, rng: PRNGKey | None = None, train: bool = False) -> jax.Array:
        x = jnp.take(embedding_table(embedding, params[names[0]]), jnp.asarray(batch["tokens"]), axis=0)
        for index in range(1, above):
            layer = spec.layers[index]
            if train and layer.rate > 0:
                if rng is None:
                    raise ValueError("embed: train=True with dropout needs rng=jax.random.key(...); or train=False.")
                shared = (1,) if isinstance(layer, SpatialDropout1D) else ()
                x = dropout(jax.random.fold_in(rng, index), x, layer.rate, shared_axes=shared)
        return x

    def from_embedded(params: Params, embedded: jax.Array, batch: Batch, *, rng: PRNGKey | None = None,
                      train: bool = False) -> jax.Array:
        tokens = jnp.asarray(batch["tokens"])
        if embedded.ndim != 3 or embedded.shape[:2] != tokens.shape:
            raise ValueError(
                f"from_embedded: embedded must be [B, T, E] with [B, T]={tokens.shape} as batch['tokens'], got "
                f"{embedded.shape}; pass embed(params, batch) plus a perturbation."
            )
        size, steps, features = embedded.shape
        rows = jnp.concatenate([jnp.zeros((1, features), embedded.dtype), embedded.reshape(size * steps, features)])
        ids = 1 + jnp.arange(size * steps, dtype=jnp.int32).reshape(size, steps)
        if embedding.mask_zero:
            ids = jnp.where(tokens != 0, ids, 0)
        rows_spec = models.replace_layer(upper, 0, vocab_size=size * steps + 1, frequencies=())
        rows_params = {**params, names[0]: {**params[names[0]], "embeddings": rows}}
        lengths = batch["lengths"] if use_lengths else None
        return models.apply_model(rows_spec, rows_params, ids, lengths, train=train, rng=rng)

    def mask(batch: Batch) -> jax.Array:
        tokens = jnp.asarray(batch["tokens"])
        real = tokens != 0  # id 0 pads, it is never a word
        if use_lengths:
            real = real & scan.sequence_mask(jnp.asarray(batch["lengths"]), tokens.shape[1])
        return real

    return embed, from_embedded, mask


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

