"""Keras' masking semantics: ``zero_output_for_mask=False`` (a masked step repeats the previous output) and
the global pooling layers, against Keras 3 with the same weights and against float64 references.

Keras holds the previous output at a masked step unless ``zero_output_for_mask`` is True (which its
Bidirectional sets on both layers when they return sequences). rnnjax computes the held outputs from the
zero-output sequence after the scan (``scan.hold_outputs``), so every path is checked: the plain scan, the
fused backward passes, the native kernels, the parallel minGRU/minLSTM scans and both bidirectional paths.
Keras' GlobalAveragePooling1D averages over real steps; its GlobalMaxPooling1D takes no mask and maximises
over every step, padding included, so the held outputs below it matter.

The tests that need Keras skip without it; the path and gradient checks run without it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import rnnjax
from rnnjax import keras_export, keras_io, layers, scan
from rnnjax.cells import CELLS
from tests import reference

B, T, F, H, V = 4, 6, 5, 4, 11
TOL = 1e-6
# Rows: a partial sequence, one with a padding id between real ones, a full one and an empty one.
TOKENS = {
    "post": np.array([[3, 1, 4, 1, 0, 0], [2, 0, 7, 0, 0, 0], [6, 5, 3, 5, 8, 9], [0] * 6], np.int32),
    "pre": np.array([[0, 0, 3, 1, 4, 1], [0, 0, 0, 2, 0, 7], [6, 5, 3, 5, 8, 9], [0] * 6], np.int32),
}
# For the tests without Keras: post-padded, post-padded with an inner padding id, pre-padded with one, full.
MIXED_MASK = np.stack([TOKENS["post"][0], TOKENS["post"][1], TOKENS["pre"][1], TOKENS["pre"][2]]) != 0
# Keras GlobalMaxPooling1D takes no mask and warns that it drops the one it is given.
pytestmark = pytest.mark.filterwarnings("ignore:.*GlobalMaxPooling1D.*mask:UserWarning")


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


@pytest.fixture
def rng(request) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, request.node.name)))


@pytest.fixture
def eager():
    """Op by op: the same arithmetic without compiling one scan per tiny case."""
    with jax.disable_jit():
        yield


def _keras_ops():
    return jax.numpy_rank_promotion("allow")  # Keras' own code broadcasts implicitly


def _normal(rng, shape, scale=0.5) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _cell_params(rng, cell: str, input_size: int = F, **init_options):
    shapes = jax.eval_shape(lambda k: CELLS[cell].init(k, input_size, H, **init_options), jax.random.key(0))
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(_normal(rng, leaf.shape)), shapes)


def _cell_weights(params) -> list[np.ndarray]:
    names = ("kernel", "recurrent_kernel", "bias") if "bias" in params else ("kernel", "recurrent_kernel")
    return [np.asarray(params[name]) for name in names]


def _hold_np(ys, mask, reverse=False) -> np.ndarray:
    """Keras' held outputs from zero-output ones, by a loop in processing order (reverse: last step first)."""
    ys, mask = np.array(ys, np.float64), np.asarray(mask, bool)
    order = range(ys.shape[1] - 1, -1, -1) if reverse else range(ys.shape[1])
    for b in range(ys.shape[0]):
        previous = np.zeros(ys.shape[-1])
        for t in order:
            previous = ys[b, t] if mask[b, t] else previous
            ys[b, t] = previous
    return ys


# (rnnjax cell, Recurrent/init options, Keras layer factory)
CASES = {
    "simple_rnn": ("simple_rnn", {}, lambda L, **kw: L.SimpleRNN(H, **kw)),
    "lstm": ("lstm", {}, lambda L, **kw: L.LSTM(H, **kw)),
    "gru": ("gru", {}, lambda L, **kw: L.GRU(H, **kw)),
    "gru-reset_before": ("gru", {"reset_after": False}, lambda L, **kw: L.GRU(H, reset_after=False, **kw)),
}
# Overwritten anyway; Keras' random initialisers compile slowly.
_ZEROS = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}


def _keras_sequences(keras, embeddings, make_layer, weights, tokens) -> np.ndarray:
    """Keras' outputs of ``Embedding(mask_zero=True) -> make_layer()`` with the given weights."""
    L = keras.layers
    with _keras_ops():
        inputs = keras.Input((T,), dtype="int32")
        embedding = L.Embedding(V, F, mask_zero=True, embeddings_initializer="zeros")
        layer = make_layer()
        model = keras.Model(inputs, layer(embedding(inputs)))
        embedding.set_weights([embeddings])
        layer.set_weights(weights)
        return np.asarray(model(tokens))


# ------------------------------------------------------------------------------------ layers against Keras


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "go_backwards"])
@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.usefixtures("eager")
def test_held_outputs_match_keras_layer(keras, rng, case, padding, go_backwards):
    """A plain Keras layer under ``Embedding(mask_zero=True)`` (``zero_output_for_mask`` False, its default):
    every step, padding included, on the fast path (``apply_recurrent``) and the plain scan."""
    cell, options, factory = CASES[case]
    params = _cell_params(rng, cell, **options)
    embeddings = _normal(rng, (V, F), 1.0)
    tokens = TOKENS[padding]
    make_layer = lambda: factory(keras.layers, **_ZEROS, return_sequences=True, go_backwards=go_backwards)
    expected = _keras_sequences(keras, embeddings, make_layer, _cell_weights(params), tokens)
    spec = rnnjax.Recurrent(cell, H, return_sequences=True, go_backwards=go_backwards,
                            zero_output_for_mask=False, **options)
    xs, mask = jnp.asarray(embeddings[tokens]), jnp.asarray(tokens != 0)
    outputs = np.asarray(layers.apply_recurrent(spec, params, xs, mask, None))
    np.testing.assert_allclose(outputs, expected, rtol=TOL, atol=TOL)
    _, plain = scan.run(cell, params, xs, mask, reverse=go_backwards, fused=False, zero_output_for_mask=False,
                        **options)
    plain = np.asarray(plain)[:, ::-1] if go_backwards else np.asarray(plain)  # Keras' processing order
    np.testing.assert_allclose(plain, expected, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("zero_output", [True, False], ids=["keras_default", "held"])
@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("case", ["lstm", "gru"])
@pytest.mark.usefixtures("eager")
def test_bidirectional_matches_keras(keras, rng, case, padding, zero_output):
    """Keras' Bidirectional sets zero_output_for_mask=True on both layers; set back to False on them, its
    backward layer holds outputs in its own (reversed) processing order before they are flipped back."""
    cell, _, factory = CASES[case]
    params = {"forward": _cell_params(rng, cell), "backward": _cell_params(rng, cell)}
    embeddings = _normal(rng, (V, F), 1.0)
    tokens = TOKENS[padding]

    def make_layer():
        layer = keras.layers.Bidirectional(factory(keras.layers, **_ZEROS, return_sequences=True))
        assert layer.forward_layer.zero_output_for_mask and layer.backward_layer.zero_output_for_mask
        layer.forward_layer.zero_output_for_mask = layer.backward_layer.zero_output_for_mask = zero_output
        return layer

    weights = _cell_weights(params["forward"]) + _cell_weights(params["backward"])
    expected = _keras_sequences(keras, embeddings, make_layer, weights, tokens)
    spec = rnnjax.Recurrent(cell, H, return_sequences=True, bidirectional=True,
                            zero_output_for_mask=zero_output)
    xs, mask = jnp.asarray(embeddings[tokens]), jnp.asarray(tokens != 0)
    outputs = layers.apply_recurrent(spec, params, xs, mask, None)
    np.testing.assert_allclose(outputs, expected, rtol=TOL, atol=TOL)
    _, plain = scan.bidirectional(cell, params, xs, mask, fused=False, zero_output_for_mask=zero_output)
    np.testing.assert_allclose(plain, expected, rtol=TOL, atol=TOL)


# ---------------------------------------------------------------------------- every path, no Keras needed


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru", "min_gru", "min_lstm"])
def test_held_outputs_on_every_path(key, cell, reverse):
    """Held outputs equal a loop over the zero-output ones (the float64 reference's for the stock cells) on
    the fused/native, plain and (minGRU/minLSTM) parallel paths, and the carry is unchanged."""
    params = jax.tree_util.tree_map(lambda a: 0.5 * jax.random.normal(key, a.shape),
                                    CELLS[cell].init(key, F, H))
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, F))
    mask = jnp.asarray(MIXED_MASK)
    paths = [{"fused": True}, {"fused": False}] + ([{"parallel": True}] if cell.startswith("min") else [])
    for path in paths:
        options, label = {"reverse": reverse, **path}, str(path)
        carry, zeros = scan.run(cell, params, xs, mask, **options)
        held_carry, held = scan.run(cell, params, xs, mask, zero_output_for_mask=False, **options)
        np.testing.assert_allclose(held, _hold_np(zeros, mask, reverse), rtol=1e-6, atol=1e-7, err_msg=label)
        jax.tree_util.tree_map(np.testing.assert_array_equal, held_carry, carry)
        if cell in reference.STEPS:
            _, ref = reference.run_batch(cell, params, np.asarray(xs), np.asarray(mask), reverse=reverse)
            expected = _hold_np(ref, mask, reverse)
            np.testing.assert_allclose(held, expected, rtol=1e-5, atol=1e-6, err_msg=label)
        options.update(return_sequences=False, zero_output_for_mask=False)
        _, last = scan.run(cell, params, xs, mask, **options)
        np.testing.assert_array_equal(last, carry[0])  # the option changes only per-step outputs


def _loop_outputs(cell, params, xs, mask, reverse):
    """Held outputs by a Python loop over the cell's step (no scan, no ``hold``), for autodiff."""
    step = CELLS[cell].step
    carry = tuple(jnp.zeros((xs.shape[0], H), xs.dtype) for _ in CELLS[cell].initial_carry(params, (1,)))
    previous, outputs = jnp.zeros((xs.shape[0], H), xs.dtype), [None] * xs.shape[1]
    for t in (range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1])):
        new_carry, y = step(params, carry, xs[:, t])
        m = mask[:, t, None]
        carry = tuple(jnp.where(m, n, o) for n, o in zip(new_carry, carry))
        previous = outputs[t] = jnp.where(m, y, previous)
    return jnp.stack(outputs, 1)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("cell,reverse", [("simple_rnn", False), ("lstm", True), ("gru", False)])
def test_held_output_gradients_match_a_loop_in_float64(x64, key, cell, reverse, fused):
    """Gradients of a weighted sum of held outputs (params and inputs) equal those of a Python loop."""
    params = jax.tree_util.tree_map(lambda a: 0.5 * jax.random.normal(key, a.shape, jnp.float64),
                                    CELLS[cell].init(key, F, H))
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, F), jnp.float64)
    weights = jax.random.normal(jax.random.fold_in(key, 2), (B, T, H), jnp.float64)
    mask = jnp.asarray(MIXED_MASK)

    def loss(p, x):
        _, ys = scan.run(cell, p, x, mask, reverse=reverse, fused=fused, zero_output_for_mask=False)
        return jnp.sum(weights * ys)

    ref_loss = lambda p, x: jnp.sum(weights * _loop_outputs(cell, p, x, mask, reverse))
    got, want = (jax.jit(jax.value_and_grad(f, (0, 1)))(params, xs) for f in (loss, ref_loss))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got, want)
    if cell == "lstm":
        check_grads(loss, (params, xs), order=1, modes=["rev"])


@pytest.mark.parametrize("bidirectional", [False, True], ids=["single", "bidirectional"])
def test_fast_path_gradients_of_held_outputs_in_float32(key, bidirectional):
    """float32 (native kernels where built): the gradients of the plain scan differentiated by autodiff."""
    cell_params = lambda k: jax.tree_util.tree_map(lambda a: 0.5 * jax.random.normal(k, a.shape),
                                                   CELLS["gru"].init(k, F, H))
    k1, k2 = jax.random.split(key)
    params = {"forward": cell_params(k1), "backward": cell_params(k2)} if bidirectional else cell_params(k1)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, F))
    mask = jnp.asarray(MIXED_MASK)

    def loss(p, x, fused):
        if bidirectional:
            _, ys = scan.bidirectional("gru", p, x, mask, fused=fused, zero_output_for_mask=False)
        else:
            _, ys = scan.run("gru", p, x, mask, reverse=True, fused=fused, zero_output_for_mask=False)
        return jnp.sum(jnp.sin(ys))

    fast, plain = (jax.grad(loss, (0, 1))(params, xs, fused) for fused in (True, False))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), fast, plain)


def test_global_pooling_layers():
    """Average over real steps (over all without a mask); maximum over every step, as Keras 3's."""
    x = jnp.asarray(np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2) * np.array([1, -1], np.float32))
    mask = jnp.array([[True, False, True], [False, False, False]])
    avg, mx = rnnjax.GlobalAveragePooling1D(), rnnjax.GlobalMaxPooling1D()
    np.testing.assert_allclose(layers.apply_pooling(avg, x, mask), [[2.0, -3.0], [0.0, 0.0]])
    np.testing.assert_allclose(layers.apply_pooling(avg, x, None), x.mean(axis=1))
    np.testing.assert_allclose(layers.apply_pooling(mx, x, mask), x.max(axis=1))


# ----------------------------------------------------------------------------------- models through Keras


def _pooled(keras, rnn, pooling):
    L = keras.layers
    return [L.Embedding(V, F, mask_zero=True, embeddings_initializer="zeros"), rnn, pooling,
            L.Dense(1, "sigmoid", kernel_initializer="zeros")]


# name -> layers of a Keras classifier, given keras.
MODELS = {
    "lstm_average": lambda k: _pooled(k, k.layers.LSTM(H, **_ZEROS, return_sequences=True),
                                      k.layers.GlobalAveragePooling1D()),
    "lstm_max": lambda k: _pooled(k, k.layers.LSTM(H, **_ZEROS, return_sequences=True),
                                  k.layers.GlobalMaxPooling1D()),
    "gru_average": lambda k: _pooled(k, k.layers.GRU(H, **_ZEROS, return_sequences=True),
                                     k.layers.GlobalAveragePooling1D()),
    "bidirectional_lstm_max": lambda k: _pooled(
        k, k.layers.Bidirectional(k.layers.LSTM(H, **_ZEROS, return_sequences=True)),
        k.layers.GlobalMaxPooling1D(),
    ),
    # Keras passes the mask on unchanged with reversed outputs: the GRU above reads held outputs.
    "go_backwards_stacked": lambda k: [
        k.layers.Embedding(V, F, mask_zero=True, embeddings_initializer="zeros"),
        k.layers.GRU(H, **_ZEROS, return_sequences=True, go_backwards=True), k.layers.GRU(H + 1, **_ZEROS),
        k.layers.Dense(1, "sigmoid", kernel_initializer="zeros"),
    ],
}
_apply = jax.jit(rnnjax.apply_model, static_argnums=0)


def _keras_model(keras, name, rng):
    with _keras_ops():
        model = keras.Sequential([keras.Input((None,), dtype="int32"), *MODELS[name](keras)])
        for weight in model.weights:
            weight.assign(_normal(rng, weight.shape, 0.8))
    return model


def _predict(keras_model, tokens) -> np.ndarray:
    with _keras_ops():
        return np.asarray(keras_model.predict(tokens, verbose=0))[:, 0]


def _tokens(rng, padding) -> np.ndarray:
    """[5, 9] ids with 9, 6, 3, 1 and 5 real tokens (one padding id among them), padded after or before."""
    tokens = rng.integers(1, V, (5, 9)).astype(np.int32)
    tokens[4, 2] = 0
    for row, length in enumerate((9, 6, 3, 1, 5)):
        tokens[row, length:] = 0
        tokens[row] = tokens[row] if padding == "post" else np.roll(tokens[row], 9 - length)
    return tokens


@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("name", list(MODELS))
def test_imported_model_predicts_as_keras(keras, rng, name, padding):
    model = _keras_model(keras, name, rng)
    tokens = _tokens(rng, padding)
    spec, params = keras_io.import_keras(model)
    probabilities = jax.nn.sigmoid(_apply(spec, params, jnp.asarray(tokens)))
    np.testing.assert_allclose(probabilities, _predict(model, tokens), rtol=1e-5, atol=1e-5)
    assert rnnjax.count_params(params) == model.count_params()
    recurrent = next(layer for layer in spec.layers if isinstance(layer, rnnjax.Recurrent))
    assert recurrent.zero_output_for_mask == name.startswith("bidirectional")  # Keras' Bidirectional: True


@pytest.mark.parametrize("name", ["lstm_max", "bidirectional_lstm_max", "go_backwards_stacked"])
def test_export_round_trips(keras, rng, tmp_path, name):
    """export_keras writes zero_output_for_mask and the pooling layers back; a saved file imports the same."""
    spec, params = keras_io.import_keras(_keras_model(keras, name, rng))
    tokens = _tokens(rng, "pre")
    exported = keras_export.export_keras(spec, params)
    expected = np.asarray(jax.nn.sigmoid(_apply(spec, params, jnp.asarray(tokens))))
    np.testing.assert_allclose(_predict(exported, tokens), expected, rtol=1e-5, atol=1e-5)
    with _keras_ops():
        exported.save(tmp_path / "model.keras")
    for source in (exported, tmp_path / "model.keras"):
        again_spec, again_params = keras_io.import_keras(source)
        assert again_spec == spec
        jax.tree_util.tree_map(np.testing.assert_array_equal, again_params, params)


def test_export_of_rnnjax_defaults_keeps_zero_outputs(keras, rng):
    """rnnjax's default (zero outputs) exports as zero_output_for_mask=True where it shows, so the masked max
    over a post-padded sequence sees the same zeros in Keras."""
    spec = rnnjax.make_classifier(cell="lstm", vocab_size=V, embed_dim=F, hidden_size=H, mask_zero=True,
                                  pooling="max")
    shapes = jax.eval_shape(lambda k: rnnjax.init_model(spec, k), jax.random.key(0))
    params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(_normal(rng, leaf.shape, 0.8)), shapes)
    exported = keras_export.export_keras(spec, params)
    assert exported.layers[1].zero_output_for_mask
    tokens = _tokens(rng, "post")
    expected = np.asarray(jax.nn.sigmoid(_apply(spec, params, jnp.asarray(tokens))))
    np.testing.assert_allclose(_predict(exported, tokens), expected, rtol=1e-5, atol=1e-5)
    assert keras_io.import_keras(exported)[0] == spec


def test_export_refuses_held_outputs_in_a_masked_bidirectional(keras):
    spec = rnnjax.ModelSpec((
        rnnjax.Embedding(V, F, mask_zero=True),
        rnnjax.Recurrent("gru", H, return_sequences=True, bidirectional=True, zero_output_for_mask=False),
        rnnjax.GlobalAveragePooling1D(), rnnjax.Dense(1, "sigmoid"),
    ))
    params = rnnjax.init_model(spec, jax.random.key(0))
    with pytest.raises(ValueError, match=r"'bidirectional' \(Recurrent\).*zero_output_for_mask=True"):
        keras_export.export_keras(spec, params)
