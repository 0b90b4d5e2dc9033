"""Whole-sequence recurrences with hand-written backward passes: the fast path ``rnnjax.kernels`` attaches
to the stock SimpleRNN, LSTM and GRU (``scan.FAST_PATHS``).

``_sequence`` runs a cell's ``rules.Rule`` over time under ``jax.custom_vjp``: the forward loop keeps the rule's
residuals, the backward loop carries only the gradient of the state, and the recurrent weights' gradients are
computed once after it. Masking follows ``scan.run``: at a masked step the carry is held and the output is
zero, so the gradient passes through the held carry unchanged. Reversal, dropout on the inputs and the input
projection stay in ``scan.run``; recurrent dropout and peephole LSTMs use the plain path (``supports``).

On the CPU in float32, the SimpleRNN, LSTM and GRU sequences run in native kernels instead
(``native_calls.run_native``): the same equations, written per batch row in C++, because XLA:CPU compiles the
per-step slicing of a ``lax.scan`` body into scalar loops. The rules remain the path for every other backend and
dtype, and the reference the native kernels are tested against.

Layout inside this file is time-major: ``xw_tbg [T, B, G*H]``, ``mask_tb [T, B]`` (the native kernels take
direction-major ``[D, T, B, ...]``).
"""

from functools import partial

import jax
import jax.numpy as jnp

from rnnjax.gates import gru_reset_after
from rnnjax.kernels import native_calls
from rnnjax.kernels.rules import ACTIVATIONS, RULES, Rule
from rnnjax.scan import FastPath, hold, materialize
from rnnjax.types import Carry


def _sequence_forward(rule: Rule, with_outputs: bool, weights, xw_tbg, mask_tb, carry, keep_residuals: bool):
    def step(carry, inputs):
        xw, m = inputs
        new_carry, y, res = rule.forward(weights, carry, xw)
        new_carry, y = hold(m, new_carry, carry, y)
        # Per-step outputs cost a write per step; without return_sequences only the final carry is kept.
        return new_carry, (y if with_outputs else None, res if keep_residuals else None)

    carry, (ys, res) = jax.lax.scan(step, carry, (xw_tbg, mask_tb))
    return ys, carry, res


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _sequence(rule: Rule, with_outputs: bool, weights, xw_tbg, mask_tb, carry):
    ys, carry, _ = _sequence_forward(
        rule, with_outputs, weights, xw_tbg, mask_tb, carry, keep_residuals=False
    )
    return ys, carry


def _sequence_fwd(rule, with_outputs, weights, xw_tbg, mask_tb, carry):
    ys, carry, res = _sequence_forward(
        rule, with_outputs, weights, xw_tbg, mask_tb, carry, keep_residuals=True
    )
    return (ys, carry), (weights, mask_tb, res)


def _sequence_bwd(rule, with_outputs, saved, cotangents):
    weights, mask_tb, res = saved
    dys, dcarry = cotangents

    def step(dcarry, inputs):
        res_t, dy, m = inputs
        total = tuple(dcarry) if dy is None else (dcarry[0] + dy,) + tuple(dcarry[1:])
        dprev, dxw = rule.backward(weights, res_t, total)
        if m is not None:
            m1 = m[..., None]
            # A masked step held the carry and output zero: its gradient passes the carry's through unchanged.
            dprev = tuple(jnp.where(m1, d, d_held) for d, d_held in zip(dprev, dcarry))
            dxw = jnp.where(m1, dxw, jnp.zeros((), dxw.dtype))
        return dprev, dxw

    dcarry0, dxw_tbg = jax.lax.scan(step, tuple(dcarry), (res, dys, mask_tb), reverse=True)
    dweights = rule.weight_grads(weights, res, dxw_tbg)
    return dweights, dxw_tbg, None, dcarry0


_sequence.defvjp(_sequence_fwd, _sequence_bwd)


_NATIVE = ("lstm", "gru", "gru_v1", *(f"simple_rnn_{act}" for act in native_calls.SIMPLE_RNN_ACTIVATIONS))


def _use_native(name: str, dtype) -> bool:
    from rnnjax.kernels import native  # imported here: it builds the kernels on first use only

    return name in _NATIVE and dtype == jnp.float32 and jax.default_backend() == "cpu" and native.available()


def supports(cell: str, params, cell_options: dict) -> bool:
    """Whether ``run_fused`` implements this cell with these parameters and options."""
    if "recurrent_mask" in cell_options:
        return False
    if cell == "lstm":
        return "peephole" not in params and not cell_options
    if cell == "gru":
        return set(cell_options) <= {"reset_after"}
    if cell == "simple_rnn":
        return set(cell_options) <= {"activation"} and cell_options.get("activation", "tanh") in ACTIVATIONS
    return False


def _weights(cell: str, params, dtype, cell_options: dict) -> tuple[str, tuple[jax.Array, ...]]:
    """The rule's name and the recurrent weights it uses, in the compute dtype."""
    u = params["recurrent_kernel"].astype(dtype)
    if cell == "lstm":
        return "lstm", (u,)
    reset_after = gru_reset_after(params, cell_options.get("reset_after"))
    if cell == "gru" and reset_after:
        b_r = params["bias"][1] if "bias" in params else jnp.zeros(u.shape[1:], dtype)
        return "gru", (u, b_r.astype(dtype)[None, :])
    if cell == "gru":
        return "gru_v1", (u,)
    return f"simple_rnn_{cell_options.get('activation', 'tanh')}", (u,)


def run_fused(
    cell: str,
    params,
    xw_tbg: jax.Array,
    mask_tb: jax.Array | None,
    carry: Carry,
    *,
    return_sequences: bool = True,
    **cell_options,
):
    """Runs a whole sequence from its projected inputs with the hand-written backward pass.

    Several directions of a bidirectional layer run in one scan when ``params`` is a list (one per direction)
    and the other arguments carry a direction axis D after time: the recurrent matmuls become one batched
    matmul per step, and the loop runs once instead of once per direction.

    Args:
        cell: simple_rnn, lstm or gru (see ``supports``).
        params: the cell's parameters (only the recurrent ones are used here), or a list of them.
        xw_tbg: [T, B, G*H] projected inputs ``x @ kernel + input bias`` ([T, D, B, G*H] for a list), or a
            ``Gathered`` table and ids.
        mask_tb: [T, B] bool ([T, D, B]) or None.
        carry: initial carry, arrays [B, H] ([D, B, H]).
        return_sequences: emit the per-step outputs; False returns None for them (the final h is in the carry).
        **cell_options: ``activation`` for simple_rnn, ``reset_after`` for gru.

    Returns:
        ``(ys [T, B, H] or [T, D, B, H] or None, final carry)`` with zeros at masked steps.
    """
    dtype = xw_tbg.dtype
    if isinstance(params, (list, tuple)):
        per_direction = [_weights(cell, p, dtype, cell_options) for p in params]
        name = per_direction[0][0]
        weights = tuple(jnp.stack(ws) for ws in zip(*(w for _, w in per_direction)))
    else:
        name, weights = _weights(cell, params, dtype, cell_options)
    if _use_native(name, dtype):
        return native_calls.run_native(name, weights, xw_tbg, mask_tb, tuple(carry), return_sequences)
    return _sequence(RULES[name], return_sequences, weights, materialize(xw_tbg), mask_tb, tuple(carry))


def fast_path(cell: str) -> FastPath:
    """``supports`` and ``run_fused`` for one stock cell, as ``scan.FAST_PATHS`` holds them."""
    return FastPath(covers=partial(supports, cell), run=partial(run_fused, cell))
