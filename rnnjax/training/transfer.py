"""Starting a classifier from pretrained pieces: an LM's layers, word vectors, and how to fine-tune them.

* ``transfer_lm_params`` / ``init_from_lm``: copy a language model's embedding and recurrent layers into a
  ``models.make_classifier`` model, after checking that the vocabularies are the same and the shapes match.
* ``finetune_optimizer``: wraps an Optax optimizer with per-layer learning-rate multipliers and per-layer
  start steps (frozen layers get a zero gradient and a zero update, so they stay bit-identical);
  ``gradual_unfreezing`` gives the start steps of ULMFiT's schedule (top layer first, one more per epoch).

Reading word-vector files is ``data/embeddings.py``'s job, restoring a language model ``runs.load_run``'s, and
reading a config's ``init`` block the classifier builder's (``classifier.py``).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from rnnjax import embedding_norm, lm, models
from rnnjax.data import text
from rnnjax.training import runs
from rnnjax.types import Params

# ------------------------------------------------------------------------------------------ parameters


def check_vocabulary(vocab: text.Vocabulary, lm_vocab: text.Vocabulary) -> None:
    """Raises ValueError unless the classifier's vocabulary is the language model's (same ids for same words)."""
    if vocab == lm_vocab:
        return
    differences = [
        f"{field}: {getattr(vocab, field)!r} vs {getattr(lm_vocab, field)!r}"
        for field in ("index_from", "oov_id", "start_id", "end_id")
        if getattr(vocab, field) != getattr(lm_vocab, field)
    ]
    if vocab.words != lm_vocab.words:
        first = next(
            (i for i, (a, b) in enumerate(zip(vocab.words, lm_vocab.words)) if a != b),
            min(len(vocab.words), len(lm_vocab.words)),
        )
        differences.append(
            f"{len(vocab.words)} vs {len(lm_vocab.words)} words, first difference at word {first}"
        )
    raise ValueError(
        "the classifier's vocabulary is not the language model's ("
        + "; ".join(differences)
        + "); encode the classifier's data with the LM run's vocabulary.json (classifier.train_and_evaluate reads "
        "it from config.init.from_lm_workdir when a new run directory has none)."
    )


def _recurrent_layers(spec: models.ModelSpec) -> list[tuple[str, models.Recurrent]]:
    return [
        (name, layer)
        for name, layer in zip(models.layer_names(spec), spec.layers)
        if isinstance(layer, models.Recurrent)
    ]


def transfer_lm_params(
    params: Params, spec: models.ModelSpec, lm_spec: lm.LMSpec, lm_params: Params
) -> tuple[Params, dict[str, str]]:
    """Copies a language model's embedding and first recurrent layers into a classifier's parameters.

    Classifier recurrent layer k gets LM layer k; layers above the recurrent stack keep their values.

    Args:
        params: the classifier's parameters (not modified).
        spec: the classifier (``Embedding -> unidirectional recurrent layers -> ...``).
        lm_spec: the language model.
        lm_params: its parameters.

    Returns:
        ``(new params, copied)`` with ``copied`` mapping classifier layer names to LM layer names.

    Raises:
        ValueError: if the embedding or a recurrent layer does not match the language model.
    """
    embedding = spec.layers[0]
    if (embedding.vocab_size, embedding.embed_dim) != (lm_spec.vocab_size, lm_spec.embed_dim):
        raise ValueError(
            f"init_from_lm: the classifier's Embedding is ({embedding.vocab_size}, {embedding.embed_dim}) but the "
            f"language model's is ({lm_spec.vocab_size}, {lm_spec.embed_dim}); set model.embed_dim="
            f"{lm_spec.embed_dim} and use the LM's vocabulary."
        )
    recurrent = _recurrent_layers(spec)
    if len(recurrent) > lm_spec.num_layers:
        raise ValueError(
            f"init_from_lm: the classifier has {len(recurrent)} recurrent layers but the language model only "
            f"{lm_spec.num_layers}; set model.num_layers <= {lm_spec.num_layers}."
        )
    copied = {"embedding": "embedding"}
    for (name, layer), lm_name in zip(recurrent, lm.recurrent_names(lm_spec)):
        wanted = (
            lm_spec.cell,
            lm_spec.hidden_size,
            False,
            lm_spec.reset_after if lm_spec.cell == "gru" else None,
        )
        got = (
            layer.cell,
            layer.hidden_size,
            layer.bidirectional,
            layer.reset_after if layer.cell == "gru" else None,
        )
        if got != wanted:
            raise ValueError(
                f"init_from_lm: classifier layer {name!r} is (cell, hidden_size, bidirectional, reset_after)={got} but "
                f"the language model's {lm_name!r} is {wanted}; build the classifier with the LM's cell and sizes."
            )
        copied[name] = lm_name
    new = dict(params)
    for name, lm_name in copied.items():
        mine = jax.tree_util.tree_flatten_with_path(params[name])[0]
        theirs = jax.tree_util.tree_structure(lm_params[lm_name])
        if jax.tree_util.tree_structure(params[name]) != theirs or any(
            leaf.shape != lm_leaf.shape
            for (_, leaf), lm_leaf in zip(mine, jax.tree.leaves(lm_params[lm_name]))
        ):
            shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)  # noqa: E731
            raise ValueError(
                f"init_from_lm: layer {name!r} has shapes {shapes(params[name])} but the language model's "
                f"{lm_name!r} has {shapes(lm_params[lm_name])}."
            )
        new[name] = jax.tree.map(lambda a, b: jnp.asarray(b, a.dtype), params[name], lm_params[lm_name])
    return new, copied


def init_from_lm(
    params: Params,
    spec: models.ModelSpec,
    lm_workdir: str | Path,
    vocab: text.Vocabulary,
    *,
    which: str = "best",
) -> tuple[Params, dict[str, str]]:
    """Initialises a classifier's embedding and recurrent layers from a language model's run directory.

    Args:
        params: the classifier's parameters (not modified).
        spec: the classifier.
        lm_workdir: a run directory written by ``language_model.train_lm``.
        vocab: the classifier's vocabulary; it must be the language model's.
        which: the LM checkpoint, "best" or "latest".

    Returns:
        ``(new params, copied)`` (see ``transfer_lm_params``).

    Raises:
        ValueError: for a missing run, a different vocabulary or mismatched layers.
    """
    loaded = runs.load_run(lm_workdir, which=which, kind="language_model")
    check_vocabulary(vocab, loaded.vocabulary)
    return transfer_lm_params(params, spec, loaded.spec, loaded.params)


def pretrained_layers(spec: models.ModelSpec, *, from_lm: bool) -> list[str]:
    """The layers a pretrained start fills, from the input upward: the embedding, and the recurrent stack from an LM."""
    return ["embedding"] + ([name for name, _ in _recurrent_layers(spec)] if from_lm else [])


# ------------------------------------------------------------------------------------------- optimizer


class _GateState(NamedTuple):
    count: jax.Array  # int32 scalar, updates seen


def _gate_layers(trainable_from: Mapping[str, int | None]) -> optax.GradientTransformation:
    """Zeroes the updates of layer ``name`` before step ``trainable_from[name]`` (always, for None)."""

    def init(params):
        del params
        return _GateState(count=jnp.zeros((), jnp.int32))

    def update(updates, state, params=None):
        del params
        gated = dict(updates)
        for name, start in trainable_from.items():
            on = jnp.zeros((), bool) if start is None else state.count >= start
            gated[name] = jax.tree.map(lambda u: jnp.where(on, u, jnp.zeros_like(u)), updates[name])
        return gated, _GateState(count=optax.safe_int32_increment(state.count))

    return optax.GradientTransformation(init, update)


def _scale_layers(multipliers: Mapping[str, float]) -> optax.GradientTransformation:
    def update(updates, state, params=None):
        del params
        scaled = dict(updates)
        for name, factor in multipliers.items():
            scaled[name] = jax.tree.map(lambda u: u * jnp.asarray(factor, u.dtype), updates[name])
        return scaled, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def finetune_optimizer(
    tx: optax.GradientTransformation,
    *,
    lr_multipliers: Mapping[str, float] | None = None,
    trainable_from: Mapping[str, int | None] | None = None,
) -> optax.GradientTransformation:
    """Wraps an optimizer for fine-tuning: per-layer learning-rate factors and frozen (or later) layers.

    A layer before its start step gets a zero gradient (so it takes no part in gradient clipping and the
    optimizer's moments stay zero) and a zero update, so its parameters stay bit-identical; afterwards its
    update is the optimizer's, times its multiplier.

    Args:
        tx: the optimizer (e.g. ``optim.make_optimizer(config.opt, total_steps)``).
        lr_multipliers: top-level layer name -> factor on its updates (layers not named: 1).
        trainable_from: layer name -> first step at which it trains; None keeps it frozen throughout.

    Returns:
        The wrapped transformation (for parameter dicts keyed by layer name).

    Raises:
        ValueError: for a negative multiplier or start step.
    """
    lr_multipliers = dict(lr_multipliers or {})
    trainable_from = dict(trainable_from or {})
    if any(v < 0 for v in lr_multipliers.values()) or any(
        v is not None and v < 0 for v in trainable_from.values()
    ):
        raise ValueError(
            f"finetune_optimizer: multipliers and start steps must be >= 0, got {lr_multipliers}, {trainable_from}."
        )
    parts = []
    if trainable_from:
        parts.append(_gate_layers(trainable_from))
    parts.append(tx)
    if trainable_from:
        parts.append(_gate_layers(trainable_from))
    if lr_multipliers:
        parts.append(_scale_layers(lr_multipliers))
    return optax.chain(*parts) if len(parts) > 1 else tx


def gradual_unfreezing(pretrained_bottom_up: list[str], steps_per_epoch: int) -> dict[str, int]:
    """ULMFiT's gradual unfreezing: the new layers train from step 0, the top pretrained layer from epoch 1,
    the next one from epoch 2, and so on down to the embedding.

    Args:
        pretrained_bottom_up: pretrained layer names from the input upward (e.g. ``["embedding", "gru",
        "gru_1"]``). steps_per_epoch: optimizer steps per epoch.

    Returns:
        layer name -> first training step.
    """
    top_down = list(reversed(pretrained_bottom_up))
    return {name: (depth + 1) * steps_per_epoch for depth, name in enumerate(top_down)}


def fold_embedding_moments(params: Params, spec: models.ModelSpec) -> tuple[Params, str | None]:
    """Makes a classifier with normalised embeddings (``Embedding.frequencies``) compute, at its start, what it
    computes on the raw table: the rows' moments go into the first recurrent layer's input projection.

    A language model trained on raw word vectors ``v = m + s ⊙ v̄`` feeds its first layer ``v W + b``; with
    ``W' = diag(s) W`` and ``b' = b + m W`` the layer gives the same on the normalised ``v̄``. Without it, a
    pretrained recurrent layer would read inputs of another scale (unit variance per dimension) at once.

    Returns:
        ``(params, the recurrent layer's name)``, or ``(params, None)`` unchanged when the embedding is not
        normalised or the layer above it is not a recurrent layer with a ``kernel`` [E, ...] and a ``bias``.
    """
    embedding, names = spec.layers[0], models.layer_names(spec)
    if not embedding.frequencies:
        return params, None
    index = next((i for i, layer in enumerate(spec.layers[1:], 1)
                  if not isinstance(layer, (models.SpatialDropout1D, models.Dropout))), None)
    if index is None or not isinstance(spec.layers[index], models.Recurrent):
        return params, None
    table = params[names[0]]["embeddings"]
    mean, scale = embedding_norm.moments(table, jnp.asarray(embedding.frequencies, jnp.float32))
    layer = params[names[index]]
    directions = ("forward", "backward") if spec.layers[index].bidirectional else (None,)
    cells = [layer[d] if d else layer for d in directions]
    if any("kernel" not in c or "bias" not in c or c["kernel"].shape[0] != table.shape[1] for c in cells):
        return params, None

    def fold(cell: Params) -> Params:
        kernel, bias = cell["kernel"], cell["bias"]
        shift = (mean @ kernel).astype(bias.dtype)
        bias = bias.at[0].add(shift) if bias.ndim == 2 else bias + shift  # a reset-after GRU: its input bias
        return {**cell, "kernel": (scale[:, None] * kernel).astype(kernel.dtype), "bias": bias}

    folded = {d: fold(c) for d, c in zip(directions, cells)}
    return {**params, names[index]: folded if directions[0] else folded[None]}, names[index]
