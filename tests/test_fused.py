"""The hand-written backward passes are the same functions as the plain scan differentiated by autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import cells, scan
from rnnjax.kernels import fused

B, T, F, H = 3, 6, 5, 4
VARIANTS = [
    ("lstm", {}, {}),
    ("gru", {}, {}),
    ("gru", {"reset_after": False}, {}),
    ("gru", {"use_bias": False}, {}),
    ("simple_rnn", {}, {}),
    ("simple_rnn", {}, {"activation": "relu"}),
    ("simple_rnn", {}, {"activation": "sigmoid"}),
    ("simple_rnn", {}, {"activation": "linear"}),
]
IDS = ["lstm", "gru", "gru-reset_before", "gru-no_bias", "simple_rnn", "simple_rnn-relu", "simple_rnn-sigmoid",
       "simple_rnn-linear"]


def _setup(key, name, init_opts, dtype):
    params = cells.CELLS[name].init(key, F, H, **init_opts)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    params = jax.tree_util.tree_unflatten(treedef, [0.5 * jax.random.normal(k, l.shape, dtype) for k, l in zip(keys, leaves)])
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, F), dtype)
    return params, xs


def _loss(name, opts, mask, reverse, fused_path):
    def loss(params, xs, h0):
        n_states = len(cells.CELLS[name].initial_carry(params, ()))
        init = (h0,) + tuple(jnp.cos(h0) for _ in range(n_states - 1))
        carry, ys = scan.run(name, params, xs, mask, reverse=reverse, initial_carry=init, fused=fused_path, **opts)
        return jnp.sum(jnp.sin(3 * ys)) + sum(jnp.sum(c * c) for c in carry)

    return loss


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name,init_opts,opts", VARIANTS, ids=IDS)
def test_fused_gradients_equal_autodiff_float64(key, x64, name, init_opts, opts, reverse, masked):
    params, xs = _setup(key, name, init_opts, jnp.float64)
    assert fused.supports(name, params, opts)
    mask = scan.sequence_mask(jnp.array([T, 3, 0]), T) if masked else None
    h0 = 0.3 * jax.random.normal(key, (B, H), jnp.float64)
    args = (params, xs, h0)
    v_fast, g_fast = jax.value_and_grad(_loss(name, opts, mask, reverse, True), (0, 1, 2))(*args)
    v_ref, g_ref = jax.value_and_grad(_loss(name, opts, mask, reverse, False), (0, 1, 2))(*args)
    np.testing.assert_allclose(v_fast, v_ref, rtol=1e-13)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12), g_fast, g_ref)


@pytest.mark.parametrize("name,init_opts,opts", VARIANTS[:3], ids=IDS[:3])
def test_fused_gradients_equal_autodiff_float32(key, name, init_opts, opts):
    params, xs = _setup(key, name, init_opts, jnp.float32)
    lengths = jax.random.randint(key, (B,), 0, T + 1)
    mask = scan.sequence_mask(lengths, T)
    h0 = jnp.zeros((B, H))
    g_fast = jax.grad(_loss(name, opts, mask, False, True), (0, 1))(params, xs, h0)
    g_ref = jax.grad(_loss(name, opts, mask, False, False), (0, 1))(params, xs, h0)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5), g_fast, g_ref)


def test_fused_bfloat16_matches_float32(key):
    params, xs = _setup(key, "lstm", {}, jnp.float32)
    loss = lambda p, x: jnp.sum(scan.run("lstm", p, x)[1].astype(jnp.float32))
    g32 = jax.grad(loss)(params, xs)
    g16 = jax.grad(loss)(params, xs.astype(jnp.bfloat16))
    assert scan.run("lstm", params, xs.astype(jnp.bfloat16))[1].dtype == jnp.bfloat16
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0.1, atol=0.1), g16, g32)


def test_paths_not_covered_fall_back(key):
    peephole = cells.init_lstm(key, F, H, peephole=True)
    assert not fused.supports("lstm", peephole, {})
    assert not fused.supports("gru", cells.init_gru(key, F, H), {"recurrent_mask": jnp.ones((B, H))})


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("name,init_opts,opts", VARIANTS[:5], ids=IDS[:5])
def test_bidirectional_in_one_scan_equals_two_scans_float64(key, x64, name, init_opts, opts, return_sequences):
    k_f, k_b = jax.random.split(key)
    params = {"forward": _setup(k_f, name, init_opts, jnp.float64)[0], "backward": _setup(k_b, name, init_opts, jnp.float64)[0]}
    xs = jax.random.normal(key, (B, T, F), jnp.float64)
    mask = scan.sequence_mask(jnp.array([T, 2, 4]), T)

    def loss(params, xs, fused_path):
        (fc, bc), out = scan.bidirectional(name, params, xs, mask, return_sequences=return_sequences,
                                           fused=fused_path, **opts)
        return jnp.sum(jnp.sin(3 * out)) + jnp.sum(fc[0] * bc[-1])

    v_one, g_one = jax.value_and_grad(loss, (0, 1))(params, xs, True)
    v_two, g_two = jax.value_and_grad(loss, (0, 1))(params, xs, False)
    np.testing.assert_allclose(v_one, v_two, rtol=1e-13)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12), g_one, g_two)


@pytest.mark.parametrize("name,init_opts,opts", VARIANTS[:3], ids=IDS[:3])
def test_fused_without_sequence_outputs_float64(key, x64, name, init_opts, opts):
    params, xs = _setup(key, name, init_opts, jnp.float64)
    mask = scan.sequence_mask(jnp.array([T, 3, 1]), T)

    def loss(params, xs, fused_path):
        carry, last = scan.run(name, params, xs, mask, return_sequences=False, fused=fused_path, **opts)
        return jnp.sum(jnp.sin(3 * last)) + jnp.sum(carry[-1] ** 2)

    g_fast = jax.grad(loss, (0, 1))(params, xs, True)
    g_ref = jax.grad(loss, (0, 1))(params, xs, False)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12), g_fast, g_ref)
