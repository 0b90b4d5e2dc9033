"""Sequence layers: the masked scan over time, reversal, bidirectional merging, and Keras-style RNN dropout.

This file owns the time axis. Callers pass batch-major arrays ``[B, T, ...]``; ``run`` projects the inputs
for all steps with one matmul, moves time to the front once, scans the cell's recurrence with
``jax.lax.scan``, and moves the outputs back.

Masking (``mask [B, T] bool``, True = real step): at a masked step the carry is held and the output is zero,
so the final carry is the state after each sequence's last real step, with right or left padding alike.
A reversed layer flips the time axis, scans, and flips the outputs back: real steps are visited from last to
first, padding stays where it was, and outputs are aligned with the inputs. Without a mask every step is
processed, as Keras does for ``mask_zero=False``. With ``zero_output_for_mask=False`` a masked step repeats
the previous output as a plain Keras RNN layer does (``hold_outputs``, applied after every scan path).

Fast paths: ``FAST_PATHS`` maps a cell definition's ``recur`` function to a whole-sequence implementation of it
(a ``FastPath``: hand-written backward passes, native kernels). ``rnnjax.kernels`` fills it for the stock
SimpleRNN, LSTM and GRU when it is imported (``import rnnjax`` imports it). ``run`` and ``bidirectional`` use a
fast path only for the ``recur`` it was attached to, so a cell replaced in ``cells.CELLS`` runs as written, and
everything here works with ``FAST_PATHS`` empty.

Cell equations live in ``cells.py``; embedding, dense layers and attention in ``layers.py``/``attention.py``; the
fast paths themselves in ``rnnjax/kernels``.
"""

import inspect
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnnjax.cells import Cell, accepted_options, get_cell
from rnnjax.checks import check_sequence
from rnnjax.dropout import dropout_mask
from rnnjax.types import Carry, Params, PRNGKey

MERGE_MODES = ("concat", "sum", "mul", "ave", "none")
_RUN_OPTIONS = ("fused", "parallel", "unroll", "dropout", "recurrent_dropout", "inputs_projected",
                "zero_output_for_mask")  # run()'s own keywords


class Gathered(NamedTuple):
    """Projected inputs given as rows of a table: ``xw[t, b] = table[ids[t, b]]`` (an embedding folded into the
    input projection, see ``models.apply_model``). A fast path may read the rows in place; every other path
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


class FastPath(NamedTuple):
    """A whole-sequence implementation of one cell definition's recurrence: the same function as the masked
    ``lax.scan`` over its ``recur``, computed (or differentiated) faster.

    ``covers(params, cell_options) -> bool``: whether it implements this call (e.g. no recurrent dropout).
    ``run(params, xw_tbg, mask_tb, carry, *, return_sequences, **cell_options) -> (ys_tbh or None, carry)``:
    from projected, time-major inputs ``xw_tbg [T, B, G*H]`` (or a ``Gathered``), ``mask_tb [T, B]`` or None
    and a carry of [B, H] arrays; outputs are zero at masked steps, and None without ``return_sequences``. Given
    a list of params (one per direction), every other argument has a direction axis after time
    (``[T, D, B, ...]``, carry ``[D, B, H]``) and the directions run in one loop.
    """

    covers: Callable[[Params, dict], bool]
    run: Callable


# A stock cell's ``recur`` function -> its fast path; filled by ``rnnjax.kernels`` when it is imported.
FAST_PATHS: dict[Callable, FastPath] = {}
# A stock cell's ``recur`` -> its parallel-in-time solver ``(xw_tbg, mask_tb, carry) -> (ys_tbh, carry)``, used
# with ``run(..., parallel=True)``; filled by ``rnnjax.minimal_scan`` for minGRU and minLSTM.
PARALLEL_FORMS: dict[Callable, Callable] = {}


def _fast_path(fns: Cell, params: Params, cell_options: dict) -> FastPath | None:
    """The fast path attached to this cell definition's ``recur`` if it covers the call, else None."""
    fast = FAST_PATHS.get(fns.halves()[1])
    return fast if fast is not None and fast.covers(params, cell_options) else None


def hold(mask_b: jax.Array | None, new_carry: Carry, carry: Carry, y: jax.Array) -> tuple[Carry, jax.Array]:
    """The masked step: where ``mask_b`` ([B], or any leading shape of the carry) is False, the carry is held
    and the output is zero. Every scan over a cell (``run``, the fast paths) applies it. The new carry keeps the
    carry's dtype (a cell that computes in another dtype, e.g. float32 parameters on bfloat16 inputs, still
    scans)."""
    new_carry = tuple(n.astype(o.dtype) for n, o in zip(new_carry, carry))
    if mask_b is None:
        return new_carry, y
    m = mask_b[..., None]
    return tuple(jnp.where(m, n, o) for n, o in zip(new_carry, carry)), jnp.where(m, y, jnp.zeros((), y.dtype))


def hold_outputs(ys_tbh: jax.Array, mask_tb: jax.Array) -> jax.Array:
    """Keras' outputs at masked steps (``zero_output_for_mask=False``): a masked step repeats the last real
    output before it in processing order, zeros before any; a post-processing that every scan path shares.

    Args:
        ys_tbh: [T, ..., H] outputs in processing order, zero at masked steps (as ``hold`` writes them).
        mask_tb: [T, ...] bool, True at real steps.
    """
    steps = jnp.arange(ys_tbh.shape[0]).reshape((-1,) + (1,) * (mask_tb.ndim - 1))
    last_tb = jax.lax.cummax(jnp.where(mask_tb, steps, -1), axis=0)  # last real step so far, -1 before any
    index = jnp.broadcast_to(jnp.maximum(last_tb, 0)[..., None], ys_tbh.shape)
    held = jnp.take_along_axis(ys_tbh, index, axis=0)  # gradients reach the real step each copy reads
    return jnp.where((last_tb >= 0)[..., None], held, jnp.zeros((), ys_tbh.dtype))


def sequence_mask(lengths: jax.Array, max_len: int) -> jax.Array:
    """Mask of real steps for right-padded sequences.

    Args:
        lengths: [B] int, real steps per sequence (clipped to [0, max_len]).
        max_len: T.

    Returns:
        [B, T] bool, True where ``t < lengths[b]``.

    Raises:
        ValueError: if lengths is not a 1-D integer array.
    """
    lengths = jnp.asarray(lengths)
    if lengths.ndim != 1 or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(
            f"lengths must be a [B] integer array, got shape {lengths.shape} dtype {lengths.dtype}; "
            "pass one length per sequence, e.g. lengths.astype(jnp.int32)."
        )
    return jnp.arange(max_len)[None, :] < lengths[:, None]


def run(
    cell: str | Cell,
    params: Params,
    xs_btf: jax.Array,
    mask_bt: jax.Array | None = None,
    *,
    initial_carry: Carry | None = None,
    reverse: bool = False,
    return_sequences: bool = True,
    unroll: int = 1,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    rng: PRNGKey | None = None,
    fused: bool = True,
    parallel: bool = False,
    inputs_projected: bool = False,
    zero_output_for_mask: bool = True,
    **cell_options,
) -> tuple[Carry, jax.Array]:
    """Runs a cell over a batch of sequences with a masked ``lax.scan``.

    Args:
        cell: a name in ``cells.CELLS`` (simple_rnn, lstm, gru, ..., or one added by ``register_cell``), or a Cell.
        params: the cell's parameters.
        xs_btf: [B, T, F] floating inputs.
        mask_bt: [B, T] bool, True at real steps; None processes every step.
        initial_carry: the cell's carry with [B, H] arrays; zeros when None.
        reverse: visit real steps from last to first; outputs stay aligned with the inputs.
        return_sequences: return outputs for every step ([B, T, H]) rather than the last one ([B, H]).
        unroll: time steps per scan iteration (``lax.scan``'s unroll).
        dropout: Keras' ``dropout``: fraction of input features dropped, one mask per sequence for all steps.
        recurrent_dropout: Keras' ``recurrent_dropout``: the same for h where it enters the recurrent matmul.
        rng: key for the dropout masks; dropout is applied only when it is given.
        fused: use the fast path attached to the cell's definition (``FAST_PATHS``: hand-written backward
            passes, native kernels) where it covers the call (the same function, computed faster); False forces
            the plain scan differentiated by autodiff.
        parallel: for the stock min_gru and min_lstm, solve the linear recurrence with ``lax.associative_scan``
            in log space (O(log T) depth; pays on accelerators) instead of a sequential scan. Same values.
        inputs_projected: ``xs`` are already ``x @ kernel + input bias`` ([B, T, G*H]), e.g. gathered from an
            embedding table multiplied by the kernel once (see ``models.apply_model``); ``dropout`` must be 0.
        zero_output_for_mask: outputs are zero at masked steps (True); False gives a plain Keras RNN layer's
            default: a masked step repeats the last real output before it (processing order); zeros first.
        **cell_options: static options of the cell's step (e.g. ``activation`` for simple_rnn).

    Returns:
        ``(carry, outputs)``: the final carry (after each sequence's last real step; this is Keras'
        ``return_state``) and outputs [B, T, H] (zero/held at masked steps) or [B, H] (the last real output).

    Raises:
        ValueError: if xs, mask or initial_carry has the wrong shape or dtype.
    """
    xw_tbg, mask_tb, carry, cell_options = _prepare(
        cell, params, xs_btf, mask_bt, initial_carry, reverse, dropout, recurrent_dropout, rng, inputs_projected,
        cell_options,
    )
    keep = None if zero_output_for_mask else mask_tb
    fns = get_cell(cell)
    recur = fns.halves()[1]
    solver = PARALLEL_FORMS.get(recur) if parallel else None  # only the stock definitions have one
    if solver is not None and unroll == 1 and not cell_options:
        ys_tbh, carry = solver(materialize(xw_tbg), mask_tb, carry)
        return _finish(carry, ys_tbh, reverse, return_sequences, keep)
    fast = _fast_path(fns, params, cell_options) if fused and unroll == 1 else None
    if fast is not None:
        ys_tbh, carry = fast.run(params, xw_tbg, mask_tb, carry, return_sequences=return_sequences, **cell_options)
        return _finish(carry, ys_tbh, reverse, return_sequences, keep)
    xw_tbg = materialize(xw_tbg)

    def step(carry, inputs):
        xw_bg, m_b = inputs
        new_carry, y_bh = recur(params, carry, xw_bg, **cell_options)
        carry, y_bh = hold(m_b, new_carry, carry, y_bh)
        return carry, (y_bh if return_sequences else None)

    carry, ys_tbh = jax.lax.scan(step, carry, (xw_tbg, mask_tb), unroll=unroll)
    return _finish(carry, ys_tbh, reverse, return_sequences, keep)


def _prepare(cell, params, xs_btf, mask_bt, initial_carry, reverse, dropout, recurrent_dropout, rng,
             inputs_projected, cell_options):
    """Checks the inputs, applies dropout, projects all steps at once and lays them out time-major (reversed
    for ``reverse``). Returns (xw_tbg, mask_tb, initial carry, cell options incl. the recurrent mask)."""
    fns = get_cell(cell)
    name = cell if isinstance(cell, str) else getattr(fns.step, "__name__", "cell")
    kernel = params.get("kernel") if isinstance(params, dict) else None
    features = None if getattr(kernel, "ndim", 0) != 2 or fns.project is None else kernel.shape[int(inputs_projected)]
    check_sequence(name, xs_btf, mask_bt, features)
    if isinstance(xs_btf, Gathered) and not inputs_projected:
        raise ValueError(f"{name}: a Gathered table holds projected inputs; pass inputs_projected=True.")
    if inputs_projected and dropout > 0 and rng is not None:
        raise ValueError(f"{name}: dropout acts on x, so it cannot be used with inputs_projected=True.")
    batch, _, features = xs_btf.shape
    dtype = xs_btf.dtype
    zeros = _zero_carry(fns, params, batch, dtype)
    hidden = zeros[0].shape[-1]
    if recurrent_dropout > 0 and not accepted_options(fns.halves()[1], recurrent_mask=None):
        raise ValueError(
            f"{name}: the cell takes no recurrent_mask (e.g. it has no recurrent matmul), so recurrent_dropout "
            f"must be 0 (got {recurrent_dropout})."
        )
    if initial_carry is None:
        carry = zeros
    else:
        carry = tuple(jnp.asarray(c, dtype) for c in initial_carry)
        if [c.shape for c in carry] != [z.shape for z in zeros]:
            shapes = {tuple(z.shape) for z in zeros}
            raise ValueError(
                f"{name}: initial_carry must be {len(zeros)} array{'s' if len(zeros) > 1 else ''} of shape "
                f"{shapes.pop() if len(shapes) == 1 else [tuple(z.shape) for z in zeros]}, got "
                f"{[tuple(c.shape) for c in carry]}; build it with the cell's initial_carry(params, (B,))."
            )
    cell_options = dict(cell_options)
    if rng is not None and (dropout > 0 or recurrent_dropout > 0):
        in_key, rec_key = jax.random.split(rng)
        if dropout > 0:
            xs_btf = xs_btf * dropout_mask(in_key, dropout, (batch, 1, features), dtype)
        if recurrent_dropout > 0:
            cell_options["recurrent_mask"] = dropout_mask(rec_key, recurrent_dropout, (batch, hidden), dtype)
    # Time-major once: transpose x (F wide) rather than the projection (G*H wide), then one matmul for all steps.
    # Projected inputs given as table rows (Gathered) stay so: only their ids move.
    time_major = lambda a: jnp.flip(jnp.swapaxes(a, 0, 1), 0) if reverse else jnp.swapaxes(a, 0, 1)
    if isinstance(xs_btf, Gathered):
        xw_tbg = Gathered(xs_btf.table, time_major(xs_btf.ids))
    else:
        xs_tbf = time_major(xs_btf)
        xw_tbg = xs_tbf if inputs_projected else fns.halves()[0](params, xs_tbf)
    mask_tb = None if mask_bt is None else time_major(mask_bt)
    return xw_tbg, mask_tb, carry, cell_options


def _zero_carry(fns: Cell, params: Params, batch: int, dtype) -> Carry:
    """The cell's initial carry for a batch, in ``dtype`` (passed to ``initial_carry`` when it takes one)."""
    parameters = inspect.signature(fns.initial_carry).parameters.values()
    takes_dtype = len(parameters) >= 3 or any(p.kind == p.VAR_POSITIONAL or p.name == "dtype" for p in parameters)
    carry = fns.initial_carry(params, (batch,), dtype) if takes_dtype else fns.initial_carry(params, (batch,))
    return tuple(jnp.asarray(c, dtype) for c in carry)


def _finish(carry: Carry, ys_tbh: jax.Array | None, reverse: bool, return_sequences: bool,
            keep_tb: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    """Batch-major outputs aligned with the inputs (held at masked steps given ``keep_tb``), or final h."""
    if not return_sequences:
        return carry, carry[0]
    if keep_tb is not None:
        ys_tbh = hold_outputs(ys_tbh, keep_tb)
    if reverse:
        ys_tbh = jnp.flip(ys_tbh, 0)
    return carry, jnp.swapaxes(ys_tbh, 0, 1)


def merge(forward: jax.Array, backward: jax.Array, merge_mode: str) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Merges the two directions of a bidirectional layer as Keras' ``Bidirectional(merge_mode=...)``.

    Args:
        forward: [..., H] outputs of the forward direction.
        backward: [..., H] outputs of the backward direction, aligned with the forward ones.
        merge_mode: concat ([..., 2H], forward first), sum, mul, ave, or none (the pair, unmerged).

    Raises:
        ValueError: for an unknown merge mode.
    """
    if merge_mode == "concat":
        return jnp.concatenate([forward, backward], axis=-1)
    if merge_mode == "sum":
        return forward + backward
    if merge_mode == "mul":
        return forward * backward
    if merge_mode == "ave":
        return (forward + backward) / 2
    if merge_mode == "none":
        return forward, backward
    raise ValueError(f"unknown merge_mode {merge_mode!r}; choose one of {MERGE_MODES}.")


def bidirectional(
    cell: str | Cell,
    params: Params,
    xs_btf: jax.Array | tuple[jax.Array, jax.Array],
    mask_bt: jax.Array | None = None,
    *,
    merge_mode: str = "concat",
    initial_carry: Sequence[Carry] | None = None,
    return_sequences: bool = True,
    rng: PRNGKey | None = None,
    zero_output_for_mask: bool = True,
    **run_options,
) -> tuple[tuple[Carry, Carry], jax.Array | tuple[jax.Array, jax.Array]]:
    """Runs a cell forward and in reverse over the same sequences and merges the outputs (Keras' Bidirectional).

    Args:
        cell: a name in ``cells.CELLS`` or a Cell.
        params: ``{"forward": cell params, "backward": cell params}``.
        xs_btf: [B, T, F] floating inputs, or a (forward, backward) pair of per-direction inputs (used with
            ``inputs_projected=True``, where each direction has its own projection).
        mask_bt: [B, T] bool or None; the backward direction reverses each sequence within its real steps.
        merge_mode: concat, sum, mul, ave or none (see ``merge``).
        initial_carry: ``(forward carry, backward carry)`` or None for zeros.
        return_sequences: merged outputs per step ([B, T, D]) or of the last step of each direction ([B, D]).
        rng: key for dropout (split between the directions); None for no dropout.
        zero_output_for_mask: as in ``run``, per direction in processing order (Keras' Bidirectional: True).
        **run_options: passed to ``run`` for both directions (dropout, recurrent_dropout, unroll, cell options).

    Returns:
        ``((forward carry, backward carry), merged outputs)``.

    Raises:
        ValueError: for an unknown merge mode or a bad input shape.
    """
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"unknown merge_mode {merge_mode!r}; choose one of {MERGE_MODES}.")
    fw_carry, bw_carry = (None, None) if initial_carry is None else initial_carry
    fw_rng, bw_rng = (None, None) if rng is None else jax.random.split(rng)
    fw_xs, bw_xs = xs_btf if isinstance(xs_btf, (tuple, list)) else (xs_btf, xs_btf)
    if run_options.get("fused", True) and run_options.get("unroll", 1) == 1:
        cell_options = {k: v for k, v in run_options.items() if k not in _RUN_OPTIONS}

        def prepare(direction, xs, carry, key):
            return _prepare(cell, params[direction], xs, mask_bt, carry, direction == "backward",
                            run_options.get("dropout", 0.0), run_options.get("recurrent_dropout", 0.0), key,
                            run_options.get("inputs_projected", False), cell_options)

        fw_xw, fw_mask, fw_init, fw_opts = prepare("forward", fw_xs, fw_carry, fw_rng)
        bw_xw, bw_mask, bw_init, bw_opts = prepare("backward", bw_xs, bw_carry, bw_rng)
        fns = get_cell(cell)
        fast = _fast_path(fns, params["forward"], fw_opts)
        if fast is not None and fast.covers(params["backward"], bw_opts):
            # Both directions in one scan: a direction axis after time, one batched recurrent matmul per step.
            if isinstance(fw_xw, Gathered):
                xw_tdbg = Gathered(jnp.stack([fw_xw.table, bw_xw.table]), jnp.stack([fw_xw.ids, bw_xw.ids], 1))
            else:
                xw_tdbg = jnp.stack([fw_xw, bw_xw], 1)
            ys_tdbh, carry = fast.run(
                [params["forward"], params["backward"]], xw_tdbg,
                None if fw_mask is None else jnp.stack([fw_mask, bw_mask], 1),
                tuple(jnp.stack(pair) for pair in zip(fw_init, bw_init)), return_sequences=return_sequences, **fw_opts,
            )
            fw_ys, bw_ys = (None, None) if ys_tdbh is None else (ys_tdbh[:, 0], ys_tdbh[:, 1])
            fw_keep, bw_keep = (None, None) if zero_output_for_mask else (fw_mask, bw_mask)
            fw_carry, fw_out = _finish(tuple(c[0] for c in carry), fw_ys, False, return_sequences, fw_keep)
            bw_carry, bw_out = _finish(tuple(c[1] for c in carry), bw_ys, True, return_sequences, bw_keep)
            return (fw_carry, bw_carry), merge(fw_out, bw_out, merge_mode)
    common = dict(return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask, **run_options)
    fw_carry, fw_out = run(cell, params["forward"], fw_xs, mask_bt, initial_carry=fw_carry, rng=fw_rng, **common)
    bw_carry, bw_out = run(
        cell, params["backward"], bw_xs, mask_bt, initial_carry=bw_carry, rng=bw_rng, reverse=True, **common
    )
    return (fw_carry, bw_carry), merge(fw_out, bw_out, merge_mode)
