"""Word-level recurrent language models: spec, parameters, per-step logits, masked cross-entropy, generation.

An ``LMSpec`` describes Embedding -> recurrent stack (GRU, LSTM or SimpleRNN, every layer returning sequences)
-> Dense(V) over the vocabulary, optionally with the output layer tied to the embedding table
(``logits = h @ embeddings.T + bias``, with a linear ``projection`` H -> E first when H != E). Parameters are
a plain dict keyed like the classifier's (``embedding``, ``gru``, ``gru_1``, ..., ``projection``, ``dense``),
so the embedding and recurrent layers can be copied into a ``models.make_classifier`` model as they are
(``transfer.py``).

Dropout is "locked" (one mask per sequence, shared over time): on the embeddings (``input_dropout``) and on
each recurrent layer's outputs (``dropout``); ``recurrent_dropout`` is Keras' and runs the slower plain scan.

``generate`` reads a prompt with the masked scan once, then runs one cell step per generated word with the
state carried in a jitted ``lax.scan`` (no re-reading of the prefix), stopping a row at an end id if given
(a sentence model's, ``text.Vocabulary.end_id``). The fit loop and run directories live in
``training/language_model.py``; the time loop in ``scan.py``.
"""

import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax

from rnnjax import scan
from rnnjax.cells import accepted_options, get_cell
from rnnjax.dropout import drop_recurrent_kernel, dropout
from rnnjax.types import Carry, Params, PRNGKey

_INPUT, _LAYERS = 0, 1  # fold_in purposes of the dropout key: embeddings, then one per recurrent layer


@dataclass(frozen=True)
class LMSpec:
    """A recurrent language model. Hashable, so it can be closed over or passed as a static jit argument."""

    cell: str  # simple_rnn | lstm | gru | min_gru | min_lstm | a registered cell
    vocab_size: int  # V, ids in [0, V)
    embed_dim: int  # E
    hidden_size: int  # H of every recurrent layer
    num_layers: int = 1  # L stacked recurrent layers
    input_dropout: float = 0.0  # locked dropout on the embeddings
    dropout: float = 0.0  # locked dropout on each recurrent layer's outputs
    recurrent_dropout: float = 0.0  # Keras' recurrent_dropout (plain scan: slower)
    tie_embeddings: bool = False  # output layer = embedding table (transposed) + bias
    reset_after: bool = True  # gru: Keras/cuDNN variant (True) or the original (False)
    use_bias: bool = True  # recurrent layers with biases (Keras' use_bias); the output layer always has one
    weight_dropout: float = 0.0  # DropConnect on each recurrent_kernel while training (AWD-LSTM)

    def __post_init__(self):
        init = get_cell(self.cell).init
        if not self.use_bias and not accepted_options(init, use_bias=False):
            raise ValueError(f"LMSpec: the {self.cell} cell's init takes no use_bias; use use_bias=True.")
        if min(self.vocab_size, self.embed_dim, self.hidden_size, self.num_layers) <= 0:
            raise ValueError(
                f"LMSpec: vocab_size, embed_dim, hidden_size and num_layers must be positive: {self}."
            )
        for name in ("input_dropout", "dropout", "recurrent_dropout", "weight_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"LMSpec: {name} must be in [0, 1), got {getattr(self, name)}.")


def recurrent_names(spec: LMSpec) -> list[str]:
    """Keras-style names of the recurrent layers (``gru``, ``gru_1``, ...), as ``models.layer_names`` gives them."""
    return [spec.cell if index == 0 else f"{spec.cell}_{index}" for index in range(spec.num_layers)]


def spec_to_dict(spec: LMSpec) -> dict[str, Any]:
    """A JSON-serialisable description of the spec."""
    return dataclasses.asdict(spec)


def spec_from_dict(data: dict[str, Any]) -> LMSpec:
    """Rebuilds the spec that ``spec_to_dict`` described; fields added since a file was written take defaults.

    Raises:
        ValueError: for unknown fields.
    """
    unknown = set(data) - {field.name for field in dataclasses.fields(LMSpec)}
    if unknown:
        raise ValueError(f"lm.json: unknown LMSpec fields {sorted(unknown)}; is this a language-model run?")
    return LMSpec(**data)


def _cell_options(spec: LMSpec, fn=None) -> dict[str, Any]:
    """The options of the cell's scanned function (or of ``fn``) that the spec sets: a GRU's variant."""
    return accepted_options(fn or get_cell(spec.cell).halves()[1], reset_after=spec.reset_after)


def init_lm(spec: LMSpec, key: PRNGKey) -> Params:
    """Initialises a language model with Keras' default initialisers.

    Args:
        spec: the model.
        key: PRNG key; layer i gets ``fold_in(key, i)`` (0 embedding, 1..L recurrent, then projection, dense).

    Returns:
        ``{"embedding": {"embeddings": [V, E]}, "<cell>[_k]": cell params, ["projection": {"kernel": [H, E]}],
        "dense": {"kernel": [H, V], "bias": [V]}}``; a tied model's ``dense`` holds only ``bias [V]``.
    """
    keys = [jax.random.fold_in(key, index) for index in range(spec.num_layers + 3)]
    params: Params = {
        "embedding": {
            "embeddings": jax.random.uniform(
                keys[0], (spec.vocab_size, spec.embed_dim), jnp.float32, -0.05, 0.05
            )
        }
    }
    options = accepted_options(get_cell(spec.cell).init, reset_after=spec.reset_after, use_bias=spec.use_bias)
    features = spec.embed_dim
    for index, name in enumerate(recurrent_names(spec)):
        params[name] = get_cell(spec.cell).init(keys[1 + index], features, spec.hidden_size, **options)
        features = spec.hidden_size
    glorot = jax.nn.initializers.glorot_uniform()
    if spec.tie_embeddings:
        if spec.hidden_size != spec.embed_dim:
            params["projection"] = {
                "kernel": glorot(keys[-2], (spec.hidden_size, spec.embed_dim), jnp.float32)
            }
        params["dense"] = {"bias": jnp.zeros((spec.vocab_size,), jnp.float32)}
    else:
        params["dense"] = {
            "kernel": glorot(keys[-1], (spec.hidden_size, spec.vocab_size), jnp.float32),
            "bias": jnp.zeros((spec.vocab_size,), jnp.float32),
        }
    return params


def initial_carries(spec: LMSpec, params: Params, batch_size: int) -> tuple[Carry, ...]:
    """Zero states of every recurrent layer, each a tuple of [B, H] arrays."""
    cell = get_cell(spec.cell)
    return tuple(cell.initial_carry(params[name], (batch_size,)) for name in recurrent_names(spec))


def output_layer(spec: LMSpec, params: Params, h: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The output layer as ``(x, weights, bias)``: ``logits = x @ weights.T + bias`` (sampled softmax's form).

    Args:
        spec: the model.
        params: its parameters.
        h: [..., H] outputs of the last recurrent layer.

    Returns:
        ``x [..., D]`` (h, or h projected to E when tied with H != E), ``weights [V, D]`` (the embedding table
        when tied, else the Dense kernel transposed) and ``bias [V]``, all of h's dtype.
    """
    if not spec.tie_embeddings:
        return h, params["dense"]["kernel"].T.astype(h.dtype), params["dense"]["bias"].astype(h.dtype)
    if "projection" in params:
        h = h @ params["projection"]["kernel"].astype(h.dtype)
    return h, params["embedding"]["embeddings"].astype(h.dtype), params["dense"]["bias"].astype(h.dtype)


def readout(spec: LMSpec, params: Params, h: jax.Array) -> jax.Array:
    """Logits over the vocabulary, [..., V], from top-layer outputs h [..., H] (see ``output_layer``)."""
    x, weights, bias = output_layer(spec, params, h)
    logits = x @ weights.T
    return logits + bias.reshape((1,) * (logits.ndim - 1) + (-1,))


def _check_tokens(spec: LMSpec, tokens: jax.Array, lengths: jax.Array | None) -> None:
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(
            f"apply_lm: tokens must be an integer array [B, T], got {tokens.dtype} {tokens.shape}; "
            "encode texts with rnnjax.data.text and pad them."
        )
    if lengths is not None and (
        lengths.shape != tokens.shape[:1] or not jnp.issubdtype(lengths.dtype, jnp.integer)
    ):
        raise ValueError(
            f"apply_lm: lengths must be an integer array [B]={tokens.shape[:1]}, got {lengths.dtype} {lengths.shape}."
        )


def apply_lm(
    spec: LMSpec,
    params: Params,
    tokens: jax.Array,
    lengths: jax.Array | None = None,
    *,
    initial_carry: tuple[Carry, ...] | None = None,
    train: bool = False,
    rng: PRNGKey | None = None,
    return_carry: bool = False,
    return_hidden: bool = False,
) -> jax.Array | tuple[jax.Array, tuple[Carry, ...]]:
    """Per-step next-word logits of a language model.

    Args:
        spec: the model.
        params: from ``init_lm``.
        tokens: [B, T] integer ids in [0, V), right-padded.
        lengths: [B] integer, real tokens per row; None processes every step.
        initial_carry: one carry per recurrent layer (each a tuple of [B, H]); zeros when None.
        train: apply dropout (needs ``rng`` when the spec has dropout).
        rng: dropout key.
        return_carry: also return every layer's carry after each row's last real token.
        return_hidden: return the top layer's outputs [B, T, H] (after its dropout) instead of the logits.

    Returns:
        logits [B, T, V] (position t predicts token t + 1; zero outputs at padded steps give bias-only logits
        there, which the masked loss ignores), and with ``return_carry`` the tuple of final carries.

    Raises:
        ValueError: for tokens or lengths of the wrong shape or dtype, or train=True with dropout but no rng.
    """
    tokens = jnp.asarray(tokens)
    lengths = None if lengths is None else jnp.asarray(lengths)
    _check_tokens(spec, tokens, lengths)
    if train and max(spec.input_dropout, spec.dropout, spec.recurrent_dropout, spec.weight_dropout) > 0 and rng is None:
        raise ValueError("apply_lm: train=True with dropout needs rng=jax.random.key(...); or pass train=False.")
    rng = rng if train else None
    mask = None if lengths is None else scan.sequence_mask(lengths, tokens.shape[1])
    x = jnp.take(params["embedding"]["embeddings"], tokens, axis=0)
    if rng is not None:
        x = dropout(jax.random.fold_in(rng, _INPUT), x, spec.input_dropout, shared_axes=(1,))
    carries = []
    for index, name in enumerate(recurrent_names(spec)):
        layer_rng = None if rng is None else jax.random.fold_in(rng, _LAYERS + index)
        cell_params = params[name]
        if layer_rng is not None and spec.weight_dropout > 0:
            cell_params = drop_recurrent_kernel(jax.random.fold_in(layer_rng, 2), cell_params, spec.weight_dropout)
        carry, x = scan.run(
            spec.cell,
            cell_params,
            x,
            mask,
            initial_carry=None if initial_carry is None else initial_carry[index],
            return_sequences=True,
            recurrent_dropout=spec.recurrent_dropout,
            rng=layer_rng,
            **_cell_options(spec),
        )
        if layer_rng is not None:
            x = dropout(jax.random.fold_in(layer_rng, 1), x, spec.dropout, shared_axes=(1,))
        carries.append(carry)
    out = x if return_hidden else readout(spec, params, x)
    return (out, tuple(carries)) if return_carry else out


def next_word_targets(tokens: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Splits right-padded rows into inputs, next-word targets and the mask of real targets.

    Args:
        tokens: [B, T] integer ids.
        lengths: [B] integer, real tokens per row.

    Returns:
        ``(inputs [B, T-1], targets [B, T-1], mask [B, T-1] bool)``; target t is token t + 1, real when
        ``t + 1 < length``.
    """
    mask = scan.sequence_mask(jnp.maximum(lengths - 1, 0), tokens.shape[1] - 1)
    return tokens[:, :-1], tokens[:, 1:], mask


def masked_counts(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Cross-entropy and next-word accuracy summed over real positions only.

    Args:
        logits: [B, T, V] float.
        targets: [B, T] integer ids.
        mask: [B, T] bool, True at positions that count.

    Returns:
        ``loss_sum`` (float32), ``n_correct`` and ``n_tokens`` (int32), scalars.

    Raises:
        ValueError: if the shapes disagree.
    """
    if logits.shape[:-1] != targets.shape or mask.shape != targets.shape:
        raise ValueError(
            f"masked_counts: logits [B, T, V], targets [B, T] and mask [B, T] must agree, got {logits.shape}, "
            f"{targets.shape}, {mask.shape}."
        )
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    correct = (jnp.argmax(logits, axis=-1) == targets) & mask
    return {
        "loss_sum": jnp.sum(jnp.where(mask, losses, 0.0)),
        "n_correct": jnp.sum(correct, dtype=jnp.int32),
        "n_tokens": jnp.sum(mask, dtype=jnp.int32),
    }


def lm_counts(
    spec: LMSpec,
    params: Params,
    tokens: jax.Array,
    lengths: jax.Array,
    *,
    train: bool = False,
    rng: PRNGKey | None = None,
) -> dict[str, jax.Array]:
    """``masked_counts`` of predicting each next word of right-padded rows (see ``next_word_targets``)."""
    inputs, targets, mask = next_word_targets(jnp.asarray(tokens), jnp.asarray(lengths))
    logits = apply_lm(spec, params, inputs, jnp.maximum(jnp.asarray(lengths) - 1, 0), train=train, rng=rng)
    return masked_counts(logits, targets, mask)


def perplexity(loss_sum: float, n_tokens: int) -> float:
    """``exp(loss_sum / n_tokens)``: the perplexity of a mean per-token cross-entropy (nats); inf for no tokens."""
    return math.exp(loss_sum / n_tokens) if n_tokens else math.inf


def _sample(
    logits: jax.Array, key: PRNGKey, *, temperature: float, top_k: int, greedy: bool, banned: tuple[int, ...]
) -> jax.Array:
    """[B, V] logits -> [B] ids: argmax (greedy) or a draw from softmax(logits / temperature) over the top k."""
    logits = logits.astype(jnp.float32)
    if banned:
        logits = logits.at[:, jnp.asarray(banned)].set(-jnp.inf)
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


_STATIC_ARGS = ("spec", "num_steps", "temperature", "top_k", "greedy", "banned", "end_id", "return_logits")


@partial(jax.jit, static_argnames=_STATIC_ARGS)
def generate(
    spec: LMSpec,
    params: Params,
    prompt: jax.Array,
    key: PRNGKey,
    *,
    num_steps: int,
    temperature: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    banned: tuple[int, ...] = (),
    end_id: int | None = None,
    return_logits: bool = False,
) -> dict[str, Any]:
    """Continues prompts word by word, carrying each layer's state (the prompt is read once).

    Step i draws word i from the current logits with ``fold_in(key, i)``, then feeds it through one step of
    every layer. The same key, prompt and settings give the same words. A row that draws ``end_id`` stops
    there: its later words are 0 (padding) and its carry stays the state after the end id.

    Args:
        spec: the model (static).
        params: its parameters.
        prompt: [B, P] integer ids (P >= 1, no padding), e.g. the start id and the encoded prompt words.
        key: PRNG key for sampling.
        num_steps: N, words to generate (static).
        temperature: softmax temperature (> 0) for sampling.
        top_k: sample among the k most likely words only (0: all).
        greedy: take the most likely word (ignores temperature, top_k and key).
        banned: ids never generated (e.g. padding, the start id, the OOV id).
        end_id: the id that ends a row (a sentence model's end id; static), or None to draw N words.
        return_logits: also return the logits each word was drawn from.

    Returns:
        ``{"tokens": [B, N] int32, "carry": every layer's carry after the last word}`` and, with
        ``return_logits``, ``"logits": [B, N, V]``.

    Raises:
        ValueError: for a prompt that is not [B, P >= 1] integers, or a temperature <= 0.
    """
    if prompt.ndim != 2 or prompt.shape[1] < 1 or not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise ValueError(f"generate: prompt takes integer ids [B, P >= 1], got {prompt.dtype} {prompt.shape}")
    if temperature <= 0 and not greedy:
        raise ValueError(f"generate: temperature must be > 0, got {temperature}; use greedy=True for argmax.")
    if not 0 <= top_k <= spec.vocab_size:
        raise ValueError(f"generate: top_k must be in [0, V={spec.vocab_size}], got {top_k}.")
    logits, carries = apply_lm(spec, params, prompt, return_carry=True)
    step_fn = get_cell(spec.cell).step
    options = _cell_options(spec, step_fn)
    names = recurrent_names(spec)
    sample = partial(_sample, temperature=temperature, top_k=top_k, greedy=greedy, banned=banned)

    def step(state, index):
        carries, last_logits, done = state
        word = jnp.where(done, 0, sample(last_logits, jax.random.fold_in(key, index)))
        x = jnp.take(params["embedding"]["embeddings"], word, axis=0)
        new_carries = []
        for name, carry in zip(names, carries):
            new_carry, x = step_fn(params[name], carry, x, **options)
            new_carries.append(scan.hold(~done, new_carry, carry, x)[0])  # a finished row holds its state
        done = done if end_id is None else done | (word == end_id)
        return (tuple(new_carries), readout(spec, params, x), done), (word, last_logits if return_logits else None)

    done = jnp.zeros(prompt.shape[:1], bool)
    (carries, _, _), (words, step_logits) = jax.lax.scan(
        step, (carries, logits[:, -1], done), jnp.arange(num_steps)
    )
    out = {"tokens": jnp.swapaxes(words, 0, 1), "carry": carries}
    if return_logits:
        out["logits"] = jnp.swapaxes(step_logits, 0, 1)
    return out
