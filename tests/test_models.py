"""Model specs, parameter counts equal to Keras', and apply against a NumPy forward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import models
from rnnjax.layers import (
    Attention,
    Dense,
    Dropout,
    Embedding,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Recurrent,
    SpatialDropout1D,
)
from rnnjax.models import ModelSpec
from tests import reference

CHAPTER = dict(vocab_size=8000, embed_dim=32, hidden_size=32, spatial_dropout=0.4, dropout=0.4)


@pytest.mark.parametrize(
    "kwargs,total",
    [
        (dict(cell="simple_rnn", **CHAPTER), 258_113),
        (dict(cell="lstm", **CHAPTER), 264_353),
        (dict(cell="gru", reset_after=False, **CHAPTER), 262_273),
        (dict(cell="lstm", bidirectional=True, **CHAPTER), 272_705),
        (dict(cell="lstm", num_layers=2, **CHAPTER), 272_673),
        (dict(cell="lstm", vocab_size=10_000, embed_dim=32, hidden_size=64, num_layers=2, dense_units=(32, 32),
              spatial_dropout=0.4, dropout=0.4, dense_dropout=0.5), 381_025),
    ],
    ids=["simple_rnn", "lstm", "gru", "bilstm", "stacked_lstm", "amazon_stacked_lstm"],
)
def test_parameter_counts_equal_keras(key, kwargs, total):
    spec = rnnjax.make_classifier(**kwargs)
    params = rnnjax.init(spec, key)
    assert rnnjax.count_params(params) == total
    table = rnnjax.summary(spec, params)
    assert f"Total params: {total:,}" in table
    assert table.count("\n") >= len(spec.layers) + 5


def test_summary_lists_layers_with_keras_names(key):
    spec = rnnjax.make_classifier(cell="lstm", num_layers=2, bidirectional=True, attention_units=8, **CHAPTER)
    table = rnnjax.summary(spec, rnnjax.init(spec, key))
    for line in ["embedding (Embedding)", "spatial_dropout1d (SpatialDropout1D)", "bidirectional (Bidirectional(LSTM))",
                 "bidirectional_1 (Bidirectional(LSTM))", "attention (Attention)", "dense (Dense)"]:
        assert line in table
    assert "(None, None, 64)" in table and "(None, 1)" in table


def _numpy_forward(spec, params, tokens, mask):
    """The whole model in float64 NumPy, built from tests/reference.py."""
    x = np.asarray(params["embedding"]["embeddings"], np.float64)[np.asarray(tokens)]
    for name, layer in zip(models.layer_names(spec), spec.layers):
        p = params.get(name)
        if isinstance(layer, Recurrent):
            opts = {"activation": layer.activation} if layer.cell == "simple_rnn" else {}
            if layer.bidirectional:
                fc, fy = reference.run_batch(layer.cell, p["forward"], x, mask, **opts)
                bc, by = reference.run_batch(layer.cell, p["backward"], x, mask, reverse=True, **opts)
                x = np.concatenate([fy, by], -1) if layer.return_sequences else np.concatenate([fc[0], bc[0]], -1)
            else:
                c, y = reference.run_batch(layer.cell, p, x, mask, **opts)
                x = y if layer.return_sequences else c[0]
                if layer.return_sequences and not layer.zero_output_for_mask:
                    x = np.stack([_hold_forward(x[b], mask[b]) for b in range(len(x))])
        elif isinstance(layer, Attention):
            x, _ = reference.attention_pool(p, x, mask)
        elif isinstance(layer, GlobalAveragePooling1D):
            x = (x * mask[..., None]).sum(1) / mask.sum(1)[:, None]
        elif isinstance(layer, GlobalMaxPooling1D):
            x = x.max(1)
        elif isinstance(layer, Dense):
            x = x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)
            if layer is not spec.layers[-1]:
                x = reference.ACT[layer.activation](x)
    return x[..., 0]


def _hold_forward(ys, mask):
    """Outputs with zero_output_for_mask=False: a masked step repeats the previous one (zeros first)."""
    held, previous = np.zeros_like(ys), np.zeros(ys.shape[-1])
    for t in range(len(ys)):
        previous = held[t] = ys[t] if mask[t] else previous
    return held


def _random_params(params, key):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(treedef, [0.4 * jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])


SPECS = {
    "simple_rnn": rnnjax.make_classifier(cell="simple_rnn", vocab_size=11, embed_dim=3, hidden_size=4),
    "gru_stacked": rnnjax.make_classifier(cell="gru", vocab_size=11, embed_dim=3, hidden_size=4, num_layers=2,
                                          dense_units=(5,)),
    "bilstm_attention": rnnjax.make_classifier(cell="lstm", vocab_size=11, embed_dim=3, hidden_size=4,
                                               bidirectional=True, attention_units=6, spatial_dropout=0.3, dropout=0.2),
    "bigru_stacked": rnnjax.make_classifier(cell="gru", vocab_size=11, embed_dim=3, hidden_size=4, num_layers=2,
                                            bidirectional=True, reset_after=False),
    "gru_average": rnnjax.make_classifier(cell="gru", vocab_size=11, embed_dim=3, hidden_size=4,
                                          pooling="avg"),
    # Held outputs: right padding repeats the last real output, so the maximum does not see padding.
    "lstm_max_held": ModelSpec((
        Embedding(11, 3), Recurrent("lstm", 4, return_sequences=True, zero_output_for_mask=False),
        GlobalMaxPooling1D(), Dense(1, "sigmoid"),
    )),
}


@pytest.mark.parametrize("name", SPECS)
def test_apply_matches_numpy_forward(key, name):
    spec = SPECS[name]
    params = _random_params(rnnjax.init(spec, key), key)
    tokens = jax.random.randint(key, (3, 7), 1, 11)
    lengths = jnp.array([7, 4, 1])
    tokens = jnp.where(rnnjax.sequence_mask(lengths, 7), tokens, 0)
    logits = rnnjax.apply(spec, params, tokens, lengths)
    assert logits.shape == (3,)
    expected = _numpy_forward(spec, params, tokens, np.asarray(rnnjax.sequence_mask(lengths, 7)))
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_mask_zero_equals_lengths_on_pre_padded_input(key):
    spec = ModelSpec((Embedding(11, 3, mask_zero=True), Recurrent("lstm", 4), Dense(1, "sigmoid")))
    params = _random_params(rnnjax.init(spec, key), key)
    real = jnp.array([[3, 4, 5, 6], [2, 9, 0, 0]])
    pre = jnp.array([[3, 4, 5, 6], [0, 0, 2, 9]])
    unmasked_spec = ModelSpec((Embedding(11, 3), Recurrent("lstm", 4), Dense(1, "sigmoid")))
    by_lengths = rnnjax.apply(unmasked_spec, params, real, jnp.array([4, 2]))
    np.testing.assert_allclose(rnnjax.apply(spec, params, pre), by_lengths, rtol=1e-6)
    assert not np.allclose(rnnjax.apply(unmasked_spec, params, pre), by_lengths)


@pytest.mark.parametrize("name", SPECS)
def test_extra_padding_and_jit_change_nothing(key, name):
    spec = SPECS[name]
    params = _random_params(rnnjax.init(spec, key), key)
    tokens = jax.random.randint(key, (2, 5), 1, 11)
    lengths = jnp.array([5, 3])
    longer = jnp.concatenate([tokens, jnp.full((2, 4), 7)], axis=1)
    base = rnnjax.apply(spec, params, tokens, lengths)
    np.testing.assert_allclose(rnnjax.apply(spec, params, longer, lengths), base, rtol=1e-6, atol=1e-6)
    jitted = jax.jit(rnnjax.apply, static_argnums=0)(spec, params, tokens, lengths)
    np.testing.assert_allclose(jitted, base, rtol=1e-6, atol=1e-6)


def test_dropout_only_in_training_and_deterministic(key):
    spec = SPECS["bilstm_attention"]
    params = rnnjax.init(spec, key)
    tokens = jax.random.randint(key, (4, 6), 1, 11)
    infer = rnnjax.apply(spec, params, tokens)
    np.testing.assert_array_equal(rnnjax.apply(spec, params, tokens, rng=jax.random.key(1)), infer)
    a = rnnjax.apply(spec, params, tokens, train=True, rng=jax.random.key(1))
    b = rnnjax.apply(spec, params, tokens, train=True, rng=jax.random.key(1))
    c = rnnjax.apply(spec, params, tokens, train=True, rng=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, infer) and not np.allclose(a, c)
    with pytest.raises(ValueError, match="train=True with dropout needs rng"):
        rnnjax.apply(spec, params, tokens, train=True)


def test_spatial_dropout_drops_whole_channels(key):
    x = jnp.ones((3, 50, 8))
    y = np.asarray(rnnjax.dropout.dropout(key, x, 0.5, shared_axes=(1,)))
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert np.all(y == y[:, :1, :]), "each channel is kept or dropped for the whole sequence"
    assert 0 < (y == 0).mean() < 1


def test_attention_weights_are_returned(key):
    spec = SPECS["bilstm_attention"]
    params = rnnjax.init(spec, key)
    tokens = jax.random.randint(key, (2, 6), 1, 11)
    logits, weights = rnnjax.apply(spec, params, tokens, jnp.array([6, 2]), return_attention=True)
    assert weights.shape == (2, 6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert not np.any(weights[1, 2:])
    with pytest.raises(ValueError, match="no Attention layer"):
        rnnjax.apply(SPECS["simple_rnn"], rnnjax.init(SPECS["simple_rnn"], key), tokens, return_attention=True)


def test_go_backwards_outputs_come_out_reversed(key):
    fwd = ModelSpec((Embedding(11, 3), Recurrent("gru", 4, go_backwards=True), Dense(1)))
    params = _random_params(rnnjax.init(fwd, key), key)
    tokens = jax.random.randint(key, (2, 5), 1, 11)
    flipped = ModelSpec((Embedding(11, 3), Recurrent("gru", 4), Dense(1)))
    np.testing.assert_allclose(
        rnnjax.apply(fwd, params, tokens), rnnjax.apply(flipped, params, tokens[:, ::-1]), rtol=1e-6
    )


def test_bad_inputs_raise_value_error(key):
    spec = SPECS["simple_rnn"]
    params = rnnjax.init(spec, key)
    with pytest.raises(ValueError, match=r"tokens must be an integer array \[B, T\], got float32 \(2, 3\)"):
        rnnjax.apply(spec, params, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"tokens must be an integer array \[B, T\], got int32 \(3,\)"):
        rnnjax.apply(spec, params, jnp.ones((3,), jnp.int32))
    with pytest.raises(ValueError, match=r"lengths must be an integer array \[B\]=\(2,\), got int32 \(3,\)"):
        rnnjax.apply(spec, params, jnp.ones((2, 3), jnp.int32), jnp.ones((3,), jnp.int32))


@pytest.mark.parametrize(
    "layers,message",
    [
        ((Recurrent("lstm", 4), Dense(1)), "first layer must be an Embedding"),
        ((Embedding(5, 3), Recurrent("lstm", 4)), "last layer must be Dense"),
        ((Embedding(5, 3), Recurrent("lstm", 4, return_sequences=True), Dense(1)), "still has a time axis"),
        ((Embedding(5, 3), Recurrent("lstm", 4), Recurrent("lstm", 4), Dense(1)), "set return_sequences=True"),
        ((Embedding(5, 3), Recurrent("lstmm", 4), Dense(1)), "unknown cell 'lstmm'"),
        ((Embedding(5, 3), Recurrent("lstm", 0), Dense(1)), "hidden_size must be positive"),
        ((Embedding(5, 3), Recurrent("lstm", 4, dropout=1.5), Dense(1)), r"must be in \[0, 1\)"),
        ((Embedding(5, 3), SpatialDropout1D(-0.1), Recurrent("lstm", 4), Dense(1)), r"rate must be in \[0, 1\)"),
        ((Embedding(5, 3), Recurrent("lstm", 4), Attention(3), Dense(1)), "return_sequences=True"),
        ((Embedding(5, 3), Recurrent("lstm", 4), GlobalMaxPooling1D(), Dense(1)), "return_sequences=True"),
        ((Embedding(5, 3), Recurrent("lstm", 4, return_sequences=True), GlobalAveragePooling1D(),
          GlobalMaxPooling1D(), Dense(1)), "return_sequences=True"),
        ((Embedding(0, 3), Recurrent("lstm", 4), Dense(1)), "must be positive"),
        ((Embedding(5, 3), Recurrent("lstm", 4, bidirectional=True, merge_mode="max"), Dense(1)), "merge_mode"),
        ((Embedding(5, 3), Recurrent("lstm", 4), Dropout(0.2), Dense(2, "relu")), "last layer must be Dense"),
    ],
)
def test_invalid_specs_are_rejected(layers, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(layers)


@pytest.mark.parametrize("name", SPECS)
def test_folded_embedding_projection_has_the_same_gradients(key, name):
    """A batch with more tokens than the vocabulary folds the embedding into the input projection; a batch
    with fewer does not. Two copies of one row (folded) must give twice the gradient of the row alone."""
    spec = SPECS[name]
    params = _random_params(rnnjax.init(spec, key), key)
    row = jax.random.randint(key, (1, 7), 1, 11)
    assert not models._can_fold_embedding(spec, row.size, False) and models._can_fold_embedding(spec, 2 * row.size, False)
    loss = lambda p, tokens: jnp.sum(rnnjax.apply(spec, p, tokens, jnp.full(tokens.shape[:1], 5)))
    single = jax.grad(loss)(params, row)
    double = jax.grad(loss)(params, jnp.concatenate([row, row]))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, 2 * b, rtol=1e-5, atol=1e-6), double, single)


@pytest.mark.parametrize("cell", ["min_gru", "min_lstm"])
def test_parallel_minimal_cells_in_a_model(key, cell):
    kwargs = dict(cell=cell, vocab_size=11, embed_dim=3, hidden_size=4, num_layers=2, bidirectional=True)
    sequential, parallel = rnnjax.make_classifier(**kwargs), rnnjax.make_classifier(parallel=True, **kwargs)
    params = _random_params(rnnjax.init(sequential, key), key)
    tokens = jax.random.randint(key, (3, 9), 1, 11)
    lengths = jnp.array([9, 4, 1])
    np.testing.assert_allclose(rnnjax.apply(parallel, params, tokens, lengths),
                               rnnjax.apply(sequential, params, tokens, lengths), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda p, s=s: jnp.sum(rnnjax.apply(s, p, tokens, lengths)))(params) for s in (sequential, parallel)]
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *grads)
    assert "MinGRU" in rnnjax.summary(sequential, params) or "MinLSTM" in rnnjax.summary(sequential, params)


def test_global_pooling_layers_in_summary_and_model_files(key):
    """Pooling layers have Keras' names and shapes and no weights; model descriptions keep
    zero_output_for_mask, and one written before the field existed loads with its default (zero outputs)."""
    spec = rnnjax.make_classifier(cell="lstm", vocab_size=11, embed_dim=3, hidden_size=4, bidirectional=True,
                                  pooling="max")
    assert [type(layer) for layer in spec.layers[1:3]] == [Recurrent, GlobalMaxPooling1D]
    table = rnnjax.summary(spec, rnnjax.init(spec, key))
    row = next(line for line in table.splitlines() if line.startswith("global_max_pooling1d"))
    assert row.split() == ["global_max_pooling1d", "(GlobalMaxPooling1D)", "(None,", "8)", "0"]
    held = models.replace_layer(spec, 1, zero_output_for_mask=False)
    assert models.spec_from_dict(models.spec_to_dict(held)) == held
    old = models.spec_to_dict(held)
    del old["layers"][1]["zero_output_for_mask"]
    assert models.spec_from_dict(old) == spec
    layers = [*models.spec_to_dict(spec)["layers"][:2], {"type": "GlobalAveragePooling1D"},
              {"type": "Dense", "units": 1}]
    assert models.spec_from_dict({"layers": layers}).layers[2] == GlobalAveragePooling1D()
    with pytest.raises(ValueError, match="pooling must be None, 'avg' or 'max'"):
        rnnjax.make_classifier(cell="lstm", vocab_size=11, embed_dim=3, hidden_size=4, pooling="mean")
    with pytest.raises(ValueError, match="without attention"):
        rnnjax.make_classifier(cell="lstm", vocab_size=11, embed_dim=3, hidden_size=4, pooling="avg",
                               attention_units=2)
