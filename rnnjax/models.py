"""Models as data: a frozen spec of Keras-like layers, ``init_model`` for its parameters, ``apply_model`` for logits.

A ``ModelSpec`` is a tuple of layer specs applied in order, the shape of a Keras ``Sequential``:

    Embedding -> [SpatialDropout1D] -> Recurrent (xN, optionally bidirectional)
              -> [Attention | global or concat pooling] -> [Dropout] -> Dense ... -> Dense(1)

Parameters are a dict keyed by Keras-style layer names (``embedding``, ``lstm``, ``lstm_1``, ``bidirectional``,
``dense``, ...); layers without weights have no entry. ``apply_model`` returns logits: the last Dense layer's
pre-activation when its activation is sigmoid or softmax (the probability is ``sigmoid(logits)``), its output
when it is linear.

Each layer's record, checks, init and apply live in ``layers.py`` (its records are importable from here too);
cells and the time loop in ``cells.py``/``scan.py``. This file wires layers together, names them and counts them.
"""

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import attention, scan
from rnnjax.dropout import dropout
from rnnjax.layers import (
    POOLING,
    Attention,
    ConcatPooling1D,
    Dense,
    Dropout,
    Embedding,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Layer,
    Recurrent,
    SpatialDropout1D,
    apply_dense,
    apply_pooling,
    apply_recurrent,
    embedding_table,
    check_layer,
    init_layer,
    keras_name,
    output_size,
)
from rnnjax.types import Params, PRNGKey


@dataclass(frozen=True)
class ModelSpec:
    """A model: its layers in order. Hashable, so it can be closed over or passed as a static jit argument."""

    layers: tuple[Layer, ...]

    def __post_init__(self):
        _validate(self)


def layer_names(spec: ModelSpec) -> list[str]:
    """Keras-style unique names of the layers: the type's name, then ``_1``, ``_2``... for repeats."""
    seen: dict[str, int] = {}
    names = []
    for layer in spec.layers:
        base = keras_name(layer)
        names.append(base if base not in seen else f"{base}_{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return names


def _validate(spec: ModelSpec) -> None:
    """Raises ValueError for a spec that cannot be built, naming the layer and the fix."""
    layers = spec.layers
    if not layers or not isinstance(layers[0], Embedding):
        raise ValueError("ModelSpec: the first layer must be an Embedding (the model reads token ids).")
    if not isinstance(layers[-1], Dense) or layers[-1].activation not in ("linear", "sigmoid", "softmax"):
        raise ValueError("ModelSpec: the last layer must be Dense with a linear, sigmoid or softmax activation.")
    has_time = True
    for index, layer in enumerate(layers):
        where = f"ModelSpec layer {index} ({type(layer).__name__})"
        if isinstance(layer, Embedding) and index > 0:
            raise ValueError(f"{where}: only the first layer may be an Embedding.")
        has_time = check_layer(layer, where, has_time)
    if has_time:
        raise ValueError(
            "ModelSpec: the model still has a time axis at its output; set return_sequences=False on the last "
            "recurrent layer or add an Attention or global pooling layer."
        )


def init_model(spec: ModelSpec, key: PRNGKey) -> Params:
    """Initialises a model's parameters with Keras' default initialisers.

    Args:
        spec: the model.
        key: PRNG key; each layer gets ``fold_in(key, layer index)``.

    Returns:
        ``{layer name: layer params}`` for the layers that have weights.
    """
    params: Params = {}
    features = 0
    for index, (name, layer) in enumerate(zip(layer_names(spec), spec.layers)):
        layer_params = init_layer(layer, jax.random.fold_in(key, index), features)
        if layer_params is not None:
            params[name] = layer_params
        features = output_size(layer, features)
    return params


def _check_tokens(tokens: jax.Array, lengths: jax.Array | None) -> None:
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(
            f"apply: tokens must be an integer array [B, T], got {tokens.dtype} {tokens.shape}; "
            "encode texts with rnnjax.data.text and pad them with pad_sequences."
        )
    if lengths is not None and (lengths.shape != tokens.shape[:1] or not jnp.issubdtype(lengths.dtype, jnp.integer)):
        raise ValueError(
            f"apply: lengths must be an integer array [B]={tokens.shape[:1]}, got {lengths.dtype} {lengths.shape}; "
            "pass one length per row of tokens."
        )


def apply_model(
    spec: ModelSpec,
    params: Params,
    tokens: jax.Array,
    lengths: jax.Array | None = None,
    *,
    train: bool = False,
    rng: PRNGKey | None = None,
    return_attention: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Runs a model on token ids and returns logits.

    The mask below the embedding comes from ``lengths`` (right-padded batches) and, when the Embedding has
    ``mask_zero``, from ``tokens != 0`` (both when both apply). With neither, every step is processed.

    Args:
        spec: the model.
        params: from ``init_model`` or ``import_keras``.
        tokens: [B, T] integer ids in [0, V).
        lengths: [B] integer, real tokens per row (right padding), or None.
        train: apply dropout and weight dropout (needs ``rng``).
        rng: key for dropout; each layer uses ``fold_in(rng, layer index)``.
        return_attention: also return the attention weights [B, T] (the model must have an Attention layer).

    Returns:
        logits [B] for a final Dense(1) (or [B, C] for Dense(C)); with ``return_attention``,
        ``(logits, weights [B, T])``.

    Raises:
        ValueError: for tokens or lengths of the wrong shape or dtype, or train=True with dropout but no rng.
    """
    tokens = jnp.asarray(tokens)
    lengths = None if lengths is None else jnp.asarray(lengths)
    _check_tokens(tokens, lengths)
    needs_rng = any(
        getattr(layer, name, 0.0) > 0
        for layer in spec.layers
        for name in ("rate", "dropout", "recurrent_dropout", "weight_dropout")
    )
    if train and needs_rng and rng is None:
        raise ValueError("apply: train=True with dropout needs rng=jax.random.key(...); or pass train=False.")
    if return_attention and not any(isinstance(layer, Attention) for layer in spec.layers):
        raise ValueError("apply: return_attention=True but the model has no Attention layer.")
    mask = None if lengths is None else scan.sequence_mask(lengths, tokens.shape[1])
    weights = None
    x = tokens
    table = None  # embeddings waiting to be folded into the next recurrent layer's input projection
    last = len(spec.layers) - 1
    for index, (name, layer) in enumerate(zip(layer_names(spec), spec.layers)):
        layer_rng = jax.random.fold_in(rng, index) if (train and rng is not None) else None
        p = params.get(name)
        if isinstance(layer, Embedding):
            rows = embedding_table(layer, p)
            if _can_fold_embedding(spec, tokens.size, train):
                table = rows
            else:
                x = jnp.take(rows, tokens, axis=0)
            if layer.mask_zero:
                mask = tokens != 0 if mask is None else mask & (tokens != 0)
        elif table is not None and isinstance(layer, (SpatialDropout1D, Dropout)):
            pass  # identity here: folding only happens when these layers do nothing
        elif isinstance(layer, Recurrent) and table is not None:
            x = apply_recurrent(layer, p, tokens, mask, layer_rng, table=table)
            table = None
        elif isinstance(layer, SpatialDropout1D):
            x = dropout(layer_rng, x, layer.rate, shared_axes=(1,))
        elif isinstance(layer, Dropout):
            x = dropout(layer_rng, x, layer.rate)
        elif isinstance(layer, Recurrent):
            x = apply_recurrent(layer, p, x, mask, layer_rng)
        elif isinstance(layer, Attention):
            x, weights = attention.attention_pool(p, x, mask)
        elif isinstance(layer, POOLING):
            x = apply_pooling(layer, x, mask)
        elif isinstance(layer, Dense):
            x = apply_dense(layer, p, x, activate=index != last)
    logits = x[..., 0] if x.shape[-1] == 1 else x
    return (logits, weights) if return_attention else logits


def _can_fold_embedding(spec: ModelSpec, n_tokens: int, train: bool) -> bool:
    """Whether the embedding lookup can be folded into the first recurrent layer's input projection.

    ``embeddings[tokens] @ kernel == (embeddings @ kernel)[tokens]``: projecting the [V, E] table once and
    gathering rows costs V*E*G*H multiply-adds instead of B*T*E*G*H, and its gradient is a scatter into the
    table followed by two [V, ...] matmuls. Worth it when the batch holds more tokens than the vocabulary has
    rows, and possible only when nothing between the two layers changes x (no active dropout).
    """
    embedding = spec.layers[0]
    for layer in spec.layers[1:]:
        if isinstance(layer, (SpatialDropout1D, Dropout)):
            if train and layer.rate > 0:
                return False
            continue
        return isinstance(layer, Recurrent) and not (train and layer.dropout > 0) and embedding.vocab_size < n_tokens
    return False


def count_params(params: Params) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in jax.tree_util.tree_leaves(params)))


_KERAS_KINDS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU", "min_gru": "MinGRU", "min_lstm": "MinLSTM"}


def summary(spec: ModelSpec, params: Params) -> str:
    """A Keras-like table of layers, output shapes and parameter counts, with the totals.

    Args:
        spec: the model.
        params: its parameters (counted as they are, so imported or trained params are described exactly).

    Returns:
        The table as text.
    """
    rows = []
    features, has_time = 0, True
    for name, layer in zip(layer_names(spec), spec.layers):
        features = output_size(layer, features)
        if isinstance(layer, Recurrent):
            has_time = layer.return_sequences
        elif isinstance(layer, (Attention, *POOLING)):
            has_time = False
        kind = type(layer).__name__
        if isinstance(layer, Recurrent):
            cell_kind = _KERAS_KINDS.get(layer.cell, layer.cell)
            kind = f"Bidirectional({cell_kind})" if layer.bidirectional else cell_kind
        shape = f"(None, None, {features})" if has_time else f"(None, {features})"
        rows.append((f"{name} ({kind})", shape, count_params(params.get(name, {}))))
    total = count_params(params)
    widths = [max(len("Layer (type)"), *(len(r[0]) for r in rows)), max(len("Output Shape"), *(len(r[1]) for r in rows))]
    line = "-" * (widths[0] + widths[1] + 16)
    out = [line, f"{'Layer (type)':<{widths[0]}}  {'Output Shape':<{widths[1]}}  {'Param #':>12}", line]
    out += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>12,}" for a, b, c in rows]
    out += [line, f"Total params: {total:,}", f"Trainable params: {total:,}", "Non-trainable params: 0", line]
    return "\n".join(out)


def make_classifier(
    *,
    cell: str,
    vocab_size: int,
    embed_dim: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    mask_zero: bool = False,
    spatial_dropout: float = 0.0,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    weight_dropout: float = 0.0,
    attention_units: int = 0,
    pooling: str | None = None,
    dense_units: tuple[int, ...] = (),
    dense_dropout: float = 0.0,
    reset_after: bool = True,
    activation: str = "tanh",
    unroll: int = 1,
    parallel: bool = False,
    num_classes: int = 2,
) -> ModelSpec:
    """The chapter's classifier: Embedding -> [SpatialDropout1D] -> recurrent x N -> [Attention | pooling]
    -> [Dropout] -> (Dense(relu) -> [Dropout]) x len(dense_units) -> Dense(1, sigmoid), or Dense(C, softmax)
    for C > 2 classes.

    Args:
        cell: simple_rnn, lstm, gru, min_gru, min_lstm or a name given to ``register_cell``.
        vocab_size: V.
        embed_dim: E.
        hidden_size: H of every recurrent layer.
        num_layers: stacked recurrent layers (all but the last return sequences).
        bidirectional: wrap each recurrent layer in Bidirectional (concat).
        mask_zero: mask token id 0 in the Embedding (for pre-padded batches).
        spatial_dropout: SpatialDropout1D rate after the embedding (0 for none).
        dropout: Dropout rate after the recurrent stack (0 for none).
        recurrent_dropout: recurrent_dropout of each recurrent layer.
        weight_dropout: weight_dropout (DropConnect on recurrent_kernel) of each recurrent layer.
        attention_units: A of an attention pooling layer after the recurrent stack (0 for none).
        pooling: "avg" (GlobalAveragePooling1D), "max" (GlobalMaxPooling1D) or "concat" (ConcatPooling1D:
            [last; max; mean]) over the last recurrent layer's outputs instead of its last output; None for none.
        dense_units: hidden Dense(relu) layers before the output.
        dense_dropout: Dropout rate after each hidden Dense layer.
        reset_after: GRU variant.
        activation: SimpleRNN activation.
        unroll: scan unroll of each recurrent layer.
        parallel: min_gru/min_lstm layers run in parallel over time.
        num_classes: C; 2 ends in Dense(1, sigmoid) (binary), more in Dense(C, softmax).

    Returns:
        The ModelSpec.
    """
    if num_layers < 1:
        raise ValueError(f"make_classifier: num_layers must be >= 1, got {num_layers}.")
    if num_classes < 2:
        raise ValueError(f"make_classifier: num_classes must be >= 2, got {num_classes}.")
    if pooling not in (None, *_POOLINGS) or (pooling and attention_units):
        raise ValueError(
            "make_classifier: pooling must be None, 'avg' or 'max' (Keras' global poolings) or 'concat' "
            f"(ULMFiT's [last; max; mean]), without attention, got {pooling!r}."
        )
    layers: list[Layer] = [Embedding(vocab_size, embed_dim, mask_zero=mask_zero)]
    if spatial_dropout:
        layers.append(SpatialDropout1D(spatial_dropout))
    for index in range(num_layers):
        layers.append(
            Recurrent(
                cell,
                hidden_size,
                return_sequences=index < num_layers - 1 or attention_units > 0 or pooling is not None,
                bidirectional=bidirectional,
                recurrent_dropout=recurrent_dropout,
                weight_dropout=weight_dropout,
                reset_after=reset_after,
                activation=activation,
                unroll=unroll,
                parallel=parallel,
            )
        )
    if attention_units:
        layers.append(Attention(attention_units))
    if pooling:
        layers.append(_POOLINGS[pooling]())
    if dropout:
        layers.append(Dropout(dropout))
    for units in dense_units:
        layers.append(Dense(units, "relu"))
        if dense_dropout:
            layers.append(Dropout(dense_dropout))
    layers.append(Dense(1, "sigmoid") if num_classes == 2 else Dense(num_classes, "softmax"))
    return ModelSpec(tuple(layers))


_POOLINGS = {"avg": GlobalAveragePooling1D, "max": GlobalMaxPooling1D, "concat": ConcatPooling1D}


def replace_layer(spec: ModelSpec, index: int, **changes) -> ModelSpec:
    """A copy of ``spec`` with fields of layer ``index`` replaced (e.g. a larger unroll)."""
    layers = list(spec.layers)
    layers[index] = dataclasses.replace(layers[index], **changes)
    return ModelSpec(tuple(layers))


def spec_to_dict(spec: ModelSpec) -> dict:
    """A JSON-serialisable description of a ModelSpec: its layers with their type names and fields."""
    return {"layers": [{"type": type(layer).__name__, **dataclasses.asdict(layer)} for layer in spec.layers]}


def spec_from_dict(payload: dict) -> ModelSpec:
    """Rebuilds the ModelSpec that ``spec_to_dict`` described (JSON lists become tuples).

    Raises:
        ValueError: for an unknown layer type, fields a layer does not have, or a payload of another shape.
    """
    kinds = {
        cls.__name__: cls for cls in (Embedding, SpatialDropout1D, Dropout, Recurrent, Attention, *POOLING, Dense)
    }
    layers = []
    try:
        for entry in payload["layers"]:
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
            kind = fields.pop("type")
            if kind not in kinds:
                raise ValueError(f"unknown layer type {kind!r}; expected one of {sorted(kinds)}")
            layers.append(kinds[kind](**fields))
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a model description ({type(error).__name__}: {error})") from None
    return ModelSpec(tuple(layers))

