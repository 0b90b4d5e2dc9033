"""A CIFG LSTM (Greff et al. 2017: coupled input and forget gates, i = 1 - f), registered as ``cifg_lstm``,
and a model written around it by hand: Embedding -> CIFG LSTM over all steps -> max over real steps -> Dense.

Gates f, c, o in Keras' layout: ``kernel [F, 3H]``, ``recurrent_kernel [H, 3H]``, ``bias [3H]``.
"""

import jax
import jax.numpy as jnp

import rnnjax
from rnnjax.model_api import Model


def init_cifg(key, input_size, hidden_size, *, use_bias=True):
    k_in, k_rec = jax.random.split(key)
    params = {
        "kernel": jax.nn.initializers.glorot_uniform()(k_in, (input_size, 3 * hidden_size)),
        "recurrent_kernel": jax.nn.initializers.orthogonal()(k_rec, (hidden_size, 3 * hidden_size)),
    }
    if use_bias:
        params["bias"] = jnp.zeros(3 * hidden_size).at[:hidden_size].set(1.0)  # forget-gate bias 1
    return params


def cifg_carry(params, batch_shape=(), dtype=jnp.float32):
    h = jnp.zeros((*batch_shape, params["recurrent_kernel"].shape[0]), dtype)
    return (h, h)


def cifg_project(params, x):
    xw = x @ params["kernel"].astype(x.dtype)
    return xw + params["bias"].astype(x.dtype).reshape((1,) * (x.ndim - 1) + (-1,)) if "bias" in params else xw


def cifg_recur(params, carry, xw, *, recurrent_mask=None):
    h, c = carry
    h_in = h if recurrent_mask is None else h * recurrent_mask
    f, g, o = jnp.split(xw + h_in @ params["recurrent_kernel"].astype(xw.dtype), 3, axis=-1)
    f = jax.nn.sigmoid(f)
    c = f * c + (1 - f) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def cifg(params, carry, x, **options):
    return cifg_recur(params, carry, cifg_project(params, x), **options)


CIFG = rnnjax.Cell(init_cifg, cifg_carry, cifg, cifg_project, cifg_recur)
rnnjax.register_cell("cifg_lstm", CIFG)


def cifg_maxpool(vocab_size, num_classes, embed_dim=32, hidden_size=32):
    """Embedding -> CIFG LSTM -> max over the real steps -> Dense(1) (two classes) or Dense(C)."""
    outputs = 1 if num_classes == 2 else num_classes

    def init(key):
        k_emb, k_cell, k_out = jax.random.split(key, 3)
        return {
            "embedding": jax.random.uniform(k_emb, (vocab_size, embed_dim), minval=-0.05, maxval=0.05),
            "cifg": init_cifg(k_cell, embed_dim, hidden_size),
            "dense": {"kernel": jax.nn.initializers.glorot_uniform()(k_out, (hidden_size, outputs)),
                      "bias": jnp.zeros((1, outputs))},
        }

    def apply(params, batch, *, rng=None, train=False):
        tokens, lengths = batch["tokens"], batch["lengths"]
        mask = rnnjax.sequence_mask(lengths, tokens.shape[1])
        x = jnp.take(params["embedding"], tokens, axis=0)
        _, ys = rnnjax.run("cifg_lstm", params["cifg"], x, mask)
        pooled = jnp.max(jnp.where(mask[..., None], ys, -1e9), axis=1)
        pooled = jnp.where(lengths[:, None] > 0, pooled, 0.0)  # an empty (padding) row pools to zeros
        logits = pooled @ params["dense"]["kernel"] + params["dense"]["bias"]
        return logits[:, 0] if outputs == 1 else logits

    return Model(init, apply)
