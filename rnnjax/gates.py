"""The arithmetic the stock cells and their fast paths share: initialisers, the input projection, per-unit
broadcasting, the activation table, the one-tanh gate activation and the GRU variant.

Each is written once here and imported by ``cells.py``, ``minimal.py`` and ``kernels/rules.py``; the cells'
equations themselves live in those files.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax.types import Params

glorot_uniform = jax.nn.initializers.glorot_uniform()
orthogonal = jax.nn.initializers.orthogonal()

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "linear": lambda x: x,
}


def lift(v: jax.Array, like: jax.Array) -> jax.Array:
    """Adds leading size-1 axes to a per-unit vector so it broadcasts against ``like`` explicitly (the tests run
    with rank promotion set to raise, which catches silently broadcast axes); cast to ``like``'s dtype."""
    return v.astype(like.dtype).reshape((1,) * (like.ndim - v.ndim) + v.shape)


def project(params: Params, x: jax.Array) -> jax.Array:
    """``x @ kernel + input bias`` in the dtype of ``x``: [..., F] -> [..., G*H].

    The input bias is ``bias`` ([G*H]) or its first row (``bias [2, G*H]``: the GRU with reset_after).
    """
    kernel = params["kernel"].astype(x.dtype)
    if "bias" not in params:
        return x @ kernel
    bias = params["bias"]
    return _affine(x, kernel, (bias[0] if bias.ndim == 2 else bias).astype(x.dtype))


@jax.custom_jvp
def _affine(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """``x @ w + b``, whose derivative is written with matmuls only.

    The bias enters the tangent as ``ones @ db``, so reverse mode gets ``db = ones^T @ dy`` (a matmul) rather
    than a row reduction, for which XLA:CPU transposes dy ([T*B, G]) and then reuses the transposed copy for
    ``dw``, several times slower.
    """
    y = x @ w
    return y + lift(b, y)


@_affine.defjvp
def _affine_jvp(primals, tangents):
    x, w, b = primals
    dx, dw, db = tangents
    y = _affine(x, w, b)
    x2 = x.reshape(-1, x.shape[-1])  # rows as one axis: the transposed products are plain 2-D matmuls
    ones = jnp.ones((x2.shape[0], 1), x.dtype)
    return y, dx @ w + (x2 @ dw + ones @ db[None, :]).reshape(y.shape)


def block_activation(z: jax.Array, pattern: str) -> jax.Array:
    """Per-gate sigmoid ('s') or tanh ('t') over a fused gate block [..., G*H], with one tanh.

    sigmoid(z) = 0.5 * tanh(0.5 * z) + 0.5, so ``tanh(z * scale) * scale + shift`` applies each gate's own
    activation with a single elementwise op over the block. On XLA:CPU one activation over the whole block
    inside a scan is several times faster than separate activations on its slices.
    """
    hidden = z.shape[-1] // len(pattern)
    scale = np.repeat([0.5 if g == "s" else 1.0 for g in pattern], hidden)
    shift = np.repeat([0.5 if g == "s" else 0.0 for g in pattern], hidden)
    scale, shift = lift(jnp.asarray(scale), z), lift(jnp.asarray(shift), z)
    return jnp.tanh(z * scale) * scale + shift


def gru_reset_after(params: Params, reset_after: bool | None) -> bool:
    """A GRU's variant: as given, else from its bias ([2, 3H] means reset_after). A GRU without a bias cannot
    show its variant (``r * (h U_h)`` and ``(r * h) U_h`` differ), so it defaults to Keras' reset_after=True."""
    if reset_after is not None:
        return reset_after
    return "bias" not in params or params["bias"].ndim == 2
