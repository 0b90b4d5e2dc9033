"""Additive attention pooling against the NumPy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnnjax import attention
from tests import reference


def _setup(key, dtype=jnp.float32):
    params = attention.init_attention(key, 5, 3)
    params = dict(params, bias=0.3 * jax.random.normal(key, (3,), dtype))
    params = {k: v.astype(dtype) for k, v in params.items()}
    hs = jax.random.normal(jax.random.fold_in(key, 1), (3, 6, 5), dtype)
    mask = jnp.array([[True] * 6, [True, True, False, False, False, False], [False] * 6])
    return params, hs, mask


def test_matches_reference(key):
    params, hs, mask = _setup(key)
    context, weights = attention.attention_pool(params, hs, mask)
    ref_context, ref_weights = reference.attention_pool(params, np.asarray(hs), np.asarray(mask))
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, ref_context, rtol=1e-5, atol=1e-6)
    assert not np.any(np.asarray(weights)[~np.asarray(mask)])
    assert np.all(np.isfinite(context)) and not np.any(context[2]), "an all-padding row pools to zero"


def test_unmasked_weights_sum_to_one(key):
    params, hs, _ = _setup(key)
    _, weights = attention.attention_pool(params, hs)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


def test_gradients_float64(key, x64):
    params, hs, mask = _setup(key, jnp.float64)
    loss = lambda p, h: jnp.sum(jnp.sin(attention.attention_pool(p, h, mask)[0]))
    check_grads(loss, (params, hs), order=1, modes=("rev",), atol=1e-7, rtol=1e-7, eps=1e-6)


def test_bad_shapes(key):
    params, hs, mask = _setup(key)
    with pytest.raises(ValueError, match=r"hs must have shape \[B, T, D=5\], got \(3, 5\)"):
        attention.attention_pool(params, hs[:, 0])
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 6\)"):
        attention.attention_pool(params, hs, mask[:, :4])
