"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201): the cells.

Their gates depend on the input x_t only, never on h_{t-1}, so each cell is the linear recurrence

    h_t = a_t * h_{t-1} + b_t,    a_t in (0, 1),  b_t > 0,  both functions of x_t alone,

which can be computed for all steps at once with a parallel (associative) scan. There is no recurrent kernel:
parameters are ``kernel [F, G*H]`` and ``bias [G*H]`` in Keras' layout, and H is ``kernel.shape[1] // G``.

Per cell this file has the same functions as ``cells.py`` (``init_<cell>``, ``<cell>_carry``, the step
``<cell>(params, carry, x) -> (carry, y)``, and its halves ``<cell>_project`` / ``<cell>_recur``), plus
``<cell>_log_coefficients``: ``(log a_t, log b_t)`` of its linear recurrence from the projected input, for the
parallel form. The cells compute in the dtype of ``x`` (parameters are cast to it); ``cells.CELLS`` lists them.

The sequence layers (the parallel log-space scan and the sequential form) live in ``minimal_scan.py``;
bidirectional merging, dropout and layer stacking in ``scan.py``/``models.py``.
"""

import jax
import jax.numpy as jnp

from rnnjax.checks import check_carry, check_gate_blocks, check_input
from rnnjax.gates import glorot_uniform, project
from rnnjax.types import Carry, Params, PRNGKey

# ----------------------------------------------------------------------------------------------- checks


def _hidden(params: Params, gates: int) -> int:
    return params["kernel"].shape[1] // gates


def _check_input(name: str, params: Params, gates: int, x: jax.Array) -> None:
    """Raises ValueError unless the kernel has G blocks and ``x`` matches its rows."""
    check_gate_blocks(name, params, gates)
    check_input(name, params, x)


def _init(key: PRNGKey, input_size: int, hidden_size: int, gates: int, use_bias: bool) -> Params:
    params = {"kernel": glorot_uniform(key, (input_size, gates * hidden_size), jnp.float32)}
    if use_bias:
        params["bias"] = jnp.zeros((gates * hidden_size,), jnp.float32)
    return params


# --------------------------------------------------------------------------------- candidate activation


def _g(v: jax.Array) -> jax.Array:
    """The paper's positive candidate activation: ``g(v) = v + 0.5`` for v >= 0, ``sigmoid(v)`` for v < 0."""
    return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v))


def _log_g(v: jax.Array) -> jax.Array:
    """``log g(v)``: ``log(v + 0.5)`` for v >= 0, ``-softplus(-v)`` for v < 0."""
    # The inner where keeps log's argument >= 0.5, so the branch not taken has a finite gradient too.
    return jnp.where(v >= 0, jnp.log(jnp.where(v >= 0, v, 0) + 0.5), -jax.nn.softplus(-v))


# ----------------------------------------------------------------------------------------------- minGRU


def init_min_gru(key: PRNGKey, input_size: int, hidden_size: int, *, use_bias: bool = True) -> Params:
    """Initialises a minGRU cell (gate order z, h).

    Args:
        key: PRNG key.
        input_size: F, features per step.
        hidden_size: H, units.
        use_bias: include ``bias``.

    Returns:
        ``{"kernel": [F, 2H] glorot_uniform, "bias": [2H] zeros}``; there is no recurrent kernel.
    """
    return _init(key, input_size, hidden_size, 2, use_bias)


def min_gru_carry(params: Params, batch_shape: tuple = (), dtype=jnp.float32) -> Carry:
    """Zero state ``(h,)`` with ``h: batch_shape + [H]``, H = ``kernel.shape[1] // 2``."""
    return (jnp.zeros(tuple(batch_shape) + (_hidden(params, 2),), dtype),)


def min_gru_project(params: Params, x: jax.Array) -> jax.Array:
    """``x @ kernel + bias``: [..., F] -> [..., 2H] (k_z, k_h), in the dtype of ``x``."""
    return project(params, x)


def min_gru_recur(params: Params, carry: Carry, xw: jax.Array) -> tuple[Carry, jax.Array]:
    """One minGRU step from a projected input ``xw = x @ kernel + bias`` [..., 2H]; no matmul."""
    (h,) = carry
    hidden = h.shape[-1]
    z = jax.nn.sigmoid(xw[..., :hidden])
    h = (1 - z) * h + z * _g(xw[..., hidden:])
    return (h,), h


def min_gru(params: Params, carry: Carry, x: jax.Array) -> tuple[Carry, jax.Array]:
    """One minGRU step (Feng et al. 2024, with the positive activation g of their log-space version).

        k = x W + b,  split into k_z, k_h (in that order)
        z_t = sigmoid(k_z),   h~_t = g(k_h),   g(v) = v + 0.5 if v >= 0 else sigmoid(v)
        h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

    The output is h_t. The gates see x_t only; h_{t-1} enters the update linearly.

    Args:
        params: from ``init_min_gru``: kernel W [F, 2H], bias b [2H] (optional).
        carry: ``(h,)``, h [..., H].
        x: [..., F] floating.

    Returns:
        ``((h,), h)`` with h [..., H] in the dtype of x.

    Raises:
        ValueError: if params, x or carry has the wrong shape or dtype.
    """
    _check_input("min_gru", params, 2, x)
    check_carry("min_gru", carry, 1, _hidden(params, 2), x.shape[:-1])
    return min_gru_recur(params, carry, min_gru_project(params, x))


def min_gru_log_coefficients(xw: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log a, log b)`` of ``h_t = a_t h_{t-1} + b_t``: a = 1 - z, b = z g(k_h)."""
    hidden = xw.shape[-1] // 2
    k_z, k_h = xw[..., :hidden], xw[..., hidden:]
    # log(1 - sigmoid(k)) = -softplus(k) and log sigmoid(k) = -softplus(-k), accurate in both tails.
    return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + _log_g(k_h)


# ---------------------------------------------------------------------------------------------- minLSTM


def init_min_lstm(key: PRNGKey, input_size: int, hidden_size: int, *, use_bias: bool = True) -> Params:
    """Initialises a minLSTM cell (gate order f, i, h).

    Args:
        key: PRNG key.
        input_size: F, features per step.
        hidden_size: H, units.
        use_bias: include ``bias``.

    Returns:
        ``{"kernel": [F, 3H] glorot_uniform, "bias": [3H] zeros}``; there is no recurrent kernel.
    """
    return _init(key, input_size, hidden_size, 3, use_bias)


def min_lstm_carry(params: Params, batch_shape: tuple = (), dtype=jnp.float32) -> Carry:
    """Zero state ``(h,)`` with ``h: batch_shape + [H]``, H = ``kernel.shape[1] // 3``."""
    return (jnp.zeros(tuple(batch_shape) + (_hidden(params, 3),), dtype),)


def min_lstm_project(params: Params, x: jax.Array) -> jax.Array:
    """``x @ kernel + bias``: [..., F] -> [..., 3H] (k_f, k_i, k_h), in the dtype of ``x``."""
    return project(params, x)


def _min_lstm_log_ratio(xw: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``d = log i - log f = softplus(-k_f) - softplus(-k_i)`` and ``k_h``."""
    hidden = xw.shape[-1] // 3
    k_f, k_i, k_h = xw[..., :hidden], xw[..., hidden : 2 * hidden], xw[..., 2 * hidden :]
    return jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i), k_h


def min_lstm_recur(params: Params, carry: Carry, xw: jax.Array) -> tuple[Carry, jax.Array]:
    """One minLSTM step from a projected input ``xw = x @ kernel + bias`` [..., 3H]; no matmul."""
    (h,) = carry
    d, k_h = _min_lstm_log_ratio(xw)
    # f / (f + i) = sigmoid(log f - log i): the same value, without 0 / 0 when both gates underflow.
    h = jax.nn.sigmoid(-d) * h + jax.nn.sigmoid(d) * _g(k_h)
    return (h,), h


def min_lstm(params: Params, carry: Carry, x: jax.Array) -> tuple[Carry, jax.Array]:
    """One minLSTM step (Feng et al. 2024, with normalised gates and the positive activation g).

        k = x W + b,  split into k_f, k_i, k_h (in that order)
        f_t = sigmoid(k_f),   i_t = sigmoid(k_i),   h~_t = g(k_h),   g(v) = v + 0.5 if v >= 0 else sigmoid(v)
        f'_t = f_t / (f_t + i_t),   i'_t = i_t / (f_t + i_t)
        h_t = f'_t * h_{t-1} + i'_t * h~_t

    The output is h_t. f'_t and i'_t are computed as ``sigmoid(log f_t - log i_t)`` and
    ``sigmoid(log i_t - log f_t)``, which equal the ratios above and stay defined when both gates underflow.

    Args:
        params: from ``init_min_lstm``: kernel W [F, 3H], bias b [3H] (optional).
        carry: ``(h,)``, h [..., H].
        x: [..., F] floating.

    Returns:
        ``((h,), h)`` with h [..., H] in the dtype of x.

    Raises:
        ValueError: if params, x or carry has the wrong shape or dtype.
    """
    _check_input("min_lstm", params, 3, x)
    check_carry("min_lstm", carry, 1, _hidden(params, 3), x.shape[:-1])
    return min_lstm_recur(params, carry, min_lstm_project(params, x))


def min_lstm_log_coefficients(xw: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log a, log b)`` of ``h_t = a_t h_{t-1} + b_t``: a = f', b = i' g(k_h)."""
    d, k_h = _min_lstm_log_ratio(xw)
    return -jax.nn.softplus(d), -jax.nn.softplus(-d) + _log_g(k_h)
