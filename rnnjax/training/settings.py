"""``config.train`` unpacked for the fit loop: checks, loop options, loaders, what may change on resume.

Shared by the task builders (``classifier.py``, ``language_model.py``); the loop itself never sees a
ConfigDict.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections

from rnnjax.data import pipeline
from rnnjax.training import loop, sharding

# Settings a resumed run may change; every other config field fixes the run (see runs.open_run).
MUTABLE = frozenset(
    f"train.{name}"
    for name in (
        "epochs",
        "max_steps",
        "patience",
        "min_delta",
        "restore_best",
        "keep_checkpoints",
        "checkpoint_every_steps",
        "log_every_steps",
        "progress_bar",
        "evaluate_test",
        "eval_batch_size",
        "skip_nonfinite",
        "compute_dtype",
        "data_parallel",
        "num_devices",
        "monitor",
    )
) | frozenset(
    {"data.data_dir", "data.source_dir", "data.source_file", "data.fallback_to_synthetic", "data.cache"}
)


def _compute_dtype(name: str):
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"train.compute_dtype must be float32, bfloat16 or float16, got {name!r}.")
    return None if name == "float32" else jnp.dtype(name)


def check_train_settings(
    train_cfg: ml_collections.ConfigDict, *, seed: int = 0, metrics: tuple[str, ...] = ("loss", "accuracy")
) -> None:
    """Refuses, before anything is written, training settings that could only fail later.

    Args:
        train_cfg: ``config.train``.
        seed: ``config.seed``.
        metrics: the task's metric names, which ``train.monitor`` may name (with or without ``val_``).

    Raises:
        ValueError: naming the field.
    """
    if int(seed) < 0:
        raise ValueError(f"seed={seed} must be >= 0 (it seeds NumPy's generators as well as JAX's keys).")
    for name in ("batch_size", "eval_batch_size", "epochs", "keep_checkpoints"):
        if int(train_cfg[name]) < 1:
            raise ValueError(f"train.{name}={train_cfg[name]} must be at least 1.")
    for name in ("max_steps", "patience", "checkpoint_every_steps", "log_every_steps"):
        if int(train_cfg.get(name, 0)) < 0:
            raise ValueError(f"train.{name}={train_cfg[name]} must be >= 0 (0: off).")
    if not float(train_cfg.get("min_delta", 0.0)) >= 0:
        raise ValueError(f"train.min_delta={train_cfg.min_delta} must be >= 0.")
    monitors = [*metrics, *(f"val_{name}" for name in metrics)]
    if str(train_cfg.get("monitor", "val_loss")) not in monitors:
        raise ValueError(f"train.monitor={train_cfg.monitor!r} is not a metric of this task; choose one of {monitors}.")
    _compute_dtype(str(train_cfg.get("compute_dtype", "float32")))
    if train_cfg.get("data_parallel", False):
        available, wanted = jax.device_count(), int(train_cfg.get("num_devices", 0)) or jax.device_count()
        if not 1 <= wanted <= available:
            raise ValueError(
                f"train.num_devices={wanted} but {available} device(s) are available; use 0 (all) or fewer."
            )
        for name in ("batch_size", "eval_batch_size"):
            if int(train_cfg[name]) % wanted:
                raise ValueError(
                    f"train.{name}={int(train_cfg[name])} does not divide over {wanted} devices with "
                    f"train.data_parallel; use a multiple of {wanted}."
                )


def fit_options(train_cfg: ml_collections.ConfigDict, *, epochs: int, total_steps: int) -> loop.FitOptions:
    """``config.train`` unpacked into the loop's options (the mesh built when data-parallel)."""
    mesh = None
    if train_cfg.get("data_parallel", False):
        mesh = sharding.make_mesh(int(train_cfg.get("num_devices", 0)) or None)
    return loop.FitOptions(
        epochs=epochs,
        total_steps=total_steps,
        monitor=str(train_cfg.get("monitor", "val_loss")),
        patience=int(train_cfg.get("patience", 0)),
        min_delta=float(train_cfg.get("min_delta", 0.0)),
        restore_best=bool(train_cfg.get("restore_best", False)),
        checkpoint_every_steps=int(train_cfg.get("checkpoint_every_steps", 0)),
        log_every_steps=int(train_cfg.get("log_every_steps", 0)),
        progress_bar=bool(train_cfg.get("progress_bar", True)),
        skip_nonfinite=bool(train_cfg.get("skip_nonfinite", False)),
        compute_dtype=_compute_dtype(str(train_cfg.get("compute_dtype", "float32"))),
        mesh=mesh,
    )


def loaders(arrays: dict, batch_size: int, eval_batch_size: int, seed: int, validation: dict | None):
    """The training loader (shuffled per epoch, this process's rows) and the validation loader (or None)."""
    train = pipeline.Loader(arrays, batch_size, seed=seed, shuffle=True, **_shard())
    has_validation = validation is not None and len(validation["label"])
    return train, eval_loader(validation, eval_batch_size) if has_validation else None


def eval_loader(arrays: dict, batch_size: int) -> pipeline.Loader:
    """Evaluation batches in the arrays' order, this process's rows of each."""
    return pipeline.Loader(arrays, batch_size, seed=0, shuffle=False, **_shard())


def _shard() -> dict[str, int]:
    return {"process_index": jax.process_index(), "process_count": jax.process_count()}


def steps_for(examples: int, batch_size: int, epochs: int, max_steps: int) -> tuple[int, int, int]:
    """``(steps_per_epoch, total_steps, epochs)`` of a run: ``max_steps`` (0: none) may end it early."""
    steps_per_epoch = math.ceil(examples / batch_size)
    total = max_steps or epochs * steps_per_epoch
    return steps_per_epoch, total, min(epochs, math.ceil(total / steps_per_epoch))
