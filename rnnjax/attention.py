"""Additive (Bahdanau) attention pooling over a recurrent layer's outputs, masked, returning its weights.

    e_t = v . tanh(h_t W + b),   alpha = softmax over real steps of e,   context = sum_t alpha_t h_t

Parameters: ``kernel [D, A]`` (W) glorot_uniform, ``bias [A]`` zeros, ``context [A]`` (v) glorot_uniform.
Keras has no layer with this exact form (its AdditiveAttention scores a query against keys), so it is
checked against a NumPy reference only.
"""

import jax
import jax.numpy as jnp

from rnnjax.types import Params, PRNGKey


def init_attention(key: PRNGKey, input_size: int, units: int) -> Params:
    """Initialises attention pooling for inputs with ``input_size`` = D features and ``units`` = A."""
    k_w, k_v = jax.random.split(key)
    glorot = jax.nn.initializers.glorot_uniform()
    limit = jnp.sqrt(6.0 / (units + 1))  # glorot_uniform of an [A, 1] matrix
    return {
        "kernel": glorot(k_w, (input_size, units), jnp.float32),
        "bias": jnp.zeros((units,), jnp.float32),
        "context": jax.random.uniform(k_v, (units,), jnp.float32, -limit, limit),
    }


def attention_pool(params: Params, hs_btd: jax.Array, mask_bt: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Pools a sequence of vectors into one by additive attention.

    Args:
        params: from ``init_attention``.
        hs_btd: [B, T, D] outputs of a recurrent layer (``return_sequences=True``).
        mask_bt: [B, T] bool, True at real steps; masked steps get weight 0. None attends to every step.

    Returns:
        ``(context [B, D], weights [B, T])``; each row of weights sums to 1 over real steps (a row with no
        real step gets all-zero weights and a zero context).

    Raises:
        ValueError: if hs or mask has the wrong shape.
    """
    if hs_btd.ndim != 3 or hs_btd.shape[-1] != params["kernel"].shape[0]:
        raise ValueError(
            f"attention: hs must have shape [B, T, D={params['kernel'].shape[0]}], got {hs_btd.shape}; "
            "attention needs the recurrent layer below it to return sequences."
        )
    if mask_bt is not None and mask_bt.shape != hs_btd.shape[:2]:
        raise ValueError(f"attention: mask must have shape {hs_btd.shape[:2]}, got {mask_bt.shape}.")
    dtype = hs_btd.dtype
    bias_11a = params["bias"].astype(dtype)[None, None, :]
    scores_bt = jnp.tanh(hs_btd @ params["kernel"].astype(dtype) + bias_11a) @ params["context"].astype(dtype)
    if mask_bt is None:
        weights_bt = jax.nn.softmax(scores_bt, axis=-1)
    else:
        # Masked softmax with an explicit zero for padding, so an all-padding row yields zeros, not NaN.
        scores_bt = jnp.where(mask_bt, scores_bt, jnp.finfo(dtype).min)
        exp_bt = jnp.where(mask_bt, jnp.exp(scores_bt - scores_bt.max(axis=-1, keepdims=True)), 0)
        weights_bt = exp_bt / jnp.maximum(exp_bt.sum(axis=-1, keepdims=True), jnp.finfo(dtype).tiny)
    context_bd = jnp.einsum("bt,btd->bd", weights_bt, hs_btd)
    return context_bd, weights_bt
