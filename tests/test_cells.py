"""Cells against the float64 NumPy reference: one step in float32 and float64, gradients, dtypes, shape errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnnjax import cells
from tests import reference

B, F, H = 2, 3, 4

# (cell name, init options, step options): every variant the package offers.
VARIANTS = [
    ("simple_rnn", {}, {}),
    ("simple_rnn", {}, {"activation": "relu"}),
    ("simple_rnn", {"use_bias": False}, {"activation": "sigmoid"}),
    ("lstm", {}, {}),
    ("lstm", {"unit_forget_bias": False}, {}),
    ("lstm", {"peephole": True}, {}),
    ("gru", {"reset_after": True}, {}),
    ("gru", {"reset_after": False}, {}),
]
IDS = [f"{c}-{'-'.join(f'{k}={v}' for k, v in {**i, **s}.items()) or 'default'}" for c, i, s in VARIANTS]


def _randomize(params, key, dtype=jnp.float32):
    """Replaces every leaf with random values so zero biases cannot hide a wrong bias layout."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [0.5 * jax.random.normal(k, leaf.shape, dtype) for k, leaf in zip(keys, leaves)]
    )


def _setup(key, name, init_opts, dtype=jnp.float32):
    k_p, k_x, k_c = jax.random.split(key, 3)
    fns = cells.CELLS[name]
    params = _randomize(fns.init(k_p, F, H, **init_opts), k_p, dtype)
    x = jax.random.normal(k_x, (B, F), dtype)
    n_states = len(fns.initial_carry(params, ()))
    carry = tuple(jax.random.normal(k, (B, H), dtype) for k in jax.random.split(k_c, n_states))
    return fns, params, x, carry


def _reference_step(name, params, carry, x, step_opts):
    ref_carry, ref_y = zip(*[
        reference.STEPS[name](params, tuple(np.asarray(c[b]) for c in carry), np.asarray(x[b]), **step_opts)
        for b in range(x.shape[0])
    ])
    return tuple(np.stack(s) for s in zip(*ref_carry)), np.stack(ref_y)


@pytest.mark.parametrize("name,init_opts,step_opts", VARIANTS, ids=IDS)
def test_step_matches_reference_float32(key, name, init_opts, step_opts):
    fns, params, x, carry = _setup(key, name, init_opts)
    new_carry, y = fns.step(params, carry, x, **step_opts)
    ref_carry, ref_y = _reference_step(name, params, carry, x, step_opts)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-6)
    for got, want in zip(new_carry, ref_carry):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,init_opts,step_opts", VARIANTS, ids=IDS)
def test_step_matches_reference_float64(key, x64, name, init_opts, step_opts):
    fns, params, x, carry = _setup(key, name, init_opts, jnp.float64)
    new_carry, y = fns.step(params, carry, x, **step_opts)
    assert y.dtype == jnp.float64
    ref_carry, ref_y = _reference_step(name, params, carry, x, step_opts)
    np.testing.assert_allclose(y, ref_y, rtol=1e-13, atol=1e-14)
    for got, want in zip(new_carry, ref_carry):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name,init_opts,step_opts", VARIANTS, ids=IDS)
def test_step_is_recur_of_project(key, name, init_opts, step_opts):
    fns, params, x, carry = _setup(key, name, init_opts)
    direct = fns.step(params, carry, x, **step_opts)
    split = fns.recur(params, carry, fns.project(params, x), **step_opts)
    jax.tree_util.tree_map(np.testing.assert_array_equal, direct, split)


# relu has a kink where finite differences are meaningless; its branch is covered by the value tests.
SMOOTH = [(v, i) for v, i in zip(VARIANTS, IDS) if v[2].get("activation") != "relu"]


@pytest.mark.parametrize("name,init_opts,step_opts", [v for v, _ in SMOOTH], ids=[i for _, i in SMOOTH])
def test_gradients_float64(key, x64, name, init_opts, step_opts):
    fns, params, x, carry = _setup(key, name, init_opts, jnp.float64)

    def loss(params, carry, x):
        new_carry, y = fns.step(params, carry, x, **step_opts)
        return jnp.sum(y**2) + sum(jnp.sum(jnp.sin(c)) for c in new_carry)

    check_grads(loss, (params, carry, x), order=1, modes=("fwd", "rev"), atol=1e-7, rtol=1e-7, eps=1e-6)
    check_grads(loss, (params, carry, x), order=2, modes=("rev",), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name,init_opts,step_opts", VARIANTS, ids=IDS)
def test_dtype_and_shape_preserved(key, dtype, name, init_opts, step_opts):
    fns, params, _, _ = _setup(key, name, init_opts)
    x = jnp.ones((2, 5, F), dtype)  # two leading axes: cells make no batch assumptions
    carry = fns.initial_carry(params, (2, 5), dtype)
    new_carry, y = fns.step(params, carry, x, **step_opts)
    assert y.shape == (2, 5, H) and y.dtype == dtype
    assert all(c.shape == (2, 5, H) and c.dtype == dtype for c in new_carry)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_unbatched_step(key, name):
    fns, params, x, carry = _setup(key, name, {})
    batched_carry, batched_y = fns.step(params, carry, x)
    single_carry, single_y = fns.step(params, tuple(c[1] for c in carry), x[1])
    np.testing.assert_allclose(single_y, batched_y[1], rtol=1e-6)


def test_keras_parameter_layouts(key):
    shapes = lambda p: {k: v.shape for k, v in p.items()}
    assert shapes(cells.init_simple_rnn(key, F, H)) == {"kernel": (F, H), "recurrent_kernel": (H, H), "bias": (H,)}
    assert shapes(cells.init_lstm(key, F, H)) == {"kernel": (F, 4 * H), "recurrent_kernel": (H, 4 * H), "bias": (4 * H,)}
    assert shapes(cells.init_gru(key, F, H)) == {"kernel": (F, 3 * H), "recurrent_kernel": (H, 3 * H), "bias": (2, 3 * H)}
    assert shapes(cells.init_gru(key, F, H, reset_after=False))["bias"] == (3 * H,)
    # 3H(F+H+1) parameters for the original GRU, as the chapter counts them.
    assert sum(v.size for v in cells.init_gru(key, F, H, reset_after=False).values()) == 3 * H * (F + H + 1)


def test_keras_default_initialisers(key):
    p = cells.init_lstm(key, 7, 5)
    np.testing.assert_array_equal(p["bias"], np.r_[np.zeros(5), np.ones(5), np.zeros(10)])  # unit forget bias
    u = np.asarray(p["recurrent_kernel"])  # orthogonal [H, 4H]: orthonormal rows
    np.testing.assert_allclose(u @ u.T, np.eye(5), atol=1e-5)
    limit = np.sqrt(6 / (7 + 20))  # glorot_uniform bound
    assert np.abs(p["kernel"]).max() <= limit and np.abs(p["kernel"]).max() > 0.5 * limit
    assert not np.any(cells.init_gru(key, 7, 5)["bias"])


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_wrong_shapes_raise_value_error(key, name):
    fns, params, x, carry = _setup(key, name, {})
    with pytest.raises(ValueError, match=r"x must have shape \[\.\.\., F=3\].*got \(2, 7\)"):
        fns.step(params, carry, jnp.ones((B, 7)))
    with pytest.raises(ValueError, match=r"carry\[0\] must have shape \(2, 4\).*got \(2, 5\)"):
        fns.step(params, tuple(jnp.ones((B, 5)) for _ in carry), x)
    with pytest.raises(ValueError, match="x must be a floating array"):
        fns.step(params, carry, jnp.ones((B, F), jnp.int32))
    with pytest.raises(ValueError, match="carry must be a tuple of"):
        fns.step(params, carry[0], x)


def test_unknown_cell_is_named():
    with pytest.raises(ValueError, match="unknown cell 'lstmm'"):
        cells.get_cell("lstmm")


def test_gru_without_bias_follows_the_given_variant(key):
    params = cells.init_gru(key, F, H, reset_after=False, use_bias=False)
    params = {k: 0.5 * jax.random.normal(key, v.shape) for k, v in params.items()}
    x = jax.random.normal(key, (B, F))
    carry = (jax.random.normal(jax.random.fold_in(key, 1), (B, H)),)
    (_, y_before) = cells.gru(params, carry, x, reset_after=False)
    (_, y_after) = cells.gru(params, carry, x, reset_after=True)
    ref = np.stack([reference.gru_step(params, (np.asarray(carry[0][b]),), np.asarray(x[b]))[1] for b in range(B)])
    np.testing.assert_allclose(y_before, ref, rtol=1e-5, atol=1e-6)  # the reference reads a missing bias as reset_before
    assert not np.allclose(y_after, ref)
    with pytest.raises(ValueError, match=r"reset_after=False but bias has shape \(2, 12\)"):
        cells.gru(cells.init_gru(key, F, H), carry, x, reset_after=False)
