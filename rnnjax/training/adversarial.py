"""Adversarial (AT) and virtual adversarial (VAT) training for text, as pure functions of word embeddings.

Miyato, Dai & Goodfellow, "Adversarial Training Methods for Semi-Supervised Text Classification" (ICLR 2017)
perturb the word embeddings, not the tokens:

* embeddings are normalised with frequency-weighted moments, ``v̄_i = (v_i - E[v]) / sqrt(Var[v])``
  (``normalize_embeddings``), so that a perturbation of fixed norm cannot be made harmless by growing them;
* AT adds ``r_adv = ε g / ||g||₂`` with ``g`` the gradient of the loss w.r.t. an example's embedded sequence
  (``adversarial_perturbation``), and trains on the loss at ``x + r_adv`` as well;
* VAT finds ``r_vadv`` by one power-iteration step on ``KL(p(x) ‖ p(x + ξ d))`` from a random ``d`` and adds
  ``KL(p(x) ‖ p(x + r_vadv))``, which needs no label (``virtual_adversarial_loss``).

Norms are taken per example over its whole sequence of real words (``scale_to_norm``). Perturbations are
constants of the training loss: the functions below evaluate their inner gradients at ``stop_gradient``'d
parameters and embeddings, so no second-order derivative is ever traced (the cells' native kernels have
first-order rules only). ``split_spec`` splits a ModelSpec classifier into ``embed`` and ``logits`` of an
embedded batch, on top of ``models.apply_model`` unchanged.

Losses come back per example (``[B]``) for the caller to sum and count, as ``losses.py`` does. Adding them to
the classification loss, choosing which examples count and reading the config are left to the task that
trains with them; the model's layers to ``models.py``.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax import models, scan
from rnnjax.embedding_norm import embedding_stats, normalize_embeddings  # noqa: F401
from rnnjax.types import Batch, Params, PRNGKey

# --------------------------------------------------------------------------------------------- perturbations


def _check_sequences(name: str, x: jax.Array, mask: jax.Array) -> None:
    if x.ndim != 3 or mask.shape != x.shape[:2]:
        raise ValueError(
            f"{name}: expected embedded sequences [B, T, E] and mask [B, T], got {x.shape} and {mask.shape}; "
            "pass the embedding layer's output and the real-word mask (SplitModel.mask)."
        )


def scale_to_norm(g: jax.Array, mask: jax.Array, epsilon: float) -> jax.Array:
    """``r = ε g / ||g||₂`` per example, the norm over its whole sequence of real words.

    Padding positions are zeroed before the norm is taken, so they neither count nor move. As in the
    paper's code, each example is first divided by its ``max |g|``: ``||g|| = a ||g / a||`` with
    ``||g / a|| >= 1``, which neither overflows nor underflows in float32 (gradients of a trained model can
    be ~1e-20). An example whose ``g`` is zero on every real word gets ``r = 0``, without NaN (in the
    derivative too).

    Args:
        g: [B, T, E] float, a direction (a gradient w.r.t. the embedded batch).
        mask: [B, T] bool, True at real words.
        epsilon: ε, the norm of each example's ``r``.

    Returns:
        r [B, T, E] in ``g``'s dtype (computed in float32, or float64 for float64 ``g``).

    Raises:
        ValueError: for ``g`` not [B, T, E] or ``mask`` not [B, T].
    """
    _check_sequences("scale_to_norm", g, mask)
    x = jnp.where(mask[..., None], g.astype(jnp.promote_types(g.dtype, jnp.float32)), 0)
    scale = jnp.max(jnp.abs(x), axis=(1, 2), keepdims=True)
    x = x / jnp.where(scale > 0, scale, 1)
    squares = jnp.sum(jnp.square(x), axis=(1, 2), keepdims=True)
    # 1 where g is zero (so is x there): r = 0, and sqrt's derivative stays finite at g = 0.
    norm = jnp.sqrt(jnp.where(squares > 0, squares, 1))
    return (epsilon * x / norm).astype(g.dtype)


def adversarial_perturbation(
    loss_fn: Callable[[Params, jax.Array], jax.Array],
    params: Params,
    embedded: jax.Array,
    mask: jax.Array,
    epsilon: float,
) -> jax.Array:
    """AT's worst-case perturbation to first order: ``r_adv = ε g / ||g||₂``, ``g = ∇_embedded loss``.

    ``g`` is taken at ``stop_gradient(params)`` and ``stop_gradient(embedded)``, so ``r_adv`` is a constant of
    the training loss (the paper's ``tf.stop_gradient``) and no second derivative is traced. Examples must not
    interact in the model (no batch statistics), so that the gradient of a batch loss is each example's own.

    Args:
        loss_fn: ``(params, embedded [B, T, E]) -> scalar`` loss of the batch (a mean or a sum: the scale of
            ``g`` does not matter).
        params: the model's parameters.
        embedded: [B, T, E] float, the clean embedded batch.
        mask: [B, T] bool, True at real words.
        epsilon: ε, the norm of each example's perturbation.

    Returns:
        r_adv [B, T, E] in ``embedded``'s dtype, zero at padding.

    Raises:
        ValueError: for ``embedded`` not [B, T, E] or ``mask`` not [B, T].
    """
    fixed_params, fixed_embedded = jax.lax.stop_gradient((params, embedded))
    g = jax.grad(lambda x: loss_fn(fixed_params, x))(fixed_embedded)
    return scale_to_norm(g, mask, epsilon)


def kl_divergence(logits_p: jax.Array, logits_q: jax.Array, *, summed: bool = False) -> jax.Array:
    """``KL(p ‖ q) = Σ_c p_c (log p_c - log q_c)`` between the model's predictions, from their logits.

    Logits [B] are a binary model's (Bernoulli ``p = sigmoid(z)``, both outcomes summed); [B, C] a softmax
    model's. The log-probabilities come from ``log_sigmoid``/``log_softmax``, so no probability is rounded to
    ``log(0)``.

    Args:
        logits_p: [B] or [B, C] float, the reference prediction (VAT: the clean one).
        logits_q: the same shape, the other prediction.
        summed: return the sum over the batch instead of one value per example.

    Returns:
        [B] float32 (float64 for float64 logits) per-example divergences, or their sum (a scalar).

    Raises:
        ValueError: for logits of different shapes, or of a rank other than 1 or 2.
    """
    if logits_p.shape != logits_q.shape or logits_p.ndim not in (1, 2):
        raise ValueError(
            f"kl_divergence: logits must both be [B] (binary) or [B, C] (softmax), got {logits_p.shape} and "
            f"{logits_q.shape}; pass the model's logits as apply_model returns them."
        )
    dtype = jnp.promote_types(jnp.result_type(logits_p, logits_q), jnp.float32)
    a, b = logits_p.astype(dtype), logits_q.astype(dtype)
    if a.ndim == 1:  # log(1 - sigmoid(z)) = log_sigmoid(-z)
        a, b = jnp.stack([a, -a], axis=-1), jnp.stack([b, -b], axis=-1)
        log_p, log_q = jax.nn.log_sigmoid(a), jax.nn.log_sigmoid(b)
    else:
        log_p, log_q = jax.nn.log_softmax(a, axis=-1), jax.nn.log_softmax(b, axis=-1)
    divergence = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    return jnp.sum(divergence) if summed else divergence


def virtual_adversarial_loss(
    logits_fn: Callable[[Params, jax.Array], jax.Array],
    params: Params,
    embedded: jax.Array,
    mask: jax.Array,
    *,
    epsilon: float,
    xi: float,
    key: PRNGKey,
    num_power_iterations: int = 1,
) -> jax.Array:
    """VAT's per-example loss ``KL(p(x) ‖ p(x + r_vadv))``; it needs no label.

    ``p(x)``, the clean prediction, is a constant (computed at ``stop_gradient``'d params and embeddings).
    From a random direction ``d`` (Gaussian, zero at padding), each power iteration sets
    ``d ← ∇_d KL(p(x) ‖ p(x + ξ d / ||d||))``, again at constant params; ``r_vadv = ε d / ||d||``. The
    returned loss is differentiable in ``params`` and ``embedded`` through ``p(x + r_vadv)`` only.

    ``logits_fn`` should use the same dropout key at every call, so that the predictions differ by the
    perturbation alone. ``ξ`` must leave the divergence's gradient above float32 rounding: the paper uses 0.1
    on normalised embeddings.

    Args:
        logits_fn: ``(params, embedded [B, T, E]) -> logits [B] or [B, C]``.
        params: the model's parameters.
        embedded: [B, T, E] float, the clean embedded batch (labelled or not).
        mask: [B, T] bool, True at real words.
        epsilon: ε, the norm of each example's ``r_vadv``.
        xi: ξ, the norm of the probe ``ξ d`` of the power iteration.
        key: PRNG key for the initial direction.
        num_power_iterations: power-iteration steps (the paper: 1).

    Returns:
        [B] per-example divergences (0 for an example without real words); sum them, and count the
        examples that have real words.

    Raises:
        ValueError: for ``embedded`` not [B, T, E] or ``mask`` not [B, T].
    """
    _check_sequences("virtual_adversarial_loss", embedded, mask)
    fixed_params, fixed_embedded = jax.lax.stop_gradient((params, embedded))
    clean = logits_fn(fixed_params, fixed_embedded)

    def divergence(d: jax.Array) -> jax.Array:
        return kl_divergence(clean, logits_fn(fixed_params, fixed_embedded + d), summed=True)

    d = jax.random.normal(key, embedded.shape, embedded.dtype)
    for _ in range(num_power_iterations):  # a few steps (1 in the paper), unrolled
        d = jax.grad(divergence)(scale_to_norm(d, mask, xi))
    r = scale_to_norm(d, mask, epsilon)
    return kl_divergence(clean, logits_fn(params, embedded + r))


# ---------------------------------------------------------------------------------- a ModelSpec, split


class SplitModel(NamedTuple):
    """A ModelSpec classifier in two halves around its embedding output, the point perturbations are added.

    ``apply(params, batch) == logits(params, embed(params, batch["tokens"]), batch)``: with ``frequencies``,
    the model of normalised embeddings (use it for evaluation too); without, equal to ``apply_model``.
    """

    embed: Callable[[Params, jax.Array], jax.Array]  # (params, tokens [B, T]) -> embedded [B, T, E]
    logits: Callable[..., jax.Array]  # (params, embedded [B, T, E], batch, *, rng, train) -> [B] or [B, C]
    mask: Callable[[Batch], jax.Array]  # batch -> [B, T] bool, the real words a perturbation may move
    apply: Callable[..., jax.Array]  # (params, batch, *, rng, train) -> logits, as model_api.Model.apply


def split_spec(
    spec: models.ModelSpec, *, use_lengths: bool = True, frequencies: jax.Array | None = None
) -> SplitModel:
    """Splits a ModelSpec classifier into ``embed`` and the ``logits`` of an embedded batch.

    ``logits`` runs ``models.apply_model`` itself, on a batch-sized embedding table: row ``1 + b*T + t`` holds
    ``embedded[b, t]`` and position ``(b, t)`` reads it, so every layer above the embedding (dropout keys,
    masks, the embedding folded into the first recurrent layer) is the one ``apply_model`` runs. Row 0 is
    zeros, read by id-0 positions only when the Embedding has ``mask_zero`` (they are masked there).

    Args:
        spec: the model (its first layer is the Embedding).
        use_lengths: mask by ``batch["lengths"]`` (right padding), as ``model_api.spec_model``.
        frequencies: [V] occurrences of each id in the training tokens: ``embed`` then returns rows of
            ``normalize_embeddings(table, frequencies)``; None for the table as it is.

    Returns:
        The SplitModel.
    """
    name = models.layer_names(spec)[0]
    mask_zero = spec.layers[0].mask_zero

    def embed(params: Params, tokens: jax.Array) -> jax.Array:
        table = params[name]["embeddings"]
        if frequencies is not None:
            table = normalize_embeddings(table, frequencies)
        return jnp.take(table, tokens, axis=0)

    def logits(params: Params, embedded: jax.Array, batch: Batch, *, rng: PRNGKey | None = None,
               train: bool = False) -> jax.Array:
        tokens = jnp.asarray(batch["tokens"])
        if embedded.ndim != 3 or embedded.shape[:2] != tokens.shape:
            raise ValueError(
                f"logits: embedded must be [B, T, E] with [B, T]={tokens.shape} as batch['tokens'], got "
                f"{embedded.shape}; pass embed(params, batch['tokens']) plus a perturbation."
            )
        size, steps, features = embedded.shape
        rows = embedded.reshape(size * steps, features)
        rows = jnp.concatenate([jnp.zeros((1, features), embedded.dtype), rows])
        ids = 1 + jnp.arange(size * steps, dtype=jnp.int32).reshape(size, steps)
        if mask_zero:
            ids = jnp.where(tokens != 0, ids, 0)
        table_params = {**params, name: {**params[name], "embeddings": rows}}
        lengths = batch["lengths"] if use_lengths else None
        return models.apply_model(spec, table_params, ids, lengths, train=train, rng=rng)

    def mask(batch: Batch) -> jax.Array:
        tokens = jnp.asarray(batch["tokens"])
        real = tokens != 0  # id 0 pads, it is never a word
        if use_lengths:
            real = real & scan.sequence_mask(jnp.asarray(batch["lengths"]), tokens.shape[1])
        return real

    def apply(params: Params, batch: Batch, *, rng: PRNGKey | None = None, train: bool = False) -> jax.Array:
        return logits(params, embed(params, jnp.asarray(batch["tokens"])), batch, rng=rng, train=train)

    return SplitModel(embed=embed, logits=logits, mask=mask, apply=apply)
