"""Dropout masks as Keras makes them: inverted (kept units scaled by 1 / (1 - rate)), from an explicit key.

``dropout`` drops elements; a mask shape with size-1 axes shares one decision along them, which gives
SpatialDropout1D (``[B, 1, E]``: whole embedding channels per sequence) and the RNN dropouts of ``scan.run``
(one mask per sequence reused at every time step). ``drop_recurrent_kernel`` drops weights instead of
activations: AWD-LSTM's DropConnect on a cell's recurrent matrix, one mask for the whole batch.
"""

import jax
import jax.numpy as jnp

from rnnjax.types import Params, PRNGKey


def dropout_mask(rng: PRNGKey, rate: float, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """A mask of ``0`` (dropped, with probability ``rate``) and ``1 / (1 - rate)`` (kept).

    Raises:
        ValueError: if rate is not in [0, 1).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}; use 0 to disable dropout.")
    keep = jax.random.bernoulli(rng, 1.0 - rate, shape)
    return keep.astype(dtype) / jnp.asarray(1.0 - rate, dtype)


def dropout(rng: PRNGKey | None, x: jax.Array, rate: float, *, shared_axes: tuple[int, ...] = ()) -> jax.Array:
    """Applies inverted dropout to ``x``; identity when ``rng`` is None (inference) or ``rate`` is 0.

    Args:
        rng: key, or None at inference.
        x: any floating array.
        rate: fraction dropped, in [0, 1).
        shared_axes: axes along which one decision is shared (SpatialDropout1D on [B, T, E] shares axis 1).
    """
    if rng is None or rate == 0.0:
        return x
    shape = tuple(1 if axis in shared_axes else size for axis, size in enumerate(x.shape))
    return x * dropout_mask(rng, rate, shape, x.dtype)


def drop_recurrent_kernel(rng: PRNGKey, params: Params, rate: float) -> Params:
    """A cell's params with ``recurrent_kernel`` [H, G*H] times ``dropout_mask`` (DropConnect, AWD-LSTM).

    One mask for the whole batch and every time step; applied to the params before the cell runs, so every scan
    path sees the dropped matrix and the gradient reaches the kept entries only (scaled by 1 / (1 - rate)).

    Args:
        rng: key of the mask.
        params: the cell's params, with a ``recurrent_kernel``.
        rate: fraction of entries dropped, in [0, 1).

    Raises:
        ValueError: if params has no recurrent_kernel, or rate is not in [0, 1).
    """
    if "recurrent_kernel" not in params:
        raise ValueError(
            f"weight dropout needs a recurrent_kernel param, got params {sorted(params)}; set weight_dropout=0."
        )
    kernel = params["recurrent_kernel"]
    return {**params, "recurrent_kernel": kernel * dropout_mask(rng, rate, kernel.shape, kernel.dtype)}
