"""ConcatPooling1D (ULMFiT's [last real step; max; mean]) against a NumPy float64 loop, masked, in models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import keras_io, layers, models
from rnnjax.layers import ConcatPooling1D, Dense, Embedding, Recurrent
from rnnjax.models import ModelSpec
from tests import reference

B, T, D = 4, 6, 3


def _concat_pool_reference(x, mask):
    """x [B, T, D], mask [B, T] bool: per row, a loop over its real steps in float64."""
    x = np.asarray(x, np.float64)
    out = np.zeros((x.shape[0], 3 * x.shape[2]))
    for b in range(x.shape[0]):
        real = [t for t in range(x.shape[1]) if mask[b, t]]
        if not real:
            continue
        rows = x[b, real]
        out[b] = np.concatenate([x[b, real[-1]], rows.max(0), rows.sum(0) / len(real)])
    return out


def _masks():
    lengths = np.array([6, 3, 0, 1])
    post = np.arange(T)[None, :] < lengths[:, None]
    pre = post[:, ::-1].copy()  # mask_zero's pre-padding: real steps at the end
    holes = np.array([[1, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1]], bool)
    return {"post": post, "pre": pre, "holes": holes, "none": np.ones((B, T), bool)}


@pytest.mark.parametrize("kind", ["post", "pre", "holes", "none"])
def test_concat_pool_matches_the_float64_loop(key, kind):
    mask = _masks()[kind]
    x = jax.random.normal(key, (B, T, D)) - 2.0  # mostly negative: a maximum over padding zeros would show
    got = layers.apply_pooling(ConcatPooling1D(), x, None if kind == "none" else jnp.asarray(mask))
    assert got.shape == (B, 3 * D) and got.dtype == x.dtype
    np.testing.assert_allclose(got, _concat_pool_reference(x, mask), rtol=1e-6, atol=1e-6)


def test_a_row_without_real_steps_gives_zeros_and_finite_zero_gradients(key):
    mask = jnp.asarray(_masks()["post"])  # row 2 has length 0
    x = jax.random.normal(key, (B, T, D))
    pooled = layers.concat_pool(x, mask)
    np.testing.assert_array_equal(pooled[2], np.zeros(3 * D))
    weights = jax.random.normal(jax.random.fold_in(key, 1), (B, 3 * D))
    grad = jax.grad(lambda v: jnp.sum(weights * layers.concat_pool(v, mask)))(x)
    assert np.isfinite(np.asarray(grad)).all()
    np.testing.assert_array_equal(grad[2], np.zeros((T, D)))
    np.testing.assert_array_equal(np.asarray(grad)[~np.asarray(mask)], 0.0)  # padding gets no gradient


def _numpy_classifier(spec, params, tokens, mask):
    """Embedding -> (Bi)LSTM returning sequences -> concat pooling -> Dense, in float64 NumPy."""
    x = np.asarray(params["embedding"]["embeddings"], np.float64)[np.asarray(tokens)]
    p = params[models.layer_names(spec)[1]]
    if spec.layers[1].bidirectional:
        _, fy = reference.run_batch("lstm", p["forward"], x, mask)
        _, by = reference.run_batch("lstm", p["backward"], x, mask, reverse=True)
        x = np.concatenate([fy, by], -1)
    else:
        _, x = reference.run_batch("lstm", p, x, mask)
    x = _concat_pool_reference(x, mask)
    dense = params["dense"]
    return (x @ np.asarray(dense["kernel"], np.float64) + np.asarray(dense["bias"], np.float64))[..., 0]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["lstm", "bilstm"])
@pytest.mark.parametrize("padding", ["lengths", "mask_zero"])
def test_classifier_with_concat_pooling_matches_numpy(key, bidirectional, padding):
    spec = models.make_classifier(cell="lstm", vocab_size=11, embed_dim=3, hidden_size=4, pooling="concat",
                                  bidirectional=bidirectional, mask_zero=padding == "mask_zero")
    assert isinstance(spec.layers[2], ConcatPooling1D) and spec.layers[1].return_sequences
    params = models.init_model(spec, key)
    params["dense"]["bias"] = jnp.full((1,), 0.3)
    mask = _masks()["post" if padding == "lengths" else "pre"]
    tokens = jnp.where(jnp.asarray(mask), jax.random.randint(key, (B, T), 1, 11), 0)
    lengths = jnp.asarray(mask.sum(1), jnp.int32) if padding == "lengths" else None
    logits = models.apply_model(spec, params, tokens, lengths)
    np.testing.assert_allclose(logits, _numpy_classifier(spec, params, tokens, mask), rtol=1e-5, atol=1e-6)
    assert logits[2] == pytest.approx(0.3)  # the all-padding row: pooled zeros, the bias alone

    loss = lambda p: jnp.sum(jnp.sin(3 * models.apply_model(spec, p, tokens, lengths)))
    for leaf in jax.tree.leaves(jax.grad(loss)(params)):
        assert np.isfinite(np.asarray(leaf)).all()


def test_shapes_summary_model_files_and_checks(key):
    spec = models.make_classifier(cell="gru", vocab_size=11, embed_dim=3, hidden_size=4, bidirectional=True,
                                  pooling="concat")
    assert layers.output_size(spec.layers[2], 8) == 24
    params = models.init_model(spec, key)
    assert params["dense"]["kernel"].shape == (24, 1)
    row = next(line for line in models.summary(spec, params).splitlines() if line.startswith("concat_pooling1d"))
    assert row.split() == ["concat_pooling1d", "(ConcatPooling1D)", "(None,", "24)", "0"]
    assert models.spec_from_dict(models.spec_to_dict(spec)) == spec
    with pytest.raises(ValueError, match=r"layer 2 \(ConcatPooling1D\).*return_sequences=True"):
        ModelSpec((Embedding(11, 3), Recurrent("lstm", 4), ConcatPooling1D(), Dense(1)))
    with pytest.raises(ValueError, match="'concat'.*without attention"):
        models.make_classifier(cell="lstm", vocab_size=11, embed_dim=3, hidden_size=4, pooling="concat",
                               attention_units=2)


def test_keras_export_refuses_it_and_import_maps_only_keras_poolings(key):
    pytest.importorskip("keras")
    from rnnjax.keras_export import export_keras

    spec = models.make_classifier(cell="lstm", vocab_size=11, embed_dim=3, hidden_size=4, pooling="concat")
    with pytest.raises(ValueError, match=r"'concat_pooling1d' \(ConcatPooling1D\) has no Keras equivalent"):
        export_keras(spec, models.init_model(spec, key))
    assert sorted(keras_io._POOLING_CLASSES) == ["GlobalAveragePooling1D", "GlobalMaxPooling1D"]
