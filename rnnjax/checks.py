"""Trace-time checks of cell arguments, shared by ``cells.py``, ``minimal.py`` and ``minimal_scan.py``.

Each raises ValueError with one line naming the argument, the expected and received shapes, and the fix.
"""

import jax
import jax.numpy as jnp

from rnnjax.types import Carry, Params


def check_gate_blocks(name: str, params: Params, gates: int) -> None:
    """Raises ValueError unless ``params["kernel"]`` is 2-D with a multiple of ``gates`` columns ([F, G*H])."""
    kernel = params["kernel"]
    if kernel.ndim != 2 or kernel.shape[1] % gates:
        raise ValueError(
            f"{name}: params['kernel'] must have shape [F, {gates}*H], got {tuple(kernel.shape)}; "
            f"build the params with init_{name}."
        )


def check_input(name: str, params: Params, x: jax.Array) -> None:
    """Raises ValueError unless ``x`` is a floating array whose last axis matches the kernel's rows."""
    features = params["kernel"].shape[0]
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name}: x must be a floating array [..., F={features}], got dtype {x.dtype}; "
            "embed integer tokens first or cast with x.astype(jnp.float32)."
        )
    if x.ndim < 1 or x.shape[-1] != features:
        raise ValueError(
            f"{name}: x must have shape [..., F={features}] to match kernel {tuple(params['kernel'].shape)}, "
            f"got {tuple(x.shape)}; check the input feature size given to init_{name}."
        )


def check_carry(name: str, carry: Carry, n_states: int, hidden: int, batch_shape: tuple) -> None:
    """Raises ValueError unless ``carry`` is a tuple of ``n_states`` arrays of shape ``batch_shape + (H,)``."""
    expected = tuple(batch_shape) + (hidden,)
    if not isinstance(carry, (tuple, list)) or len(carry) != n_states:
        raise ValueError(
            f"{name}: carry must be a tuple of {n_states} array{'s' if n_states != 1 else ''} of shape "
            f"{expected}, got {type(carry).__name__} of length "
            f"{len(carry) if isinstance(carry, (tuple, list)) else '?'}; build it with {name}_carry."
        )
    for i, state in enumerate(carry):
        if tuple(state.shape) != expected:
            raise ValueError(
                f"{name}: carry[{i}] must have shape {expected} (batch shape of x, then H={hidden}), "
                f"got {tuple(state.shape)}; build it with {name}_carry(params, x.shape[:-1])."
            )


def check_sequence(name: str, xs_btf: jax.Array, mask_bt: jax.Array | None, features: int | None) -> None:
    """Raises ValueError unless ``xs`` is floating [B, T, F] (F = ``features`` when known) and ``mask`` is None
    or bool [B, T]."""
    if xs_btf.ndim != 3 or (features is not None and xs_btf.shape[-1] != features):
        raise ValueError(
            f"{name}: xs must have shape [B, T, F{'' if features is None else f'={features}'}], got "
            f"{tuple(xs_btf.shape)}; sequences are batch-major, and F must match the layer's input size."
        )
    if not jnp.issubdtype(xs_btf.dtype, jnp.floating):
        raise ValueError(f"{name}: xs must be floating, got dtype {xs_btf.dtype}; embed token ids first.")
    if mask_bt is not None and (tuple(mask_bt.shape) != tuple(xs_btf.shape[:2]) or mask_bt.dtype != jnp.bool_):
        raise ValueError(
            f"{name}: mask must be bool [B, T]={tuple(xs_btf.shape[:2])}, got {mask_bt.dtype} "
            f"{tuple(mask_bt.shape)}; build it with sequence_mask(lengths, T) or tokens != 0."
        )


def check_cell(name: str, cell) -> None:
    """Runs a cell's functions on a tiny example (F=3, H=4, batch 2, parameters perturbed so that zero biases
    hide nothing) and raises ValueError, naming the function, unless each returns what ``cells.Cell`` states
    and ``step`` equals ``recur(project(x))`` when the cell has both halves."""
    where = f"register_cell({name!r})"
    with jax.ensure_compile_time_eval():
        key = jax.random.key(0)
        try:
            params = cell.init(key, 3, 4)
            leaves, treedef = jax.tree.flatten(params)
            params = jax.tree.unflatten(treedef, [
                leaf + 0.1 * jax.random.normal(jax.random.fold_in(key, i), leaf.shape, leaf.dtype)
                if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf for i, leaf in enumerate(leaves)
            ])
            zeros = cell.initial_carry(params, (2,))
        except Exception as error:
            raise ValueError(f"{where}: init(key, 3, 4) then initial_carry(params, (2,)) failed: "
                             f"{type(error).__name__}: {error}") from error
        if not isinstance(zeros, tuple) or not zeros or any(jnp.shape(c)[:1] != (2,) for c in zeros):
            raise ValueError(f"{where}: initial_carry(params, (2,)) must return a tuple of [2, H] arrays, got "
                             f"{jax.tree.map(jnp.shape, zeros)}.")
        carry = tuple(jax.random.normal(jax.random.fold_in(key, 100 + i), jnp.shape(c)) for i, c in enumerate(zeros))
        x = jax.random.normal(jax.random.fold_in(key, 99), (2, 3))
        try:
            new, y = cell.step(params, carry, x)
        except Exception as error:
            raise ValueError(f"{where}: step(params, carry, x [2, 3]) failed: {type(error).__name__}: {error}") from error
        if jax.tree.map(jnp.shape, tuple(new)) != jax.tree.map(jnp.shape, carry) or jnp.shape(y)[:1] != (2,):
            raise ValueError(f"{where}: step must return (carry like initial_carry's, y [2, ...]), got carry "
                             f"{jax.tree.map(jnp.shape, new)} and y {jnp.shape(y)}.")
        if cell.project is not None and cell.recur is not None:
            new2, y2 = cell.recur(params, carry, cell.project(params, x))
            gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip((y, *new), (y2, *new2)))
            if not gap <= 1e-5 * (1 + float(jnp.max(jnp.abs(y)))):
                raise ValueError(
                    f"{where}: step(x) and recur(project(x)) differ by {gap:.3g}; give the halves of this step, "
                    "or leave project and recur out (run then scans the step itself)."
                )
