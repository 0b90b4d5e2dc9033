"""Gradient diagnostics: per-position input gradients, their distance alignment, the plot; chrono_init stays
importable from here (its tests are in test_initializers.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import models
from rnnjax.analysis import diagnostics

B, T, E, H = 3, 6, 4, 5


def _spec(cell: str, vocab: int, mask_zero: bool = False) -> models.ModelSpec:
    return models.make_classifier(
        cell=cell, vocab_size=vocab, embed_dim=E, hidden_size=H, mask_zero=mask_zero
    )


def _batch(tokens: np.ndarray, lengths, labels) -> dict:
    return {
        "tokens": np.asarray(tokens, np.int32),
        "lengths": np.asarray(lengths, np.int32),
        "label": np.asarray(labels, np.int32),
    }


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_gradients_are_exactly_zero_at_padded_positions(cell, key):
    vocab = 11
    tokens = np.asarray(jax.random.randint(key, (B, T), 1, vocab))
    lengths = [6, 2, 4]
    tokens = np.where(np.arange(T)[None] < np.asarray(lengths)[:, None], tokens, 0)
    params = models.init_model(_spec(cell, vocab), key)
    norms = np.asarray(
        diagnostics.position_gradient_norms(_spec(cell, vocab), params, _batch(tokens, lengths, [1, 0, 1]))
    )
    padded = np.arange(T)[None] >= np.asarray(lengths)[:, None]
    assert norms.shape == (B, T)
    assert np.all(norms[padded] == 0.0)
    assert np.all(norms[~padded] > 0.0)


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_gradients_match_the_embedding_table_gradient_when_every_token_is_unique(cell, key):
    # With each position holding its own token id, d loss / d embeddings[id] is the gradient at that position:
    # an independent reference that differentiates the unchanged model through its embedding table.
    vocab = B * T + 1
    tokens = np.arange(1, vocab).reshape(B, T)
    batch = _batch(tokens, [6, 3, 5], [1, 0, 1])
    spec = _spec(cell, vocab)
    params = models.init_model(spec, key)
    got = diagnostics.input_gradients(spec, params, batch)

    def loss_of_table(table):
        from rnnjax import losses

        logits = models.apply_model(
            spec, {**params, "embedding": {"embeddings": table}}, batch["tokens"], batch["lengths"]
        )
        return losses.mean_loss(logits, jnp.asarray(batch["label"]))

    table_grad = jax.grad(loss_of_table)(params["embedding"]["embeddings"])
    np.testing.assert_allclose(got, table_grad[tokens], rtol=1e-5, atol=1e-8)


def test_gradients_match_finite_differences_in_float64(key, x64):
    vocab = 7
    tokens = np.asarray(jax.random.randint(key, (2, 4), 1, vocab))
    batch = _batch(tokens, [4, 3], [1, 0])
    spec = models.make_classifier(cell="lstm", vocab_size=vocab, embed_dim=3, hidden_size=2)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), models.init_model(spec, key))
    grads = np.asarray(diagnostics.input_gradients(spec, params, batch))
    embedded = np.asarray(params["embedding"]["embeddings"])[tokens]

    # Perturb one position's embedded vector by giving that position a fresh token with a perturbed row.
    big = models.replace_layer(spec, 0, vocab_size=vocab + 1)
    logits_of = jax.jit(
        lambda table, moved: models.apply_model(
            big, {**params, "embedding": {"embeddings": table}}, moved, batch["lengths"]
        )
    )

    def loss_at(b, t, e, delta):
        table = np.concatenate([np.asarray(params["embedding"]["embeddings"]), embedded[b, t][None]], axis=0)
        table[-1, e] += delta
        moved = tokens.copy()
        moved[b, t] = vocab
        z, y = np.asarray(logits_of(jnp.asarray(table), jnp.asarray(moved)), np.float64), batch["label"]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))  # float64 BCE; mean_loss rounds to float32

    eps = 1e-6
    for b, t, e in [(0, 0, 0), (0, 3, 2), (1, 1, 1), (1, 2, 0)]:
        fd = (loss_at(b, t, e, eps) - loss_at(b, t, e, -eps)) / (2 * eps)
        np.testing.assert_allclose(grads[b, t, e], fd, rtol=1e-4, atol=1e-9)  # float32 loss inside
    assert np.all(grads[1, 3] == 0.0)  # padded


def test_align_to_end_indexes_by_distance_and_skips_padding():
    values = jnp.asarray([[1.0, 2.0, 3.0, 0.0], [10.0, 20.0, 0.0, 0.0]])
    sums, counts = diagnostics.align_to_end(values, jnp.asarray([3, 2]))
    np.testing.assert_array_equal(sums, [23.0, 12.0, 1.0, 0.0])
    np.testing.assert_array_equal(counts, [2, 2, 1, 0])


def test_input_gradient_norms_shape_and_nan_beyond_the_longest_row(key):
    vocab = 9
    tokens = np.asarray(jax.random.randint(key, (B, T), 1, vocab))
    spec = _spec("gru", vocab)
    params = models.init_model(spec, key)
    curve = diagnostics.input_gradient_norms(spec, params, _batch(tokens, [4, 2, 3], [1, 0, -1]))
    assert curve.shape == (T,)
    assert np.all(np.isfinite(curve[:4])) and np.all(np.isnan(curve[4:]))


def test_plot_gradient_norms_writes_a_png(tmp_path):
    path = diagnostics.plot_gradient_norms(
        {"a": np.asarray([1.0, 0.1, np.nan]), "b": np.asarray([2.0, 1.0, 0.5])}, tmp_path / "g.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chrono_init_is_importable_from_diagnostics():
    from rnnjax import initializers

    assert diagnostics.chrono_init is initializers.chrono_init
