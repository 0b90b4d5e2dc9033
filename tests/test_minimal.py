"""minGRU and minLSTM against a float64 NumPy reference, and the parallel log-space scan against lax.scan."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnnjax import cells, minimal, minimal_scan

B, T, F, H = 4, 6, 5, 3
NAMES = ["min_gru", "min_lstm"]
GATES = {"min_gru": 2, "min_lstm": 3}
INIT = {"min_gru": minimal.init_min_gru, "min_lstm": minimal.init_min_lstm}
CARRY = {"min_gru": minimal.min_gru_carry, "min_lstm": minimal.min_lstm_carry}
STEP = {"min_gru": minimal.min_gru, "min_lstm": minimal.min_lstm}
SEQUENCE = {"min_gru": minimal_scan.min_gru_sequence, "min_lstm": minimal_scan.min_lstm_sequence}


# ------------------------------------------------------------------------ NumPy float64 reference (the paper)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _g(v):
    return np.where(v >= 0, v + 0.5, _sigmoid(v))


def _ref_step(name, p, h, x):
    """One step for one example: h [H], x [F]; the equations of Feng et al. (2024) written out directly."""
    kernel = np.asarray(p["kernel"], np.float64)
    bias = np.asarray(p["bias"], np.float64) if "bias" in p else np.zeros(kernel.shape[1])
    n = kernel.shape[1] // GATES[name]
    k = np.asarray(x, np.float64) @ kernel + bias
    if name == "min_gru":
        z = _sigmoid(k[:n])
        return (1.0 - z) * h + z * _g(k[n:])
    f, i = _sigmoid(k[:n]), _sigmoid(k[n : 2 * n])
    return f / (f + i) * h + i / (f + i) * _g(k[2 * n :])


def _ref_sequence(name, p, xs, mask, reverse, h0):
    """Batch loop: xs [B, T, F], mask [B, T], h0 [B, H]. Masked steps are skipped and output zero."""
    xs = np.asarray(xs, np.float64)
    h_final, ys = [], np.zeros(xs.shape[:2] + (np.shape(h0)[-1],))
    for b in range(xs.shape[0]):
        h = np.asarray(h0[b], np.float64)
        for t in range(xs.shape[1])[::-1] if reverse else range(xs.shape[1]):
            if mask[b, t]:
                h = _ref_step(name, p, h, xs[b, t])
                ys[b, t] = h
        h_final.append(h)
    return np.stack(h_final), ys


# ------------------------------------------------------------------------------------------------ helpers


def _rng(key):
    """A NumPy generator seeded from the test's key: test data without compiling a sampler for every shape."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)))


def _normal(rng, shape, dtype=jnp.float32):
    return jnp.asarray(rng.standard_normal(shape), dtype)


def _random_params(rng, name, dtype=jnp.float32):
    """Random values in every leaf (a zero bias would hide a wrong bias layout); k reaches both sides of g."""
    width = GATES[name] * H
    return {"kernel": 0.7 * _normal(rng, (F, width), dtype), "bias": 0.7 * _normal(rng, (width,), dtype)}


@partial(jax.jit, static_argnames=("name",))
def _step(name, params, carry, x):
    return STEP[name](params, carry, x)


FORMS = ((True, False), (False, False), (True, True), (False, True))  # (parallel, reverse)
FORWARD = FORMS[:2]


@partial(jax.jit, static_argnames=("name", "forms"))
def _run_forms(name, forms, params, xs, mask, initial_carry):
    return [
        SEQUENCE[name](params, xs, mask, initial_carry=initial_carry, reverse=reverse, parallel=parallel)
        for parallel, reverse in forms
    ]


def _run_all(name, params, xs, mask=None, initial_carry=None, forms=FORMS):
    """The sequence layer in each ``(parallel, reverse)`` form, as one jitted call: one compile per input
    structure rather than per form (or, without jit, per op of the associative scan) keeps the file fast."""
    return _run_forms(name, forms, params, xs, mask, initial_carry)


def _mask(lengths, steps, padding):
    mask = np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
    return mask if padding == "post" else mask[:, ::-1].copy()


def _close(a, b, tol):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=tol, atol=tol), a, b)


# -------------------------------------------------------------------------------------------------- cells


@pytest.mark.parametrize("name", NAMES)
def test_step_matches_reference_float32(key, name):
    rng = _rng(key)
    params = _random_params(rng, name)
    x, h = _normal(rng, (8, F)), _normal(rng, (8, H))  # h of either sign: the step has no sign restriction
    k_h = (np.asarray(x) @ np.asarray(params["kernel"]) + np.asarray(params["bias"]))[:, -H:]
    assert (k_h >= 0).any() and (k_h < 0).any(), "the test must reach both branches of g"
    (new_h,), y = _step(name, params, (h,), x)
    want = np.stack([_ref_step(name, params, np.asarray(h[b], np.float64), x[b]) for b in range(8)])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(new_h, y)


@pytest.mark.parametrize("name", NAMES)
def test_step_matches_reference_float64(key, x64, name):
    rng = _rng(key)
    params = _random_params(rng, name, jnp.float64)
    x, h = _normal(rng, (8, F), jnp.float64), _normal(rng, (8, H), jnp.float64)
    (_,), y = _step(name, params, (h,), x)
    assert y.dtype == jnp.float64
    want = np.stack([_ref_step(name, params, np.asarray(h[b]), x[b]) for b in range(8)])
    np.testing.assert_allclose(y, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_step_is_recur_of_project(key, name):
    rng = _rng(key)
    project, recur = cells.CELLS[name].project, cells.CELLS[name].recur
    params = _random_params(rng, name)
    x, carry = _normal(rng, (B, F)), (_normal(rng, (B, H)),)
    _close(STEP[name](params, carry, x), recur(params, carry, project(params, x)), 0)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_layout_and_initialisers(key, name):
    params = INIT[name](key, 7, 5)
    gates = GATES[name]
    assert {k: v.shape for k, v in params.items()} == {"kernel": (7, gates * 5), "bias": (gates * 5,)}
    assert not np.any(params["bias"])
    limit = np.sqrt(6 / (7 + gates * 5))  # glorot_uniform over the fused [F, G*H] kernel
    assert limit >= np.abs(params["kernel"]).max() > 0.5 * limit
    no_bias = INIT[name](key, 7, 5, use_bias=False)
    assert set(no_bias) == {"kernel"}  # and no recurrent_kernel: H comes from kernel.shape[1] // G
    (h,), _ = STEP[name](no_bias, CARRY[name](no_bias, (2,)), jnp.ones((2, 7)))
    assert h.shape == (2, 5) and CARRY[name](no_bias, (2, 3))[0].shape == (2, 3, 5)


# ------------------------------------------------------------------------------------------- sequences


@pytest.mark.parametrize("start", ["zeros", "random sign"])
@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("name", NAMES)
def test_parallel_and_sequential_match_reference(key, name, padding, start):
    rng = _rng(key)
    params = _random_params(rng, name)
    xs = _normal(rng, (B, T, F))
    lengths = np.r_[T, 0, rng.integers(1, T, B - 2)]  # full, empty and random
    mask = _mask(lengths, T, padding)
    # h_0 of either sign: the parallel form must not rely on the positivity of its log-space part.
    h0 = _normal(rng, (B, H)) if start == "random sign" else jnp.zeros((B, H))
    results = _run_all(name, params, xs, jnp.asarray(mask), (h0,))
    for (parallel, reverse), ((h,), ys) in zip(FORMS, results):
        ref_h, ref_ys = _ref_sequence(name, params, xs, mask, reverse, np.asarray(h0))
        np.testing.assert_allclose(ys, ref_ys, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-5)
        assert not np.any(np.asarray(ys)[~mask]), "padded outputs must be exactly zero"
        np.testing.assert_array_equal(h[1], h0[1])  # an empty sequence keeps its initial state
        if parallel:
            _close(results[FORMS.index((False, reverse))], ((h,), ys), 1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_unmasked_sequence_equals_step_loop(key, name):
    """Without a mask or an initial carry every step is processed from zeros, as the public step does."""
    rng = _rng(key)
    params = _random_params(rng, name)
    xs = _normal(rng, (B, T, F))
    carry, ys_loop = CARRY[name](params, (B,)), []
    for t in range(T):
        carry, y = _step(name, params, carry, xs[:, t])
        ys_loop.append(y)
    for (h,), ys in _run_all(name, params, xs, forms=FORWARD):
        np.testing.assert_allclose(ys, jnp.stack(ys_loop, 1), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h, carry[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_extra_padding_changes_nothing(key, name):
    rng = _rng(key)
    params = _random_params(rng, name)
    xs = _normal(rng, (B, T, F))
    lengths = np.array([2, 5, T, 1])
    h0 = (_normal(rng, (B, H)),)
    padded = jnp.concatenate([xs, 7.0 * jnp.ones((B, 4, F))], axis=1)  # junk beyond each length
    short = _run_all(name, params, xs, jnp.asarray(_mask(lengths, T, "post")), h0)
    long = _run_all(name, params, padded, jnp.asarray(_mask(lengths, T + 4, "post")), h0)
    for (c1, y1), (c2, y2) in zip(short, long):
        np.testing.assert_allclose(y2[:, :T], y1, rtol=1e-6, atol=1e-6)
        assert not np.any(y2[:, T:])
        _close(c1, c2, 1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_long_sequences_stay_finite_and_match(key, name):
    """T = 2000: the cumulative product of the a_t underflows float32 within the first few hundred steps."""
    steps = 2000
    rng = _rng(key)
    params = _random_params(rng, name)
    xs = _normal(rng, (2, steps, F))
    mask = jnp.asarray(_mask([steps, 1500], steps, "pre"))
    init = (_normal(rng, (2, H)),)
    ((h_par,), ys_par), ((h_seq,), ys_seq) = _run_all(name, params, xs, mask, init, forms=FORWARD)
    assert np.all(np.isfinite(ys_par)) and np.all(np.isfinite(h_par))
    np.testing.assert_allclose(ys_par, ys_seq, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_par, h_seq, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------- gradients


def _loss(params, xs, h0, *, name, mask, parallel=True, reverse=False):
    (h,), ys = SEQUENCE[name](params, xs, mask, initial_carry=(h0,), parallel=parallel, reverse=reverse)
    return jnp.sum(ys**2) + jnp.sum(jnp.sin(h))


@pytest.mark.parametrize("name", NAMES)
def test_parallel_gradients_float64(key, x64, name):
    rng = _rng(key)
    params = _random_params(rng, name, jnp.float64)
    xs = _normal(rng, (3, 4, F), jnp.float64)
    h0 = _normal(rng, (3, H), jnp.float64)
    mask = jnp.asarray(_mask([4, 2, 0], 4, "pre"))
    loss = jax.jit(partial(_loss, name=name, mask=mask))
    check_grads(loss, (params, xs, h0), order=1, modes=("rev",), atol=1e-7, rtol=1e-7, eps=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_parallel_gradients_equal_sequential_float32(key, name):
    """Masked steps (left padding, an empty sequence) give finite gradients in float32 too, here reversed."""
    rng = _rng(key)
    params = _random_params(rng, name)
    xs = _normal(rng, (B, T, F))
    h0 = _normal(rng, (B, H))
    mask = jnp.asarray(_mask([T, 0, 3, 5], T, "pre"))
    grad = jax.grad(_loss, argnums=(0, 1, 2))
    options = dict(name=name, mask=mask, reverse=True)
    grads = jax.jit(lambda *args: [grad(*args, parallel=parallel, **options) for parallel in (True, False)])
    par, seq = grads(params, xs, h0)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(par))
    _close(par, seq, 1e-5)
    assert not np.any(par[1][~np.asarray(mask)]), "masked inputs get no gradient"


# ------------------------------------------------------------------------------------ dtypes and errors


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_dtype_and_shape_preserved(key, name, dtype):
    params = _random_params(_rng(key), name)
    x = jnp.ones((B, T, F), dtype)  # two leading axes: the step makes no batch assumptions
    (h,), y = _step(name, params, CARRY[name](params, (B, T), dtype), x)
    assert y.shape == h.shape == (B, T, H) and y.dtype == h.dtype == dtype
    mask = jnp.asarray(_mask([T, 3, 0, 1], T, "post"))
    forms = FORMS if dtype == jnp.float32 else FORWARD  # float32 reuses a program compiled by the tests above
    for (h,), ys in _run_all(name, params, x, mask, CARRY[name](params, (B,), dtype), forms=forms):
        assert ys.shape == (B, T, H) and ys.dtype == dtype
        assert h.shape == (B, H) and h.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shapes_raise_value_error(key, name):
    params = _random_params(_rng(key), name)
    step, sequence = STEP[name], SEQUENCE[name]
    carry = CARRY[name](params, (B,))
    with pytest.raises(ValueError, match=rf"{name}: x must have shape \[\.\.\., F=5\].*got \(4, 7\)"):
        step(params, carry, jnp.ones((B, 7)))
    with pytest.raises(ValueError, match=r"carry\[0\] must have shape \(4, 3\).*got \(4, 2\)"):
        step(params, (jnp.ones((B, 2)),), jnp.ones((B, F)))
    with pytest.raises(ValueError, match="x must be a floating array"):
        step(params, carry, jnp.ones((B, F), jnp.int32))
    with pytest.raises(ValueError, match="carry must be a tuple of 1 array"):
        step(params, carry[0], jnp.ones((B, F)))
    bad_kernel = rf"params\['kernel'\] must have shape \[F, {GATES[name]}\*H\], got \(5, 7\)"
    with pytest.raises(ValueError, match=bad_kernel):
        step({"kernel": jnp.ones((F, 7))}, carry, jnp.ones((B, F)))
    with pytest.raises(ValueError, match=r"xs must have shape \[B, T, F=5\], got \(4, 6\)"):
        sequence(params, jnp.ones((B, T)))
    with pytest.raises(ValueError, match=r"xs must have shape \[B, T, F=5\], got \(4, 6, 2\)"):
        sequence(params, jnp.ones((B, T, 2)))
    with pytest.raises(ValueError, match=r"mask must be bool \[B, T\]=\(4, 6\), got bool \(4, 7\)"):
        sequence(params, jnp.ones((B, T, F)), jnp.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match=r"mask must be bool .* got int32"):
        sequence(params, jnp.ones((B, T, F)), jnp.ones((B, T), jnp.int32))
    with pytest.raises(ValueError, match=r"initial_carry must be 1 array of shape \(4, 3\).*\[\(4, 2\)\]"):
        sequence(params, jnp.ones((B, T, F)), initial_carry=(jnp.zeros((B, 2)),))


@pytest.mark.parametrize("name", NAMES)
def test_empty_time_axis_returns_the_initial_carry(key, name):
    params = _random_params(_rng(key), name)
    h0 = (jnp.full((B, H), -0.5),)
    for parallel in (True, False):
        (h,), ys = SEQUENCE[name](params, jnp.ones((B, 0, F)), jnp.ones((B, 0), bool), initial_carry=h0,
                                  parallel=parallel)
        assert ys.shape == (B, 0, H)
        np.testing.assert_array_equal(h, h0[0])
    with pytest.raises(ValueError, match="unknown cell 'gru'"):
        minimal_scan.run_parallel("gru", jnp.ones((T, B, 3 * H)), None, h0)


def test_parallel_form_runs_only_for_the_stock_definitions(key, monkeypatch):
    """``parallel=True`` solves the stock minGRU's recurrence; a minGRU replaced in CELLS runs as written."""
    from rnnjax import cells, scan

    params = _random_params(_rng(key), "min_gru")
    xs = _normal(_rng(key), (B, T, F))
    assert minimal_scan.parallel_form(minimal.min_gru_recur) == "min_gru"

    def doubled_recur(params, carry, xw):  # the user's minGRU
        (h,), _ = minimal.min_gru_recur(params, carry, xw)
        return (2.0 * h,), 2.0 * h

    assert minimal_scan.parallel_form(doubled_recur) is None
    _, stock = scan.run("min_gru", params, xs, parallel=True)
    monkeypatch.setitem(cells.CELLS, "min_gru", cells.CELLS["min_gru"]._replace(recur=doubled_recur))
    _, parallel = scan.run("min_gru", params, xs, parallel=True)
    _, sequential = scan.run("min_gru", params, xs, parallel=False)
    np.testing.assert_array_equal(parallel, sequential)
    assert not np.allclose(parallel, stock)
