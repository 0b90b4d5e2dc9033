"""Recurrent cells as pure functions, and the registry of cells by name (``CELLS``, ``register_cell``).

Per stock cell: ``init_<cell>(key, input_size, hidden_size, **options) -> params``, ``<cell>_carry(params,
batch_shape) -> carry``, the step ``<cell>(params, carry, x) -> (carry, y)`` and its two halves, so that a
sequence layer can project all time steps in one matmul: ``project(params, x) -> xw`` (x @ kernel + input
bias) and ``<cell>_recur(params, carry, xw) -> (carry, y)``, with ``step == recur(project(x))`` exactly.
Parameters are plain dicts with Keras' names, layouts and default initialisers (``kernel [F, G*H]``,
``recurrent_kernel [H, G*H]``, ``bias``). Cells compute in the dtype of ``x`` (parameters are cast to it).
The shared gate arithmetic is in ``gates.py``; minGRU/minLSTM in ``minimal.py``; time in ``scan.py``.
"""

import inspect
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import minimal
from rnnjax.checks import check_carry, check_cell, check_input
from rnnjax.gates import ACTIVATIONS, block_activation, glorot_uniform, gru_reset_after, lift, orthogonal, project
from rnnjax.types import Carry, Params, PRNGKey

def _zeros_carry(params: Params, n_states: int, batch_shape: tuple, dtype) -> Carry:
    hidden = params["recurrent_kernel"].shape[0]
    return tuple(jnp.zeros(tuple(batch_shape) + (hidden,), dtype) for _ in range(n_states))


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
        "kernel": glorot_uniform(k_in, (input_size, hidden_size), jnp.float32),
        "recurrent_kernel": orthogonal(k_rec, (hidden_size, hidden_size), jnp.float32),
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
    return simple_rnn_recur(params, carry, project(params, x), activation=activation)


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
        "kernel": glorot_uniform(k_in, (input_size, 4 * hidden_size), jnp.float32),
        "recurrent_kernel": orthogonal(k_rec, (hidden_size, 4 * hidden_size), jnp.float32),
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
    h_in = h if recurrent_mask is None else h * recurrent_mask
    z = xw + h_in @ params["recurrent_kernel"].astype(xw.dtype)
    if "peephole" in params:
        w_i, w_f, w_o = (lift(w, h) for w in params["peephole"])
        zi, zf, zc, zo = jnp.split(z, 4, axis=-1)
        i = jax.nn.sigmoid(zi + w_i * c)
        f = jax.nn.sigmoid(zf + w_f * c)
        c = f * c + i * jnp.tanh(zc)
        o = jax.nn.sigmoid(zo + w_o * c)
    else:
        i, f, g, o = jnp.split(block_activation(z, "ssts"), 4, axis=-1)
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
    return lstm_recur(params, carry, project(params, x))


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
        "kernel": glorot_uniform(k_in, (input_size, 3 * hidden_size), jnp.float32),
        "recurrent_kernel": orthogonal(k_rec, (hidden_size, 3 * hidden_size), jnp.float32),
    }
    if use_bias:
        params["bias"] = jnp.zeros((2, 3 * hidden_size) if reset_after else (3 * hidden_size,), jnp.float32)
    return params


def gru_carry(params: Params, batch_shape: tuple = (), dtype=jnp.float32) -> Carry:
    """Zero state ``(h,)`` with ``h: batch_shape + [H]``."""
    return _zeros_carry(params, 1, batch_shape, dtype)


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
    if gru_reset_after(params, reset_after):
        hu = h_in @ u
        if "bias" in params:
            hu = hu + lift(params["bias"][1], hu)
        zr = block_activation(xw[..., : 2 * hidden] + hu[..., : 2 * hidden], "ss")
        z, r = zr[..., :hidden], zr[..., hidden:]
        hh = jnp.tanh(xw[..., 2 * hidden :] + r * hu[..., 2 * hidden :])
    else:
        zr = block_activation(xw[..., : 2 * hidden] + h_in @ u[:, : 2 * hidden], "ss")
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
    return gru_recur(params, carry, project(params, x), reset_after=reset_after)


# -------------------------------------------------------------------------------------------- registry
class Cell(NamedTuple):
    """A recurrent cell, the one definition that ``run``, the layers, models and training use.

    ``init(key, input_size, hidden_size, **options) -> params``; ``initial_carry(params, batch_shape=(),
    dtype=float32) -> carry``, a tuple of ``batch_shape + [H]`` arrays (the first is h);
    ``step(params, carry, x, **options) -> (carry, y)``. Optional halves ``project(params, x) -> xw`` and
    ``recur(params, carry, xw, **options)`` with ``step == recur(project(x))`` let ``scan.run`` project all
    steps in one matmul; without them it scans ``step``. Options a layer passes are those the scanned function
    names (``recurrent_mask``, ``activation``, ``reset_after``). Fast paths attach to a stock ``recur``.
    """

    init: Callable
    initial_carry: Callable
    step: Callable
    project: Callable | None = None
    recur: Callable | None = None

    def halves(self) -> tuple[Callable, Callable]:
        """``(project, recur)``: the cell's own, or the identity and ``step`` for a cell without them."""
        if self.project is None or self.recur is None:
            return _identity, self.step
        return self.project, self.recur


def _identity(params: Params, x: jax.Array) -> jax.Array:
    return x  # the "projection" of a cell without halves: run scans its step on x itself


# A stock cell is read from its module (None: this one) when used: a function replaced there is what runs.
_STOCK_NAMES = {
    "simple_rnn": (None, "init_simple_rnn", "simple_rnn_carry", "simple_rnn", "simple_rnn_recur"),
    "lstm": (None, "init_lstm", "lstm_carry", "lstm", "lstm_recur"),
    "gru": (None, "init_gru", "gru_carry", "gru", "gru_recur"),
    "min_gru": (minimal, "init_min_gru", "min_gru_carry", "min_gru", "min_gru_recur"),
    "min_lstm": (minimal, "init_min_lstm", "min_lstm_carry", "min_lstm", "min_lstm_recur"),
}


def _stock(name: str) -> Cell:
    module, *names = _STOCK_NAMES[name]
    init, carry, step, recur = (globals()[n] if module is None else getattr(module, n) for n in names)
    return Cell(init, carry, step, project if module is None else getattr(module, f"{name}_project"), recur)


_DEFINED = {name: _stock(name) for name in _STOCK_NAMES}  # the stock cells as this file defines them
CELLS: dict[str, Cell] = dict(_DEFINED)


def _effective(cell: Cell) -> Cell:
    """The cell as its author wrote it, when a stock record was edited field by field: a replaced ``step`` with
    the stock halves scans the new step; a replaced ``recur`` (or ``project``) with the stock step gets the step
    made of the new halves."""
    for stock in _DEFINED.values():
        same_halves = cell.project is stock.project and cell.recur is stock.recur
        if same_halves and cell.step is not stock.step:
            return cell._replace(project=None, recur=None)
        if not same_halves and cell.step is stock.step and cell.project is not None and cell.recur is not None:
            return cell._replace(step=_composed(cell.project, cell.recur))
    return cell


def _composed(project: Callable, recur: Callable) -> Callable:
    return lambda params, carry, x, **options: recur(params, carry, project(params, x), **options)


def get_cell(cell: "str | Cell") -> Cell:
    """The cell called ``cell`` in ``CELLS`` (or the given Cell), as it will run.

    Raises:
        ValueError: if no such cell exists.
    """
    if isinstance(cell, Cell):
        return _effective(cell)
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(
            f"unknown cell {cell!r}; choose one of {sorted(CELLS)}, or register your own with "
            "rnnjax.register_cell(name, rnnjax.Cell(init, initial_carry, step))."
        )
    record = CELLS[cell]
    if cell in _DEFINED and record is _DEFINED[cell]:
        record = _stock(cell)
    return _effective(record)


def register_cell(name: str, cell: Cell) -> Cell:
    """Adds (or replaces) the cell called ``name``, after checking it on a tiny example (``checks.check_cell``).

    ``run``, ``bidirectional``, ``Recurrent`` layers, ``make_classifier``, ``summary``, training by config
    (``model.cell``) and the language model then take the name.

    Raises:
        ValueError: if the functions fail on a tiny example, or ``step`` differs from ``recur(project(x))``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_cell: name must be an identifier such as 'cifg_lstm', got {name!r}.")
    if not isinstance(cell, Cell):
        raise ValueError(
            f"register_cell({name!r}): expected rnnjax.Cell(init, initial_carry, step[, project, recur]), "
            f"got {type(cell).__name__}."
        )
    check_cell(name, _effective(cell))
    CELLS[name] = cell
    return cell


def accepted_options(fn: Callable, **candidates) -> dict:
    """The keyword options among ``candidates`` that ``fn`` names: a layer offers every option it has (to a
    cell's ``init``, or to the function ``run`` scans: ``cell.halves()[1]``) and each cell takes its own."""
    accepted = inspect.signature(fn).parameters
    return {k: v for k, v in candidates.items() if k in accepted}
