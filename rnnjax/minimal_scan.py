"""minGRU and minLSTM over time: the log-space parallel scan, attached to the stock cells, and their layers.

The cells (``minimal.py``) are linear recurrences ``h_t = a_t h_{t-1} + b_t`` with ``a_t in (0, 1)`` and
``b_t > 0`` functions of x_t alone, so all h_t follow from one associative scan over the pairs
``(log a_t, log b_t)`` (``minimal.<cell>_log_coefficients``) in O(log T) depth. ``run_parallel`` is that scan on
projected, time-major inputs. Importing this module attaches it to the stock ``min_gru_recur`` and
``min_lstm_recur`` (``scan.PARALLEL_FORMS``), where ``scan.run(..., parallel=True)`` finds it; a cell replaced
in ``cells.CELLS`` runs as written. ``min_gru_sequence``/``min_lstm_sequence`` are ``scan.run`` over the stock
cells with ``parallel=True`` by default (the masking, reversal and checks are ``scan.run``'s); the parallel form
computes its scan in at least float32 and casts back.
"""

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from rnnjax import minimal, scan
from rnnjax.cells import Cell
from rnnjax.types import Carry, Params

# log 0, for a masked step's b_t = 0. A finite stand-in for -inf keeps every intermediate of the scan and of
# its gradient finite (no inf - inf anywhere), whatever logaddexp's implementation. It is finite in float32
# and float64 (the scan adds it only to sums of log a_t, never to itself), and exp of it is exactly 0.
_LOG_ZERO = -1e30


# name -> (the stock cell, its log coefficients)
_PARTS: dict[str, tuple[Cell, Callable]] = {
    "min_gru": (
        Cell(minimal.init_min_gru, minimal.min_gru_carry, minimal.min_gru, minimal.min_gru_project,
             minimal.min_gru_recur),
        minimal.min_gru_log_coefficients,
    ),
    "min_lstm": (
        Cell(minimal.init_min_lstm, minimal.min_lstm_carry, minimal.min_lstm, minimal.min_lstm_project,
             minimal.min_lstm_recur),
        minimal.min_lstm_log_coefficients,
    ),
}


def parallel_form(recur: Callable) -> str | None:
    """The cell whose recurrence ``run_parallel`` solves when ``recur`` is its stock ``recur`` function, else
    None: a cell replaced in ``cells.CELLS`` runs as written, never as the stock parallel form."""
    return next((name for name, (cell, _) in _PARTS.items() if cell.recur is recur), None)


def _compose(earlier: jax.Array, later: jax.Array) -> jax.Array:
    """Composes two affine maps ``h -> a h + b``, each stacked as ``[log a, log b]`` on axis 0: first
    ``earlier``, then ``later``.

    later(earlier(h)) = a2 a1 h + (a2 b1 + b2), so log a = la1 + la2 and log b = logaddexp(la2 + lb1, lb2).
    Every b is positive, so the log of the sum is exact in sign and each composition rounds only locally.
    """
    la1, lb1 = earlier[0], earlier[1]
    la2, lb2 = later[0], later[1]
    return jnp.stack([la1 + la2, jnp.logaddexp(la2 + lb1, lb2)])


def _affine_scan(name: str, xw_tbg: jax.Array, mask_tb: jax.Array | None, h0_bh: jax.Array) -> jax.Array:
    """All h_t [T, B, H] of ``h_t = a_t h_{t-1} + b_t`` by an associative scan over (log a_t, log b_t).

    The prefix compositions give ``(A_t, B_t) = (log prod_s a_s, log of h_t started from 0)``, and
    ``h_t = exp(A_t) h_0 + exp(B_t)``. Splitting off h_0 this way keeps the log space for the always-positive
    part only, so h_0 may have any sign. A masked step is the identity map: a = 1, b = 0 (log b = _LOG_ZERO).
    The pairwise logaddexp avoids Heinsen's ``A_t + logcumsumexp(log b - A)``, which subtracts numbers that
    grow like |A_t| ~ t and so loses about |A_t| * 6e-8 of relative precision in h in float32 (1e-4 once
    |A_t| = 2000); here each composition rounds on values of the size of log h itself.
    """
    log_a, log_b = _PARTS[name][1](xw_tbg)
    if mask_tb is not None:
        m = mask_tb[:, :, None]
        log_a = jnp.where(m, log_a, jnp.zeros((), log_a.dtype))
        log_b = jnp.where(m, log_b, jnp.asarray(_LOG_ZERO, log_b.dtype))
    # One stacked [2, T, B, H] array rather than a pair halves the slices and pads at each level of the scan,
    # which halves XLA's compile time on long sequences at the same run time.
    cum = jax.lax.associative_scan(_compose, jnp.stack([log_a, log_b]), axis=1)
    return jnp.exp(cum[0]) * h0_bh[None] + jnp.exp(cum[1])


def run_parallel(
    cell: str, xw_tbg: jax.Array, mask_tb: jax.Array | None, carry: Carry
) -> tuple[jax.Array, Carry]:
    """Runs a minimal cell's recurrence over projected, time-major inputs with the parallel log-space scan.

    The entry point for a sequence layer that has already projected (and, for a reverse layer, flipped) its
    inputs, as ``scan.run`` does; ``min_gru_sequence``/``min_lstm_sequence`` call it for ``parallel=True``.

    Args:
        cell: min_gru or min_lstm.
        xw_tbg: [T, B, G*H] projected inputs ``x @ kernel + bias``.
        mask_tb: [T, B] bool, True at real steps, or None.
        carry: ``(h_0,)`` with h_0 [B, H].

    Returns:
        ``(ys [T, B, H], (h,))``: outputs, zero at masked steps, and the state after each sequence's last real
        step, in the dtype of ``xw_tbg``; the scan itself runs in at least float32.
    """
    if cell not in _PARTS:
        raise ValueError(f"run_parallel: unknown cell {cell!r}; choose one of {sorted(_PARTS)}.")
    dtype = xw_tbg.dtype
    (h0_bh,) = carry
    if xw_tbg.shape[0] == 0:
        return jnp.zeros((0,) + h0_bh.shape, dtype), (h0_bh.astype(dtype),)
    # The log-space scan runs in at least float32: bfloat16 would round log h to 8 significant bits, an error
    # in h that grows with |log h|.
    compute = jnp.promote_types(dtype, jnp.float32)
    hs_tbh = _affine_scan(cell, xw_tbg.astype(compute), mask_tb, h0_bh.astype(compute)).astype(dtype)
    ys_tbh = hs_tbh if mask_tb is None else jnp.where(mask_tb[:, :, None], hs_tbh, jnp.zeros((), dtype))
    # Masked steps are identity maps, so the last h is the state after each sequence's last real step.
    return ys_tbh, (hs_tbh[-1],)


def min_gru_sequence(
    params: Params,
    xs_btf: jax.Array,
    mask_bt: jax.Array | None = None,
    *,
    initial_carry: Carry | None = None,
    reverse: bool = False,
    parallel: bool = True,
) -> tuple[Carry, jax.Array]:
    """Runs minGRU over a batch of sequences, in parallel over time (default) or step by step.

    The cell is the linear recurrence ``h_t = a_t h_{t-1} + b_t`` with ``a_t = 1 - z_t``, ``b_t = z_t g(k_h)``
    (see ``min_gru``). ``parallel=True`` computes it with ``lax.associative_scan`` in log space:

        log a_t = -softplus(k_z),   log b_t = -softplus(-k_z) + log g(k_h),
        log g(v) = log(v + 0.5) if v >= 0 else -softplus(-v),

    and ``h_t = exp(A_t) h_0 + exp(B_t)``, where ``A_t = sum_{s<=t} log a_s`` and ``B_t`` is log h_t started
    from h_0 = 0, both from one scan whose operator composes two steps as
    ``(la1 + la2, logaddexp(la2 + lb1, lb2))``; h_0 may be negative. ``parallel=False`` scans
    ``min_gru_recur`` with ``lax.scan``; the two agree to rounding. A masked step is a_t = 1, b_t = 0: the
    carry is held and the output is zero, as in ``scan.run``.

    Args:
        params: from ``init_min_gru``.
        xs_btf: [B, T, F] floating inputs.
        mask_bt: [B, T] bool, True at real steps; None processes every step.
        initial_carry: ``(h_0,)`` with h_0 [B, H]; zeros when None.
        reverse: visit real steps from last to first; outputs stay aligned with the inputs.
        parallel: the associative scan (True) or the sequential ``lax.scan`` (False).

    Returns:
        ``(carry, ys)``: ``(h,)`` after each sequence's last real step, h [B, H], and outputs ys [B, T, H]
        (zero at masked steps), both in the dtype of xs. The parallel scan runs in at least float32.

    Raises:
        ValueError: if params, xs, mask or initial_carry has the wrong shape or dtype.
    """
    return _sequence("min_gru", params, xs_btf, mask_bt, initial_carry, reverse, parallel)


def min_lstm_sequence(
    params: Params,
    xs_btf: jax.Array,
    mask_bt: jax.Array | None = None,
    *,
    initial_carry: Carry | None = None,
    reverse: bool = False,
    parallel: bool = True,
) -> tuple[Carry, jax.Array]:
    """Runs minLSTM over a batch of sequences, in parallel over time (default) or step by step.

    The cell is the linear recurrence ``h_t = a_t h_{t-1} + b_t`` with ``a_t = f'_t``, ``b_t = i'_t g(k_h)``
    (see ``min_lstm``). ``parallel=True`` computes it with ``lax.associative_scan`` in log space:

        d_t = log i_t - log f_t = softplus(-k_f) - softplus(-k_i),
        log a_t = log f'_t = -softplus(d_t),   log b_t = log i'_t + log g(k_h) = -softplus(-d_t) + log g(k_h),

    then exactly as in ``min_gru_sequence`` (h_0 of any sign; a masked step is a_t = 1, b_t = 0).
    ``parallel=False`` scans ``min_lstm_recur`` with ``lax.scan``.

    Args:
        params: from ``init_min_lstm``.
        xs_btf: [B, T, F] floating inputs.
        mask_bt: [B, T] bool, True at real steps; None processes every step.
        initial_carry: ``(h_0,)`` with h_0 [B, H]; zeros when None.
        reverse: visit real steps from last to first; outputs stay aligned with the inputs.
        parallel: the associative scan (True) or the sequential ``lax.scan`` (False).

    Returns:
        ``(carry, ys)``: ``(h,)`` after each sequence's last real step, h [B, H], and outputs ys [B, T, H]
        (zero at masked steps), both in the dtype of xs. The parallel scan runs in at least float32.

    Raises:
        ValueError: if params, xs, mask or initial_carry has the wrong shape or dtype.
    """
    return _sequence("min_lstm", params, xs_btf, mask_bt, initial_carry, reverse, parallel)


def _sequence(name, params, xs_btf, mask_bt, initial_carry, reverse, parallel) -> tuple[Carry, jax.Array]:
    return scan.run(_PARTS[name][0], params, xs_btf, mask_bt, initial_carry=initial_carry, reverse=reverse,
                    parallel=parallel)


scan.PARALLEL_FORMS.update({cell.recur: partial(run_parallel, name) for name, (cell, _) in _PARTS.items()})
