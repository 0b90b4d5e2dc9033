"""The native CPU kernels as JAX functions: XLA FFI calls of the SimpleRNN, LSTM and GRU sequences and their VJPs.

``run_native`` runs what ``fused.py``'s rules compute, for the lstm, gru, gru_v1 and simple_rnn_<activation> rules
in float32 on the CPU: one FFI call for the forward sequence and one for the backward, each batch row's sequence on
one thread (``kernels/native.cc``, built and loaded by ``native.py``). The kernels take direction-major arrays
``[D, T, B, ...]``, so both directions of a bidirectional layer run in one call, and they read the rows of a
``scan.Gathered`` table in place (the backward kernels add up that table's gradient themselves). The LSTM keeps
h before each step, c after it and the gate activations (tanh(c) is recomputed), and its backward kernel writes
the gate gradient over the activations. The SimpleRNN keeps only h before each step (its activation's derivative
comes from the next step's h), and its backward kernel writes the pre-activation gradient over the output
cotangent. The recurrent weights' gradients reuse the rules' ``weight_grads``.

Whether to use them (the backend, the dtype, ``native.available()``) is decided in ``fused.run_fused``.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax.kernels.rules import gru_v1_weight_grads, hidden_weight_grads
from rnnjax.scan import Gathered


def _native_threads() -> np.int32:
    from rnnjax.kernels import native  # imported here: it builds the kernels on first use only

    return np.int32(native.threads())


def _f32(*shape: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _u8_mask(mask_dtb: jax.Array | None) -> jax.Array:
    return jnp.zeros((1,), jnp.uint8) if mask_dtb is None else mask_dtb.astype(jnp.uint8)


def _output_gradient(dys: jax.Array | None, with_outputs: bool) -> jax.Array:
    """The per-step output cotangent the backward kernels read, or a 1-element stand-in without outputs."""
    return dys if with_outputs else jnp.zeros((1,), jnp.float32)


def _flags(mask_dtb: jax.Array | None, **flags: bool) -> dict[str, np.int32]:
    """The kernels' int32 attributes: ``has_mask``, ``threads`` and the given switches."""
    return {
        "has_mask": np.int32(mask_dtb is not None),
        "threads": _native_threads(),
        **{name: np.int32(value) for name, value in flags.items()},
    }


def _native_inputs(xw_dtbg: jax.Array | Gathered) -> tuple[jax.Array, jax.Array, dict[str, np.int32]]:
    """The forward kernels' first two operands (xw or the table, the ids) and their ``gathered`` attribute."""
    if isinstance(xw_dtbg, Gathered):
        return xw_dtbg.table, xw_dtbg.ids.astype(jnp.int32), {"gathered": np.int32(1)}
    return xw_dtbg, jnp.zeros((1,), jnp.int32), {"gathered": np.int32(0)}


def _table_gradient_operands(kept: Gathered | None) -> tuple[jax.ShapeDtypeStruct, jax.Array]:
    """The backward kernels' table-gradient result and ids operand: the table's shape and the ids of a
    ``Gathered`` (the kernel adds dxw's rows at their ids, so XLA never scatters the [D, T, B, G] dxw), or
    1-element stand-ins."""
    if kept is None:
        return _f32(1), jnp.zeros((1,), jnp.int32)
    return _f32(*kept.table.shape), kept.ids.astype(jnp.int32)


def _input_gradient(kept: Gathered | None, dxw_dtbg: jax.Array, dtable_dvg: jax.Array):
    """The cotangent of the inputs: dxw itself, or a gathered table's (from the kernel; ids get none)."""
    return dxw_dtbg if kept is None else Gathered(dtable_dvg, None)


def _native_forward(with_outputs: bool, keep_residuals: bool, u_dhg, xw_dtbg, mask_dtb, h0, c0):
    directions, steps, batch, gates = xw_dtbg.shape
    hidden = gates // 4
    per_step = (directions, steps, batch)
    outputs = (
        _f32(*per_step, hidden) if with_outputs else _f32(1),
        _f32(directions, batch, hidden),
        _f32(directions, batch, hidden),
        # residuals: h before each step, c after it, the gate activations [i, f, g, o]
        *(
            (_f32(*per_step, hidden), _f32(*per_step, hidden), _f32(*per_step, gates))
            if keep_residuals
            else (_f32(1),) * 3
        ),
    )
    xw, ids, gathered = _native_inputs(xw_dtbg)
    # Training on a projected array (not a table): the gate activations overwrite xw in place (the kernel reads
    # a step's xw before writing its activations), so the layer holds one [D, T, B, 4H] array, not two.
    aliases = {0: 5} if keep_residuals and not gathered["gathered"] else {}
    call = jax.ffi.ffi_call("rnnjax_lstm_forward", outputs, vmap_method="sequential", input_output_aliases=aliases)
    ys, h, c, *res = call(
        xw,
        ids,
        u_dhg,
        _u8_mask(mask_dtb),
        h0,
        c0,
        **_flags(mask_dtb, with_outputs=with_outputs, keep_residuals=keep_residuals),
        **gathered,
    )
    return (ys if with_outputs else None), h, c, res


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _native_lstm(with_outputs: bool, u_dhg, xw_dtbg, mask_dtb, h0, c0):
    ys, h, c, _ = _native_forward(with_outputs, False, u_dhg, xw_dtbg, mask_dtb, h0, c0)
    return ys, h, c


def _native_lstm_fwd(with_outputs, u_dhg, xw_dtbg, mask_dtb, h0, c0):
    ys, h, c, res = _native_forward(with_outputs, True, u_dhg, xw_dtbg, mask_dtb, h0, c0)
    return (ys, h, c), (u_dhg, _kept_inputs(xw_dtbg), mask_dtb, c0, res)


def _kept_inputs(xw_dtbg):
    """What the backward pass keeps of the inputs: a ``Gathered`` (for its ids and table size), not xw."""
    return xw_dtbg if isinstance(xw_dtbg, Gathered) else None


def _native_lstm_bwd(with_outputs, saved, cotangents):
    u_dhg, gathered, mask_dtb, c0, (h_res, c_res, a_res) = saved
    dys, dh, dc = cotangents
    # dz overwrites the gate activations in place (operand 3 aliases result 0), so no second [D, T, B, 4H].
    table, ids = _table_gradient_operands(gathered)
    dz, dh0, dc0, dtable = jax.ffi.ffi_call(
        "rnnjax_lstm_backward",
        (_f32(*a_res.shape), _f32(*dh.shape), _f32(*dc.shape), table),
        vmap_method="sequential",
        input_output_aliases={3: 0},
    )(
        u_dhg,
        c0,
        c_res,
        a_res,
        _u8_mask(mask_dtb),
        _output_gradient(dys, with_outputs),
        dh,
        dc,
        ids,
        **_flags(mask_dtb, with_outputs=with_outputs, gathered=gathered is not None),
    )
    (du,) = _per_direction(hidden_weight_grads, (u_dhg,), (h_res,), dz)
    return du, _input_gradient(gathered, dz, dtable), None, dh0, dc0


_native_lstm.defvjp(_native_lstm_fwd, _native_lstm_bwd)


def _native_gru_forward(
    with_outputs: bool, keep_residuals: bool, reset_after: bool, u_dhg, b_dg, xw_dtbg, mask_dtb, h0
):
    directions, steps, batch, gates = xw_dtbg.shape
    hidden = gates // 3
    per_step = _f32(directions, steps, batch, hidden)
    outputs = (
        per_step if with_outputs else _f32(1),
        _f32(directions, batch, hidden),
        *((per_step,) * 4 if keep_residuals else (_f32(1),) * 4),
        per_step if keep_residuals and reset_after else _f32(1),
    )
    xw, ids, gathered = _native_inputs(xw_dtbg)
    ys, h, *res = jax.ffi.ffi_call("rnnjax_gru_forward", outputs, vmap_method="sequential")(
        xw,
        ids,
        u_dhg,
        b_dg.reshape(directions, gates),
        _u8_mask(mask_dtb),
        h0,
        **_flags(mask_dtb, with_outputs=with_outputs, keep_residuals=keep_residuals, reset_after=reset_after),
        **gathered,
    )
    return (ys if with_outputs else None), h, res


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _native_gru(with_outputs: bool, reset_after: bool, u_dhg, b_dg, xw_dtbg, mask_dtb, h0):
    ys, h, _ = _native_gru_forward(with_outputs, False, reset_after, u_dhg, b_dg, xw_dtbg, mask_dtb, h0)
    return ys, h


def _native_gru_fwd(with_outputs, reset_after, u_dhg, b_dg, xw_dtbg, mask_dtb, h0):
    ys, h, res = _native_gru_forward(with_outputs, True, reset_after, u_dhg, b_dg, xw_dtbg, mask_dtb, h0)
    return (ys, h), (u_dhg, b_dg, _kept_inputs(xw_dtbg), mask_dtb, res)


def _native_gru_bwd(with_outputs, reset_after, saved, cotangents):
    u_dhg, b_dg, gathered, mask_dtb, res = saved
    dys, dh = cotangents
    per_step = res[0].shape[:-1] + (u_dhg.shape[-1],)
    table, ids = _table_gradient_operands(gathered)
    dxw, dhu, dh0, dtable = jax.ffi.ffi_call(
        "rnnjax_gru_backward",
        (_f32(*per_step), _f32(*per_step) if reset_after else _f32(1), _f32(*dh.shape), table),
        vmap_method="sequential",
    )(
        u_dhg,
        *res,
        _u8_mask(mask_dtb),
        _output_gradient(dys, with_outputs),
        dh,
        ids,
        **_flags(mask_dtb, with_outputs=with_outputs, reset_after=reset_after, gathered=gathered is not None),
    )
    h, z, r, n, _ = res
    if reset_after:  # dU = sum h^T dhu and db_r = sum dhu, with dhu = [dz, dr, dn * r] from the kernel
        (du,) = _per_direction(hidden_weight_grads, (u_dhg,), (h,), dhu)
        grads = (du, jnp.sum(dhu, axis=(1, 2))[:, None, :])
    else:
        grads = _per_direction(gru_v1_weight_grads, (u_dhg,), (h, z, r, n), dxw) + (jnp.zeros_like(b_dg),)
    return (*grads, _input_gradient(gathered, dxw, dtable), None, dh0)


_native_gru.defvjp(_native_gru_fwd, _native_gru_bwd)


SIMPLE_RNN_ACTIVATIONS = {"tanh": 0, "relu": 1, "sigmoid": 2, "linear": 3}  # native.cc's Activation codes


def _native_simple_forward(
    with_outputs: bool, keep_residuals: bool, activation: str, u_dhh, xw_dtbh, mask_dtb, h0
):
    directions, steps, batch, hidden = xw_dtbh.shape
    per_step = _f32(directions, steps, batch, hidden)
    outputs = (
        per_step if with_outputs else _f32(1),
        _f32(directions, batch, hidden),
        per_step if keep_residuals else _f32(1),  # h before each step
    )
    xw, ids, gathered = _native_inputs(xw_dtbh)
    # Training on a projected array: h before each step overwrites xw in place (the kernel reads a step's xw
    # before writing over it), so the layer holds one [D, T, B, H] array for both.
    aliases = {0: 2} if keep_residuals and not gathered["gathered"] else {}
    call = jax.ffi.ffi_call(
        "rnnjax_simple_rnn_forward", outputs, vmap_method="sequential", input_output_aliases=aliases
    )
    ys, h, h_res = call(
        xw,
        ids,
        u_dhh,
        _u8_mask(mask_dtb),
        h0,
        **_flags(mask_dtb, with_outputs=with_outputs, keep_residuals=keep_residuals),
        activation=np.int32(SIMPLE_RNN_ACTIVATIONS[activation]),
        **gathered,
    )
    return (ys if with_outputs else None), h, h_res


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _native_simple(with_outputs: bool, activation: str, u_dhh, xw_dtbh, mask_dtb, h0):
    ys, h, _ = _native_simple_forward(with_outputs, False, activation, u_dhh, xw_dtbh, mask_dtb, h0)
    return ys, h


def _native_simple_fwd(with_outputs, activation, u_dhh, xw_dtbh, mask_dtb, h0):
    ys, h, h_res = _native_simple_forward(with_outputs, True, activation, u_dhh, xw_dtbh, mask_dtb, h0)
    # The backward kernel reads each step's output from h_res one step later, and the last one from h.
    return (ys, h), (u_dhh, _kept_inputs(xw_dtbh), mask_dtb, h_res, h)


def _native_simple_bwd(with_outputs, activation, saved, cotangents):
    u_dhh, gathered, mask_dtb, h_res, h_last = saved
    dys, dh = cotangents
    table, ids = _table_gradient_operands(gathered)
    # The pre-activation gradient overwrites the output cotangent in place (operand 4 aliases result 0).
    dpre, dh0, dtable = jax.ffi.ffi_call(
        "rnnjax_simple_rnn_backward",
        (_f32(*h_res.shape), _f32(*dh.shape), table),
        vmap_method="sequential",
        input_output_aliases={4: 0} if with_outputs else {},
    )(
        u_dhh,
        h_res,
        h_last,
        _u8_mask(mask_dtb),
        _output_gradient(dys, with_outputs),
        dh,
        ids,
        **_flags(mask_dtb, with_outputs=with_outputs, gathered=gathered is not None),
        activation=np.int32(SIMPLE_RNN_ACTIVATIONS[activation]),
    )
    (du,) = _per_direction(hidden_weight_grads, (u_dhh,), (h_res,), dpre)
    return du, _input_gradient(gathered, dpre, dtable), None, dh0


_native_simple.defvjp(_native_simple_fwd, _native_simple_bwd)


def _per_direction(weight_grads, weights, res, dxw):
    """A rule's weight gradients per direction from direction-major [D, T, B, ...] residuals and gradients."""
    if dxw.shape[0] == 1:  # the plain 2-D matmuls
        grads = weight_grads(tuple(w[0] for w in weights), tuple(x[0] for x in res), dxw[0])
        return tuple(g[None] for g in grads)
    return tuple(jax.vmap(weight_grads)(weights, res, dxw))


def run_native(name: str, weights, xw, mask, carry, with_outputs: bool):
    """Runs rule ``name`` (lstm, gru, gru_v1 or simple_rnn_<activation>) over a whole sequence in the native
    kernels: what ``fused._sequence`` computes, with the same arguments.

    Args:
        name: the rule.
        weights: the rule's recurrent weights (a leading direction axis D when ``xw`` has one).
        xw: [T, B, G*H] or [T, D, B, G*H] float32 projected inputs, or a ``scan.Gathered`` table and ids.
        mask: [T, B] or [T, D, B] bool, or None.
        carry: the initial carry, arrays [B, H] or [D, B, H].
        with_outputs: return the per-step outputs (else None for them).

    Returns:
        ``(ys [T, B, H] or [T, D, B, H] or None, final carry)``.
    """
    single = xw.ndim == 3
    if single:  # [T, B, G] -> [1, T, B, G]
        weights, carry = tuple(w[None] for w in weights), tuple(c[None] for c in carry)
        xw = Gathered(xw.table[None], xw.ids[None]) if isinstance(xw, Gathered) else xw[None]
        mask = None if mask is None else mask[None]
    else:  # [T, D, B, G] -> [D, T, B, G]
        if isinstance(xw, Gathered):
            xw = Gathered(xw.table, jnp.swapaxes(xw.ids, 0, 1))
        else:
            xw = jnp.swapaxes(xw, 0, 1)
        mask = None if mask is None else jnp.swapaxes(mask, 0, 1)
    if name == "lstm":
        ys, h, c = _native_lstm(with_outputs, weights[0], xw, mask, *carry)
        carry = (h, c)
    elif name.startswith("simple_rnn_"):
        ys, h = _native_simple(with_outputs, name.removeprefix("simple_rnn_"), weights[0], xw, mask, carry[0])
        carry = (h,)
    else:
        reset_after = name == "gru"
        bias = weights[1] if reset_after else jnp.zeros((xw.shape[0], 1, xw.shape[-1]), xw.dtype)
        ys, h = _native_gru(with_outputs, reset_after, weights[0], bias, xw, mask, carry[0])
        carry = (h,)
    if single:
        return (None if ys is None else ys[0]), tuple(c[0] for c in carry)
    return (None if ys is None else jnp.swapaxes(ys, 0, 1)), carry
