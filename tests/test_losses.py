"""Losses and metrics: stable cross-entropy against the textbook formula, padding rows never counted."""

import jax
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


# ------------------------------------------------------------------------------------------- multi-class


def _log_softmax_reference(logits: np.ndarray) -> np.ndarray:
    """NumPy float64 log-softmax from the definition, shifted by the row maximum."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_softmax_cross_entropy_matches_float64_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, (5, 4))
    labels = np.array([0, 3, 1, 2, 3])
    expected = -_log_softmax_reference(logits)[np.arange(5), labels]
    got = losses.softmax_cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(labels))
    assert got.shape == (5,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_softmax_cross_entropy_matches_keras():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 2.0, (6, 3)).astype(np.float32)
    labels = np.array([2, 0, 1, 1, 0, 2], np.int32)
    with jax.numpy_rank_promotion("allow"):  # Keras' own code broadcasts implicitly
        expected = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    got = losses.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_softmax_cross_entropy_is_finite_for_extreme_logits():
    logits = jnp.array([[1e4, -1e4, 0.0], [-100.0, 100.0, 0.0], [3e38, -3e38, 0.0]])
    got = losses.softmax_cross_entropy(logits, jnp.array([1, 1, 0]))
    np.testing.assert_allclose(got, [2e4, 0.0, 0.0], rtol=1e-6, atol=1e-6)


def test_softmax_cross_entropy_keeps_float32_for_bfloat16_logits():
    logits = jnp.array([[0.5, -1.0, 2.0], [1.0, 0.0, -1.0]], jnp.bfloat16)
    got = losses.softmax_cross_entropy(logits, jnp.array([2, 0]))
    expected = -_log_softmax_reference(np.asarray(logits, np.float64))[[0, 1], [2, 0]]
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "logits,labels,match",
    [
        (jnp.zeros((3,)), jnp.zeros((3,), jnp.int32), r"logits must be \[B, C\]"),
        (jnp.zeros((3, 4)), jnp.zeros((3, 1), jnp.int32), r"labels \[B\] with the same B"),
        (jnp.zeros((3, 4)), jnp.zeros((2,), jnp.int32), r"labels \[B\] with the same B"),
        (jnp.zeros((3, 4)), jnp.zeros((3,)), "integer class ids"),
    ],
    ids=["logits_1d", "labels_2d", "batch_differs", "float_labels"],
)
def test_categorical_shape_errors(logits, labels, match):
    for function in (losses.softmax_cross_entropy, losses.categorical_counts, losses.mean_categorical_loss):
        with pytest.raises(ValueError, match=match):
            function(logits, labels)


def _categorical_batch():
    """Six real rows of four classes (predictions 0, 2, 2, 1, 3, 0) and two padding rows."""
    logits = jnp.array(
        [
            [3.0, 0.0, 1.0, -1.0],
            [0.0, 1.0, 2.0, 0.5],
            [-1.0, 0.0, 4.0, 1.0],
            [0.0, 2.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 5.0],
            [1.0, 0.0, 0.0, 0.0],
            [1e30, -1e30, 0.0, 0.0],
            [0.0, 0.0, 9.0, 0.0],
        ]
    )
    labels = jnp.array([0, 1, 2, 1, 3, 2, -1, -1])
    return logits, labels


def test_categorical_counts_ignore_padding_rows():
    logits, labels = _categorical_batch()
    counts = losses.categorical_counts(logits, labels)
    expected_confusion = np.zeros((4, 4), np.int64)
    for true, predicted in [(0, 0), (1, 2), (2, 2), (1, 1), (3, 3), (2, 0)]:
        expected_confusion[true, predicted] += 1
    assert counts["confusion"].dtype == jnp.int32
    np.testing.assert_array_equal(counts["confusion"], expected_confusion)
    assert int(counts["n_examples"]) == 6
    assert int(counts["n_correct"]) == 4
    real = -_log_softmax_reference(np.asarray(logits[:6]))[np.arange(6), np.asarray(labels[:6])]
    np.testing.assert_allclose(counts["loss_sum"], real.sum(), rtol=1e-6)
    np.testing.assert_allclose(losses.mean_categorical_loss(logits, labels), real.mean(), rtol=1e-6)


def test_padding_rows_get_no_gradient():
    logits, labels = _categorical_batch()
    grads = jax.grad(losses.mean_categorical_loss)(logits, labels)
    assert np.all(np.isfinite(grads))
    np.testing.assert_array_equal(grads[6:], 0.0)
    assert np.all(np.abs(grads[:6]).sum(axis=-1) > 0)


def test_all_padding_categorical_batch_gives_zeros():
    labels = jnp.full((3,), -1)
    logits = jnp.ones((3, 5))
    assert float(losses.mean_categorical_loss(logits, labels)) == 0.0
    counts = losses.categorical_counts(logits, labels)
    assert int(counts["n_examples"]) == 0 and int(counts["n_correct"]) == 0
    assert counts["confusion"].shape == (5, 5) and int(jnp.sum(counts["confusion"])) == 0


def test_categorical_jit_matches_eager():
    logits, labels = _categorical_batch()
    eager = losses.categorical_counts(logits, labels)
    jitted = jax.jit(losses.categorical_counts)(logits, labels)
    for key in eager:
        np.testing.assert_array_equal(jitted[key], eager[key], err_msg=key)


# ------------------------------------------------------------------------------------------- dispatch


def test_dispatch_is_bitwise_the_binary_functions():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(0.0, 2.0, 9), jnp.float32)
    labels = jnp.array([1, 0, 0, 1, 1, 0, 1, -1, -1])
    for run in (lambda f: f, jax.jit):
        np.testing.assert_array_equal(
            run(losses.classification_loss)(logits, labels), run(losses.mean_loss)(logits, labels)
        )
        got = run(losses.classification_counts)(logits, labels)
        want = run(losses.binary_counts)(logits, labels)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_dispatch_picks_categorical_for_two_dimensional_logits():
    logits, labels = _categorical_batch()
    np.testing.assert_array_equal(
        losses.classification_loss(logits, labels), losses.mean_categorical_loss(logits, labels)
    )
    got, want = losses.classification_counts(logits, labels), losses.categorical_counts(logits, labels)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_dispatch_rejects_other_ranks():
    for function in (losses.classification_loss, losses.classification_counts):
        with pytest.raises(ValueError, match=r"\[B\] .*or \[B, C\]"):
            function(jnp.zeros((2, 3, 4)), jnp.zeros((2,), jnp.int32))
