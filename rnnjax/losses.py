"""Binary classification losses and metrics from logits, as (sum, count) pairs that padding never enters.

A batch may end with padding rows (label -1, see ``types.Batch``); every function here weights examples by
``label >= 0``, returns sums and counts, and leaves the division to the host. Precision, recall and the
confusion matrix built from these counts live in ``evaluate.py``; the training loop in ``training/loop.py``.
"""

import jax
import jax.numpy as jnp


def sigmoid_binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example binary cross-entropy of ``sigmoid(logits)`` against 0/1 labels, computed stably.

    ``max(z, 0) - z * y + log1p(exp(-|z|))`` equals ``-y log p - (1 - y) log(1 - p)`` with ``p = sigmoid(z)``
    but never overflows or takes ``log(0)``. Keras computes the same loss from probabilities clipped to
    ``[1e-7, 1 - 1e-7]``; the two agree wherever that clip is inactive.

    Args:
        logits: [B] float, pre-sigmoid scores.
        labels: [B] int or float, 0 or 1 (other values are allowed; mask them out of any sum).

    Returns:
        [B] float32 losses.

    Raises:
        ValueError: if the shapes differ.
    """
    if logits.shape != labels.shape:
        raise ValueError(
            f"sigmoid_binary_cross_entropy: logits {logits.shape} and labels {labels.shape} must have the same "
            "shape [B]; a model ending in Dense(1) gives logits [B]."
        )
    z = logits.astype(jnp.float32)
    y = labels.astype(jnp.float32)
    return jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))


def example_mask(labels: jax.Array) -> jax.Array:
    """[B] bool: True for real examples (label >= 0), False for padding rows (label -1)."""
    return labels >= 0


def binary_counts(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Loss and confusion counts of a batch over its real examples only.

    A logit above 0 (probability above 0.5) predicts the positive class 1, like Keras' binary accuracy.

    Args:
        logits: [B] float.
        labels: [B] int, 0 or 1 for real examples and -1 for padding rows.

    Returns:
        ``loss_sum`` (float32), ``n_correct``, ``n_examples``, ``true_pos``, ``false_pos``, ``true_neg`` and
        ``false_neg`` (int32), all scalars.
    """
    real = example_mask(labels)
    losses = sigmoid_binary_cross_entropy(logits, jnp.where(real, labels, 0))
    predicted = logits > 0
    actual = labels == 1

    def count(condition: jax.Array) -> jax.Array:
        return jnp.sum(condition & real, dtype=jnp.int32)

    return {
        "loss_sum": jnp.sum(jnp.where(real, losses, 0.0)),
        "n_correct": count(predicted == actual),
        "n_examples": count(real),
        "true_pos": count(predicted & actual),
        "false_pos": count(predicted & ~actual),
        "true_neg": count(~predicted & ~actual),
        "false_neg": count(~predicted & actual),
    }


def mean_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The loss to differentiate: mean cross-entropy over the real examples (0 for an all-padding batch)."""
    real = example_mask(labels)
    losses = sigmoid_binary_cross_entropy(logits, jnp.where(real, labels, 0))
    return jnp.sum(jnp.where(real, losses, 0.0)) / jnp.maximum(jnp.sum(real), 1)
