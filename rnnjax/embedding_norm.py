"""Miyato et al.'s normalised word vectors: the embedding table centred and scaled by the frequency-weighted
mean and variance of its rows, so that a perturbation of fixed norm cannot be made harmless by growing them.

An ``Embedding`` layer with ``frequencies`` applies ``normalize_embeddings`` to its table at every forward pass
(``layers.embedding_table``); the adversarial training of ``rnnjax.training.adversarial`` perturbs the result.
"""

import jax
import jax.numpy as jnp

EPS = 1e-6  # added to the variance under the square root, as in the paper's code


def _check_table(table: jax.Array, frequencies: jax.Array) -> None:
    if table.ndim != 2 or jnp.shape(frequencies) != table.shape[:1]:
        raise ValueError(
            f"embedding normalisation: table must be [V, E] and frequencies [V], got table {table.shape} and "
            f"frequencies {jnp.shape(frequencies)}; count each id of the training tokens, e.g. "
            "np.bincount(tokens.ravel(), minlength=V)."
        )


def _weighted_moments(table: jax.Array, frequencies: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Frequency-weighted mean [E] and variance [E] of the rows, padding id 0 weighted 0 (in float32+)."""
    _check_table(table, frequencies)
    dtype = jnp.promote_types(table.dtype, jnp.float32)
    weights = jnp.asarray(frequencies, dtype).at[0].set(0)  # id 0 pads, it is never a word of the text
    total = jnp.sum(weights)
    weights = weights / jnp.where(total > 0, total, 1)
    rows = table.astype(dtype)
    mean = weights @ rows
    variance = weights @ jnp.square(rows - mean[None, :])
    return mean, variance


def embedding_stats(table: jax.Array, frequencies: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The frequency-weighted mean and standard deviation of the word vectors, per dimension.

    ``E[v] = Σ_i f_i v_i / Σ_i f_i`` and ``Var[v] = Σ_i f_i (v_i - E[v])² / Σ_i f_i``, with ``f_i`` the count
    of word ``i`` in the training data. The padding id 0 gets weight 0 whatever ``frequencies[0]`` says.

    Args:
        table: [V, E] float, the Embedding's ``embeddings``.
        frequencies: [V] int or float, occurrences of each id in the training tokens (any scale).

    Returns:
        ``(mean [E], std [E])`` in float32 (float64 for a float64 table); all zeros without any frequency.

    Raises:
        ValueError: for a table that is not [V, E] or frequencies that are not [V].
    """
    mean, variance = _weighted_moments(table, frequencies)
    return mean, jnp.sqrt(variance)


def normalize_embeddings(table: jax.Array, frequencies: jax.Array, eps: float = EPS) -> jax.Array:
    """Miyato et al.'s normalised word vectors ``v̄_i = (v_i - E[v]) / sqrt(Var[v] + eps)``, for every row.

    Applied to the trainable table at every forward pass (as the paper does), so the moments follow the
    table as it trains and gradients flow through them. ``eps`` (inside the square root, as in the paper's
    code) keeps a constant dimension finite; it shrinks the variance to ``Var / (Var + eps)``.

    Args:
        table: [V, E] float.
        frequencies: [V] int or float, occurrences of each id in the training tokens (id 0 ignored).
        eps: added to the variance.

    Returns:
        [V, E] in the table's dtype.

    Raises:
        ValueError: for a table that is not [V, E] or frequencies that are not [V].
    """
    mean, variance = _weighted_moments(table, frequencies)
    normalised = (table.astype(mean.dtype) - mean[None, :]) / jnp.sqrt(variance + eps)[None, :]
    return normalised.astype(table.dtype)


def moments(table: jax.Array, frequencies: jax.Array, eps: float = EPS) -> tuple[jax.Array, jax.Array]:
    """``(mean [E], scale [E])`` with ``table == mean + scale * normalize_embeddings(table, frequencies, eps)``
    (row-wise): ``scale = sqrt(Var[v] + eps)``, the exact inverse of the normalisation."""
    mean, variance = _weighted_moments(table, frequencies)
    return mean, jnp.sqrt(variance + eps)
