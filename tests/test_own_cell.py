"""A researcher's own cell (a CIFG LSTM registered by experiments/own/cifg.py) works everywhere a stock cell does, and
editing a stock cell changes what ``run`` computes: fast paths belong to a cell's definition, not to its name."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import rnnjax
from rnnjax import cells, kernels, scan
from experiments.own import cifg

B, T, F, H = 3, 6, 5, 4


def _setup(key):
    params = cifg.init_cifg(key, F, H)
    params = {k: v + 0.3 * jax.random.normal(jax.random.fold_in(key, i), v.shape) for i, (k, v) in enumerate(params.items())}
    xs = jax.random.normal(jax.random.fold_in(key, 9), (B, T, F))
    mask = scan.sequence_mask(jnp.array([T, 3, 0]), T)
    return params, xs, mask


def _python_loop(params, xs, mask, reverse=False):
    """The masked recurrence written out step by step over the cell's own step function."""
    carry = cifg.cifg_carry(params, (B,))
    ys = [None] * T
    for t in (reversed(range(T)) if reverse else range(T)):
        new, y = cifg.cifg(params, carry, xs[:, t])
        m = mask[:, t, None]
        carry = tuple(jnp.where(m, n, o) for n, o in zip(new, carry))
        ys[t] = jnp.where(m, y, 0.0)
    return carry, jnp.stack(ys, 1)


def test_run_and_bidirectional_equal_a_python_loop_over_the_step(key):
    params, xs, mask = _setup(key)
    want_carry, want_ys = _python_loop(params, xs, mask)
    carry, ys = jax.jit(lambda p, x, m: rnnjax.run("cifg_lstm", p, x, m))(params, xs, mask)
    np.testing.assert_allclose(ys, want_ys, rtol=1e-6, atol=1e-6)
    for got, want in zip(carry, want_carry, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    back_carry, back_ys = _python_loop(params, xs, mask, reverse=True)
    (_, bw_carry), merged = rnnjax.bidirectional("cifg_lstm", {"forward": params, "backward": params}, xs, mask)
    np.testing.assert_allclose(merged, jnp.concatenate([want_ys, back_ys], -1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bw_carry[0], back_carry[0], rtol=1e-6, atol=1e-6)
    # the same cell given as a record, without registering it, and without its halves
    _, ys_record = rnnjax.run(cifg.CIFG, params, xs, mask)
    _, ys_step_only = rnnjax.run(rnnjax.Cell(cifg.init_cifg, cifg.cifg_carry, cifg.cifg), params, xs, mask)
    np.testing.assert_allclose(ys_record, want_ys, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ys_step_only, want_ys, rtol=1e-6, atol=1e-6)


def test_gradients_and_dropout(key):
    params, xs, mask = _setup(key)
    with jax.enable_x64():
        p64 = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x64 = xs.astype(jnp.float64)
        check_grads(lambda p, x: rnnjax.run("cifg_lstm", p, x, mask)[1].sum(), (p64, x64), order=1, modes=("rev",))
    loss = lambda p: rnnjax.run("cifg_lstm", p, xs, mask, dropout=0.3, recurrent_dropout=0.3, rng=key)[1].sum()
    grads = jax.grad(loss)(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))


def test_classifier_summary_and_training_step(key):
    spec = rnnjax.make_classifier(cell="cifg_lstm", vocab_size=30, embed_dim=F, hidden_size=H, num_layers=2,
                                  bidirectional=True, recurrent_dropout=0.2)
    params = rnnjax.init(spec, key)
    table = rnnjax.summary(spec, params)
    # Keras-free count: each direction of each layer has 3H(F_in + H + 1) parameters
    per_layer = [2 * 3 * H * (F + H + 1), 2 * 3 * H * (2 * H + H + 1)]
    assert f"{30 * F + sum(per_layer) + 2 * H + 1:,}" in table and "cifg_lstm" in table
    tokens = jax.random.randint(key, (B, T), 1, 30)
    grads = jax.grad(lambda p: rnnjax.apply(spec, p, tokens, jnp.array([T, 2, 4]), train=True, rng=key).sum())(params)
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))


def test_a_language_model_with_the_cell(key):
    from rnnjax import lm

    spec = lm.LMSpec(cell="cifg_lstm", vocab_size=20, embed_dim=4, hidden_size=H, num_layers=2)
    params = lm.init_lm(spec, key)
    logits = lm.apply_lm(spec, params, jnp.ones((2, 5), jnp.int32), jnp.array([5, 3]))
    assert logits.shape == (2, 5, 20) and bool(jnp.all(jnp.isfinite(logits)))
    out = lm.generate(spec, params, jnp.ones((1, 2), jnp.int32), key, num_steps=3)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(out) if jnp.issubdtype(v.dtype, jnp.floating))


def test_register_cell_checks_the_record():
    with pytest.raises(ValueError, match="step.x. and recur.project.x.. differ"):
        rnnjax.register_cell("bad_cifg", cifg.CIFG._replace(step=lambda p, c, x: cifg.cifg(p, c, 2 * x)))
    with pytest.raises(ValueError, match="init.key, 3, 4."):
        rnnjax.register_cell("bad_cifg", cifg.CIFG._replace(init=lambda key: {}))
    with pytest.raises(ValueError, match="expected rnnjax.Cell"):
        rnnjax.register_cell("bad_cifg", (cifg.init_cifg, cifg.cifg_carry, cifg.cifg))
    assert "bad_cifg" not in cells.CELLS
    with pytest.raises(ValueError, match="unknown cell 'cifg_lstmm'.*register_cell"):
        rnnjax.run("cifg_lstmm", {}, jnp.ones((B, T, F)))


def _lstm_inputs(key):
    params = cells.init_lstm(key, F, H)
    return params, jax.random.normal(jax.random.fold_in(key, 1), (B, T, F)), scan.sequence_mask(jnp.array([T, 2, 5]), T)


def _scaled_lstm_step(params, carry, x):
    (h, c), _ = cells.lstm(params, carry, x)
    return (0.5 * h, c), 0.5 * h


@pytest.mark.parametrize("how", ["register_step", "replace_step", "register_recur", "monkeypatch_recur"])
def test_editing_the_lstm_changes_run_on_the_default_path(key, monkeypatch, how):
    params, xs, mask = _lstm_inputs(key)
    _, stock = rnnjax.run("lstm", params, xs, mask)
    edited_cell = rnnjax.Cell(cells.init_lstm, cells.lstm_carry, _scaled_lstm_step)
    want_carry, want = rnnjax.run(edited_cell, params, xs, mask)  # the edited LSTM, scanned step by step
    want_grads = jax.grad(lambda p: rnnjax.run(edited_cell, p, xs, mask)[1].sum())(params)
    assert not np.allclose(want, stock)
    stock_recur = cells.lstm_recur

    def scaled_recur(params, carry, xw, **options):
        (h, c), _ = stock_recur(params, carry, xw, **options)
        return (0.5 * h, c), 0.5 * h

    monkeypatch.setitem(cells.CELLS, "lstm", cells.CELLS["lstm"])
    if how == "register_step":
        rnnjax.register_cell("lstm", edited_cell)
    elif how == "replace_step":
        cells.CELLS["lstm"] = cells.CELLS["lstm"]._replace(step=_scaled_lstm_step)
    elif how == "register_recur":
        rnnjax.register_cell("lstm", cells.CELLS["lstm"]._replace(recur=scaled_recur))
    else:
        monkeypatch.setattr(cells, "lstm_recur", scaled_recur)
    carry, edited = rnnjax.run("lstm", params, xs, mask)
    _, edited_bi = rnnjax.bidirectional("lstm", {"forward": params, "backward": params}, xs, mask, merge_mode="none")
    np.testing.assert_allclose(edited, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry[1], want_carry[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(edited_bi[0], want, rtol=1e-5, atol=1e-6)
    grads = jax.grad(lambda p: rnnjax.run("lstm", p, xs, mask)[1].sum())(params)
    for got, expected in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_every_stock_fast_path_is_attached_to_the_definition_it_implements():
    """A cell's source edited without updating its kernels loses the fast path (and warns); update
    kernels.WRITTEN_FOR only after the fused rules and native kernels compute the edited cell."""
    for name, digest in kernels.WRITTEN_FOR.items():
        recur = cells.CELLS[name].recur
        assert kernels.definition_digest(recur) == digest, (
            f"cells.{recur.__name__} (or a helper it calls) changed: bring rnnjax/kernels up to date, then set "
            f"WRITTEN_FOR[{name!r}] = {kernels.definition_digest(recur)!r}"
        )
        assert recur in scan.FAST_PATHS
    assert len(scan.PARALLEL_FORMS) == 2


def test_a_cell_in_its_simplest_form(key):
    """init(key, F, H), initial_carry(params, batch_shape) without a dtype, and a step: nothing more."""

    def init(key, input_size, hidden_size):
        return {"w": jax.random.normal(key, (input_size + hidden_size, hidden_size)) * 0.3}

    def carry(params, batch_shape):
        return (jnp.zeros((*batch_shape, params["w"].shape[1])),)

    def step(params, carry, x):
        h = jnp.tanh(jnp.concatenate([x, carry[0]], -1) @ params["w"])
        return (h,), h

    rnnjax.register_cell("concat_rnn", rnnjax.Cell(init, carry, step))
    try:
        params = init(key, F, H)
        xs = jax.random.normal(key, (B, T, F), jnp.bfloat16)
        (h,), ys = rnnjax.run("concat_rnn", params, xs, scan.sequence_mask(jnp.array([T, 2, 1]), T))
        assert h.dtype == jnp.bfloat16 and h.shape == (B, H) and ys.shape == (B, T, H)  # the carry keeps its dtype
        spec = rnnjax.make_classifier(cell="concat_rnn", vocab_size=20, embed_dim=F, hidden_size=H, bidirectional=True)
        logits = rnnjax.apply(spec, rnnjax.init(spec, key), jnp.ones((B, T), jnp.int32), jnp.array([T, 2, 1]))
        assert logits.shape == (B,)
        with pytest.raises(ValueError, match="takes no recurrent_mask"):
            rnnjax.make_classifier(cell="concat_rnn", vocab_size=20, embed_dim=F, hidden_size=H, recurrent_dropout=0.1)
    finally:
        cells.CELLS.pop("concat_rnn")
