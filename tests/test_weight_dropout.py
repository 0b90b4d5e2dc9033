"""Weight dropout (DropConnect on recurrent_kernel, AWD-LSTM): the dropped matrix, its gradient, every scan path."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import layers, models, scan
from rnnjax.dropout import drop_recurrent_kernel
from rnnjax.kernels import native, native_calls
from rnnjax.layers import Dense, Embedding, Recurrent
from rnnjax.models import ModelSpec
from tests import reference

B, T, F, H = 3, 5, 2, 4
RATE = 0.4


def _inputs(key):
    x = jax.random.normal(key, (B, T, F))
    mask = scan.sequence_mask(jnp.array([5, 2, 0]), T)
    return x, mask


def _params(layer, key):
    return layers.init_layer(layer, key, F)


def _directions(params, bidirectional):
    return [params["forward"], params["backward"]] if bidirectional else [params]


def _assert_dropped(effective, kernel, rate):
    """effective == keep * kernel / (1 - rate) with keep in {0, 1}; returns keep."""
    effective, kernel = np.asarray(effective, np.float64), np.asarray(kernel, np.float64)
    keep = effective != 0
    np.testing.assert_allclose(effective, np.where(keep, kernel / (1 - rate), 0.0), rtol=1e-6)
    assert 0 < keep.mean() < 1
    return keep


def test_drop_recurrent_kernel_scales_kept_entries_and_leaves_the_rest(key):
    params = {"kernel": jnp.ones((F, 4 * H)), "recurrent_kernel": jax.random.normal(key, (64, 256)),
              "bias": jnp.ones((4 * H,))}
    dropped = drop_recurrent_kernel(jax.random.fold_in(key, 1), params, RATE)
    keep = _assert_dropped(dropped["recurrent_kernel"], params["recurrent_kernel"], RATE)
    assert abs(keep.mean() - (1 - RATE)) < 0.02  # 16384 entries: the keep fraction is 1 - rate
    assert dropped["kernel"] is params["kernel"] and dropped["bias"] is params["bias"]
    with pytest.raises(ValueError, match="recurrent_kernel"):
        drop_recurrent_kernel(key, {"kernel": params["kernel"]}, RATE)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["one", "bi"])
def test_train_outputs_equal_the_float64_loop_on_the_dropped_kernel(key, cell, bidirectional):
    layer = Recurrent(cell, H, return_sequences=True, bidirectional=bidirectional, weight_dropout=RATE)
    params = _params(layer, key)
    x, mask = _inputs(jax.random.fold_in(key, 1))
    rng = jax.random.fold_in(key, 2)
    effective = layers.recurrent_params(layer, params, rng)
    keeps = []
    for dropped, p in zip(_directions(effective, bidirectional), _directions(params, bidirectional)):
        keeps.append(_assert_dropped(dropped["recurrent_kernel"], p["recurrent_kernel"], RATE))
        np.testing.assert_array_equal(dropped["kernel"], p["kernel"])
    if bidirectional:
        assert (keeps[0] != keeps[1]).any()  # each direction draws its own mask

    got = layers.apply_recurrent(layer, params, x, mask, rng)
    x64, mask_np = np.asarray(x, np.float64), np.asarray(mask)
    if bidirectional:
        _, fy = reference.run_batch(cell, effective["forward"], x64, mask_np)
        _, by = reference.run_batch(cell, effective["backward"], x64, mask_np, reverse=True)
        want = np.concatenate([fy, by], -1)
    else:
        _, want = reference.run_batch(cell, effective, x64, mask_np)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, layers.apply_recurrent(layer, params, x, mask, None))


def test_rate_zero_is_bit_identical_and_inference_ignores_it(key):
    layer = Recurrent("lstm", H, return_sequences=True, dropout=0.3, recurrent_dropout=0.2)
    params = _params(layer, key)
    x, mask = _inputs(jax.random.fold_in(key, 1))
    rng = jax.random.fold_in(key, 2)
    assert layers.recurrent_params(layer, params, rng) is params
    direct = scan.run("lstm", params, x, mask, dropout=0.3, recurrent_dropout=0.2, rng=rng)[1]
    np.testing.assert_array_equal(layers.apply_recurrent(layer, params, x, mask, rng), direct)

    dropped = Recurrent("lstm", H, return_sequences=True, weight_dropout=0.5)
    assert layers.recurrent_params(dropped, params, None) is params
    np.testing.assert_array_equal(
        layers.apply_recurrent(dropped, params, x, mask, None),
        scan.run("lstm", params, x, mask)[1],
    )


def test_the_input_and_recurrent_dropout_masks_are_unchanged_by_weight_dropout(key):
    """With weight dropout, the layer equals the same layer without it run on the dropped params, same rng."""
    layer = Recurrent("gru", H, return_sequences=True, dropout=0.3, recurrent_dropout=0.2, weight_dropout=RATE)
    params = _params(layer, key)
    x, mask = _inputs(jax.random.fold_in(key, 1))
    rng = jax.random.fold_in(key, 2)
    without = Recurrent("gru", H, return_sequences=True, dropout=0.3, recurrent_dropout=0.2)
    effective = layers.recurrent_params(layer, params, rng)
    np.testing.assert_array_equal(
        layers.apply_recurrent(layer, params, x, mask, rng),
        layers.apply_recurrent(without, effective, x, mask, rng),
    )


@pytest.mark.parametrize("bidirectional", [False, True], ids=["lstm", "bilstm"])
def test_gradient_is_zero_exactly_at_dropped_entries(key, bidirectional):
    layer = Recurrent("lstm", H, bidirectional=bidirectional, weight_dropout=RATE)
    params = _params(layer, key)
    x, mask = _inputs(jax.random.fold_in(key, 1))
    rng = jax.random.fold_in(key, 2)
    loss = lambda p: jnp.sum(jnp.sin(3 * layers.apply_recurrent(layer, p, x, mask, rng)))
    grads = jax.grad(loss)(params)
    effective = layers.recurrent_params(layer, params, rng)
    for grad, dropped in zip(_directions(grads, bidirectional), _directions(effective, bidirectional)):
        grad = np.asarray(grad["recurrent_kernel"])
        keep = np.asarray(dropped["recurrent_kernel"]) != 0
        np.testing.assert_array_equal(grad[~keep], 0.0)
        assert (grad[keep] != 0).mean() > 0.9


def _model(bidirectional, unroll=1):
    return models.make_classifier(cell="lstm", vocab_size=20, embed_dim=3, hidden_size=H, weight_dropout=RATE,
                                  bidirectional=bidirectional, unroll=unroll)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["lstm", "bilstm"])
def test_native_fused_and_plain_scans_agree_with_weight_dropout(key, monkeypatch, bidirectional):
    """unroll=1 takes the native kernels (when built) or the fused VJP; unroll=2 the plain scan."""
    spec = _model(bidirectional)
    params = models.init_model(spec, key)
    tokens = jax.random.randint(key, (7, T), 1, 20)  # more tokens than rows: the embedding is folded in
    calls = []
    real = native_calls.run_native
    monkeypatch.setattr(native_calls, "run_native", lambda *a: calls.append(1) or real(*a))
    lengths = jnp.array([5, 4, 3, 2, 1, 0, 5])
    rng = jax.random.fold_in(key, 1)

    def value_and_grad(model):
        loss = lambda p: jnp.sum(jnp.sin(3 * models.apply_model(model, p, tokens, lengths, train=True, rng=rng)))
        return jax.value_and_grad(loss)(params)

    results = [value_and_grad(spec), value_and_grad(_model(bidirectional, unroll=2))]
    assert bool(calls) == native.available()
    if native.available():
        native.configure(enabled=False)
        try:
            results.append(value_and_grad(spec))
        finally:
            native.configure(enabled=True)
    want_value, want_grads = results[1]
    eval_value = jnp.sum(jnp.sin(3 * models.apply_model(spec, params, tokens, lengths)))
    assert not np.isclose(want_value, eval_value)  # the mask is on
    for value, grads in results:
        np.testing.assert_allclose(value, want_value, rtol=1e-5)
        for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)


def test_model_wiring_checks_and_model_files(key):
    spec = models.make_classifier(cell="gru", vocab_size=11, embed_dim=3, hidden_size=H, num_layers=2,
                                  weight_dropout=0.25)
    assert [layer.weight_dropout for layer in spec.layers if isinstance(layer, Recurrent)] == [0.25, 0.25]
    params = models.init_model(spec, key)
    tokens = jax.random.randint(key, (2, T), 1, 11)
    with pytest.raises(ValueError, match="rng"):
        models.apply_model(spec, params, tokens, train=True)
    plain = models.make_classifier(cell="gru", vocab_size=11, embed_dim=3, hidden_size=H, num_layers=2)
    np.testing.assert_array_equal(models.apply_model(spec, params, tokens), models.apply_model(plain, params, tokens))

    assert models.spec_from_dict(models.spec_to_dict(spec)) == spec
    old = models.spec_to_dict(plain)
    for entry in old["layers"]:
        entry.pop("weight_dropout", None)  # a model.json written before the field existed
    assert models.spec_from_dict(old) == plain

    for cell in ("min_gru", "min_lstm"):
        with pytest.raises(ValueError, match=rf"layer 1 \(Recurrent\): cell '{cell}' has no recurrent_kernel"):
            ModelSpec((Embedding(11, 3), Recurrent(cell, H, weight_dropout=0.1), Dense(1)))
    with pytest.raises(ValueError, match="weight_dropout must be in"):
        ModelSpec((Embedding(11, 3), Recurrent("lstm", H, weight_dropout=1.0), Dense(1)))


def test_keras_export_ignores_weight_dropout(key):
    pytest.importorskip("keras")
    from rnnjax.keras_export import export_keras

    spec = models.make_classifier(cell="lstm", vocab_size=11, embed_dim=3, hidden_size=H, weight_dropout=0.5)
    params = models.init_model(spec, key)
    tokens = np.asarray(jax.random.randint(key, (2, T), 1, 11), np.int32)
    with jax.numpy_rank_promotion("allow"):
        keras_model = export_keras(spec, params)
        predicted = np.asarray(keras_model(tokens))[:, 0]
    np.testing.assert_allclose(predicted, jax.nn.sigmoid(models.apply_model(spec, params, tokens)), rtol=1e-5)


def test_a_language_model_drops_each_recurrent_kernel_once_per_batch(key):
    from rnnjax import dropout as dropout_module
    from rnnjax import lm

    spec = lm.LMSpec(cell="lstm", vocab_size=13, embed_dim=4, hidden_size=5, num_layers=2, weight_dropout=0.4)
    plain = dataclasses.replace(spec, weight_dropout=0.0)
    params = lm.init_lm(spec, key)
    tokens = jnp.array([[1, 5, 7, 2, 0], [3, 3, 9, 11, 4]], jnp.int32)
    lengths = jnp.array([4, 5])
    rng = jax.random.key(5)
    dropped = dict(params)
    for index, name in enumerate(lm.recurrent_names(spec)):  # layer i's key: fold_in(fold_in(rng, 1 + i), 2)
        layer_key = jax.random.fold_in(jax.random.fold_in(rng, 1 + index), 2)
        dropped[name] = dropout_module.drop_recurrent_kernel(layer_key, params[name], 0.4)
    got = lm.apply_lm(spec, params, tokens, lengths, train=True, rng=rng)
    np.testing.assert_allclose(got, lm.apply_lm(plain, dropped, tokens, lengths, train=True, rng=rng), rtol=1e-6)
    assert not np.allclose(got, lm.apply_lm(plain, params, tokens, lengths, train=True, rng=rng))
    np.testing.assert_array_equal(lm.apply_lm(spec, params, tokens, lengths), lm.apply_lm(plain, params, tokens, lengths))
    with pytest.raises(ValueError, match="weight_dropout must be in"):
        dataclasses.replace(spec, weight_dropout=1.0)
