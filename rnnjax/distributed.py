"""Running the training step on many devices and in lower precision: meshes, shardings, bf16 compute.

Data parallelism: a 1-D ``Mesh`` over all devices with axis ``"data"``. Batches are split along their first
axis (each device gets ``B / num_devices`` rows); params and optimizer state are replicated. The step itself
is ``train.make_train_step``'s, jitted with these shardings: XLA inserts the gradient all-reduce, so the
update equals the single-device one up to float summation order.

Mixed precision: ``cast_for_compute`` casts float32 params to a compute dtype (bfloat16); the loss is taken
through the cast, so gradients, params and optimizer state stay float32 and only the forward/backward run
in bfloat16. The model computes in the dtype of its embeddings (cells, dense layers cast their params to the
input's dtype); the loss itself is float32 (``losses.py``).

Multi-host (several processes, one per host, each with its own devices): call ``initialize_distributed``
first on every host, then build the mesh (it spans every host's devices). Each host loads only its own rows
(``batch_size / jax.process_count()`` per step, e.g. ``data.batches`` over
``arrays[process_index::process_count]``) and ``shard_batch`` assembles the global batch from the hosts'
local parts. Commands:

* GPU cluster, one process per node (``jax.distributed.initialize()`` also detects SLURM by itself):
  ``srun --nodes=N --ntasks-per-node=1 python -m experiments.train --config=... --workdir=...
  --config.train.data_parallel=True``, the script calling
  ``initialize_distributed("node0:1234", N, node_rank)`` before anything else.
* TPU pod slice: ``gcloud compute tpus tpu-vm ssh NAME --worker=all
  --command="python -m experiments.train ..."``; on TPU ``initialize_distributed()`` takes no arguments
  (the slice describes itself).

Train loop, model and losses live in ``train.py``/``models.py``/``losses.py``; this file only places arrays
on devices and wraps the step.
"""

from __future__ import annotations  # train.py may import this module while it is itself being imported

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rnnjax import losses, models, train
from rnnjax.types import Batch, Params

DATA_AXIS = "data"


def initialize_distributed(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Connects this process to the others of a multi-host run (``jax.distributed.initialize``).

    Call it once per process, before any other JAX call. With no arguments JAX reads the cluster from its
    environment (TPU pod slices, SLURM).

    Args:
        coordinator_address: ``host:port`` of process 0, reachable from every host.
        num_processes: the number of processes (hosts).
        process_id: this process's index in ``[0, num_processes)``.
    """
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over the first ``num_devices`` devices (all of them by default).

    Raises:
        ValueError: if more devices are asked for than exist.
    """
    devices = jax.devices()
    num_devices = len(devices) if num_devices is None else num_devices
    if not 1 <= num_devices <= len(devices):
        raise ValueError(f"make_mesh: num_devices must be in [1, {len(devices)}], got {num_devices}.")
    return Mesh(np.asarray(devices[:num_devices]), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows split over the ``data`` axis, other axes whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, P())


def shard_batch(batch: Batch, mesh: Mesh) -> Batch:
    """Places a batch on the mesh, split along its first (batch) axis.

    Each process passes its own rows (the whole batch in a single-process run); the global batch is the
    processes' rows concatenated in process order.

    Args:
        batch: ``{tokens [B, T], lengths [B], label [B]}`` host arrays, B this process's rows.
        mesh: from ``make_mesh``.

    Returns:
        The batch as global ``jax.Array``s sharded along B.

    Raises:
        ValueError: if B is not divisible by this process's devices in the mesh.
    """
    local_devices = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    sharding = batch_sharding(mesh)
    out = {}
    for name, value in batch.items():
        value = np.asarray(value)
        if value.shape[0] % local_devices:
            raise ValueError(
                f"shard_batch: batch[{name!r}] has {value.shape[0]} rows, not divisible by {local_devices} devices; "
                "choose train.batch_size as a multiple of the device count."
            )
        out[name] = jax.make_array_from_process_local_data(sharding, value)
    return out


def replicate(tree, mesh: Mesh):
    """Copies a pytree (params, optimizer state, a TrainState) to every device of the mesh."""
    return jax.device_put(tree, replicated_sharding(mesh))


def make_sharded_train_step(
    model_cfg: train.ModelConfig, tx: optax.GradientTransformation, mesh: Mesh
) -> Callable[[train.TrainState, Batch], tuple[train.TrainState, dict[str, jax.Array]]]:
    """``train.make_train_step``'s step, jitted for data parallelism on ``mesh``.

    The state is replicated in and out, the batch sharded along B, and the state donated. Metrics (sums over
    the global batch) come back replicated.

    Args:
        model_cfg: the model and its masking.
        tx: the optimizer.
        mesh: from ``make_mesh``.

    Returns:
        ``train_step(state, batch) -> (state, metrics)``; pass ``replicate(state)`` and ``shard_batch(batch)``.
    """
    replicated = replicated_sharding(mesh)
    return jax.jit(
        train.make_train_step(model_cfg, tx),
        in_shardings=(replicated, batch_sharding(mesh)),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


def setup_data_parallel(
    model_cfg: train.ModelConfig,
    tx: optax.GradientTransformation,
    state: train.TrainState,
    mesh: Mesh | None = None,
) -> tuple[train.TrainState, Callable, Callable[[Batch], Batch]]:
    """Everything ``train_and_evaluate`` needs for ``config.train.data_parallel``: state, step and batch placer.

    Args:
        model_cfg: the model and its masking.
        tx: the optimizer.
        state: the (initial or restored) TrainState.
        mesh: the mesh; all devices by default.

    Returns:
        ``(replicated state, sharded train_step, put_batch)``; use ``put_batch`` in place of ``jax.device_put``.
    """
    mesh = make_mesh() if mesh is None else mesh
    return (
        replicate(state, mesh),
        make_sharded_train_step(model_cfg, tx, mesh),
        lambda batch: shard_batch(batch, mesh),
    )


def cast_for_compute(params: Params, dtype) -> Params:
    """Casts the floating leaves of ``params`` to ``dtype`` (e.g. ``jnp.bfloat16``); other leaves unchanged."""
    return jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)


def make_mixed_precision_train_step(
    model_cfg: train.ModelConfig, tx: optax.GradientTransformation, compute_dtype=jnp.bfloat16
) -> Callable[[train.TrainState, Batch], tuple[train.TrainState, dict[str, jax.Array]]]:
    """``train.make_train_step`` with the model run in ``compute_dtype`` and float32 master params.

    The loss is differentiated through ``cast_for_compute``, so gradients arrive in the params' dtype
    (float32) and the optimizer state stays float32. bfloat16 has float32's exponent range, so no loss
    scaling is needed. Metrics as ``train.make_train_step``.

    Args:
        model_cfg: the model and its masking.
        tx: the optimizer.
        compute_dtype: dtype of the forward and backward pass (bfloat16; float32 reproduces the usual step).

    Returns:
        The jitted ``train_step(state, batch) -> (state, metrics)``, state donated.
    """

    def train_step(state: train.TrainState, batch: Batch) -> tuple[train.TrainState, dict[str, jax.Array]]:
        dropout_rng = jax.random.fold_in(
            jax.random.fold_in(state.key, state.step), 0
        )  # as train.make_train_step
        lengths = batch["lengths"] if model_cfg.use_lengths else None

        def loss_fn(params):
            logits = models.apply_model(
                model_cfg.spec,
                cast_for_compute(params, compute_dtype),
                batch["tokens"],
                lengths,
                train=True,
                rng=dropout_rng,
            )
            return losses.mean_loss(logits, batch["label"]), logits

        (_, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        counts = losses.binary_counts(logits.astype(jnp.float32), batch["label"])
        metrics = {name: counts[name] for name in train.TRAIN_METRICS[:3]}
        metrics["n_steps"] = jnp.ones((), jnp.int32)
        metrics["grad_norm"] = optax.global_norm(grads)
        return train.TrainState(
            step=state.step + 1, params=params, opt_state=opt_state, key=state.key
        ), metrics

    return jax.jit(train_step, donate_argnums=0)
