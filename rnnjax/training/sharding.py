"""Running the training step on many devices and in lower precision: meshes, shardings, bf16 compute.

Data parallelism: a 1-D ``Mesh`` over all devices with axis ``"data"``. Batches are split along their first
axis (each device gets ``B / num_devices`` rows); params and optimizer state are replicated. The step itself
is ``train.make_train_step``'s, jitted with these shardings: XLA inserts the gradient all-reduce, so the
update equals the single-device one up to float summation order.

Mixed precision (``compute_dtype``) is ``train.train_step_fn``'s: the forward and backward pass run in
bfloat16 while gradients, params and optimizer state stay float32; both combine with data parallelism.

Multi-host (several processes, one per host, each with its own devices): call ``initialize_distributed``
first on every host, then build the mesh (it spans every host's devices). Each host loads only its own rows
(``batch_size / jax.process_count()`` per step, e.g. ``data.batches`` over
``arrays[process_index::process_count]``) and ``shard_batch`` assembles the global batch from the hosts'
local parts. Commands:

* GPU cluster, one process per node (``jax.distributed.initialize()`` also detects SLURM by itself):
  ``srun --nodes=N --ntasks-per-node=1 python -m experiments.train --config=... --workdir=SHARED/run
  --config.train.data_parallel=True --multihost``, or without SLURM, on node k of N:
  ``python -m experiments.train ... --multihost --coordinator_address=node0:1234 --num_processes=N
  --process_id=k``. The workdir must be on storage every node sees (Orbax coordinates the checkpoint saves).
* TPU pod slice: ``gcloud compute tpus tpu-vm ssh NAME --worker=all
  --command="python -m experiments.train ... --config.train.data_parallel=True --multihost"``; on TPU the
  slice describes itself, so ``--multihost`` needs no address.

Train loop, model and losses live in ``train.py``/``models.py``/``losses.py``; this file only places arrays
on devices and jits the steps with shardings.
"""

from __future__ import annotations  # train.py may import this module while it is itself being imported

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rnnjax.training import train
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


def process_rows(batch: Batch) -> Batch:
    """This process's share of a global batch: rows ``[i * B/P, (i + 1) * B/P)`` for process i of P.

    Every host draws the same seeded global batches (``data.batches``) and keeps only its own rows, so each
    host feeds a disjoint shard and ``shard_batch`` reassembles the global batch. One process: unchanged.
    """
    count, index = jax.process_count(), jax.process_index()
    if count == 1:
        return batch
    rows = len(next(iter(batch.values())))
    if rows % count:
        raise ValueError(f"process_rows: {rows} rows do not divide over {count} processes; use a multiple.")
    share = rows // count
    return {name: np.asarray(value)[index * share : (index + 1) * share] for name, value in batch.items()}


def replicate(tree, mesh: Mesh):
    """Copies a pytree (params, optimizer state, a TrainState) to every device of the mesh."""
    return jax.device_put(tree, replicated_sharding(mesh))


def make_sharded_train_step(
    model_cfg: train.ModelConfig, tx: optax.GradientTransformation, mesh: Mesh, compute_dtype=None
) -> Callable[[train.TrainState, Batch], tuple[train.TrainState, dict[str, jax.Array]]]:
    """``train.train_step_fn``'s step, jitted for data parallelism on ``mesh``.

    The state is replicated in and out, the batch sharded along B, and the state donated. Metrics (sums over
    the global batch) come back replicated.

    Args:
        model_cfg: the model and its masking.
        tx: the optimizer.
        mesh: from ``make_mesh``.
        compute_dtype: mixed-precision compute dtype (see ``train.train_step_fn``); None for none.

    Returns:
        ``train_step(state, batch) -> (state, metrics)``; pass ``replicate(state)`` and ``shard_batch(batch)``.
    """
    replicated = replicated_sharding(mesh)
    return jax.jit(
        train.train_step_fn(model_cfg, tx, compute_dtype),
        in_shardings=(replicated, batch_sharding(mesh)),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


def make_sharded_eval_step(
    model_cfg: train.ModelConfig, mesh: Mesh, compute_dtype=None
) -> Callable[[Params, Batch], dict[str, jax.Array]]:
    """``train.eval_step_fn``'s step with replicated params and a batch sharded along B."""
    replicated = replicated_sharding(mesh)
    return jax.jit(
        train.eval_step_fn(model_cfg, compute_dtype),
        in_shardings=(replicated, batch_sharding(mesh)),
        out_shardings=replicated,
    )


class DataParallel(NamedTuple):
    """What ``train_and_evaluate`` swaps in for ``config.train.data_parallel``."""

    state: train.TrainState  # replicated over the mesh
    train_step: Callable[[train.TrainState, Batch], tuple[train.TrainState, dict[str, jax.Array]]]
    eval_step: Callable[[Params, Batch], dict[str, jax.Array]]
    put_batch: Callable[[Batch], Batch]  # in place of jax.device_put
    mesh: Mesh


def setup_data_parallel(
    model_cfg: train.ModelConfig,
    tx: optax.GradientTransformation,
    state: train.TrainState,
    mesh: Mesh | None = None,
    compute_dtype=None,
) -> DataParallel:
    """The replicated state, the sharded train and eval steps and the batch placer for data parallelism.

    Args:
        model_cfg: the model and its masking.
        tx: the optimizer.
        state: the (initial or restored) TrainState.
        mesh: the mesh; all devices by default.
        compute_dtype: mixed-precision compute dtype; None for none.
    """
    mesh = make_mesh() if mesh is None else mesh
    return DataParallel(
        state=replicate(state, mesh),
        train_step=make_sharded_train_step(model_cfg, tx, mesh, compute_dtype),
        eval_step=make_sharded_eval_step(model_cfg, mesh, compute_dtype),
        put_batch=lambda batch: shard_batch(process_rows(batch), mesh),
        mesh=mesh,
    )

