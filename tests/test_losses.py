"""Losses and metrics: stable cross-entropy against the textbook formula, padding rows never counted."""

import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import losses


def test_cross_entropy_matches_formula_in_float64():
    logits = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    labels = np.array([0, 1, 1, 0, 1])
    p = 1 / (1 + np.exp(-logits))
    expected = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    got = losses.sigmoid_binary_cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(labels))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_cross_entropy_is_finite_for_extreme_logits():
    logits = jnp.array([-1e4, 1e4, -100.0, 100.0])
    labels = jnp.array([1, 0, 0, 1])
    got = losses.sigmoid_binary_cross_entropy(logits, labels)
    np.testing.assert_allclose(got, [1e4, 1e4, 0.0, 0.0], atol=1e-6)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        losses.sigmoid_binary_cross_entropy(jnp.zeros((3,)), jnp.zeros((3, 1)))


def test_counts_ignore_padding_rows():
    logits = jnp.array([2.0, -1.0, 0.5, -2.0, 9.0, -9.0])
    labels = jnp.array([1, 1, 0, 0, -1, -1])
    counts = losses.binary_counts(logits, labels)
    assert int(counts["n_examples"]) == 4
    assert int(counts["n_correct"]) == 2
    assert (
        int(counts["true_pos"]),
        int(counts["false_neg"]),
        int(counts["false_pos"]),
        int(counts["true_neg"]),
    ) == (1, 1, 1, 1)
    real = losses.sigmoid_binary_cross_entropy(logits[:4], labels[:4])
    np.testing.assert_allclose(counts["loss_sum"], jnp.sum(real), rtol=1e-6)
    np.testing.assert_allclose(losses.mean_loss(logits, labels), jnp.mean(real), rtol=1e-6)


def test_all_padding_batch_gives_zero_loss():
    labels = jnp.full((3,), -1)
    assert float(losses.mean_loss(jnp.ones((3,)), labels)) == 0.0
    assert int(losses.binary_counts(jnp.ones((3,)), labels)["n_examples"]) == 0
