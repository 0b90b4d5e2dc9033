"""Classification losses and metrics from logits, as (sum, count) pairs that padding never enters.

Binary models (a final Dense(1)) give logits [B] and use the sigmoid functions; multi-class models (a final
Dense(C)) give logits [B, C] and use the softmax ones; ``classification_loss`` and ``classification_counts``
pick between them by the rank of the logits. A batch may end with padding rows (label -1, see
``types.Batch``); every function here weights examples by ``label >= 0``, returns sums and counts, and leaves
the division to the host. Reports built from these counts (precision, recall, F1, confusion tables) live in
``analysis/``; the training loop in ``training/loop.py``.
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


def _check_categorical(name: str, logits: jax.Array, labels: jax.Array) -> None:
    """Raises ValueError unless logits are [B, C] and labels are [B] integer class ids."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"{name}: logits must be [B, C] and labels [B] with the same B, got logits {logits.shape} and "
            f"labels {labels.shape}; a model ending in Dense(C) gives logits [B, C] (for a Dense(1) model "
            "use the binary functions)."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"{name}: labels must be integer class ids in [0, C), got dtype {labels.dtype}; cast them with "
            "labels.astype(jnp.int32)."
        )


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example sparse categorical cross-entropy ``-log softmax(logits)[label]``, computed stably.

    ``log_softmax`` subtracts the row maximum before exponentiating, so no logit overflows and no probability
    is rounded to ``log(0)``. Keras' ``sparse_categorical_crossentropy(from_logits=True)`` computes the same.

    Args:
        logits: [B, C] float, pre-softmax scores.
        labels: [B] int, class ids in [0, C) (-1 reads the last class and an id outside [-C, C) gives NaN;
            mask such rows out of any sum, as the functions below do for padding rows).

    Returns:
        [B] float32 losses.

    Raises:
        ValueError: if logits are not [B, C], labels not [B], or labels not integers.
    """
    _check_categorical("softmax_cross_entropy", logits, labels)
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.take_along_axis(log_p, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]


def categorical_counts(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Loss, correct predictions and the confusion matrix of a batch over its real examples only.

    The predicted class is ``argmax(logits)`` (the first on ties), like Keras' sparse categorical accuracy.

    Args:
        logits: [B, C] float.
        labels: [B] int, class ids in [0, C) for real examples and -1 for padding rows.

    Returns:
        ``loss_sum`` (float32), ``n_correct``, ``n_examples`` (int32 scalars) and ``confusion`` ([C, C]
        int32: rows are the true class, columns the predicted one, as in scikit-learn).

    Raises:
        ValueError: if logits are not [B, C], labels not [B], or labels not integers.
    """
    _check_categorical("categorical_counts", logits, labels)
    real = example_mask(labels)
    classes = jnp.where(real, labels, 0).astype(jnp.int32)
    losses = softmax_cross_entropy(logits, classes)
    predicted = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    n_classes = logits.shape[1]
    # A scatter-add of 0/1 weights keeps the counts exact integers (a float matmul would round beyond 2**24).
    confusion = (
        jnp.zeros((n_classes, n_classes), jnp.int32).at[classes, predicted].add(real.astype(jnp.int32))
    )
    return {
        "loss_sum": jnp.sum(jnp.where(real, losses, 0.0)),
        "n_correct": jnp.sum((predicted == classes) & real, dtype=jnp.int32),
        "n_examples": jnp.sum(real, dtype=jnp.int32),
        "confusion": confusion,
    }


def mean_categorical_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The loss to differentiate for a [B, C] model: mean softmax cross-entropy over the real examples.

    Args:
        logits: [B, C] float.
        labels: [B] int, class ids for real examples and -1 for padding rows.

    Returns:
        A float32 scalar (0 for an all-padding batch).

    Raises:
        ValueError: if logits are not [B, C], labels not [B], or labels not integers.
    """
    _check_categorical("mean_categorical_loss", logits, labels)
    real = example_mask(labels)
    losses = softmax_cross_entropy(logits, jnp.where(real, labels, 0))
    return jnp.sum(jnp.where(real, losses, 0.0)) / jnp.maximum(jnp.sum(real), 1)


def _is_binary(name: str, logits: jax.Array) -> bool:
    if logits.ndim not in (1, 2):
        raise ValueError(
            f"{name}: logits must be [B] (a model ending in Dense(1)) or [B, C] (Dense(C)), got shape "
            f"{logits.shape}; pass the model's logits as apply_model returns them."
        )
    return logits.ndim == 1


def classification_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """A classifier batch's mean loss: ``mean_loss`` for logits [B], ``mean_categorical_loss`` for [B, C].

    Args:
        logits: [B] or [B, C] float, as ``apply_model`` returns them.
        labels: [B] int, 0 or 1 (binary) or class ids (categorical) for real examples, -1 for padding rows.

    Returns:
        A float32 scalar, the mean over real examples (0 for an all-padding batch).

    Raises:
        ValueError: for logits of another rank, or shapes that do not match.
    """
    if _is_binary("classification_loss", logits):
        return mean_loss(logits, labels)
    return mean_categorical_loss(logits, labels)


def classification_counts(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """A classifier batch's sums and counts: ``binary_counts`` for logits [B], ``categorical_counts`` for
    [B, C].

    Args:
        logits: [B] or [B, C] float, as ``apply_model`` returns them.
        labels: [B] int, 0 or 1 (binary) or class ids (categorical) for real examples, -1 for padding rows.

    Returns:
        ``binary_counts``' keys for logits [B]; ``categorical_counts``' keys for logits [B, C].

    Raises:
        ValueError: for logits of another rank, or shapes that do not match.
    """
    if _is_binary("classification_counts", logits):
        return binary_counts(logits, labels)
    return categorical_counts(logits, labels)
