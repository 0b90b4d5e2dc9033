"""Keras 3 as the oracle: identical weights in Keras layers/models and in rnnjax give the same numbers.

Covers every cell (SimpleRNN tanh/relu, LSTM, GRU reset_after True/False; LSTM and GRU without bias) with and
without masks, pre- and post-padding and go_backwards; Bidirectional with every merge mode; stacked layers; the chapter models
through ``import_keras``/``export_keras`` (in memory and via ``.keras`` files); and the errors for what rnnjax
cannot import. Every comparison records its largest absolute deviation; the last test prints the maximum.

Keras' own code relies on implicit rank promotion, so Keras calls run inside ``_keras_ops()``; rnnjax calls
run under the suite's ``jax_numpy_rank_promotion="raise"``. The single-layer tests run both sides op by op
(``jax.disable_jit``): compiling one scan per tiny case would cost about a second each. The model tests run
Keras' compiled ``predict`` against a jitted ``apply_model``, so compiled scans are compared as well.
"""

import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import rnnjax  # noqa: E402
from rnnjax import keras_export, keras_io, scan  # noqa: E402
from rnnjax.cells import CELLS  # noqa: E402

L = keras.layers
B, T, F, H = 3, 6, 5, 4
RTOL = ATOL = 1e-5

_DEVIATIONS: list[tuple[str, float]] = []  # (comparison, max |rnnjax - keras|), reported by the last test


def _keras_ops():
    return jax.numpy_rank_promotion("allow")


@pytest.fixture
def rng(request) -> np.random.Generator:
    """NumPy randomness seeded by the test's name: eager jax.random would compile its kernels op by op."""
    return np.random.default_rng(sum(map(ord, request.node.name)))


@pytest.fixture
def eager():
    """Runs the test op by op: same arithmetic, no per-case scan compilation."""
    with jax.disable_jit():
        yield


# One compilation per model spec, shared by the in-memory and file round trips.
_apply = jax.jit(rnnjax.apply_model, static_argnums=0)


def _check(label: str, actual, expected) -> None:
    """Asserts float32 agreement and records the largest absolute deviation."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{label}: shape {actual.shape} != Keras {expected.shape}"
    _DEVIATIONS.append((label, float(np.max(np.abs(actual - expected), initial=0.0))))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=label)


def _normal(rng: np.random.Generator, shape, scale=0.5) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _randomize(params, rng: np.random.Generator, scale=0.5):
    """Random values for every leaf, so that zero or unit biases cannot hide a wrong layout."""
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(_normal(rng, leaf.shape, scale)), params)


def _cell_weights(params) -> list[np.ndarray]:
    names = ("kernel", "recurrent_kernel", "bias") if "bias" in params else ("kernel", "recurrent_kernel")
    return [np.asarray(params[name]) for name in names]


def _mask(kind: str) -> np.ndarray | None:
    """[B, T] bool: none, post-padded (right) or pre-padded (left, Keras' pad_sequences default)."""
    if kind == "none":
        return None
    lengths = np.array([T, 3, 1])
    steps = np.arange(T)[None, :]
    if kind == "post":
        return steps < lengths[:, None]
    return steps >= T - lengths[:, None]


# (rnnjax cell, rnnjax init options, rnnjax run options, Keras layer factory)
CELL_CASES = {
    "simple_rnn-tanh": ("simple_rnn", {}, {"activation": "tanh"}, lambda **kw: L.SimpleRNN(H, "tanh", **kw)),
    "simple_rnn-relu": ("simple_rnn", {}, {"activation": "relu"}, lambda **kw: L.SimpleRNN(H, "relu", **kw)),
    "lstm": ("lstm", {}, {}, lambda **kw: L.LSTM(H, **kw)),
    "gru-reset_after": ("gru", {"reset_after": True}, {}, lambda **kw: L.GRU(H, reset_after=True, **kw)),
    "gru-reset_before": ("gru", {"reset_after": False}, {}, lambda **kw: L.GRU(H, reset_after=False, **kw)),
    "lstm-no_bias": ("lstm", {"use_bias": False}, {}, lambda **kw: L.LSTM(H, use_bias=False, **kw)),
    "gru-no_bias": ("gru", {"use_bias": False}, {}, lambda **kw: L.GRU(H, use_bias=False, **kw)),
    "gru-no_bias-reset_before": ("gru", {"use_bias": False, "reset_after": False}, {"reset_after": False},
                                 lambda **kw: L.GRU(H, use_bias=False, reset_after=False, **kw)),
}


def _cell_params(rng, case: str, input_size: int = F):
    """Random params with the shapes of ``init_<cell>`` (only the shapes are taken from rnnjax)."""
    cell, init_options, _, _ = CELL_CASES[case]
    shapes = jax.eval_shape(lambda k: CELLS[cell].init(k, input_size, H, **init_options), jax.random.key(0))
    return _randomize(shapes, rng)


# Keras layers built here use zero initialisers: every weight is overwritten with random values anyway, and
# Keras' random initialisers compile once per weight shape (about a second each on CPU).
_ZEROS = dict(kernel_initializer="zeros", recurrent_initializer="zeros")


def _keras_layer(case: str, weights: list[np.ndarray], input_size: int = F, **options):
    with _keras_ops():
        layer = CELL_CASES[case][3](**_ZEROS, **options)
        layer.build((B, T, input_size))
        layer.set_weights(weights)
    return layer


# ------------------------------------------------------------------------------------------- single layers


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "go_backwards"])
@pytest.mark.parametrize("mask_kind", ["none", "post", "pre"])
@pytest.mark.parametrize("case", list(CELL_CASES))
@pytest.mark.usefixtures("eager")
def test_cell_matches_keras_layer(rng, case, mask_kind, go_backwards):
    """Outputs and final states of every cell against the Keras layer, with the mask as Keras' ``mask=``.

    Outside Bidirectional, Keras outputs the previous output at a masked step (``zero_output_for_mask`` is
    False) where rnnjax outputs zeros by default, so step outputs are compared at real steps only; rnnjax's
    zeros are checked here, its ``zero_output_for_mask=False`` in test_keras_masking.py. Keras returns a
    ``go_backwards`` layer's outputs in processing order, so rnnjax's input-aligned outputs are flipped before
    comparing.
    """
    cell, _, run_options, _ = CELL_CASES[case]
    params = _cell_params(rng, case)
    xs = _normal(rng, (B, T, F), 1.0)
    mask = _mask(mask_kind)
    layer = _keras_layer(case, _cell_weights(params), return_sequences=True, return_state=True,
                         go_backwards=go_backwards)
    with _keras_ops():
        k_out, *k_states = [np.asarray(a) for a in layer(xs, mask=mask)]

    carry, ys = scan.run(cell, params, jnp.asarray(xs), None if mask is None else jnp.asarray(mask),
                         reverse=go_backwards, **run_options)
    ys = np.asarray(ys)
    real = np.ones((B, T), bool) if mask is None else mask
    if mask is not None:
        assert np.all(ys[~real] == 0), "rnnjax outputs zeros at masked steps"
    if go_backwards:
        ys, real = ys[:, ::-1], real[:, ::-1]
    label = f"{case}/{mask_kind}/{'backwards' if go_backwards else 'forward'}"
    _check(f"{label}/outputs", ys[real], k_out[real])
    for index, (state, k_state) in enumerate(zip(carry, k_states, strict=True)):
        _check(f"{label}/state{index}", state, k_state)


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "go_backwards"])
@pytest.mark.parametrize("case", list(CELL_CASES))
@pytest.mark.usefixtures("eager")
def test_cell_matches_keras_with_embedding_mask(rng, case, go_backwards):
    """The mask from ``Embedding(mask_zero=True)``: one post-padded, one pre-padded and one full row."""
    cell, _, run_options, factory = CELL_CASES[case]
    vocab = 11
    params = _cell_params(rng, case)
    embeddings = _normal(rng, (vocab, F), 1.0)
    tokens = np.array([[3, 1, 4, 1, 0, 0], [0, 0, 0, 5, 9, 2], [6, 5, 3, 5, 8, 9]], np.int32)
    with _keras_ops():
        inputs = keras.Input((T,), dtype="int32")
        embedding = L.Embedding(vocab, F, mask_zero=True, embeddings_initializer="zeros")
        layer = factory(**_ZEROS, return_sequences=True, return_state=True, go_backwards=go_backwards)
        model = keras.Model(inputs, layer(embedding(inputs)))
        embedding.set_weights([embeddings])
        layer.set_weights(_cell_weights(params))
        k_out, *k_states = [np.asarray(a) for a in model(tokens)]

    mask = tokens != 0
    xs = jnp.asarray(embeddings[tokens])
    carry, ys = scan.run(cell, params, xs, jnp.asarray(mask), reverse=go_backwards, **run_options)
    ys = np.asarray(ys)
    if go_backwards:
        ys, mask = ys[:, ::-1], mask[:, ::-1]
    label = f"{case}/mask_zero/{'backwards' if go_backwards else 'forward'}"
    _check(f"{label}/outputs", ys[mask], k_out[mask])
    for index, (state, k_state) in enumerate(zip(carry, k_states, strict=True)):
        _check(f"{label}/state{index}", state, k_state)


# (merge mode, cell case): each merge mode with a different cell, so every cell is also seen in Bidirectional.
BIDIRECTIONAL_CASES = [
    ("concat", "lstm"),
    ("sum", "gru-reset_after"),
    ("mul", "simple_rnn-tanh"),
    ("ave", "gru-reset_before"),
]


@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
@pytest.mark.parametrize("mask_kind", ["none", "post", "pre"])
@pytest.mark.parametrize("merge_mode,case", BIDIRECTIONAL_CASES, ids=[m for m, _ in BIDIRECTIONAL_CASES])
@pytest.mark.usefixtures("eager")
def test_bidirectional_matches_keras(rng, merge_mode, case, mask_kind, return_sequences):
    """Merged outputs and both directions' final states against Keras' Bidirectional.

    Bidirectional sets ``zero_output_for_mask`` on both directions when returning sequences, so here outputs
    are compared at every step, padding included.
    """
    cell, _, run_options, factory = CELL_CASES[case]
    params = {"forward": _cell_params(rng, case), "backward": _cell_params(rng, case)}
    xs = _normal(rng, (B, T, F), 1.0)
    mask = _mask(mask_kind)
    with _keras_ops():
        inner = factory(**_ZEROS, return_sequences=return_sequences, return_state=True)
        layer = L.Bidirectional(inner, merge_mode=merge_mode)
        layer.build((B, T, F))
        layer.set_weights(_cell_weights(params["forward"]) + _cell_weights(params["backward"]))
        k_out, *k_states = [np.asarray(a) for a in layer(xs, mask=mask)]

    (fw_carry, bw_carry), out = scan.bidirectional(
        cell, params, jnp.asarray(xs), None if mask is None else jnp.asarray(mask), merge_mode=merge_mode,
        return_sequences=return_sequences, **run_options,
    )
    label = f"bidirectional-{merge_mode}-{case}/{mask_kind}/{'sequences' if return_sequences else 'last'}"
    _check(f"{label}/outputs", out, k_out)
    for index, (state, k_state) in enumerate(zip(fw_carry + bw_carry, k_states, strict=True)):
        _check(f"{label}/state{index}", state, k_state)


@pytest.mark.parametrize("mask_kind", ["none", "post", "pre"])
@pytest.mark.parametrize("lower,upper", [("lstm", "gru-reset_after"), ("simple_rnn-relu", "lstm")])
@pytest.mark.usefixtures("eager")
def test_stacked_layers_match_keras(rng, lower, upper, mask_kind):
    """Two stacked layers (the lower one returning sequences), the mask passed to both as Keras does."""
    lo_params, up_params = _cell_params(rng, lower), _cell_params(rng, upper, input_size=H)
    xs = _normal(rng, (B, T, F), 1.0)
    mask = _mask(mask_kind)
    lo_layer = _keras_layer(lower, _cell_weights(lo_params), return_sequences=True)
    up_layer = _keras_layer(
        upper, _cell_weights(up_params), input_size=H, return_sequences=True, return_state=True
    )
    with _keras_ops():
        k_out, *k_states = [np.asarray(a) for a in up_layer(lo_layer(xs, mask=mask), mask=mask)]

    mask_j = None if mask is None else jnp.asarray(mask)
    _, hidden = scan.run(CELL_CASES[lower][0], lo_params, jnp.asarray(xs), mask_j, **CELL_CASES[lower][2])
    carry, ys = scan.run(CELL_CASES[upper][0], up_params, hidden, mask_j, **CELL_CASES[upper][2])
    real = np.ones((B, T), bool) if mask is None else mask
    label = f"stacked-{lower}-{upper}/{mask_kind}"
    _check(f"{label}/outputs", np.asarray(ys)[real], k_out[real])
    for index, (state, k_state) in enumerate(zip(carry, k_states, strict=True)):
        _check(f"{label}/state{index}", state, k_state)


# ------------------------------------------------------------------------------------------- full models


def _embedding(vocab: int, dim: int, **options):
    return L.Embedding(vocab, dim, embeddings_initializer="zeros", **options)


def _dense(units: int, activation: str = "linear", **options):
    return L.Dense(units, activation, kernel_initializer="zeros", **options)


def _rnn(cls, units: int, **options):
    return cls(units, **_ZEROS, **options)


def _chapter_model(rnn_layers, vocab=8000):
    """The chapter's classifier: Embedding 32 -> SpatialDropout1D 0.4 -> RNN -> Dropout 0.4 -> Dense(1)."""
    return [_embedding(vocab, 32), L.SpatialDropout1D(0.4), *rnn_layers, L.Dropout(0.4), _dense(1, "sigmoid")]


def _amazon_model():
    return [
        _embedding(10000, 32), L.SpatialDropout1D(0.4),
        _rnn(L.LSTM, 64, return_sequences=True), _rnn(L.LSTM, 64), L.Dropout(0.4),
        _dense(32, "relu"), L.Dropout(0.5), _dense(32, "relu"), L.Dropout(0.5), _dense(1, "sigmoid"),
    ]


def _masked_model():
    return [
        _embedding(8000, 32, mask_zero=True), L.SpatialDropout1D(0.4),
        L.Bidirectional(_rnn(L.GRU, 32, return_sequences=True), merge_mode="ave"),
        _rnn(L.LSTM, 32, go_backwards=True), L.Dropout(0.4), _dense(1, "sigmoid"),
    ]


# name -> (layers factory, padding of the test tokens, expected parameter count or None)
MODELS = {
    "simple_rnn": (lambda: _chapter_model([_rnn(L.SimpleRNN, 32)]), "post", None),
    "lstm": (lambda: _chapter_model([_rnn(L.LSTM, 32)]), "post", None),
    "gru": (lambda: _chapter_model([_rnn(L.GRU, 32, reset_after=False)]), "post", None),
    "bidirectional_lstm": (lambda: _chapter_model([L.Bidirectional(_rnn(L.LSTM, 32))]), "post", None),
    "stacked_lstm": (
        lambda: _chapter_model([_rnn(L.LSTM, 32, return_sequences=True), _rnn(L.LSTM, 32)]), "post", None
    ),
    "amazon": (_amazon_model, "post", 381_025),
    "mask_zero": (_masked_model, "pre", None),
}


def _randomize_weights(model, rng, scale) -> None:
    """Replaces every Keras weight with random values (Keras' zero biases would hide layout errors)."""
    with _keras_ops():
        for weight in model.weights:
            weight.assign(_normal(rng, weight.shape, scale))


def _build_keras_model(name: str, rng):
    with _keras_ops():
        model = keras.Sequential([keras.Input((None,), dtype="int32"), *MODELS[name][0]()])
    _randomize_weights(model, rng, 0.3)
    return model


def _tokens(rng, vocab: int, padding: str) -> np.ndarray:
    """[4, 12] ids in [1, V) with rows of 12, 7, 3 and 10 real tokens, zero-padded after or before them."""
    tokens = rng.integers(1, vocab, (4, 12)).astype(np.int32)
    for row, length in enumerate((12, 7, 3, 10)):
        if padding == "post":
            tokens[row, length:] = 0
        else:
            tokens[row, : 12 - length] = 0
    return tokens


def _predict(model, tokens) -> np.ndarray:
    """Keras' predict: [B] for a one-unit head, [B, C] for C units."""
    with _keras_ops():
        out = np.asarray(model.predict(tokens, verbose=0))
    return out[:, 0] if out.shape[-1] == 1 else out


def _probabilities(spec, params, tokens) -> np.ndarray:
    """The last Dense's activation of rnnjax's logits: sigmoid of [B] or [B, C], softmax of [B, C]."""
    logits = _apply(spec, params, jnp.asarray(tokens))
    if spec.layers[-1].activation == "softmax":
        return np.asarray(jax.nn.softmax(logits, axis=-1))
    return np.asarray(jax.nn.sigmoid(logits))


def _assert_same_params(params, other) -> None:
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(other)
    for leaf, other_leaf in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(other)):
        np.testing.assert_array_equal(leaf, other_leaf)


@pytest.mark.parametrize("name", list(MODELS))
def test_import_keras_model_round_trips(rng, tmp_path, name):
    """import_keras in memory and from a saved .keras file give predict's probabilities and Keras' counts."""
    _, padding, expected_count = MODELS[name]
    model = _build_keras_model(name, rng)
    tokens = _tokens(rng, model.layers[0].input_dim, padding)
    expected = _predict(model, tokens)

    spec, params = keras_io.import_keras(model)
    _check(f"model-{name}/in_memory", _probabilities(spec, params, tokens), expected)
    assert rnnjax.count_params(params) == model.count_params()
    if expected_count is not None:
        assert model.count_params() == expected_count

    file_spec, file_params = _import_saved(model, tmp_path / f"{name}.keras", spec, params)
    _check(f"model-{name}/file", _probabilities(file_spec, file_params, tokens), expected)


def _import_saved(model, path, spec, params):
    """Saves a Keras model as a .keras file and imports it: the same spec and params as the in-memory import."""
    with _keras_ops():
        model.save(path)
    file_spec, file_params = keras_io.import_keras(path)
    assert file_spec == spec
    _assert_same_params(params, file_params)
    return file_spec, file_params


def _check_export(label: str, spec, params, tokens) -> None:
    """export_keras gives Keras' predict = rnnjax's probabilities; import_keras gives spec and params back."""
    exported = keras_export.export_keras(spec, params)
    assert [layer.name for layer in exported.layers] == rnnjax.layer_names(spec)
    assert exported.count_params() == rnnjax.count_params(params)
    _check(label, _predict(exported, tokens), _probabilities(spec, params, tokens))
    again_spec, again_params = keras_io.import_keras(exported)
    assert again_spec == spec
    _assert_same_params(params, again_params)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_export_keras_round_trips(rng, name):
    """export_keras of every imported model (with Keras' default initialisers, so slow to build)."""
    _, padding, _ = MODELS[name]
    spec, params = keras_io.import_keras(_build_keras_model(name, rng))
    _check_export(f"model-{name}/exported", spec, params, _tokens(rng, spec.layers[0].vocab_size, padding))


def test_import_functional_chain_and_softmax_output(rng):
    """A functional model whose layers form one chain, with an unrolled GRU and a Dense(C, softmax) output."""
    with _keras_ops():
        inputs = keras.Input((T,), dtype="int32")
        x = _embedding(13, F, mask_zero=True)(inputs)
        simple_rnn = _rnn(L.SimpleRNN, H, activation="sigmoid", return_sequences=True)
        x = L.Bidirectional(simple_rnn, merge_mode="sum")(x)
        x = _rnn(L.GRU, H + 1, use_bias=False, unroll=True)(x)
        x = _dense(7, "tanh", use_bias=False)(x)
        model = keras.Model(inputs, _dense(3, "softmax")(x))
    _randomize_weights(model, rng, 0.5)
    tokens = np.array([[0, 0, 4, 12, 5, 1], [3, 3, 3, 0, 0, 0], [1, 2, 3, 4, 5, 6]], np.int32)
    with _keras_ops():
        expected = np.asarray(model.predict(tokens, verbose=0))
    spec, params = keras_io.import_keras(model)
    probabilities = jax.nn.softmax(_apply(spec, params, jnp.asarray(tokens)), axis=-1)
    _check("functional-softmax", probabilities, expected)
    assert rnnjax.count_params(params) == model.count_params()


# name -> the layers of a four-class classifier, given the Embedding's mask_zero.
SOFTMAX_MODELS = {
    "lstm": lambda mask_zero: [_embedding(30, F, mask_zero=mask_zero), _rnn(L.LSTM, H), _dense(4, "softmax")],
    "bidirectional_gru": lambda mask_zero: [
        _embedding(30, F, mask_zero=mask_zero),
        L.SpatialDropout1D(0.2),
        L.Bidirectional(_rnn(L.GRU, H + 1)),
        L.Dropout(0.3),
        _dense(4, "softmax"),
    ],
}


@pytest.mark.parametrize("mask_zero", [False, True], ids=["no_mask", "mask_zero"])
@pytest.mark.parametrize("name", list(SOFTMAX_MODELS))
def test_softmax_head_round_trips(rng, tmp_path, name, mask_zero):
    """A Dense(4, softmax) head: imported logits [B, 4] give predict after softmax (in memory and from a
    .keras file), and export_keras of the imported model predicts softmax(logits) and imports back."""
    with _keras_ops():
        model = keras.Sequential([keras.Input((None,), dtype="int32"), *SOFTMAX_MODELS[name](mask_zero)])
    _randomize_weights(model, rng, 0.5)
    # Keras pre-pads with pad_sequences; without a mask, post-padding is processed as ordinary tokens.
    tokens = _tokens(rng, 30, "pre" if mask_zero else "post")
    expected = _predict(model, tokens)
    label = f"softmax-{name}/{'mask_zero' if mask_zero else 'no_mask'}"

    spec, params = keras_io.import_keras(model)
    assert spec.layers[-1] == rnnjax.Dense(4, "softmax")
    logits = _apply(spec, params, jnp.asarray(tokens))
    assert logits.shape == (len(tokens), 4)
    _check(f"{label}/in_memory", np.asarray(jax.nn.softmax(logits, axis=-1)), expected)
    np.testing.assert_allclose(expected.sum(axis=-1), 1.0, rtol=1e-6)

    file_spec, file_params = _import_saved(model, tmp_path / f"{name}.keras", spec, params)
    _check(f"{label}/file", np.asarray(jax.nn.softmax(_apply(file_spec, file_params, jnp.asarray(tokens)), axis=-1)),
           expected)
    _check_export(f"{label}/exported", spec, params, tokens)


def test_dense_one_softmax_head_raises():
    """Keras' softmax over one unit is a constant 1; rnnjax would read its [B] logits through a sigmoid."""
    model = _sequential(_embedding(20, F), _lstm(), _dense(1, "softmax", name="one"))
    match = r"'one' \(Dense\).*Dense\(1, activation='softmax'\) always outputs 1"
    with pytest.raises(ValueError, match=match):
        keras_io.import_keras(model)


def test_export_matches_init_model_params(rng):
    """export_keras of a model made in rnnjax: same predictions, and import_keras gives it back."""
    spec = rnnjax.make_classifier(cell="gru", vocab_size=50, embed_dim=F, hidden_size=H, bidirectional=True,
                                  mask_zero=True, dense_units=(3,), reset_after=False)
    params = _randomize(jax.eval_shape(lambda k: rnnjax.init_model(spec, k), jax.random.key(0)), rng)
    tokens = _tokens(rng, 50, "pre")
    _check_export("export-init_model", spec, params, tokens)


# ----------------------------------------------------------------------------------------------- errors


def _sequential(*layers):
    with _keras_ops():
        return keras.Sequential([keras.Input((T,), dtype="int32"), *layers])


def _lstm(**options):
    return _rnn(L.LSTM, H, **options)


def _gru(**options):
    return _rnn(L.GRU, H, **options)


# id -> (the layers after an Embedding(20, F, mask_zero=...), mask_zero, expected message)
UNSUPPORTED = {
    "conv1d": (lambda: [L.Conv1D(4, 3, kernel_initializer="zeros", name="conv"), L.GlobalMaxPooling1D()],
               False, r"'conv' \(Conv1D\).*layer type is unsupported"),
    "pooling_keepdims": (
        lambda: [_lstm(return_sequences=True), L.GlobalMaxPooling1D(keepdims=True, name="pool")],
        False, r"'pool' \(GlobalMaxPooling1D\).*keepdims=False",
    ),
    "lstm_relu": (lambda: [_lstm(activation="relu", name="relu_lstm")],
                  False, r"'relu_lstm' \(LSTM\).*activation='relu'"),
    "gru_hard_sigmoid": (lambda: [_gru(recurrent_activation="hard_sigmoid", name="g")],
                         False, r"'g' \(GRU\).*recurrent_activation='hard_sigmoid'"),
    "simple_rnn_softplus": (lambda: [_rnn(L.SimpleRNN, H, activation="softplus", name="s")],
                            False, r"'s' \(SimpleRNN\).*activation='softplus'"),
    "stacked_then_dense_gelu": (lambda: [_lstm(return_sequences=True), _lstm(), _dense(3, "gelu", name="d")],
                                False, r"'d' \(Dense\).*activation='gelu'"),
    "dropout_noise_shape": (lambda: [L.Dropout(0.2, (None, 1, F), name="drop"), _lstm()],
                            False, r"'drop' \(Dropout\).*noise_shape"),
    "dense_on_time_axis": (lambda: [_lstm(return_sequences=True)],
                           False, r"cannot be built in rnnjax.*time axis"),
    "zero_output_for_mask": (lambda: [_lstm(zero_output_for_mask=True, name="z")],
                             True, r"'z' \(LSTM\).*zero_output_for_mask=True"),
    "mixed_backward_layer": (
        lambda: [L.Bidirectional(_lstm(), backward_layer=_gru(go_backwards=True), name="mixed")],
        False, r"'mixed' \(Bidirectional\).*backward_layer",
    ),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_layers_raise(name):
    """Each model ends in Dense(1) after the layers listed above; the error names the offending layer."""
    make_layers, mask_zero, match = UNSUPPORTED[name]
    model = _sequential(_embedding(20, F, mask_zero=mask_zero), *make_layers(), _dense(1))
    with pytest.raises(ValueError, match=match):
        keras_io.import_keras(model)


@pytest.mark.parametrize(
    "last,match",
    [
        (lambda: [_lstm(), _dense(1, "relu", name="out")], r"'out' \(Dense\).*last layer must be Dense"),
        (lambda: [_lstm(name="last_lstm")], r"'last_lstm' \(LSTM\).*last layer must be Dense"),
        (lambda: [L.Bidirectional(_lstm(), merge_mode=None, name="bi")],
         r"'bi' \(Bidirectional\).*merge_mode=None"),
    ],
    ids=["dense_relu", "lstm", "merge_none"],
)
def test_unsupported_last_layer_raises(last, match):
    with pytest.raises(ValueError, match=match):
        keras_io.import_keras(_sequential(_embedding(20, F), *last()))


def test_stateful_layer_raises():
    with _keras_ops():
        model = keras.Sequential([keras.Input((T,), batch_size=B, dtype="int32"), _embedding(20, F),
                                  _lstm(stateful=True, name="st"), _dense(1)])
    with pytest.raises(ValueError, match=r"'st' \(LSTM\).*stateful=True"):
        keras_io.import_keras(model)


def test_model_without_embedding_raises():
    with _keras_ops():
        model = keras.Sequential([keras.Input((T, F)), _lstm(name="first"), _dense(1)])
    with pytest.raises(ValueError, match=r"'first' \(LSTM\).*first layer must be an Embedding"):
        keras_io.import_keras(model)


def test_branching_functional_model_raises():
    with _keras_ops():
        inputs = keras.Input((T,), dtype="int32")
        x = _embedding(20, F)(inputs)
        merged = L.Add(name="add")([_lstm()(x), _gru()(x)])
        model = keras.Model(inputs, _dense(1)(merged))
    with pytest.raises(ValueError, match=r"single chain"):
        keras_io.import_keras(model)


def test_bad_argument_raises():
    with pytest.raises(TypeError, match="keras.Model"):
        keras_io.import_keras(42)


def test_export_attention_raises(rng):
    spec = rnnjax.make_classifier(cell="lstm", vocab_size=20, embed_dim=F, hidden_size=H, attention_units=3)
    params = _randomize(jax.eval_shape(lambda k: rnnjax.init_model(spec, k), jax.random.key(0)), rng)
    with pytest.raises(ValueError, match=r"'attention' \(Attention\)"):
        keras_export.export_keras(spec, params)


def test_missing_keras_raises_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # makes `import keras` raise ImportError
    with pytest.raises(ImportError, match="needs Keras 3"):
        keras_io.import_keras("model.keras")


def test_rnnjax_does_not_import_keras():
    code = "import sys, rnnjax, rnnjax.keras_io, rnnjax.keras_export; sys.exit('keras' in sys.modules)"
    repo = pathlib.Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo, check=False).returncode == 0


# ----------------------------------------------------------------------------------------------- summary


def test_largest_deviation_is_reported(capsys):
    """Prints the largest |rnnjax - keras| over every comparison above (run with the rest of the file)."""
    if not _DEVIATIONS:
        pytest.skip("no oracle comparison ran in this session")
    label, worst = max(_DEVIATIONS, key=lambda item: item[1])
    with capsys.disabled():
        print(f"\nKeras oracle: {len(_DEVIATIONS)} comparisons, largest |rnnjax - keras| = {worst:.3g} "
              f"({label})")
    assert np.isfinite(worst)


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_training_steps_match_keras_fit_step_by_step(cell):
    """Without dropout, RMSprop steps on the same batches move rnnjax's and Keras' weights alike: the loss, its
    gradient through the masked recurrence (native kernels included) and Keras' RMSprop rule agree."""
    import optax

    from rnnjax.configs import default
    from rnnjax.training import classifier, loop, optim

    vocab, steps, batch, length = 40, 6, 16, 12
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    layer = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    with jax.numpy_rank_promotion("allow"):  # Keras' initialisers and training step broadcast implicitly
        model = keras.Sequential(
            [keras.Input((length,), dtype="int32"), keras.layers.Embedding(vocab, 8, mask_zero=True), layer(6),
             keras.layers.Dense(1, activation="sigmoid")]
        )
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-2, rho=0.9, epsilon=1e-7),
                      loss="binary_crossentropy")
    spec, params = keras_io.import_keras(model)
    initial = jax.tree.map(np.asarray, params)  # the train step donates (and deletes) the state it is given
    opt = default.get_config().opt
    opt.learning_rate = 1e-2
    tx = optim.make_optimizer(opt, steps)
    state = loop.TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), jax.random.key(0))
    task = classifier.classifier_task(classifier.ModelConfig(spec=spec, use_lengths=False))
    train_step, _, _ = loop.make_steps(task, tx)
    for _ in range(steps):
        lengths = rng.integers(1, length + 1, batch)
        tokens = np.where(np.arange(length) < lengths[:, None], rng.integers(1, vocab, (batch, length)), 0)
        labels = rng.integers(0, 2, batch)
        with jax.numpy_rank_promotion("allow"):
            keras_loss = model.train_on_batch(tokens.astype(np.int32), labels.astype(np.float32))
        state, metrics = train_step(
            state, {"tokens": tokens.astype(np.int32), "lengths": lengths.astype(np.int32), "label": labels.astype(np.int32)}
        )
        np.testing.assert_allclose(float(metrics["loss_sum"]) / batch, float(keras_loss), rtol=1e-5)
    _, keras_params = keras_io.import_keras(model)
    for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(keras_params), strict=True):
        np.testing.assert_allclose(got, want, atol=2e-5)
    assert optax.global_norm(jax.tree.map(lambda a, b: a - b, state.params, initial)) > 1e-2  # they did move
