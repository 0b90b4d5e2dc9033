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
