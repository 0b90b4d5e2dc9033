"""Data parallelism for any step function: meshes, shardings, batch placement, multi-process start-up.

A 1-D ``Mesh`` over all devices with axis ``"data"``. Batches are split along their first axis (each device
gets ``B / num_devices`` rows); params and optimizer state are replicated. ``shard_step`` jits any step
function ``f(state_or_params, batch) -> outputs`` with these shardings: XLA inserts the gradient all-reduce,
so the update equals the single-device one up to float summation order. This module imports nothing from the
rest of ``rnnjax.training``: the fit loop hands it its step.

Multi-process (one process per host, or several on one machine): call ``initialize_distributed`` first in
every process, then build the mesh (it spans every process's devices). Each process feeds only its own rows of
every global batch (``pipeline.Loader(process_index=..., process_count=...)``) and ``shard_batch`` assembles
the global batch from the processes' local parts. Process 0 alone holds the run directory's lock, prints and
writes its JSON files; every process takes part in each Orbax save (``runs.py``). On the CPU the processes
exchange gradients through Gloo, JAX's default CPU collectives
(``jax_cpu_collectives_implementation="gloo"``), so no setting is needed; each process then has one CPU
device. Commands:

* One machine, two processes on the CPU (what ``tests/test_multiprocess.py`` runs), in two shells:
  ``JAX_PLATFORMS=cpu python -m experiments.train --config=experiments/configs/tiny.py --workdir=runs/dp
  --config.train.data_parallel=True --multihost --coordinator_address=localhost:12355 --num_processes=2
  --process_id=0`` and the same with ``--process_id=1``. Both must be started (process 0 waits for the other),
  and a resume is the same two commands again. The result equals the one-process run of the same config with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (the same 2-device mesh; bit for bit in that test).
* GPU cluster, one process per node (``jax.distributed.initialize()`` also detects SLURM by itself):
  ``srun --nodes=N --ntasks-per-node=1 python -m experiments.train --config=... --workdir=SHARED/run
  --config.train.data_parallel=True --multihost``. The workdir must be on storage every node sees.
* TPU pod slice: ``gcloud compute tpus tpu-vm ssh NAME --worker=all
  --command="python -m experiments.train ... --config.train.data_parallel=True --multihost"``.
"""

from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rnnjax.types import Batch

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
    """Copies a pytree (params, optimizer state, a TrainState) to every device of the mesh.

    Every process passes the same values (the same seed, or the same restored checkpoint).
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, replicated_sharding(mesh))
    # device_put cannot reach another process's devices: each process supplies its own copy of the value.
    return multihost_utils.host_local_array_to_global_array(tree, mesh, P())


def shard_step(step: Callable, mesh: Mesh, *, donate_state: bool = False) -> Callable:
    """Jits ``step(state, batch) -> outputs``: state replicated in and out, batch split along B.

    Args:
        step: a train step ``(state, batch) -> (state, metrics)`` or an eval step ``(params, batch) ->
        counts``. mesh: from ``make_mesh``.
        donate_state: donate the first argument (a train step's state).

    Returns:
        The jitted step; pass ``replicate(state, mesh)`` and ``shard_batch(batch, mesh)``. Outputs come back
        replicated.
    """
    replicated = replicated_sharding(mesh)
    return jax.jit(
        step,
        in_shardings=(replicated, batch_sharding(mesh)),
        out_shardings=replicated,
        donate_argnums=(0,) if donate_state else (),
    )
