"""The training input pipeline on grain: arrays to fixed-shape, resumable, per-process NumPy batches.

Public API:

* ``Loader(arrays, batch_size, *, seed, shuffle, drop_remainder=False, process_index=0, process_count=1)``:
  validated once; ``steps_per_epoch``; ``loader.epoch(e, state=None) -> EpochIterator``.
* ``EpochIterator``: yields the epoch's batches; ``position`` (batches yielded so far) and ``get_state()``
  (a JSON-serialisable dict for checkpoints; ``loader.epoch(e, state=...)`` resumes from it, bit-identically).

Batches keep the contract of ``datasets.batches``: ``{"tokens": [B, T], "lengths": [B], "label": [B]}`` with
the final partial batch padded by rows of tokens 0, lengths 0 and label -1 (or dropped with
``drop_remainder``). The shuffled order is a pure function of ``(seed, epoch)`` (a NumPy permutation of the
examples per epoch, batched by index), but a different permutation from ``datasets.batches``. With
``process_count`` P each process yields its B/P rows of every global batch.

Loading and encoding the arrays is ``datasets.py``'s; placing the local batches on devices is the fit loop's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import grain
import numpy as np

from rnnjax.data.datasets import BATCH_KEYS
from rnnjax.types import Batch

_SHUFFLE_STREAM = 4  # keeps these permutations apart from datasets.py's seeded streams (1-3)
# Batches are read in the calling thread: a batch is one vectorised gather (about 0.05 ms for 128 x 200 ids),
# the jitted step runs asynchronously meanwhile, and a prefetch thread would compete with the step's own
# threads (training on 2 cores was 25 % slower with one).
_READ_OPTIONS = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)


class Loader:
    """Batches of in-memory arrays, one seeded permutation per epoch, sharded across processes.

    Args:
      arrays: ``{"tokens": [N, T] int32, "lengths": [N] int32, "label": [N] int32}`` (``load_splits``).
      batch_size: the global batch size B; each process yields B / process_count rows.
      seed: the shuffling seed (``config.seed``), >= 0.
      shuffle: permute the examples each epoch (training); False keeps the array order (evaluation).
      drop_remainder: drop the final partial batch instead of padding it.
      process_index: this process, in [0, process_count).
      process_count: P, the number of processes sharing each global batch.

    Raises:
      ValueError: for a missing key, arrays of different lengths, ``batch_size < 1``, ``seed < 0``, a bad
        process index or count, or a batch size that P does not divide.
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        batch_size: int,
        *,
        seed: int,
        shuffle: bool,
        drop_remainder: bool = False,
        process_index: int = 0,
        process_count: int = 1,
    ):
        missing = [k for k in BATCH_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"arrays has no {missing}: expected the keys {BATCH_KEYS}")
        n = len(arrays["label"])
        if any(len(arrays[k]) != n for k in BATCH_KEYS):
            raise ValueError(
                f"arrays have lengths {[len(arrays[k]) for k in BATCH_KEYS]} for {BATCH_KEYS}: expected equal"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if seed < 0:
            raise ValueError(f"seed={seed} must be >= 0")
        if process_count < 1 or not 0 <= process_index < process_count:
            raise ValueError(f"process_index={process_index} must be in [0, process_count={process_count})")
        if batch_size % process_count:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by process_count={process_count}: use a multiple"
            )
        self._arrays = {k: np.asarray(arrays[k]) for k in BATCH_KEYS}
        self._shuffle = shuffle
        self._local_size = batch_size // process_count
        self._first_row = process_index * self._local_size
        # What a saved state must match. Not the process: every process restores the state process 0 saved.
        self._shape = {
            "examples": n,
            "batch_size": batch_size,
            "seed": seed,
            "shuffle": shuffle,
            "drop_remainder": drop_remainder,
        }
        self.batch_size = batch_size
        self.steps_per_epoch = n // batch_size if drop_remainder else -(-n // batch_size)

    def epoch(self, epoch: int, *, state: dict[str, Any] | None = None) -> EpochIterator:
        """The batches of epoch ``epoch``, from its start or from ``state`` (``get_state()`` of that epoch).

        Args:
          epoch: the epoch, >= 0; each has its own permutation when shuffling.
          state: ``EpochIterator.get_state()`` saved during this epoch (after a JSON round trip or not).

        Returns:
          An ``EpochIterator`` over the ``steps_per_epoch - position`` remaining batches.

        Raises:
          ValueError: for ``epoch < 0``, or a state from another epoch or a loader of another shape.
        """
        if epoch < 0:
            raise ValueError(f"epoch={epoch} must be >= 0")
        examples = self._shape["examples"]
        if self._shuffle:  # one vectorised permutation per epoch; grain indexes its batches
            order = np.random.default_rng([self._shape["seed"], _SHUFFLE_STREAM, epoch]).permutation(examples)
        else:
            order = np.arange(examples)
        batch = functools.partial(_batch_indices, order, self._shape["batch_size"])
        ds = grain.MapDataset.range(self.steps_per_epoch).map(batch)
        ds = ds.map(functools.partial(_gather, self._arrays, self._first_row, self._local_size))
        iterator = EpochIterator(iter(ds.to_iter_dataset(_READ_OPTIONS)), epoch, self._shape)
        if state is not None:
            iterator._restore(state)
        return iterator


class EpochIterator:
    """One epoch's batches (``Batch``, local to this process); ``position`` counts those already yielded."""

    def __init__(self, grain_iterator: grain.DatasetIterator, epoch: int, shape: dict[str, Any]):
        self._grain, self._epoch, self._shape = grain_iterator, epoch, shape
        self.position = 0

    def __iter__(self) -> EpochIterator:
        return self

    def __next__(self) -> Batch:
        batch = next(self._grain)
        self.position += 1
        return batch

    def get_state(self) -> dict[str, Any]:
        """The JSON-serialisable state after ``position`` batches, for ``Loader.epoch(epoch, state=...)``."""
        return {
            "epoch": self._epoch,
            "position": self.position,
            "loader": dict(self._shape),
            "grain": self._grain.get_state(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if not isinstance(state, Mapping) or set(state) != {"epoch", "position", "loader", "grain"}:
            raise ValueError(f"state={state!r} is not from EpochIterator.get_state()")
        if state["epoch"] != self._epoch:
            raise ValueError(f"state is from epoch {state['epoch']}, not epoch {self._epoch}: pass its epoch")
        if state["loader"] != self._shape:
            raise ValueError(f"state is from a loader with {state['loader']}, not {self._shape}")
        self._grain.set_state(state["grain"])
        self.position = state["position"]


def _batch_indices(order: np.ndarray, batch_size: int, index: int) -> np.ndarray:
    """The example indices of global batch ``index`` (the last one may be short)."""
    return order[index * batch_size : (index + 1) * batch_size]


def _gather(arrays: dict[str, np.ndarray], first_row: int, local_size: int, indices: np.ndarray) -> Batch:
    """This process's rows of one global batch of example ``indices``, padded to ``local_size`` rows."""
    rows = indices[first_row : first_row + local_size]
    batch = {k: arrays[k][rows] for k in BATCH_KEYS}
    fill = local_size - len(rows)
    if fill:
        batch = {
            "tokens": np.pad(batch["tokens"], ((0, fill), (0, 0))),
            "lengths": np.pad(batch["lengths"], (0, fill)),
            "label": np.pad(batch["label"], (0, fill), constant_values=-1),
        }
    return batch
