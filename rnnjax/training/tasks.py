"""What a task is, and the steps every task gets from it: the TrainState, the Task record, the jitted train
and eval steps (dropout keys, mixed precision, the non-finite guard, data parallelism) and evaluation by sums.

A task (classifier, language model, a researcher's own model) supplies pure functions; the fit loop
(``loop.py``) runs the steps built here. Nothing here touches files or reads a config.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rnnjax.training import sharding
from rnnjax.types import Batch, Params, PRNGKey

_DROPOUT = 0  # purpose index for fold_in(step key, purpose)
NO_STEP = 2**31 - 1  # "first_nonfinite" of a finite step


class TrainState(NamedTuple):
    """Everything that changes during training; a pytree."""

    step: jax.Array  # int32 scalar, optimizer steps taken
    params: Params
    opt_state: optax.OptState
    key: PRNGKey  # root training key; never advances, per-step keys are fold_in(key, step)


class Task(NamedTuple):
    """What differs between tasks; pure functions, closed over their model."""

    kind: str  # "classifier" or "language_model": recorded in the run directory
    init: Callable[[PRNGKey], Params]  # initial parameters
    loss: Callable[[Params, Batch, PRNGKey], tuple[jax.Array, dict[str, jax.Array]]]  # (mean loss, sums)
    counts: Callable[[Params, Batch], dict[str, jax.Array]]  # evaluation sums, no dropout
    metrics: Callable[[Mapping[str, float]], dict[str, float]]  # host sums -> loss, accuracy, ...
    shown: tuple[str, ...] = ("loss", "accuracy")  # metrics on the progress line


# ------------------------------------------------------------------------------------------------ steps


def create_state(
    task: Task, tx: optax.GradientTransformation, seed: int, params: Params | None = None
) -> TrainState:
    """The state before the first step; the params (``task.init``) and the training key are streams of ``seed``."""

    @jax.jit
    def create(root: PRNGKey, given: Params | None) -> TrainState:
        init_key, train_key = jax.random.split(root)
        initial = task.init(init_key) if given is None else given
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=initial, opt_state=tx.init(initial), key=train_key
        )

    return create(jax.random.key(seed), params)


def cast_for_compute(params: Params, dtype) -> Params:
    """Casts the floating leaves of ``params`` to ``dtype``; other leaves unchanged; None: unchanged."""
    if dtype is None:
        return params
    return jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)


def train_step_fn(task: Task, tx: optax.GradientTransformation, compute_dtype=None) -> Callable:
    """``train_step(state, batch) -> (state, metrics)`` before jit.

    ``metrics``: the task's sums, ``n_steps`` (1), ``n_nonfinite`` (1 when the loss or gradient was not
    finite: params and optimizer state are then unchanged and the task's sums are 0), ``first_nonfinite``
    (this step's 1-based number if it was not finite, else 2**31 - 1) and ``grad_norm`` (before clipping).
    """

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        rng = jax.random.fold_in(jax.random.fold_in(state.key, state.step), _DROPOUT)

        def loss_fn(params):
            return task.loss(cast_for_compute(params, compute_dtype), batch, rng)

        (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.global_norm(grads)
        # A non-finite step leaves params and optimizer state as they were: no NaN ever reaches a saved state.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        params, opt_state = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), (params, opt_state), (state.params, state.opt_state)
        )
        metrics = {name: jnp.where(finite, value, jnp.zeros_like(value)) for name, value in sums.items()}
        metrics["n_steps"] = jnp.ones((), jnp.int32)
        metrics["n_nonfinite"] = (~finite).astype(jnp.int32)
        metrics["first_nonfinite"] = jnp.where(finite, NO_STEP, state.step + 1).astype(jnp.int32)
        metrics["grad_norm"] = grad_norm
        return TrainState(state.step + 1, params, opt_state, state.key), metrics

    return train_step


def eval_step_fn(task: Task, compute_dtype=None) -> Callable[[Params, Batch], dict[str, jax.Array]]:
    """``eval_step(params, batch) -> sums`` before jit (no dropout)."""
    return lambda params, batch: task.counts(cast_for_compute(params, compute_dtype), batch)


def make_steps(task: Task, tx: optax.GradientTransformation, compute_dtype=None, mesh=None):
    """The jitted ``(train_step, eval_step, put_batch)``: on one device, or data-parallel over ``mesh``.

    The train step donates its state. ``put_batch`` places a host batch (``jax.device_put``, or this
    process's rows sharded over the mesh).
    """
    train, evaluate = train_step_fn(task, tx, compute_dtype), eval_step_fn(task, compute_dtype)
    if mesh is None:
        return jax.jit(train, donate_argnums=0), jax.jit(evaluate), jax.device_put
    return (
        sharding.shard_step(train, mesh, donate_state=True),
        sharding.shard_step(evaluate, mesh),
        lambda batch: sharding.shard_batch(batch, mesh),
    )


@jax.jit
def _add(totals: dict[str, jax.Array], counts: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return jax.tree.map(jnp.add, totals, counts)


def host(tree: Mapping[str, jax.Array]) -> dict[str, Any]:
    """Fetches a dict of device arrays: scalars as Python numbers, others (a confusion matrix) as nested lists."""
    return {
        name: value.item() if value.ndim == 0 else value.tolist()
        for name, value in jax.device_get(dict(tree)).items()
    }


def evaluate(eval_step: Callable, params: Params, batches: Iterable[Batch], put_batch=jax.device_put) -> dict:
    """Sums ``eval_step`` over batches on the device and fetches the totals once.

    Raises:
        ValueError: for no batches (an empty split).
    """
    totals = None
    for batch in batches:
        counts = eval_step(params, put_batch(batch))
        totals = counts if totals is None else _add(totals, counts)
    if totals is None:
        raise ValueError("evaluate: no batches; the split is empty.")
    return host(totals)


def zero_sums(train_step: Callable, state: TrainState, batch: Batch) -> dict[str, jax.Array]:
    """Zeros for every summable metric of ``train_step`` (its shapes traced, nothing computed)."""
    shapes = jax.eval_shape(train_step, state, batch)[1]
    return {
        name: jnp.zeros(s.shape, s.dtype)
        for name, s in shapes.items()
        if name not in ("first_nonfinite", "grad_norm")
    }


@jax.jit
def accumulate(sums, first_bad, metrics):
    """Adds a step's metrics to the running sums on the device; keeps the first non-finite step's number."""
    sums = {name: total + metrics[name] for name, total in sums.items()}
    return sums, jnp.minimum(first_bad, metrics["first_nonfinite"])
