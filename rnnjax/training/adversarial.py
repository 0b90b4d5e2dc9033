"""Adversarial (AT) and virtual adversarial (VAT) training for text, as pure functions of word embeddings.

Miyato, Dai & Goodfellow, "Adversarial Training Methods for Semi-Supervised Text Classification" (ICLR 2017)
perturb the word embeddings, not the tokens:

* embeddings are normalised with frequency-weighted moments, ``v̄_i = (v_i - E[v]) / sqrt(Var[v])``
  (``embedding_norm.normalize_embeddings``), so that a perturbation of fixed norm cannot be made harmless by growing them;
* AT adds ``r_adv = ε g / ||g||₂`` with ``g`` the gradient of the loss w.r.t. an example's embedded sequence
  (``adversarial_perturbation``), and trains on the loss at ``x + r_adv`` as well;
* VAT finds ``r_vadv`` by one power-iteration step on ``KL(p(x) ‖ p(x + ξ d))`` from a random ``d`` and adds
  ``KL(p(x) ‖ p(x + r_vadv))``, which needs no label (``virtual_adversarial_loss``).

Norms are taken per example over its whole sequence of real words (``scale_to_norm``). Perturbations are
constants of the training loss: the functions below evaluate their inner gradients at ``stop_gradient``'d
parameters and embeddings, so no second-order derivative is ever traced (the cells' native kernels have
first-order rules only).

``classifier_loss`` is the training loss of a classifier task with these terms, for any ``model_api.Model``
split around its embedded sequence (``embed``, ``from_embedded``, ``mask``: every ModelSpec's model is). The
normalised embeddings themselves are a property of the model (``Embedding.frequencies``), so evaluation and
prediction see the same word vectors as training.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax import losses
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
    clean_logits: jax.Array | None = None,
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
        clean_logits: ``logits_fn(params, embedded)`` when the caller has it already (one forward pass fewer);
            used as a constant.

    Returns:
        [B] per-example divergences (0 for an example without real words); sum them, and count the
        examples that have real words.

    Raises:
        ValueError: for ``embedded`` not [B, T, E] or ``mask`` not [B, T].
    """
    _check_sequences("virtual_adversarial_loss", embedded, mask)
    fixed_params, fixed_embedded = jax.lax.stop_gradient((params, embedded))
    clean = logits_fn(fixed_params, fixed_embedded) if clean_logits is None else jax.lax.stop_gradient(clean_logits)

    def divergence(d: jax.Array) -> jax.Array:
        return kl_divergence(clean, logits_fn(fixed_params, fixed_embedded + d), summed=True)

    d = jax.random.normal(key, embedded.shape, embedded.dtype)
    for _ in range(num_power_iterations):  # a few steps (1 in the paper), unrolled
        d = jax.grad(divergence)(scale_to_norm(d, mask, xi))
    r = scale_to_norm(d, mask, epsilon)
    return kl_divergence(clean, logits_fn(params, embedded + r))


# ------------------------------------------------------------------------------------- the training loss


METHODS = ("none", "at", "vat", "at+vat")
_VAT_PURPOSE = 1  # fold_in(dropout key, purpose): VAT's random start, apart from the dropout masks


class AdversarialOptions(NamedTuple):
    """Which perturbation terms a classifier trains with, and their sizes (Miyato et al.'s defaults)."""

    method: str = "vat"  # at | vat | at+vat (none: the plain loss)
    epsilon: float = 5.0  # ε, each example's perturbation norm (over its normalised word vectors)
    weight: float = 1.0  # factor on each perturbation term
    xi: float = 0.1  # VAT: ξ, the norm of the power iteration's probe
    power_iterations: int = 1  # VAT: power-iteration steps


def check_options(options: AdversarialOptions) -> None:
    """Raises ValueError, naming the config field, for a method or size out of range."""
    if options.method not in METHODS:
        raise ValueError(f"train.adversarial={options.method!r} must be one of {', '.join(METHODS)}.")
    for field, value in (("adv_epsilon", options.epsilon), ("adv_weight", options.weight), ("vat_xi", options.xi)):
        if not value > 0 or value == float("inf"):
            raise ValueError(f"train.{field}={value} must be a positive finite number.")
    if options.power_iterations < 1:
        raise ValueError(f"power_iterations={options.power_iterations} must be >= 1.")


def check_model(model) -> None:
    """Raises ValueError unless ``model`` (a ``model_api.Model``) is split around its embedded sequence."""
    if model.embed is None or model.from_embedded is None or model.mask is None:
        raise ValueError(
            "train.adversarial needs a model split around its word vectors: a Model with embed, from_embedded "
            "and mask (model_api.spec_model makes them for a model built from config.model)."
        )


def classifier_loss(model, options: AdversarialOptions, params: Params, batch: Batch, rng: PRNGKey):
    """The classification loss plus the adversarial terms: ``(loss, sums)`` for a classifier task.

    ``loss = CE(x) + weight * (CE(x + r_adv) [at] + KL(p(x) ‖ p(x + r_vadv)) [vat])``. CE is the mean over the
    labelled rows (label >= 0); VAT's term the mean over every row with a real word, unlabelled rows (label
    -1) included. Every forward pass of a step uses the step's dropout key, so predictions differ by the
    perturbation alone.

    Returns:
        ``loss`` and the sums of ``losses.classification_counts`` plus ``adv_loss_sum`` (CE(x + r_adv) summed
        over labelled rows) and ``vat_loss_sum`` / ``n_vat`` (the divergences and the rows they count).
    """
    labels = batch["label"]
    embedded = model.embed(params, batch, rng=rng, train=True)
    mask = model.mask(batch)

    def logits_of(p: Params, x: jax.Array) -> jax.Array:
        return model.from_embedded(p, x, batch, rng=rng, train=True).astype(jnp.float32)

    clean = logits_of(params, embedded)
    loss = losses.classification_loss(clean, labels)
    sums = dict(losses.classification_counts(clean, labels))
    labelled = jnp.sum(labels >= 0).astype(jnp.float32)
    if options.method in ("at", "at+vat"):
        r = adversarial_perturbation(
            lambda p, x: losses.classification_loss(logits_of(p, x), labels), params, embedded, mask, options.epsilon
        )
        adv = losses.classification_loss(logits_of(params, embedded + r), labels)
        loss = loss + options.weight * adv
        sums["adv_loss_sum"] = adv * labelled
    if options.method in ("vat", "at+vat"):
        divergences = virtual_adversarial_loss(
            logits_of, params, embedded, mask, epsilon=options.epsilon, xi=options.xi,
            key=jax.random.fold_in(rng, _VAT_PURPOSE), num_power_iterations=options.power_iterations,
            clean_logits=clean,
        )
        rows = jnp.any(mask, axis=1)
        count = jnp.sum(rows).astype(jnp.float32)
        vat_sum = jnp.sum(jnp.where(rows, divergences, 0.0))
        loss = loss + options.weight * vat_sum / jnp.maximum(count, 1.0)
        sums["vat_loss_sum"], sums["n_vat"] = vat_sum, count
    return loss, sums


def adversarial_metrics(sums) -> dict[str, float]:
    """``adv_loss`` and ``vat_loss`` (means) from host sums that have them; {} otherwise."""
    out = {}
    if "adv_loss_sum" in sums:
        out["adv_loss"] = sums["adv_loss_sum"] / max(sums["n_examples"], 1)
    if "vat_loss_sum" in sums:
        out["vat_loss"] = sums["vat_loss_sum"] / max(sums["n_vat"], 1)
    return out
