"""Whole-sequence recurrences with hand-written backward passes: the fast path behind ``scan.run``.

Autodiff of a ``lax.scan`` saves every intermediate of the step and differentiates the recurrent matmul at
each step. Here each cell has a forward step that returns the few values its gradient needs, and a backward
step that carries only the gradient of the state (dh, dc) through time. The recurrent weight's gradient is
one matmul over all steps after the backward loop, ``dU = sum_t h_{t-1}^T dz_t``, and the input
projection's gradient is the stacked ``dz`` (which autodiff of the projection turns into ``dW`` and ``dx``).

The functions compute exactly the equations of ``cells.py`` (tests compare values and gradients with the
plain scan + autodiff path). Masking follows ``scan.run``: at a masked step the carry is held and the output is
zero, so the gradient passes through the held carry unchanged. Reversal, dropout on the inputs and the input
projection stay in ``scan.run``; recurrent dropout and peephole LSTMs use the plain path.

On the CPU in float32, the LSTM and GRU sequences run in native kernels instead (``rnnjax.kernels.native``): the same
equations, written per batch row in C++, because XLA:CPU compiles the per-step slicing of a ``lax.scan`` body
into scalar loops. The rules below remain the path for every other backend and dtype, and the reference the
native kernels are tested against.

Layout inside this file is time-major: ``xw_tbg [T, B, G*H]``, ``mask_tb [T, B]`` (the native kernels take
direction-major ``[D, T, B, ...]``).
"""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax.types import Carry


class Gathered(NamedTuple):
    """Projected inputs given as rows of a table: ``xw[t, b] = table[ids[t, b]]`` (an embedding folded into the
    input projection, see ``models.apply_model``). The native kernels read the rows in place; every other path
    gathers them first (``materialize``). Shapes: ``table [V, G*H]``, ``ids [T, B]`` int32; with a direction
    axis, ``table [D, V, G*H]`` and ``ids [T, D, B]``.
    """

    table: jax.Array
    ids: jax.Array

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the gathered array."""
        return tuple(self.ids.shape) + tuple(self.table.shape[-1:])

    @property
    def dtype(self):
        return self.table.dtype

    @property
    def ndim(self) -> int:
        return self.ids.ndim + 1


def materialize(xw: jax.Array | Gathered) -> jax.Array:
    """The projected inputs as one array (gathering the rows of a ``Gathered``)."""
    if not isinstance(xw, Gathered):
        return xw
    if xw.table.ndim == 2:
        return jnp.take(xw.table, xw.ids, axis=0)
    take = lambda table, ids: jnp.take(table, ids, axis=0)
    return jax.vmap(take, in_axes=(0, 1), out_axes=1)(xw.table, xw.ids)


def _scatter_rows(dxw_dtbg: jax.Array, ids_dtb: jax.Array, rows: int) -> jax.Array:
    """The gradient of a gathered table per direction: dxw rows added into [D, V, G] at their ids."""
    add = lambda dxw, ids: jnp.zeros((rows, dxw.shape[-1]), dxw.dtype).at[ids].add(dxw)
    return jax.vmap(add)(dxw_dtbg, ids_dtb)


# ----------------------------------------------------------------------------------- per-cell step pairs
# forward(weights, carry, xw) -> (new_carry, y, residuals)
# backward(weights, residuals, dcarry_total) -> (dcarry_prev, dxw)
# weight_grads(weights, residuals_t, dxw_t) -> dweights     (all steps at once, after the loop)


def _block_activation(z: jax.Array, pattern: str) -> jax.Array:
    """Per-gate sigmoid ('s') / tanh ('t') over a fused gate block with one tanh (see cells.py)."""
    hidden = z.shape[-1] // len(pattern)
    scale = np.repeat([0.5 if g == "s" else 1.0 for g in pattern], hidden)
    shift = np.repeat([0.5 if g == "s" else 0.0 for g in pattern], hidden)
    scale = jnp.asarray(scale, z.dtype).reshape((1,) * (z.ndim - 1) + (-1,))
    shift = jnp.asarray(shift, z.dtype).reshape((1,) * (z.ndim - 1) + (-1,))
    return jnp.tanh(z * scale) * scale + shift


def _lstm_forward(weights, carry, xw):
    (u,) = weights
    h, c = carry
    a = _block_activation(xw + h @ u, "ssts")
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


def _hidden_weight_grads(weights, res, dz):
    """``dU = sum_t h_{t-1}^T dz_t`` from the residuals' first entry h: the LSTM's and the SimpleRNN's rule."""
    return (_outer_sum(res[0], dz),)


def _gru_forward(weights, carry, xw):
    """reset_after=True: weights (U, recurrent bias shaped [..., 1, 3H] to broadcast over the batch)."""
    u, b_r = weights
    (h,) = carry
    hidden = h.shape[-1]
    hu = h @ u + b_r
    zr = _block_activation(xw[..., : 2 * hidden] + hu[..., : 2 * hidden], "ss")
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
    zr = _block_activation(xw[..., : 2 * hidden] + h @ u[..., : 2 * hidden], "ss")
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


def _gru_v1_weight_grads(weights, res, dxw):
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
_ACTIVATIONS = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "linear": lambda v: v}


def _simple_rnn_forward(activation, weights, carry, xw):
    (u,) = weights
    (h,) = carry
    h_new = _ACTIVATIONS[activation](xw + h @ u)
    return (h_new,), h_new, (h, h_new)


def _simple_rnn_backward(activation, weights, res, dcarry):
    (u,) = weights
    _, h_new = res
    (dh,) = dcarry
    dpre = dh * _ACTIVATION_GRADS[activation](h_new)
    return (dpre @ _t(u),), dpre


class _Rule(NamedTuple):
    forward: Callable
    backward: Callable
    weight_grads: Callable


# --------------------------------------------------------------------------------- generic masked sequence


def _sequence_forward(rule: _Rule, with_outputs: bool, weights, xw_tbg, mask_tb, carry, keep_residuals: bool):
    def step(carry, inputs):
        xw, m = inputs
        new_carry, y, res = rule.forward(weights, carry, xw)
        if m is not None:
            m1 = m[..., None]
            new_carry = tuple(jnp.where(m1, n, o) for n, o in zip(new_carry, carry))
            y = jnp.where(m1, y, jnp.zeros((), y.dtype))
        # Per-step outputs cost a write per step; without return_sequences only the final carry is kept.
        return new_carry, (y if with_outputs else None, res if keep_residuals else None)

    carry, (ys, res) = jax.lax.scan(step, carry, (xw_tbg, mask_tb))
    return ys, carry, res


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _sequence(rule: _Rule, with_outputs: bool, weights, xw_tbg, mask_tb, carry):
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

_RULES = {
    "lstm": _Rule(_lstm_forward, _lstm_backward, _hidden_weight_grads),
    "gru": _Rule(_gru_forward, _gru_backward, _gru_weight_grads),
    "gru_v1": _Rule(_gru_v1_forward, _gru_v1_backward, _gru_v1_weight_grads),
}
_RULES.update(
    {
        f"simple_rnn_{act}": _Rule(
            partial(_simple_rnn_forward, act), partial(_simple_rnn_backward, act), _hidden_weight_grads
        )
        for act in _ACTIVATIONS
    }
)


# ------------------------------------------------------------------------- native CPU kernels (LSTM, float32)


def _use_native(name: str, dtype) -> bool:
    from rnnjax.kernels import native  # imported here: it builds the kernels on first use only

    return name in _NATIVE and dtype == jnp.float32 and jax.default_backend() == "cpu" and native.available()


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


def _input_gradient(kept: Gathered | None, dxw_dtbg: jax.Array):
    """The cotangent of the inputs: dxw itself, or a gathered table's (rows added at their ids; ids get none)."""
    if kept is None:
        return dxw_dtbg
    return Gathered(_scatter_rows(dxw_dtbg, kept.ids, kept.table.shape[1]), None)


def _native_forward(with_outputs: bool, keep_residuals: bool, u_dhg, xw_dtbg, mask_dtb, h0, c0):
    directions, steps, batch, gates = xw_dtbg.shape
    hidden = gates // 4
    per_step = (directions, steps, batch)
    outputs = (
        _f32(*per_step, hidden) if with_outputs else _f32(1),
        _f32(directions, batch, hidden),
        _f32(directions, batch, hidden),
        *(
            (
                _f32(*per_step, hidden),
                _f32(*per_step, hidden),
                _f32(*per_step, gates),
                _f32(*per_step, hidden),
            )
            if keep_residuals
            else (_f32(1),) * 4
        ),
    )
    xw, ids, gathered = _native_inputs(xw_dtbg)
    ys, h, c, *res = jax.ffi.ffi_call("rnnjax_lstm_forward", outputs, vmap_method="sequential")(
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
    return (ys, h, c), (u_dhg, _kept_inputs(xw_dtbg), mask_dtb, res)


def _kept_inputs(xw_dtbg):
    """What the backward pass keeps of the inputs: a ``Gathered`` (for its ids and table size), not xw."""
    return xw_dtbg if isinstance(xw_dtbg, Gathered) else None


def _native_lstm_bwd(with_outputs, saved, cotangents):
    u_dhg, gathered, mask_dtb, (h_res, c_res, a_res, tc_res) = saved
    dys, dh, dc = cotangents
    dz, dh0, dc0 = jax.ffi.ffi_call(
        "rnnjax_lstm_backward",
        (_f32(*a_res.shape), _f32(*dh.shape), _f32(*dc.shape)),
        vmap_method="sequential",
    )(
        u_dhg,
        c_res,
        a_res,
        tc_res,
        _u8_mask(mask_dtb),
        _output_gradient(dys, with_outputs),
        dh,
        dc,
        **_flags(mask_dtb, with_outputs=with_outputs),
    )
    (du,) = _per_direction(_hidden_weight_grads, (u_dhg,), (h_res,), dz)
    return du, _input_gradient(gathered, dz), None, dh0, dc0


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
    dxw, dhu, dh0 = jax.ffi.ffi_call(
        "rnnjax_gru_backward",
        (_f32(*per_step), _f32(*per_step) if reset_after else _f32(1), _f32(*dh.shape)),
        vmap_method="sequential",
    )(
        u_dhg,
        *res,
        _u8_mask(mask_dtb),
        _output_gradient(dys, with_outputs),
        dh,
        **_flags(mask_dtb, with_outputs=with_outputs, reset_after=reset_after),
    )
    h, z, r, n, _ = res
    if reset_after:  # dU = sum h^T dhu and db_r = sum dhu, with dhu = [dz, dr, dn * r] from the kernel
        (du,) = _per_direction(_hidden_weight_grads, (u_dhg,), (h,), dhu)
        grads = (du, jnp.sum(dhu, axis=(1, 2))[:, None, :])
    else:
        grads = _per_direction(_gru_v1_weight_grads, (u_dhg,), (h, z, r, n), dxw) + (jnp.zeros_like(b_dg),)
    return (*grads, _input_gradient(gathered, dxw), None, dh0)


_native_gru.defvjp(_native_gru_fwd, _native_gru_bwd)


def _per_direction(weight_grads, weights, res, dxw):
    """A rule's weight gradients per direction from direction-major [D, T, B, ...] residuals and gradients."""
    if dxw.shape[0] == 1:  # the plain 2-D matmuls
        grads = weight_grads(tuple(w[0] for w in weights), tuple(x[0] for x in res), dxw[0])
        return tuple(g[None] for g in grads)
    return tuple(jax.vmap(weight_grads)(weights, res, dxw))


_NATIVE = ("lstm", "gru", "gru_v1")


def _run_native(name: str, weights, xw, mask, carry, with_outputs: bool):
    """``_sequence`` through the native kernels, which take direction-major [D, T, B, ...] arrays."""
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
    else:
        reset_after = name == "gru"
        bias = weights[1] if reset_after else jnp.zeros((xw.shape[0], 1, xw.shape[-1]), xw.dtype)
        ys, h = _native_gru(with_outputs, reset_after, weights[0], bias, xw, mask, carry[0])
        carry = (h,)
    if single:
        return (None if ys is None else ys[0]), tuple(c[0] for c in carry)
    return (None if ys is None else jnp.swapaxes(ys, 0, 1)), carry


def supports(cell: str, params, cell_options: dict) -> bool:
    """Whether ``run_fused`` implements this cell with these parameters and options."""
    if "recurrent_mask" in cell_options:
        return False
    if cell == "lstm":
        return "peephole" not in params and not cell_options
    if cell == "gru":
        return set(cell_options) <= {"reset_after"}
    if cell == "simple_rnn":
        return set(cell_options) <= {"activation"} and cell_options.get("activation", "tanh") in _ACTIVATIONS
    return False


def _weights(cell: str, params, dtype, cell_options: dict) -> tuple[str, tuple[jax.Array, ...]]:
    """The rule's name and the recurrent weights it uses, in the compute dtype."""
    u = params["recurrent_kernel"].astype(dtype)
    if cell == "lstm":
        return "lstm", (u,)
    reset_after = cell_options.get("reset_after")
    if reset_after is None:
        reset_after = "bias" not in params or params["bias"].ndim == 2
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
        return _run_native(name, weights, xw_tbg, mask_tb, tuple(carry), return_sequences)
    return _sequence(_RULES[name], return_sequences, weights, materialize(xw_tbg), mask_tb, tuple(carry))
