"""The masked scan, reversal and bidirectional layers against the float64 reference loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnnjax import cells, scan
from rnnjax.dropout import dropout_mask
from tests import reference

B, T, F, H = 3, 6, 5, 4
CELL_OPTIONS = [("simple_rnn", {}, {}), ("lstm", {}, {}), ("lstm", {"peephole": True}, {}), ("gru", {}, {}),
                ("gru", {"reset_after": False}, {})]
IDS = ["simple_rnn", "lstm", "lstm-peephole", "gru", "gru-reset_before"]


def _random_params(key, name, init_opts, dtype=jnp.float32):
    params = cells.CELLS[name].init(key, F, H, **init_opts)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(treedef, [0.5 * jax.random.normal(k, l.shape, dtype) for k, l in zip(keys, leaves)])


def _masks(lengths, padding):
    mask = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    return mask if padding == "post" else mask[:, ::-1].copy()


@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name,init_opts,step_opts", CELL_OPTIONS, ids=IDS)
def test_masked_scan_matches_reference(key, name, init_opts, step_opts, reverse, padding):
    k_p, k_x = jax.random.split(key)
    params = _random_params(k_p, name, init_opts)
    xs = jax.random.normal(k_x, (B, T, F))
    lengths = np.array([T, 3, 0])  # full, partial and empty sequences
    mask = _masks(lengths, padding)
    carry, ys = scan.run(name, params, xs, jnp.asarray(mask), reverse=reverse)
    ref_carry, ref_ys = reference.run_batch(name, params, np.asarray(xs), mask, reverse)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-5, atol=1e-5)
    assert not np.any(np.asarray(ys)[~mask]), "padded outputs must be zero"
    for got, want in zip(carry, ref_carry):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,init_opts,step_opts", CELL_OPTIONS, ids=IDS)
def test_masked_scan_float64(key, x64, name, init_opts, step_opts):
    k_p, k_x, k_l = jax.random.split(key, 3)
    params = _random_params(k_p, name, init_opts, jnp.float64)
    xs = jax.random.normal(k_x, (B, T, F), jnp.float64)
    lengths = np.asarray(jax.random.randint(k_l, (B,), 1, T + 1))
    mask = _masks(lengths, "post")
    carry, ys = scan.run(name, params, xs, jnp.asarray(mask))
    ref_carry, ref_ys = reference.run_batch(name, params, np.asarray(xs), mask)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-12, atol=1e-13)
    for got, want in zip(carry, ref_carry):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_scan_equals_step_by_step_loop(key, name):
    """The hoisted-projection scan equals calling the public step T times; the final carry is the state at length-1."""
    k_p, k_x = jax.random.split(key)
    fns = cells.CELLS[name]
    params = _random_params(k_p, name, {})
    xs = jax.random.normal(k_x, (B, T, F))
    lengths = np.array([4, T, 1])
    carry, ys = scan.run(name, params, xs, scan.sequence_mask(jnp.asarray(lengths), T))
    for b in range(B):
        state = fns.initial_carry(params, ())
        for t in range(lengths[b]):
            state, y = fns.step(params, state, xs[b, t])
            np.testing.assert_allclose(ys[b, t], y, rtol=1e-6, atol=1e-6)
        for got, want in zip(carry, state):
            np.testing.assert_allclose(got[b], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_extra_padding_changes_nothing(key, name):
    k_p, k_x = jax.random.split(key)
    params = _random_params(k_p, name, {})
    xs = jax.random.normal(k_x, (B, T, F))
    lengths = jnp.array([2, 5, T])
    padded = jnp.concatenate([xs, 7.0 * jnp.ones((B, 4, F))], axis=1)  # junk beyond each length
    for reverse in (False, True):
        c1, y1 = scan.run(name, params, xs, scan.sequence_mask(lengths, T), reverse=reverse)
        c2, y2 = scan.run(name, params, padded, scan.sequence_mask(lengths, T + 4), reverse=reverse)
        np.testing.assert_allclose(y2[:, :T], y1, rtol=1e-6, atol=1e-6)
        assert not np.any(y2[:, T:])
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), c1, c2)


def test_left_and_right_padding_give_the_same_final_state(key):
    params = _random_params(key, "lstm", {})
    xs = jax.random.normal(key, (1, 4, F))
    right = jnp.concatenate([xs, jnp.zeros((1, 3, F))], 1)
    left = jnp.concatenate([jnp.zeros((1, 3, F)), xs], 1)
    mask_right = jnp.array([[True] * 4 + [False] * 3])
    for reverse in (False, True):
        c_r, y_r = scan.run("lstm", params, right, mask_right, reverse=reverse)
        c_l, y_l = scan.run("lstm", params, left, mask_right[:, ::-1], reverse=reverse)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), c_r, c_l)
        np.testing.assert_allclose(y_r[:, :4], y_l[:, 3:], rtol=1e-6, atol=1e-6)


def test_unmasked_scan_processes_padding(key):
    params = _random_params(key, "gru", {})
    xs = jnp.concatenate([jax.random.normal(key, (B, 3, F)), jnp.zeros((B, 2, F))], 1)
    carry, _ = scan.run("gru", params, xs)
    ref_carry, _ = reference.run_batch("gru", params, np.asarray(xs))
    np.testing.assert_allclose(carry[0], ref_carry[0], rtol=1e-5, atol=1e-6)
    masked, _ = scan.run("gru", params, xs, scan.sequence_mask(jnp.full((B,), 3), 5))
    assert not np.allclose(carry[0], masked[0]), "processing the zero steps must change the state"


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_return_sequences_false_and_initial_carry(key, name):
    k_p, k_x, k_c = jax.random.split(key, 3)
    fns = cells.CELLS[name]
    params = _random_params(k_p, name, {})
    xs = jax.random.normal(k_x, (B, T, F))
    init = tuple(jax.random.normal(k, (B, H)) for k in jax.random.split(k_c, len(fns.initial_carry(params, ()))))
    mask = scan.sequence_mask(jnp.array([T, 2, 4]), T)
    carry, last = scan.run(name, params, xs, mask, initial_carry=init, return_sequences=False)
    ref_carry, _ = zip(*[reference.run_sequence(name, params, np.asarray(xs[b]), np.asarray(mask[b]),
                                                 state=tuple(np.asarray(c[b]) for c in init)) for b in range(B)])
    np.testing.assert_allclose(last, np.stack([s[0] for s in ref_carry]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(last, carry[0])


@pytest.mark.parametrize("unroll", [2, 5, T])
def test_unroll_gives_the_same_result(key, unroll):
    params = _random_params(key, "lstm", {})
    xs = jax.random.normal(key, (B, T, F))
    mask = scan.sequence_mask(jnp.array([T, 2, 4]), T)
    base = scan.run("lstm", params, xs, mask)
    unrolled = scan.run("lstm", params, xs, mask, unroll=unroll)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), base, unrolled)


def test_jit_equals_no_jit(key):
    params = _random_params(key, "gru", {})
    xs = jax.random.normal(key, (B, T, F))
    lengths = jnp.array([T, 3, 1])
    f = lambda p, x, l: scan.bidirectional("gru", p, x, scan.sequence_mask(l, T))
    p2 = {"forward": params, "backward": _random_params(jax.random.fold_in(key, 1), "gru", {})}
    eager = f(p2, xs, lengths)
    jitted = jax.jit(f)(p2, xs, lengths)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), eager, jitted)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", "none"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_matches_reference(key, merge_mode, return_sequences):
    k_f, k_b, k_x = jax.random.split(key, 3)
    params = {"forward": _random_params(k_f, "lstm", {}), "backward": _random_params(k_b, "lstm", {})}
    xs = jax.random.normal(k_x, (B, T, F))
    mask = _masks([T, 4, 2], "post")
    (fw_c, bw_c), out = scan.bidirectional("lstm", params, xs, jnp.asarray(mask), merge_mode=merge_mode,
                                            return_sequences=return_sequences)
    ref_fw_c, ref_fw = reference.run_batch("lstm", params["forward"], np.asarray(xs), mask)
    ref_bw_c, ref_bw = reference.run_batch("lstm", params["backward"], np.asarray(xs), mask, reverse=True)
    if not return_sequences:
        ref_fw, ref_bw = ref_fw_c[0], ref_bw_c[0]
    expected = {"concat": lambda a, b: np.concatenate([a, b], -1), "sum": np.add, "mul": np.multiply,
                "ave": lambda a, b: (a + b) / 2, "none": lambda a, b: (a, b)}[merge_mode](ref_fw, ref_bw)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), out, expected)
    np.testing.assert_allclose(bw_c[1], ref_bw_c[1], rtol=1e-5, atol=1e-5)


def test_dropout_masks_are_per_sequence_and_deterministic(key):
    params = _random_params(key, "simple_rnn", {})
    xs = jnp.ones((B, T, F))
    rng = jax.random.key(7)
    a = scan.run("simple_rnn", params, xs, dropout=0.5, recurrent_dropout=0.5, rng=rng)
    b = scan.run("simple_rnn", params, xs, dropout=0.5, recurrent_dropout=0.5, rng=rng)
    c = scan.run("simple_rnn", params, xs, dropout=0.5, recurrent_dropout=0.5, rng=jax.random.key(8))
    none = scan.run("simple_rnn", params, xs)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    assert not np.allclose(a[1], c[1]) and not np.allclose(a[1], none[1])
    # One input mask per sequence: with recurrent dropout off, dropping x is the same as zeroing kernel rows.
    mask = np.asarray(dropout_mask(jax.random.split(rng)[0], 0.5, (B, 1, F)))
    _, ys = scan.run("simple_rnn", params, xs, dropout=0.5, rng=rng)
    for b in range(B):
        _, ref = reference.run_sequence("simple_rnn", params, np.asarray(xs[b]) * mask[b])
        np.testing.assert_allclose(ys[b], ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_recurrent_dropout_matches_reference(key, name):
    params = _random_params(key, name, {})
    xs = jax.random.normal(key, (B, T, F))
    rng = jax.random.key(3)
    _, ys = scan.run(name, params, xs, recurrent_dropout=0.3, rng=rng)
    rec_mask = np.asarray(dropout_mask(jax.random.split(rng)[1], 0.3, (B, H)), np.float64)
    state_fn = reference.STEPS[name]
    for b in range(B):
        state = tuple(np.zeros(H) for _ in range(reference.N_STATES[name]))
        for t in range(T):
            # Recurrent dropout acts on h where it enters the recurrent matmul: scale the recurrent kernel's rows.
            p = {k: np.asarray(v, np.float64) for k, v in params.items()}
            p_drop = dict(p, recurrent_kernel=rec_mask[b][:, None] * p["recurrent_kernel"])
            state, y = state_fn(p_drop, state, np.asarray(xs[b, t]))
            np.testing.assert_allclose(ys[b, t], y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_scan_gradients_float64(key, x64, name):
    params = _random_params(key, name, {}, jnp.float64)
    xs = jax.random.normal(key, (2, 4, F), jnp.float64)
    mask = scan.sequence_mask(jnp.array([4, 2]), 4)

    def loss(params, xs):
        carry, ys = scan.run(name, params, xs, mask)
        _, back = scan.run(name, params, xs, mask, reverse=True)
        return jnp.sum(ys**2) + jnp.sum(jnp.cos(back)) + jnp.sum(carry[-1])

    check_grads(loss, (params, xs), order=1, modes=("rev",), atol=1e-7, rtol=1e-7, eps=1e-6)


def test_sequence_mask():
    np.testing.assert_array_equal(
        scan.sequence_mask(jnp.array([0, 2, 5]), 4),
        [[False] * 4, [True, True, False, False], [True] * 4],
    )
    with pytest.raises(ValueError, match=r"lengths must be a \[B\] integer array"):
        scan.sequence_mask(jnp.array([1.0, 2.0]), 4)


def test_bad_inputs_raise_value_error(key):
    params = _random_params(key, "lstm", {})
    with pytest.raises(ValueError, match=r"xs must have shape \[B, T, F=5\], got \(3, 6\)"):
        scan.run("lstm", params, jnp.ones((B, T)))
    with pytest.raises(ValueError, match=r"xs must have shape \[B, T, F=5\], got \(3, 6, 2\)"):
        scan.run("lstm", params, jnp.ones((B, T, 2)))
    with pytest.raises(ValueError, match=r"mask must be bool \[B, T\]"):
        scan.run("lstm", params, jnp.ones((B, T, F)), jnp.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match=r"mask must be bool"):
        scan.run("lstm", params, jnp.ones((B, T, F)), jnp.ones((B, T), jnp.int32))
    with pytest.raises(ValueError, match=r"initial_carry must be 2 arrays of shape \(3, 4\)"):
        scan.run("lstm", params, jnp.ones((B, T, F)), initial_carry=(jnp.zeros((B, H)),))
    with pytest.raises(ValueError, match="unknown merge_mode 'max'"):
        scan.bidirectional("lstm", {"forward": params, "backward": params}, jnp.ones((B, T, F)), merge_mode="max")
    with pytest.raises(ValueError, match="dropout rate must be in"):
        scan.run("lstm", params, jnp.ones((B, T, F)), dropout=1.0, rng=key)


def test_fast_paths_run_only_for_the_stock_definition(key, monkeypatch):
    """A fast path is attached to a cell definition's ``recur``: the stock LSTM takes it, in ``run`` and in
    ``bidirectional``; an LSTM replaced in CELLS (same name, its own recur) runs as written."""
    params = _random_params(key, "lstm", {})
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, F))
    mask = scan.sequence_mask(jnp.array([T, 2, 0]), T)
    stock = scan.FAST_PATHS[cells.lstm_recur]
    calls = []
    counted = scan.FastPath(stock.covers, lambda *a, **k: calls.append(1) or stock.run(*a, **k))
    monkeypatch.setitem(scan.FAST_PATHS, cells.lstm_recur, counted)
    scan.run("lstm", params, xs, mask)
    scan.bidirectional("lstm", {"forward": params, "backward": params}, xs, mask)
    assert len(calls) == 2

    def damped_recur(params, carry, xw, **options):  # the user's LSTM: its output and state scaled by 0.5
        (h, c), _ = cells.lstm_recur(params, carry, xw, **options)
        return (0.5 * h, c), 0.5 * h

    monkeypatch.setitem(cells.CELLS, "lstm", cells.CELLS["lstm"]._replace(recur=damped_recur))
    (h, _), ys = scan.run("lstm", params, xs, mask)
    _, ys_bi = scan.bidirectional("lstm", {"forward": params, "backward": params}, xs, mask, merge_mode="none")
    assert len(calls) == 2
    carry, xw = cells.lstm_carry(params, (B,)), cells.CELLS["lstm"].project(params, xs)
    for t in range(T):
        new, y = damped_recur(params, carry, xw[:, t])
        m = mask[:, t, None]
        carry = tuple(jnp.where(m, n, o) for n, o in zip(new, carry))
        np.testing.assert_allclose(ys[:, t], jnp.where(m, y, 0.0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h, carry[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ys_bi[0], ys, rtol=1e-6, atol=1e-7)


def test_the_core_runs_without_fast_paths(key, monkeypatch):
    """Nothing in the core depends on the kernels being attached: without them the plain scan runs."""
    params = _random_params(key, "gru", {})
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, F))
    mask = scan.sequence_mask(jnp.array([T, 2, 0]), T)
    with_fast = scan.bidirectional("gru", {"forward": params, "backward": params}, xs, mask)
    monkeypatch.setattr(scan, "FAST_PATHS", {})
    without = scan.bidirectional("gru", {"forward": params, "backward": params}, xs, mask)
    for got, want in zip(jax.tree.leaves(without), jax.tree.leaves(with_fast), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
