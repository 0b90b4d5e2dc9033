"""Layers of a model: their frozen spec records, their checks, and each layer's init and apply.

A layer spec is a small frozen dataclass with Keras' options: ``Embedding``, ``SpatialDropout1D``, ``Dropout``,
``Recurrent`` (SimpleRNN, LSTM, GRU, minGRU, minLSTM; optionally bidirectional), ``Attention``,
``GlobalAveragePooling1D``, ``GlobalMaxPooling1D``, ``ConcatPooling1D`` (ULMFiT's) and ``Dense``. ``check_layer``
validates one of them in its place in a model; ``init_layer`` makes its parameters (Keras' default initialisers)
and ``output_size`` its output features; ``apply_recurrent``, ``apply_pooling`` and ``apply_dense`` run it, and
``recurrent_params`` gives the weights a recurrent layer runs with (its weight dropout).

How layers are stacked into a model (``ModelSpec``, names, the loop over layers, the embedding folded into the
first recurrent layer) lives in ``models.py``; the cells and the time loop in ``cells.py``/``scan.py``.
"""

from dataclasses import dataclass
from typing import Union

import jax
import jax.numpy as jnp

from rnnjax import attention, embedding_norm, scan
from rnnjax.cells import accepted_options, get_cell
from rnnjax.dropout import drop_recurrent_kernel
from rnnjax.gates import ACTIVATIONS
from rnnjax.scan import Gathered
from rnnjax.types import Params, PRNGKey


@dataclass(frozen=True)
class Embedding:
    """Token ids [B, T] -> vectors [B, T, E]; ``mask_zero`` masks id 0 as Keras does (for pre-padded input).

    With ``frequencies`` (each id's count in the training tokens), the rows looked up are the table normalised
    by their frequency-weighted mean and variance at every forward pass (``embedding_norm``, Miyato et al.).
    """

    vocab_size: int  # V, ids in [0, V)
    embed_dim: int  # E
    mask_zero: bool = False
    frequencies: tuple[int, ...] = ()  # [V] training counts: normalised rows; () = the table as it is


@dataclass(frozen=True)
class SpatialDropout1D:
    """Drops whole embedding channels per sequence ([B, 1, E] mask) during training."""

    rate: float


@dataclass(frozen=True)
class Dropout:
    """Drops single features during training."""

    rate: float


@dataclass(frozen=True)
class Recurrent:
    """A SimpleRNN, LSTM or GRU layer, optionally wrapped in Bidirectional."""

    cell: str  # simple_rnn | lstm | gru | min_gru | min_lstm | a name given to register_cell
    hidden_size: int  # H
    return_sequences: bool = False  # outputs for every step (for a layer above) or the last one
    bidirectional: bool = False
    merge_mode: str = "concat"  # concat | sum | mul | ave (bidirectional only)
    go_backwards: bool = False  # Keras' go_backwards: reverse the sequence; step outputs come out reversed
    dropout: float = 0.0  # Keras' dropout on the inputs, one mask per sequence
    recurrent_dropout: float = 0.0  # Keras' recurrent_dropout on h, one mask per sequence
    weight_dropout: float = 0.0  # DropConnect on recurrent_kernel (AWD-LSTM), one mask per batch; training only
    activation: str = "tanh"  # simple_rnn's activation
    reset_after: bool = True  # gru: Keras/cuDNN variant (True) or the original (False)
    unit_forget_bias: bool = True  # lstm: forget-gate bias initialised to 1
    peephole: bool = False  # lstm: peephole connections
    use_bias: bool = True
    unroll: int = 1  # time steps per scan iteration
    parallel: bool = False  # min_gru/min_lstm: parallel-in-time associative scan instead of a sequential one
    # Keras' name. Outputs at masked steps with return_sequences: zeros (True; Keras' Bidirectional's) or
    # the last real output before the step in processing order, zeros before any (False: a plain Keras layer's
    # default). The carry and the last output are the same either way.
    zero_output_for_mask: bool = True


@dataclass(frozen=True)
class Attention:
    """Additive attention pooling over the outputs of the recurrent layer below ([B, T, D] -> [B, D])."""

    units: int  # A


@dataclass(frozen=True)
class GlobalAveragePooling1D:
    """The mean over time ([B, T, D] -> [B, D]) of the real steps, as Keras does with a mask (a sequence with
    no real step gives zeros, where Keras divides 0 by 0)."""


@dataclass(frozen=True)
class GlobalMaxPooling1D:
    """The maximum over time ([B, T, D] -> [B, D]). Like Keras 3's, it ignores the mask: masked steps enter
    the maximum with the values the layer below gives them (zeros, or held outputs with
    ``zero_output_for_mask=False``)."""


@dataclass(frozen=True)
class ConcatPooling1D:
    """ULMFiT's concat pooling ([B, T, D] -> [B, 3D]): ``[last real output; max over real steps; mean over real
    steps]``, the last real step being the highest-index one of the mask (every step without a mask). A sequence
    with no real step gives zeros. Keras has no such layer."""


@dataclass(frozen=True)
class Dense:
    """A fully connected layer; the last one of a model gives the logits."""

    units: int
    activation: str = "linear"  # linear | relu | tanh | sigmoid | softmax
    use_bias: bool = True


Layer = Union[
    Embedding, SpatialDropout1D, Dropout, Recurrent, Attention, GlobalAveragePooling1D, GlobalMaxPooling1D,
    ConcatPooling1D, Dense,
]
POOLING = (GlobalAveragePooling1D, GlobalMaxPooling1D, ConcatPooling1D)

_KERAS_NAMES = {
    Embedding: "embedding",
    SpatialDropout1D: "spatial_dropout1d",
    Dropout: "dropout",
    Attention: "attention",
    GlobalAveragePooling1D: "global_average_pooling1d",
    GlobalMaxPooling1D: "global_max_pooling1d",
    ConcatPooling1D: "concat_pooling1d",
    Dense: "dense",
}
DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


def keras_name(layer: Layer) -> str:
    """The Keras name of a layer's type (``lstm``, ``bidirectional``, ``dense``, ...), before de-duplication."""
    if isinstance(layer, Recurrent):
        return "bidirectional" if layer.bidirectional else layer.cell
    return _KERAS_NAMES[type(layer)]


def check_layer(layer: Layer, where: str, has_time: bool) -> bool:
    """Raises ValueError for a layer that cannot be built where it stands, naming it (``where``) and the fix.

    Args:
        layer: the layer spec.
        where: how messages name it, e.g. ``ModelSpec layer 2 (Recurrent)``.
        has_time: whether its input has a time axis ([B, T, D] rather than [B, D]).

    Returns:
        Whether its output has a time axis.
    """
    if isinstance(layer, Embedding) and (layer.vocab_size <= 0 or layer.embed_dim <= 0):
        raise ValueError(f"{where}: vocab_size and embed_dim must be positive, got {layer}.")
    if isinstance(layer, Embedding) and layer.frequencies and len(layer.frequencies) != layer.vocab_size:
        raise ValueError(
            f"{where}: frequencies must hold one count per id ({layer.vocab_size}), got {len(layer.frequencies)}."
        )
    if isinstance(layer, (SpatialDropout1D, Dropout)) and not 0.0 <= layer.rate < 1.0:
        raise ValueError(f"{where}: rate must be in [0, 1), got {layer.rate}.")
    if isinstance(layer, SpatialDropout1D) and not has_time:
        raise ValueError(f"{where}: needs a [B, T, E] input; put it before the last recurrent layer.")
    if isinstance(layer, Recurrent):
        _check_recurrent(layer, where, has_time)
        return layer.return_sequences
    if isinstance(layer, (Attention, *POOLING)):
        if not has_time:
            raise ValueError(f"{where}: needs the recurrent layer below to set return_sequences=True.")
        if isinstance(layer, Attention) and layer.units <= 0:
            raise ValueError(f"{where}: units must be positive, got {layer.units}.")
        return False
    if isinstance(layer, Dense) and (layer.units <= 0 or layer.activation not in DENSE_ACTIVATIONS):
        raise ValueError(f"{where}: units must be positive and activation one of {DENSE_ACTIVATIONS}.")
    return has_time


def _check_recurrent(layer: Recurrent, where: str, has_time: bool) -> None:
    get_cell(layer.cell)
    if not has_time:
        raise ValueError(f"{where}: the layer below returns no sequence; set return_sequences=True on it.")
    if layer.hidden_size <= 0:
        raise ValueError(f"{where}: hidden_size must be positive, got {layer.hidden_size}.")
    if not all(0.0 <= rate < 1.0 for rate in (layer.dropout, layer.recurrent_dropout, layer.weight_dropout)):
        raise ValueError(f"{where}: dropout, recurrent_dropout and weight_dropout must be in [0, 1), got {layer}.")
    if layer.weight_dropout and "recurrent_kernel" not in _param_names(layer):
        raise ValueError(
            f"{where}: cell {layer.cell!r} has no recurrent_kernel param for weight_dropout to drop; set "
            "weight_dropout=0."
        )
    if layer.recurrent_dropout and not accepted_options(get_cell(layer.cell).halves()[1], recurrent_mask=None):
        raise ValueError(f"{where}: {layer.cell} takes no recurrent_mask (no recurrent matmul); set recurrent_dropout=0.")
    if layer.bidirectional and layer.go_backwards:
        raise ValueError(f"{where}: go_backwards has no meaning inside Bidirectional; drop one of them.")
    if layer.merge_mode not in ("concat", "sum", "mul", "ave"):
        raise ValueError(f"{where}: merge_mode must be concat, sum, mul or ave, got {layer.merge_mode!r}.")
    if layer.activation not in ACTIVATIONS:
        raise ValueError(f"{where}: activation must be one of {sorted(ACTIVATIONS)}.")
    if layer.unroll < 1:
        raise ValueError(f"{where}: unroll must be >= 1, got {layer.unroll}.")


def _param_names(layer: Recurrent) -> set[str]:
    """The names of a layer's cell params, from their shapes only (nothing is initialised)."""
    return set(jax.eval_shape(lambda key: _init_cell(layer, key, 1), jax.random.key(0)))


def output_size(layer: Layer, features: int) -> int:
    """The features per step (or per example) a layer outputs, given ``features`` in: E, H (2H for a concat
    Bidirectional), Dense's units, 3 * features for ConcatPooling1D; the same for dropout, attention and the
    global poolings."""
    if isinstance(layer, ConcatPooling1D):
        return 3 * features
    if isinstance(layer, Embedding):
        return layer.embed_dim
    if isinstance(layer, Recurrent):
        return 2 * layer.hidden_size if layer.bidirectional and layer.merge_mode == "concat" else layer.hidden_size
    if isinstance(layer, Dense):
        return layer.units
    return features


def _init_cell(layer: Recurrent, key: PRNGKey, input_size: int) -> Params:
    cell = get_cell(layer.cell)
    options = accepted_options(
        cell.init,
        use_bias=layer.use_bias,
        unit_forget_bias=layer.unit_forget_bias,
        peephole=layer.peephole,
        reset_after=layer.reset_after,
    )
    return cell.init(key, input_size, layer.hidden_size, **options)


def init_layer(layer: Layer, key: PRNGKey, features: int) -> Params | None:
    """A layer's parameters with Keras' default initialisers, or None for a layer without weights.

    Args:
        layer: the layer spec.
        key: PRNG key (a Bidirectional layer splits it between its directions).
        features: the input features per step (unused by an Embedding).

    Returns:
        Embedding ``{"embeddings": [V, E] uniform(-0.05, 0.05)}``; Recurrent the cell's params (Bidirectional:
        ``{"forward": ..., "backward": ...}``); Attention ``attention.init_attention``'s; Dense
        ``{"kernel": [D, units] glorot_uniform, "bias": [units] zeros}``; None for the dropout layers.
    """
    if isinstance(layer, Embedding):
        return {"embeddings": jax.random.uniform(key, (layer.vocab_size, layer.embed_dim), jnp.float32, -0.05, 0.05)}
    if isinstance(layer, Recurrent):
        if layer.bidirectional:
            k_fw, k_bw = jax.random.split(key)
            return {"forward": _init_cell(layer, k_fw, features), "backward": _init_cell(layer, k_bw, features)}
        return _init_cell(layer, key, features)
    if isinstance(layer, Attention):
        return attention.init_attention(key, features, layer.units)
    if isinstance(layer, Dense):
        params = {"kernel": jax.nn.initializers.glorot_uniform()(key, (features, layer.units), jnp.float32)}
        if layer.use_bias:
            params["bias"] = jnp.zeros((layer.units,), jnp.float32)
        return params
    return None


def embedding_table(layer: Embedding, params: Params) -> jax.Array:
    """The [V, E] rows an Embedding looks up: its table, normalised when the layer has ``frequencies``."""
    if not layer.frequencies:
        return params["embeddings"]
    return embedding_norm.normalize_embeddings(params["embeddings"], jnp.asarray(layer.frequencies, jnp.float32))


def apply_dense(layer: Dense, params: Params, x: jax.Array, *, activate: bool = True) -> jax.Array:
    """``activation(x @ kernel + bias)`` for x [..., D] -> [..., units]; ``activate=False`` returns the
    pre-activation (a model's logits)."""
    x = x @ params["kernel"].astype(x.dtype)
    if "bias" in params:
        x = x + params["bias"].astype(x.dtype).reshape((1,) * (x.ndim - 1) + (-1,))
    if not activate:
        return x
    return jax.nn.softmax(x, axis=-1) if layer.activation == "softmax" else ACTIVATIONS[layer.activation](x)


def apply_pooling(
    layer: GlobalAveragePooling1D | GlobalMaxPooling1D | ConcatPooling1D, x: jax.Array, mask: jax.Array | None
) -> jax.Array:
    """Pools [B, T, D] over time: to [B, D] as Keras 3 does (the average over real steps, all steps without a
    mask; the maximum over all steps, as Keras' GlobalMaxPooling1D takes no mask), or to [B, 3D] for
    ``ConcatPooling1D`` (``concat_pool``).

    Args:
        layer: the pooling layer spec.
        x: [B, T, D] floating outputs of the layer below.
        mask: [B, T] bool, True at real steps, or None.
    """
    if isinstance(layer, ConcatPooling1D):
        return concat_pool(x, mask)
    if isinstance(layer, GlobalMaxPooling1D):
        return jnp.max(x, axis=1)
    if mask is None:
        return jnp.mean(x, axis=1)
    weights = mask[..., None].astype(x.dtype)
    return jnp.sum(x * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1)


def concat_pool(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """ULMFiT's ``[last real step; max over real steps; mean over real steps]`` of [B, T, D] -> [B, 3D].

    The last real step is the highest-index one of the mask (right padding and pre-padding alike). A row with no
    real step gives zeros; its values and gradients stay finite.

    Args:
        x: [B, T, D] floating outputs of the layer below.
        mask: [B, T] bool, True at real steps, or None (every step is real).
    """
    if mask is None:
        return jnp.concatenate([x[:, -1], jnp.max(x, axis=1), jnp.mean(x, axis=1)], axis=-1)
    steps = jnp.arange(x.shape[1])[None, :]
    last_b = jnp.max(jnp.where(mask, steps, -1), axis=1)  # -1 for a row without a real step
    any_b1 = (last_b >= 0)[:, None]
    last = jnp.take_along_axis(x, jnp.maximum(last_b, 0)[:, None, None], axis=1)[:, 0]
    # -inf never reaches the output: a row without a real step takes zeros, so its cotangent there is zero.
    peak = jnp.max(jnp.where(mask[..., None], x, -jnp.inf), axis=1)
    zeros = jnp.zeros((), x.dtype)
    mean = apply_pooling(GlobalAveragePooling1D(), x, mask)
    return jnp.concatenate([jnp.where(any_b1, last, zeros), jnp.where(any_b1, peak, zeros), mean], axis=-1)


def recurrent_params(layer: Recurrent, params: Params, rng: PRNGKey | None) -> Params:
    """The params a recurrent layer runs with: with ``weight_dropout`` during training (``rng`` given), each
    direction's ``drop_recurrent_kernel``, its mask from ``fold_in(rng, _WEIGHT_DROPOUT)`` (split between the
    directions) so the dropout masks ``scan.run`` draws from ``rng`` stay as they are; else ``params``."""
    if rng is None or layer.weight_dropout == 0.0:
        return params
    key = jax.random.fold_in(rng, _WEIGHT_DROPOUT)
    if not layer.bidirectional:
        return drop_recurrent_kernel(key, params, layer.weight_dropout)
    keys = dict(zip(("forward", "backward"), jax.random.split(key)))
    return {name: drop_recurrent_kernel(keys[name], params[name], layer.weight_dropout) for name in keys}


_WEIGHT_DROPOUT = 1_000  # fold_in purpose of the weight-dropout key; scan.run splits the layer key itself


def apply_recurrent(
    layer: Recurrent,
    params: Params,
    x: jax.Array,
    mask: jax.Array | None,
    rng: PRNGKey | None,
    *,
    table: jax.Array | None = None,
) -> jax.Array:
    """Runs one recurrent layer (Keras' SimpleRNN/LSTM/GRU, or Bidirectional around one).

    Args:
        layer: the layer spec.
        params: its parameters.
        x: [B, T, F] inputs; with ``table``, [B, T] token ids.
        mask: [B, T] bool or None.
        rng: key for dropout and weight dropout, or None for none.
        table: the [V, E] embeddings, folded into the input projection: each direction's projected inputs are
            rows of ``project(table)``, gathered by ``x`` (``scan.Gathered``).

    Returns:
        [B, T, D] outputs with ``return_sequences``, else [B, D].
    """
    params = recurrent_params(layer, params, rng)
    options = dict(
        return_sequences=layer.return_sequences,
        unroll=layer.unroll,
        dropout=layer.dropout,
        recurrent_dropout=layer.recurrent_dropout,
        rng=rng,
        zero_output_for_mask=layer.zero_output_for_mask,
    )
    cell = get_cell(layer.cell)
    options.update(accepted_options(cell.halves()[1], activation=layer.activation, reset_after=layer.reset_after))
    if layer.parallel:
        options["parallel"] = True
    if table is not None:
        project = cell.halves()[0]
        gather = lambda p: Gathered(project(p, table), x)  # rows read in place by the native kernels
        x = (gather(params["forward"]), gather(params["backward"])) if layer.bidirectional else gather(params)
        options.update(inputs_projected=True, dropout=0.0)
    if layer.bidirectional:
        _, outputs = scan.bidirectional(layer.cell, params, x, mask, merge_mode=layer.merge_mode, **options)
        return outputs
    _, outputs = scan.run(layer.cell, params, x, mask, reverse=layer.go_backwards, **options)
    if layer.go_backwards and layer.return_sequences:
        outputs = jnp.flip(outputs, 1)  # Keras returns a go_backwards layer's outputs in processing order
    return outputs
