"""Hand-written backward rules per cell: the step pairs that ``fused.py`` runs over a whole sequence.

Autodiff of a ``lax.scan`` saves every intermediate of the step and differentiates the recurrent matmul at
each step. Here each cell has a forward step that returns the few values its gradient needs, and a backward
step that carries only the gradient of the state (dh, dc) through time. The recurrent weight's gradient is
one matmul over all steps after the backward loop, ``dU = sum_t h_{t-1}^T dz_t``, and the input
projection's gradient is the stacked ``dz`` (which autodiff of the projection turns into ``dW`` and ``dx``).

Each rule is three functions of the recurrent weights (e.g. ``(U,)``; a leading direction axis is allowed):

    forward(weights, carry, xw) -> (new_carry, y, residuals)
    backward(weights, residuals, dcarry_total) -> (dcarry_prev, dxw)
    weight_grads(weights, residuals_t, dxw_t) -> dweights     (all steps at once, after the loop)

They compute exactly the equations of ``cells.py`` (tests compare values and gradients with the plain scan +
autodiff path). ``RULES`` maps a rule name (lstm, gru, gru_v1 for reset_after=False, simple_rnn_<activation>)
to its ``Rule``. The masked loop over time lives in ``fused.py``; the native kernels reuse the weight gradients.
"""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax.gates import ACTIVATIONS, block_activation


def _lstm_forward(weights, carry, xw):
    (u,) = weights
    h, c = carry
    a = block_activation(xw + h @ u, "ssts")
    i, f, g, o = jnp.split(a, 4, axis=-1)
    c_new = f * c + i * g
    tc = jnp.tanh(c_new)
    h_new = o * tc
    return (h_new, c_new), h_new, (h, c, a, tc)


def _lstm_backward(weights, res, dcarry):
    (u,) = weights
    _, c, a, tc = res
    dh, dc = dcarry
    i, f, g, o = jnp.split(a, 4, axis=-1)
    dc = dc + dh * o * (1 - tc * tc)
    dz = jnp.concatenate(
        [dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g), dh * tc * o * (1 - o)], -1
    )
    return (dz @ _t(u), dc * f), dz


def _t(u: jax.Array) -> jax.Array:
    """Transpose of the last two axes (weights may carry a leading direction axis)."""
    return jnp.swapaxes(u, -1, -2)


def _outer_sum(a_tbh: jax.Array, b_tbg: jax.Array) -> jax.Array:
    """Sum over t and b of a[t, b]^T b[t, b]: [H, G], or [D, H, G] for stacked directions ([T, D, B, ...]).

    The single-direction case is one [H, T*B] x [T*B, G] matmul, which XLA:CPU runs faster than the einsum.
    """
    if a_tbh.ndim == 4:
        return jnp.einsum("tdbh,tdbg->dhg", a_tbh, b_tbg)
    return a_tbh.reshape(-1, a_tbh.shape[-1]).T @ b_tbg.reshape(-1, b_tbg.shape[-1])


def hidden_weight_grads(weights, res, dz):
    """``dU = sum_t h_{t-1}^T dz_t`` from the residuals' first entry h: the LSTM's and the SimpleRNN's rule."""
    return (_outer_sum(res[0], dz),)


def _gru_forward(weights, carry, xw):
    """reset_after=True: weights (U, recurrent bias shaped [..., 1, 3H] to broadcast over the batch)."""
    u, b_r = weights
    (h,) = carry
    hidden = h.shape[-1]
    hu = h @ u + b_r
    zr = block_activation(xw[..., : 2 * hidden] + hu[..., : 2 * hidden], "ss")
    z, r = zr[..., :hidden], zr[..., hidden:]
    hu_h = hu[..., 2 * hidden :]
    n = jnp.tanh(xw[..., 2 * hidden :] + r * hu_h)
    h_new = z * h + (1 - z) * n
    return (h_new,), h_new, (h, z, r, n, hu_h)


def _gru_backward(weights, res, dcarry):
    u, _ = weights
    h, z, r, n, hu_h = res
    (dh,) = dcarry
    dn = dh * (1 - z) * (1 - n * n)
    dz = dh * (h - n) * z * (1 - z)
    dr = dn * hu_h * r * (1 - r)
    dhu = jnp.concatenate([dz, dr, dn * r], -1)
    dxw = jnp.concatenate([dz, dr, dn], -1)
    return (dh * z + dhu @ _t(u),), dxw


def _gru_weight_grads(weights, res, dxw):
    h, _, r, _, _ = res
    hidden = h.shape[-1]
    dhu = jnp.concatenate([dxw[..., : 2 * hidden], dxw[..., 2 * hidden :] * r], -1)  # recomputed, not stacked
    return _outer_sum(h, dhu), jnp.sum(dhu, axis=0).sum(axis=-2, keepdims=True)


def _gru_v1_forward(weights, carry, xw):
    """reset_after=False (the original GRU): weights (U,)."""
    (u,) = weights
    (h,) = carry
    hidden = h.shape[-1]
    zr = block_activation(xw[..., : 2 * hidden] + h @ u[..., : 2 * hidden], "ss")
    z, r = zr[..., :hidden], zr[..., hidden:]
    rh = r * h
    n = jnp.tanh(xw[..., 2 * hidden :] + rh @ u[..., 2 * hidden :])
    h_new = z * h + (1 - z) * n
    return (h_new,), h_new, (h, z, r, n)


def _gru_v1_backward(weights, res, dcarry):
    (u,) = weights
    h, z, r, n = res
    (dh,) = dcarry
    hidden = h.shape[-1]
    dn = dh * (1 - z) * (1 - n * n)
    drh = dn @ _t(u[..., 2 * hidden :])
    dzr = jnp.concatenate([dh * (h - n) * z * (1 - z), drh * h * r * (1 - r)], -1)
    dh_prev = dh * z + drh * r + dzr @ _t(u[..., : 2 * hidden])
    dxw = jnp.concatenate([dzr, dn], -1)
    return (dh_prev,), dxw


def gru_v1_weight_grads(weights, res, dxw):
    """reset_after=False: ``dU_zr = sum h^T dxw_zr`` and ``dU_h = sum (r * h)^T dxw_h``."""
    h, _, r, _ = res
    hidden = h.shape[-1]
    d_zr = _outer_sum(h, dxw[..., : 2 * hidden])
    d_h = _outer_sum(r * h, dxw[..., 2 * hidden :])
    return (jnp.concatenate([d_zr, d_h], -1),)


_ACTIVATION_GRADS: dict[str, Callable[[jax.Array], jax.Array]] = {
    # Each derivative is written in terms of the activation's output y.
    "tanh": lambda y: 1 - y * y,
    "sigmoid": lambda y: y * (1 - y),
    "relu": lambda y: (y > 0).astype(y.dtype),
    "linear": lambda y: jnp.ones_like(y),
}


def _simple_rnn_forward(activation, weights, carry, xw):
    (u,) = weights
    (h,) = carry
    h_new = ACTIVATIONS[activation](xw + h @ u)
    return (h_new,), h_new, (h, h_new)


def _simple_rnn_backward(activation, weights, res, dcarry):
    (u,) = weights
    _, h_new = res
    (dh,) = dcarry
    dpre = dh * _ACTIVATION_GRADS[activation](h_new)
    return (dpre @ _t(u),), dpre


class Rule(NamedTuple):
    """A cell's step pair and weight gradients (see the module docstring)."""

    forward: Callable
    backward: Callable
    weight_grads: Callable


RULES = {
    "lstm": Rule(_lstm_forward, _lstm_backward, hidden_weight_grads),
    "gru": Rule(_gru_forward, _gru_backward, _gru_weight_grads),
    "gru_v1": Rule(_gru_v1_forward, _gru_v1_backward, gru_v1_weight_grads),
}
RULES.update(
    {
        f"simple_rnn_{act}": Rule(
            partial(_simple_rnn_forward, act), partial(_simple_rnn_backward, act), hidden_weight_grads
        )
        for act in ACTIVATIONS
    }
)
