"""Losses and metrics as (sum, count) pairs that padding never enters: classifiers' and sampled softmax.

Binary models (a final Dense(1)) give logits [B] and use the sigmoid functions; multi-class models (a final
Dense(C)) give logits [B, C] and use the softmax ones; ``classification_loss`` and ``classification_counts``
pick between them by the rank of the logits. A batch may end with padding rows (label -1, see
``types.Batch``); every function here weights examples by ``label >= 0``, returns sums and counts, and leaves
the division to the host. Reports built from these counts (precision, recall, F1, confusion tables) live in
``analysis/``; the training loop in ``training/loop.py``.

Sampled softmax (``sampled_logits``, ``sampled_softmax_cross_entropy``) trains an output layer over a large
vocabulary against the true class and S classes drawn (``sample_candidates``) from a ``Proposal``
(``log_uniform_proposal``, ``unigram_proposal``), as TensorFlow's ``tf.nn.sampled_softmax_loss``; where it
meets a language model's output layer is ``training/language_model.py``'s business.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


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


# ------------------------------------------------------------------------------------------ sampled softmax


class Proposal(NamedTuple):
    """A distribution over C classes that sampled softmax draws its negatives from, built once on the host.

    The cumulative probabilities are computed here rather than inside a jitted step, where XLA would fold a
    cumulative sum over a constant [C] array at every compilation.
    """

    log_q: np.ndarray  # [C] float32 log-probabilities
    cdf: np.ndarray  # [C] float32 cumulative probabilities (the last is 1)


def _proposal(p: np.ndarray) -> Proposal:
    p = p / p.sum()
    return Proposal(np.log(p).astype(np.float32), np.cumsum(p).astype(np.float32))


def log_uniform_proposal(num_classes: int) -> Proposal:
    """TensorFlow's log-uniform (Zipfian) sampler over class ids ``0..C-1``.

    ``P(k) = log((k + 2) / (k + 1)) / log(C + 1)``: a vocabulary whose ids are sorted by falling frequency
    (as ``text.fit_vocabulary`` sorts them) is roughly Zipfian in this order.

    Args:
        num_classes: C >= 1.
    """
    return _proposal(np.log1p(1.0 / np.arange(1.0, num_classes + 1.0)))


def unigram_proposal(counts: np.ndarray) -> Proposal:
    """Probabilities proportional to ``counts + 1`` (add-one, so no class has probability 0).

    Args:
        counts: [C] non-negative class counts, e.g. how often each id is a training target.
    """
    return _proposal(np.asarray(counts, np.float64) + 1.0)


def sample_candidates(key: jax.Array, proposal: Proposal, num_sampled: int) -> jax.Array:
    """Draws ``num_sampled`` class ids from the proposal, with replacement (TF's ``unique=False``).

    Args:
        key: PRNG key.
        proposal: the distribution, e.g. ``log_uniform_proposal(C)``.
        num_sampled: S >= 1, the number of draws.

    Returns:
        [S] int32 class ids in [0, C).
    """
    cdf = jnp.asarray(proposal.cdf)
    u = jax.random.uniform(key, (num_sampled,), jnp.float32) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cdf.shape[0] - 1).astype(jnp.int32)


def sampled_logits(
    inputs: jax.Array,
    weights: jax.Array,
    biases: jax.Array,
    labels: jax.Array,
    sampled: jax.Array,
    log_proposal: jax.Array,
) -> jax.Array:
    """Logits of each example's true class and of the shared sampled classes, corrected for the proposal.

    As TensorFlow's ``_compute_sampled_logits`` with ``subtract_log_q=True`` and ``remove_accidental_hits``:
    logit ``z_k = inputs @ weights[k] + biases[k] - log(S * Q(k))``, where ``S * Q(k)`` is the expected number
    of times class k is among the S draws (with replacement); a sampled class equal to the example's label
    gets logit -inf, so the true class is never its own negative. Softmax cross-entropy against column 0 is
    ``tf.nn.sampled_softmax_loss``; with every class sampled once and a uniform Q (``S * Q(k) = 1``) it is
    exactly the full softmax's loss.

    Args:
        inputs: [N, D] float, the output layer's inputs.
        weights: [C, D] float, one row per class (a Dense kernel transposed, or a tied embedding table).
        biases: [C] float.
        labels: [N] int, the true class of each example, in [0, C).
        sampled: [S] int, the sampled classes, in [0, C).
        log_proposal: [C] float, log Q of the distribution ``sampled`` was drawn from (``Proposal.log_q``).

    Returns:
        [N, 1 + S] float32: column 0 the true class, then the sampled classes in order.

    Raises:
        ValueError: if the shapes disagree.
    """
    if (
        inputs.ndim != 2
        or weights.shape[1:] != inputs.shape[1:]
        or biases.shape != weights.shape[:1]
        or labels.shape != inputs.shape[:1]
        or sampled.ndim != 1
        or log_proposal.shape != biases.shape
    ):
        raise ValueError(
            "sampled_logits: expected inputs [N, D], weights [C, D], biases [C], labels [N], sampled [S] and "
            f"log_proposal [C], got {inputs.shape}, {weights.shape}, {biases.shape}, {labels.shape}, "
            f"{sampled.shape} and {log_proposal.shape}."
        )
    log_expected = jnp.log(jnp.float32(sampled.shape[0])) + log_proposal.astype(jnp.float32)
    true_w = jnp.take(weights, labels, axis=0).astype(inputs.dtype)
    true_logits = jnp.sum((inputs * true_w).astype(jnp.float32), axis=-1)
    true_logits += jnp.take(biases, labels).astype(jnp.float32) - jnp.take(log_expected, labels)
    negative_logits = (inputs @ jnp.take(weights, sampled, axis=0).T.astype(inputs.dtype)).astype(jnp.float32)
    negative_logits += (jnp.take(biases, sampled).astype(jnp.float32) - jnp.take(log_expected, sampled))[None]
    hits = labels[:, None] == sampled[None, :]
    negative_logits = jnp.where(hits, -jnp.inf, negative_logits)
    return jnp.concatenate([true_logits[:, None], negative_logits], axis=1)


def sampled_softmax_cross_entropy(
    inputs: jax.Array,
    weights: jax.Array,
    biases: jax.Array,
    labels: jax.Array,
    sampled: jax.Array,
    log_proposal: jax.Array,
) -> jax.Array:
    """Per-example sampled softmax loss ``-log_softmax(sampled_logits(...))[:, 0]`` (arguments as there).

    Returns:
        [N] float32 losses.
    """
    return sampled_cross_entropy(sampled_logits(inputs, weights, biases, labels, sampled, log_proposal))


def sampled_cross_entropy(logits: jax.Array) -> jax.Array:
    """[N] float32 losses ``-log_softmax(logits)[:, 0]`` of ``sampled_logits``' [N, 1 + S] (the true class first)."""
    return -jax.nn.log_softmax(logits, axis=-1)[:, 0]
