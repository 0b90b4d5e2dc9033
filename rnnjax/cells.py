"""Recurrent cells as pure functions: initialisers, initial carries and one-step updates.

Each cell is three public functions, ``init_<cell>(key, input_size, hidden_size, **options) -> params``,
``<cell>_carry(params, batch_shape) -> carry`` and the step ``<cell>(params, carry, x) -> (carry, y)``, plus
the two halves the step is made of, so that a sequence layer can hoist the input projection out of its
time loop:

    project(params, x)       -> xw       x @ kernel + input bias, for all time steps in one matmul
    recur(params, carry, xw) -> (carry, y)   one step of the recurrence, one fused recurrent matmul

``step(params, carry, x) == recur(params, carry, project(params, x))`` exactly. Parameters are plain dicts
with Keras' names and layouts (``kernel [F, G*H]``, ``recurrent_kernel [H, G*H]``, ``bias``) and Keras'
default initialisers, so weights can be exchanged with Keras as they are. Cells compute in the dtype of
``x`` (parameters are cast to it), so bfloat16 inputs give bfloat16 carries and outputs.

This file knows nothing of time: masking, reversal, dropout masks and stacking live in ``scan.py``.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax.checks import check_carry, check_input
from rnnjax.minimal import MINIMAL_CELLS
from rnnjax.types import Carry, Params, PRNGKey

_glorot_uniform = jax.nn.initializers.glorot_uniform()
_orthogonal = jax.nn.initializers.orthogonal()

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"tanh": jnp.tanh, "relu": jax.nn.relu,
                                                             "sigmoid": jax.nn.sigmoid, "linear": lambda x: x}


# ---------------------------------------------------------------------------------------------- helpers


def _zeros_carry(params: Params, n_states: int, batch_shape: tuple, dtype) -> Carry:
    hidden = params["recurrent_kernel"].shape[0]
    return tuple(jnp.zeros(tuple(batch_shape) + (hidden,), dtype) for _ in range(n_states))


def _gate_activation_constants(pattern: str, hidden: int, dtype) -> tuple[jax.Array, jax.Array]:
    """Scale and shift that turn one block-wide tanh into per-gate sigmoid ('s') or tanh ('t') activations.

    sigmoid(z) = 0.5 * tanh(0.5 * z) + 0.5, so ``tanh(z * scale) * scale + shift`` applies each gate's own
    activation with a single elementwise op over the fused gate block. On XLA:CPU one activation over the whole
    block inside a scan is several times faster than separate activations on its slices.
    """
    scale = np.repeat([0.5 if g == "s" else 1.0 for g in pattern], hidden)
    shift = np.repeat([0.5 if g == "s" else 0.0 for g in pattern], hidden)
    return jnp.asarray(scale, dtype), jnp.asarray(shift, dtype)


def _lift(v: jax.Array, like: jax.Array) -> jax.Array:
    """Adds leading size-1 axes to a per-unit vector so it broadcasts against ``like`` explicitly (the tests run
    with rank promotion set to raise, which catches silently broadcast axes)."""
    return v.astype(like.dtype).reshape((1,) * (like.ndim - v.ndim) + v.shape)


def _project(params: Params, x: jax.Array) -> jax.Array:
    """``x @ kernel + input bias`` in the dtype of ``x``: [..., F] -> [..., G*H]."""
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
    return y + _lift(b, y)


@_affine.defjvp
def _affine_jvp(primals, tangents):
    x, w, b = primals
    dx, dw, db = tangents
    y = _affine(x, w, b)
    x2 = x.reshape(-1, x.shape[-1])  # rows as one axis: the transposed products are plain 2-D matmuls
    ones = jnp.ones((x2.shape[0], 1), x.dtype)
    return y, dx @ w + (x2 @ dw + ones @ db[None, :]).reshape(y.shape)


# ------------------------------------------------------------------------------------------- SimpleRNN


def init_simple_rnn(key: PRNGKey, input_size: int, hidden_size: int, *, use_bias: bool = True) -> Params:
    """Initialises a SimpleRNN cell as Keras does.

    Args:
        key: PRNG key.
        input_size: F, features per step.
        hidden_size: H, units.
        use_bias: include ``bias``.

    Returns:
        ``{"kernel": [F, H] glorot_uniform, "recurrent_kernel": [H, H] orthogonal, "bias": [H] zeros}``.
    """
    k_in, k_rec = jax.random.split(key)
    params = {
        "kernel": _glorot_uniform(k_in, (input_size, hidden_size), jnp.float32),
        "recurrent_kernel": _orthogonal(k_rec, (hidden_size, hidden_size), jnp.float32),
    }
    if use_bias:
        params["bias"] = jnp.zeros((hidden_size,), jnp.float32)
    return params


def simple_rnn_carry(params: Params, batch_shape: tuple = (), dtype=jnp.float32) -> Carry:
    """Zero state ``(h,)`` with ``h: batch_shape + [H]``."""
    return _zeros_carry(params, 1, batch_shape, dtype)


def simple_rnn_recur(
    params: Params, carry: Carry, xw: jax.Array, *, activation: str = "tanh", recurrent_mask: jax.Array | None = None
) -> tuple[Carry, jax.Array]:
    """One SimpleRNN step from a projected input ``xw = x @ kernel + bias`` [..., H].

    ``recurrent_mask`` [..., H] (recurrent dropout) scales h where it enters the recurrent matmul only.
    """
    (h,) = carry
    h_in = h if recurrent_mask is None else h * recurrent_mask
    h = ACTIVATIONS[activation](xw + h_in @ params["recurrent_kernel"].astype(xw.dtype))
    return (h,), h


def simple_rnn(params: Params, carry: Carry, x: jax.Array, *, activation: str = "tanh") -> tuple[Carry, jax.Array]:
    """One SimpleRNN step: ``h_t = act(x_t W + h_{t-1} U + b)``; the output is ``h_t``.

    Args:
        params: from ``init_simple_rnn``: kernel W [F, H], recurrent_kernel U [H, H], bias b [H] (optional).
        carry: ``(h,)``, h [..., H].
        x: [..., F] floating.
        activation: tanh (default), relu, sigmoid or linear.

    Returns:
        ``((h,), h)`` with h [..., H] in the dtype of x.

    Raises:
        ValueError: if x or carry has the wrong shape or dtype.
    """
    check_input("simple_rnn", params, x)
    check_carry("simple_rnn", carry, 1, params["recurrent_kernel"].shape[0], x.shape[:-1])
    return simple_rnn_recur(params, carry, _project(params, x), activation=activation)


# ------------------------------------------------------------------------------------------------ LSTM


def init_lstm(
    key: PRNGKey,
    input_size: int,
    hidden_size: int,
    *,
    unit_forget_bias: bool = True,
    use_bias: bool = True,
    peephole: bool = False,
) -> Params:
    """Initialises an LSTM cell as Keras does (gate order i, f, c, o).

    Args:
        key: PRNG key.
        input_size: F, features per step.
        hidden_size: H, units.
        unit_forget_bias: initialise the forget-gate bias to 1 (Keras' default) instead of 0.
        use_bias: include ``bias``.
        peephole: add peephole weights ``peephole [3, H]`` (rows i, f, o), glorot_uniform as in
            ``tf.keras.experimental.PeepholeLSTMCell``; Keras 3 has no peephole LSTM.

    Returns:
        ``{"kernel": [F, 4H] glorot_uniform, "recurrent_kernel": [H, 4H] orthogonal, "bias": [4H]}``
        (+ ``"peephole": [3, H]``).
    """
    k_in, k_rec, k_peep = jax.random.split(key, 3)
    params = {
        "kernel": _glorot_uniform(k_in, (input_size, 4 * hidden_size), jnp.float32),
        "recurrent_kernel": _orthogonal(k_rec, (hidden_size, 4 * hidden_size), jnp.float32),
    }
    if use_bias:
        bias = jnp.zeros((4 * hidden_size,), jnp.float32)
        params["bias"] = bias.at[hidden_size : 2 * hidden_size].set(1.0) if unit_forget_bias else bias
    if peephole:
        limit = np.sqrt(6.0 / (2 * hidden_size))  # glorot_uniform of a [H] vector: fan_in = fan_out = H
        params["peephole"] = jax.random.uniform(k_peep, (3, hidden_size), jnp.float32, -limit, limit)
    return params


def lstm_carry(params: Params, batch_shape: tuple = (), dtype=jnp.float32) -> Carry:
    """Zero state ``(h, c)``, each ``batch_shape + [H]``."""
    return _zeros_carry(params, 2, batch_shape, dtype)


def lstm_recur(
    params: Params, carry: Carry, xw: jax.Array, *, recurrent_mask: jax.Array | None = None
) -> tuple[Carry, jax.Array]:
    """One LSTM step from a projected input ``xw = x @ kernel + bias`` [..., 4H].

    ``recurrent_mask`` [..., H] (recurrent dropout) scales h where it enters the recurrent matmul only.
    """
    h, c = carry
    hidden = h.shape[-1]
    h_in = h if recurrent_mask is None else h * recurrent_mask
    z = xw + h_in @ params["recurrent_kernel"].astype(xw.dtype)
    if "peephole" in params:
        w_i, w_f, w_o = (_lift(w, h) for w in params["peephole"])
        zi, zf, zc, zo = jnp.split(z, 4, axis=-1)
        i = jax.nn.sigmoid(zi + w_i * c)
        f = jax.nn.sigmoid(zf + w_f * c)
        c = f * c + i * jnp.tanh(zc)
        o = jax.nn.sigmoid(zo + w_o * c)
    else:
        scale, shift = _gate_activation_constants("ssts", hidden, z.dtype)
        scale, shift = _lift(scale, z), _lift(shift, z)
        a = jnp.tanh(z * scale) * scale + shift
        i, f, g, o = jnp.split(a, 4, axis=-1)
        c = f * c + i * g
    h = o * jnp.tanh(c)
    return (h, c), h


def lstm(params: Params, carry: Carry, x: jax.Array) -> tuple[Carry, jax.Array]:
    """One LSTM step (Hochreiter & Schmidhuber 1997, with a forget gate; Keras' LSTMCell).

        z = x W + h_{t-1} U + b,  split into gates i, f, c, o (in that order)
        i = sigmoid(z_i),  f = sigmoid(z_f),  g = tanh(z_c),  o = sigmoid(z_o)
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

    With peepholes (``"peephole" in params``, rows p_i, p_f, p_o; Gers & Schmidhuber 2000):
    i = sigmoid(z_i + p_i * c_{t-1}), f = sigmoid(z_f + p_f * c_{t-1}), o = sigmoid(z_o + p_o * c_t).

    Args:
        params: from ``init_lstm``: kernel W [F, 4H], recurrent_kernel U [H, 4H], bias b [4H] (optional),
            peephole [3, H] (optional).
        carry: ``(h, c)``, each [..., H].
        x: [..., F] floating.

    Returns:
        ``((h, c), h)`` with h, c [..., H] in the dtype of x.

    Raises:
        ValueError: if x or carry has the wrong shape or dtype.
    """
    check_input("lstm", params, x)
    check_carry("lstm", carry, 2, params["recurrent_kernel"].shape[0], x.shape[:-1])
    return lstm_recur(params, carry, _project(params, x))


# ------------------------------------------------------------------------------------------------- GRU


def init_gru(
    key: PRNGKey, input_size: int, hidden_size: int, *, reset_after: bool = True, use_bias: bool = True
) -> Params:
    """Initialises a GRU cell as Keras does (gate order z, r, h).

    Args:
        key: PRNG key.
        input_size: F, features per step.
        hidden_size: H, units.
        reset_after: apply the reset gate after the recurrent matmul (Keras and cuDNN default; two biases,
            ``bias [2, 3H]``: row 0 input bias, row 1 recurrent bias). False is the original GRU
            (Cho et al. 2014) with ``bias [3H]``, 3H(F+H+1) parameters.
        use_bias: include ``bias``.

    Returns:
        ``{"kernel": [F, 3H] glorot_uniform, "recurrent_kernel": [H, 3H] orthogonal, "bias": zeros}``.
    """
    k_in, k_rec = jax.random.split(key)
    params = {
        "kernel": _glorot_uniform(k_in, (input_size, 3 * hidden_size), jnp.float32),
        "recurrent_kernel": _orthogonal(k_rec, (hidden_size, 3 * hidden_size), jnp.float32),
    }
    if use_bias:
        params["bias"] = jnp.zeros((2, 3 * hidden_size) if reset_after else (3 * hidden_size,), jnp.float32)
    return params


def gru_carry(params: Params, batch_shape: tuple = (), dtype=jnp.float32) -> Carry:
    """Zero state ``(h,)`` with ``h: batch_shape + [H]``."""
    return _zeros_carry(params, 1, batch_shape, dtype)


def _gru_reset_after(params: Params, reset_after: bool | None) -> bool:
    """A GRU's variant: as given, else from its bias ([2, 3H] means reset_after). A GRU without a bias cannot
    show its variant (``r * (h U_h)`` and ``(r * h) U_h`` differ), so it defaults to Keras' reset_after=True."""
    if reset_after is not None:
        return reset_after
    return "bias" not in params or params["bias"].ndim == 2


def gru_recur(
    params: Params,
    carry: Carry,
    xw: jax.Array,
    *,
    reset_after: bool | None = None,
    recurrent_mask: jax.Array | None = None,
) -> tuple[Carry, jax.Array]:
    """One GRU step from a projected input ``xw = x @ kernel + input bias`` [..., 3H].

    ``recurrent_mask`` [..., H] (recurrent dropout) scales h where it enters the recurrent matmuls only;
    the final interpolation uses the undropped h, as in Keras.
    """
    (h,) = carry
    hidden = h.shape[-1]
    u = params["recurrent_kernel"].astype(xw.dtype)
    h_in = h if recurrent_mask is None else h * recurrent_mask
    scale, shift = (_lift(v, xw) for v in _gate_activation_constants("ss", hidden, xw.dtype))
    if _gru_reset_after(params, reset_after):
        hu = h_in @ u
        if "bias" in params:
            hu = hu + _lift(params["bias"][1], hu)
        zr = jnp.tanh((xw[..., : 2 * hidden] + hu[..., : 2 * hidden]) * scale) * scale + shift
        z, r = zr[..., :hidden], zr[..., hidden:]
        hh = jnp.tanh(xw[..., 2 * hidden :] + r * hu[..., 2 * hidden :])
    else:
        zr = jnp.tanh((xw[..., : 2 * hidden] + h_in @ u[:, : 2 * hidden]) * scale) * scale + shift
        z, r = zr[..., :hidden], zr[..., hidden:]
        hh = jnp.tanh(xw[..., 2 * hidden :] + (r * h_in) @ u[:, 2 * hidden :])
    h = z * h + (1 - z) * hh
    return (h,), h


def gru(params: Params, carry: Carry, x: jax.Array, *, reset_after: bool | None = None) -> tuple[Carry, jax.Array]:
    """One GRU step (Keras' GRUCell; the variant follows from the bias shape unless given, see ``init_gru``).

    reset_after=True (bias rows b_i, b_r):
        a = x W + b_i,   s = h_{t-1} U + b_r           (each split into z, r, h thirds)
        z = sigmoid(a_z + s_z),  r = sigmoid(a_r + s_r),  n = tanh(a_h + r * s_h)
    reset_after=False (bias b):
        z = sigmoid(x W_z + h_{t-1} U_z + b_z),  r = sigmoid(x W_r + h_{t-1} U_r + b_r)
        n = tanh(x W_h + (r * h_{t-1}) U_h + b_h)
    then h_t = z * h_{t-1} + (1 - z) * n.

    Args:
        params: from ``init_gru``: kernel W [F, 3H], recurrent_kernel U [H, 3H], bias [2, 3H] or [3H].
        carry: ``(h,)``, h [..., H].
        x: [..., F] floating.
        reset_after: the variant; None infers it from the bias (needed only for a GRU without bias).

    Returns:
        ``((h,), h)`` with h [..., H] in the dtype of x.

    Raises:
        ValueError: if x or carry has the wrong shape or dtype, or reset_after contradicts the bias shape.
    """
    check_input("gru", params, x)
    check_carry("gru", carry, 1, params["recurrent_kernel"].shape[0], x.shape[:-1])
    if reset_after is not None and "bias" in params and (params["bias"].ndim == 2) != reset_after:
        raise ValueError(
            f"gru: reset_after={reset_after} but bias has shape {params['bias'].shape}; reset_after=True needs "
            "bias [2, 3H] and False needs [3H]: initialise with init_gru(..., reset_after=...)."
        )
    return gru_recur(params, carry, _project(params, x), reset_after=reset_after)


# -------------------------------------------------------------------------------------------- registry


class Cell(NamedTuple):
    """A cell's functions: ``init``, ``initial_carry``, ``step``, and the halves of ``step`` that ``scan.run`` uses
    (``project`` hoisted out of the time loop, ``recur`` scanned; fast paths attach to ``recur``: scan.FAST_PATHS)."""

    init: Callable
    initial_carry: Callable
    step: Callable
    project: Callable
    recur: Callable
    gates: int  # G: gate blocks in kernel's last axis


CELLS: dict[str, Cell] = {
    "simple_rnn": Cell(init_simple_rnn, simple_rnn_carry, simple_rnn, _project, simple_rnn_recur, 1),
    "lstm": Cell(init_lstm, lstm_carry, lstm, _project, lstm_recur, 4),
    "gru": Cell(init_gru, gru_carry, gru, _project, gru_recur, 3),
    # minGRU and minLSTM (minimal.py): linear in h, so scan.run(..., parallel=True) can solve them in parallel.
    "min_gru": Cell(*MINIMAL_CELLS["min_gru"]),
    "min_lstm": Cell(*MINIMAL_CELLS["min_lstm"]),
}


def get_cell(name: str) -> Cell:
    """Returns the functions of the cell called ``name``.

    Raises:
        ValueError: if no such cell exists.
    """
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; choose one of {sorted(CELLS)}.")
    return CELLS[name]
