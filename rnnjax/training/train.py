"""Training: the TrainState, the jitted train and eval steps, and the fit loop ``train_and_evaluate``.

``train_and_evaluate(config, workdir)`` is the whole run: load the data (``data.py``), build the model
(``models.py``) and optimizer (``optim.py``), resume from the newest checkpoint (``checkpoint.py``) if any, then
per epoch: train with a Keras-like progress bar, evaluate on the validation split, append to the history,
log TensorBoard scalars (``tensorboard.py``), checkpoint and apply early stopping. At the end it draws the
curves (``plots.py``), restores the best state if asked and evaluates on the test split.

Nothing is lost: SIGINT or SIGTERM sets a flag that the loop checks between steps; it then saves a checkpoint at
the current step and raises ``TrainingStopped`` (the handler itself never saves). A non-finite loss or gradient
leaves the state unchanged inside the jitted step; the loop then stops with ``TrainingStopped`` naming the
step, keeping the last good checkpoint, or, with ``train.skip_nonfinite``, counts the skipped steps.

Exact resume: the root key never advances (each step's dropout comes from ``fold_in(key, step)``), the
batch order of an epoch is a function of (seed, epoch), and a checkpoint carries the history and the
partial epoch's sums, so a run restarted from step ``s`` continues as if it had never stopped.

Only the builders here (``make_model_config``, ``train_and_evaluate``) read the ConfigDict.
"""

import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from rnnjax import losses, models
from rnnjax.training import runs as checkpoint
from rnnjax.data import datasets as data
from rnnjax.analysis import diagnostics
from rnnjax.training import optim
from rnnjax.analysis import plots
from rnnjax.training import tensorboard
from rnnjax.training import transfer
from rnnjax.types import Batch, Params, PRNGKey

TRAIN_METRICS = ("loss_sum", "n_correct", "n_examples", "n_steps", "n_nonfinite")
_DROPOUT = 0  # purpose index for fold_in(step key, purpose)
_NO_STEP = 2**31 - 1  # "first_nonfinite" before any non-finite step


class TrainingStopped(RuntimeError):
    """The loop stopped early on purpose (a signal, a non-finite loss); ``exit_status`` is for the command line.

    The message is one line: why it stopped, at which step, and which checkpoint a rerun resumes from.
    """

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


class TrainState(NamedTuple):
    """Everything that changes during training; a pytree, saved whole in every checkpoint."""

    step: jax.Array  # int32 scalar, optimizer steps taken
    params: Params
    opt_state: optax.OptState
    key: PRNGKey  # root training key; never advances, per-step keys are fold_in(key, step)


@dataclass(frozen=True)
class ModelConfig:
    """What the steps need to know about the model: its spec and how batches are masked."""

    spec: models.ModelSpec
    use_lengths: bool = (
        True  # mask by batch["lengths"] (right-padded data); False for Keras-style pre-padding
    )


def make_model_config(model_cfg: ml_collections.ConfigDict, *, vocab_size: int, padding: str) -> ModelConfig:
    """Builds the ModelConfig from ``config.model``.

    Args:
        model_cfg: ``config.model``.
        vocab_size: V, from the data pipeline's vocabulary.
        padding: ``config.data.padding``; "post" batches are masked by their lengths, "pre" batches are not
            (Keras' chapter behaviour), unless ``model.mask_zero`` masks id 0.

    Returns:
        The ModelConfig.

    Raises:
        ValueError: for an invalid model block or padding.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"data.padding must be 'pre' or 'post', got {padding!r}.")
    spec = models.make_classifier(
        cell=model_cfg.cell,
        vocab_size=vocab_size,
        embed_dim=model_cfg.embed_dim,
        hidden_size=model_cfg.hidden_size,
        num_layers=model_cfg.num_layers,
        bidirectional=model_cfg.bidirectional,
        mask_zero=model_cfg.mask_zero,
        spatial_dropout=model_cfg.spatial_dropout,
        dropout=model_cfg.dropout,
        recurrent_dropout=model_cfg.recurrent_dropout,
        attention_units=model_cfg.attention_units,
        dense_units=tuple(model_cfg.dense_units),
        dense_dropout=model_cfg.dense_dropout,
        reset_after=model_cfg.reset_after,
        unroll=model_cfg.unroll,
        parallel=bool(model_cfg.get("parallel", False)),
    )
    return ModelConfig(spec=spec, use_lengths=padding == "post")


def create_train_state(spec: models.ModelSpec, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """The state before the first step: Keras-initialised params, fresh optimizer state, step 0.

    Args:
        spec: the model.
        tx: the optimizer.
        seed: ``config.seed``; the params and the training key are independent streams of it.
    """

    @jax.jit
    def create(root: PRNGKey) -> TrainState:
        # One compiled program instead of dozens of small eager ones: initialisation is part of start-up time.
        init_key, train_key = jax.random.split(root)
        params = models.init_model(spec, init_key)
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), key=train_key
        )

    return create(jax.random.key(seed))


def _check_batch(batch: Batch) -> None:
    missing = {"tokens", "lengths", "label"} - set(batch)
    if missing:
        raise ValueError(
            f"batch is missing {sorted(missing)}; batches are {{tokens [B, T], lengths [B], label [B]}}."
        )
    size = batch["tokens"].shape[0]
    if batch["label"].shape != (size,):
        raise ValueError(
            f"batch['label'] must have shape [B]=({size},), got {batch['label'].shape}; one 0/1 label per row "
            "(-1 for padding rows)."
        )


def _logits(
    model_cfg: ModelConfig, params: Params, batch: Batch, *, train: bool, rng: PRNGKey | None
) -> jax.Array:
    lengths = batch["lengths"] if model_cfg.use_lengths else None
    return models.apply_model(model_cfg.spec, params, batch["tokens"], lengths, train=train, rng=rng)


def cast_for_compute(params: Params, dtype) -> Params:
    """Casts the floating leaves of ``params`` to ``dtype`` (e.g. ``jnp.bfloat16``); other leaves unchanged."""
    return jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)


def train_step_fn(
    model_cfg: ModelConfig, tx: optax.GradientTransformation, compute_dtype=None
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """``train_step(state, batch) -> (state, metrics)`` before jit (``make_train_step`` jits it).

    The loss is the mean binary cross-entropy over the batch's real examples (label >= 0), so a padded final
    batch weighs its real rows like Keras' last, smaller batch. Dropout uses ``fold_in(key, step)``.

    Mixed precision: with ``compute_dtype`` (e.g. bfloat16) the loss is differentiated through
    ``cast_for_compute``, so the forward and backward pass run in that dtype while gradients, params and
    optimizer state stay float32 (bfloat16 has float32's exponent range: no loss scaling is needed).

    Args:
        model_cfg: the model and its masking, closed over.
        tx: the optimizer, closed over.
        compute_dtype: dtype of the forward and backward pass; None (or the params' dtype) for none.

    Returns:
        The step. ``metrics`` holds scalar sums: ``loss_sum``, ``n_correct``, ``n_examples``, ``n_steps`` (1),
        ``n_nonfinite`` (1 when the loss or gradient was not finite: the params and optimizer state are then
        left unchanged and the other sums are 0), ``first_nonfinite`` (the 1-based number of this step if it
        was not finite, else 2**31 - 1) and ``grad_norm`` (the global norm before clipping).
    """

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        _check_batch(batch)
        dropout_rng = jax.random.fold_in(jax.random.fold_in(state.key, state.step), _DROPOUT)

        def loss_fn(params):
            logits = _logits(
                model_cfg, _compute_params(params, compute_dtype), batch, train=True, rng=dropout_rng
            )
            return losses.mean_loss(logits, batch["label"]), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.global_norm(grads)
        # A non-finite loss or gradient leaves params and optimizer state as they were: the loop then stops
        # (or, with train.skip_nonfinite, goes on), and no NaN ever reaches a saved state.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        params, opt_state = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), (params, opt_state), (state.params, state.opt_state)
        )
        counts = losses.binary_counts(logits.astype(jnp.float32), batch["label"])
        metrics = {name: jnp.where(finite, counts[name], 0) for name in TRAIN_METRICS[:3]}
        metrics["n_steps"] = jnp.ones((), jnp.int32)
        metrics["n_nonfinite"] = (~finite).astype(jnp.int32)
        metrics["first_nonfinite"] = jnp.where(finite, _NO_STEP, state.step + 1).astype(jnp.int32)
        metrics["grad_norm"] = grad_norm
        new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state, key=state.key)
        return new_state, metrics

    return train_step


def _compute_params(params: Params, compute_dtype) -> Params:
    return params if compute_dtype is None else cast_for_compute(params, compute_dtype)


def make_train_step(
    model_cfg: ModelConfig, tx: optax.GradientTransformation, compute_dtype=None
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """Builds ``train_step(state, batch) -> (state, metrics)`` (see ``train_step_fn``), jitted once with the
    state donated."""
    return jax.jit(train_step_fn(model_cfg, tx, compute_dtype), donate_argnums=0)


def eval_step_fn(
    model_cfg: ModelConfig, compute_dtype=None
) -> Callable[[Params, Batch], dict[str, jax.Array]]:
    """``eval_step(params, batch) -> counts`` (see ``losses.binary_counts``) before jit: no dropout."""

    def eval_step(params: Params, batch: Batch) -> dict[str, jax.Array]:
        _check_batch(batch)
        logits = _logits(model_cfg, _compute_params(params, compute_dtype), batch, train=False, rng=None)
        return losses.binary_counts(logits.astype(jnp.float32), batch["label"])

    return eval_step


def make_eval_step(
    model_cfg: ModelConfig, compute_dtype=None
) -> Callable[[Params, Batch], dict[str, jax.Array]]:
    """Builds the jitted ``eval_step(params, batch) -> counts`` (see ``eval_step_fn``)."""
    return jax.jit(eval_step_fn(model_cfg, compute_dtype))


@jax.jit
def _add(totals: dict[str, jax.Array], counts: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return jax.tree.map(jnp.add, totals, counts)


def evaluate_counts(
    eval_step: Callable,
    params: Params,
    batches: Iterable[Batch],
    put_batch: Callable[[Batch], Batch] = jax.device_put,
) -> dict[str, float]:
    """Sums ``eval_step`` counts over batches on the device and fetches them once.

    ``put_batch`` places each host batch (``distributed.shard_batch`` for a data-parallel step).

    Returns:
        Host numbers: ``loss_sum``, ``n_correct``, ``n_examples`` and the confusion counts; plus ``loss`` and
        ``accuracy`` (0 when there were no examples).
    """
    totals = None
    for batch in batches:
        counts = eval_step(params, put_batch(batch))
        totals = counts if totals is None else _add(totals, counts)
    if totals is None:
        raise ValueError("evaluate_counts: no batches; the split is empty.")
    host = {name: value.item() for name, value in jax.device_get(totals).items()}
    n = max(host["n_examples"], 1)
    host["loss"] = host["loss_sum"] / n
    host["accuracy"] = host["n_correct"] / n
    return host


def _monitor_mode(monitor: str) -> str:
    return "max" if "accuracy" in monitor else "min"


def early_stopping_status(history: dict[str, list], monitor: str, min_delta: float) -> tuple[int, int]:
    """Best epoch (1-based, 0 if none) and epochs since an improvement, recomputed from the history.

    An epoch improves when it beats the best so far by more than ``min_delta`` (Keras' EarlyStopping rule).
    Recomputing from the history keeps a resumed run's decisions identical to an uninterrupted one.
    """
    values = history.get(monitor, [])
    mode = _monitor_mode(monitor)
    best_value, best_epoch, wait = None, 0, 0
    for epoch, value in enumerate(values, start=1):
        better = best_value is None or (
            value < best_value - min_delta if mode == "min" else value > best_value + min_delta
        )
        if better:
            best_value, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
    return best_epoch, wait


def _progress_line(
    epoch: int, epochs: int, done: int, total: int, elapsed: float, sums: dict, extra: str = ""
) -> str:
    width = 30
    filled = int(width * done / max(total, 1))
    bar = "=" * filled + (">" if filled < width else "") + "." * (width - filled - 1)
    n = max(sums["n_examples"], 1)
    rate = done / elapsed if elapsed > 0 else 0.0
    line = (
        f"Epoch {epoch}/{epochs} {done}/{total} [{bar[:width]}] - {elapsed:.0f}s {1000 / rate if rate else 0:.0f}ms/step "
        f"- {rate:.1f} steps/s - loss: {sums['loss_sum'] / n:.4f} - accuracy: {sums['n_correct'] / n:.4f}"
    )
    return line + extra


def _host(tree: dict[str, jax.Array]) -> dict[str, Any]:
    return {name: value.item() for name, value in jax.device_get(tree).items()}


def _zero_sums() -> dict[str, jax.Array]:
    return {
        "loss_sum": jnp.zeros((), jnp.float32),
        "n_correct": jnp.zeros((), jnp.int32),
        "n_examples": jnp.zeros((), jnp.int32),
        "n_steps": jnp.zeros((), jnp.int32),
        "n_nonfinite": jnp.zeros((), jnp.int32),
    }


def _sums_to_device(sums: dict[str, Any]) -> dict[str, jax.Array]:
    zero = _zero_sums()
    return {name: jnp.asarray(sums.get(name, 0), zero[name].dtype) for name in zero}


@jax.jit
def _accumulate(
    sums: dict[str, jax.Array], first_bad: jax.Array, metrics: dict[str, jax.Array]
) -> tuple[dict[str, jax.Array], jax.Array]:
    # A step without the non-finite counts (built outside make_train_step) counts as finite.
    sums = {name: total + metrics.get(name, jnp.zeros_like(total)) for name, total in sums.items()}
    return sums, jnp.minimum(first_bad, metrics.get("first_nonfinite", first_bad))


class _StopRequest:
    """Remembers a SIGINT/SIGTERM; the loop checks it between steps and saves there, never in the handler."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _check_finite(first_bad: jax.Array, skip_nonfinite: bool, latest: Any) -> None:
    """Raises TrainingStopped when a step was not finite and such steps are not to be skipped."""
    if skip_nonfinite:
        return
    step = int(jax.device_get(first_bad))
    if step != _NO_STEP:
        kept = latest.latest_step()
        where = (
            f"the last good checkpoint is step {kept}" if kept is not None else "no checkpoint was written"
        )
        raise TrainingStopped(
            f"step {step}: the loss or gradient is not finite (NaN or inf); stopped, {where}. Lower "
            "opt.learning_rate, set opt.clip_norm, or set train.skip_nonfinite=True to skip such steps.",
            exit_status=1,
        )


def _compute_dtype(train_cfg: ml_collections.ConfigDict):
    """``train.compute_dtype`` as a dtype, None for float32 (no casts)."""
    name = str(train_cfg.get("compute_dtype", "float32"))
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"train.compute_dtype must be float32, bfloat16 or float16, got {name!r}.")
    return None if name == "float32" else jnp.dtype(name)


def _check_devices(train_cfg: ml_collections.ConfigDict) -> None:
    """With ``train.data_parallel``, the device count must exist and divide both batch sizes."""
    if not train_cfg.get("data_parallel", False):
        return
    available = jax.device_count()
    wanted = int(train_cfg.get("num_devices", 0)) or available
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


def _check_workdir(workdir: Path) -> None:
    """Refuses a non-empty directory that is not a run directory, so training never writes into foreign files."""
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"--workdir={workdir} is a file; give a new or empty directory.")
    started = (workdir / "config.json").exists() or (workdir / "vocabulary.json").exists()
    if workdir.is_dir() and any(workdir.iterdir()) and not started:
        raise ValueError(
            f"--workdir={workdir} is not empty and is not a run directory (no config.json); give a new or empty "
            "directory."
        )


def _check_same_model(workdir: Path, model_cfg: ModelConfig) -> None:
    """Refuses to resume a run directory whose saved model differs from the configured one."""
    path = workdir / "model.json"
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    wanted = {"use_lengths": model_cfg.use_lengths, **checkpoint.spec_to_dict(model_cfg.spec)}
    if json.loads(json.dumps(saved)) != json.loads(json.dumps(wanted)):
        raise ValueError(
            f"{workdir} holds a run of a different model (model.json differs from the config's model or "
            "vocabulary); use a new --workdir, or the run's own config to resume it."
        )


def _stop_on_signal(
    signum: int,
    latest: Any,
    step: int,
    state: TrainState,
    history: dict[str, list],
    sums: dict[str, jax.Array] | None,
    first_bad: jax.Array,
    skip_nonfinite: bool,
) -> None:
    """Saves the state at ``step`` (with the partial epoch's sums) and raises TrainingStopped."""
    _check_finite(first_bad, skip_nonfinite, latest)
    checkpoint.save(
        latest, step, state, {"history": history, "epoch_sums": None if sums is None else _host(sums)}
    )
    name = signal.Signals(signum).name
    raise TrainingStopped(
        f"{name} received: saved checkpoint {latest.directory / str(step)} (step {step}); rerun the same "
        "command to resume from it.",
        exit_status=128 + signum,
    )


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | Path
) -> tuple[TrainState, dict[str, Any]]:
    """Trains (or resumes) the run described by ``config`` in ``workdir``, then evaluates it on the test split.

    Writes ``config.json``, ``model.json``, the vocabulary (via ``data.load_splits``), ``checkpoints/``,
    ``best/``, ``history.json``, ``curves.png``, ``tensorboard/{train,validation}`` and ``results.json``.

    Args:
        config: the full config (see ``configs/default.py``).
        workdir: the run directory; an existing one is resumed from its newest checkpoint.

    Returns:
        ``(state, results)``: the final TrainState (the best one when ``train.restore_best``) and the
        contents of ``results.json`` (history, test metrics, timings, parameter count).

    Raises:
        ValueError: for invalid settings or data, or a workdir that holds something other than this run.
        TrainingStopped: on SIGINT/SIGTERM (after saving a checkpoint at the current step), or at a non-finite
            loss or gradient unless ``train.skip_nonfinite`` (the last good checkpoint is kept).
    """
    workdir = Path(workdir)
    _check_workdir(workdir)
    train_cfg = config.train
    # Validate the model and optimizer settings before anything is written (the vocabulary size is not known
    # yet; any positive value checks the rest).
    make_model_config(config.model, vocab_size=2, padding=config.data.padding)
    optim.make_optimizer(config.opt, 1)
    _compute_dtype(train_cfg)
    _check_devices(train_cfg)
    workdir.mkdir(parents=True, exist_ok=True)
    transfer.prepare_workdir(config, workdir)  # a run initialised from a language model uses its vocabulary
    splits = data.load_splits(config.data, seed=config.seed, workdir=workdir)
    train_arrays = splits["train"]
    validation = splits["validation"] if len(splits["validation"]["label"]) else None
    test = splits["test"] if len(splits["test"]["label"]) else None
    model_cfg = make_model_config(
        config.model, vocab_size=splits["vocabulary"].size, padding=config.data.padding
    )
    batch_size, epochs = int(train_cfg.batch_size), int(train_cfg.epochs)
    if batch_size <= 0 or epochs <= 0:
        raise ValueError(
            f"train.batch_size and train.epochs must be positive, got {batch_size} and {epochs}."
        )
    if batch_size > len(train_arrays["label"]):
        raise ValueError(
            f"train.batch_size={batch_size} is larger than the {len(train_arrays['label'])} training examples; "
            "use a smaller batch size or more data."
        )
    if int(train_cfg.eval_batch_size) <= 0:
        raise ValueError(f"train.eval_batch_size must be positive, got {train_cfg.eval_batch_size}.")
    _check_same_model(workdir, model_cfg)
    steps_per_epoch = math.ceil(len(train_arrays["label"]) / batch_size)
    total_steps = int(train_cfg.max_steps) or epochs * steps_per_epoch
    epochs = min(epochs, math.ceil(total_steps / steps_per_epoch))
    monitor = train_cfg.monitor
    if validation is None and monitor.startswith("val_"):
        monitor = monitor[len("val_") :]  # no validation split: monitor the training metric instead
    # optim's optimizer, adjusted by config.init (transfer.py)
    tx = transfer.make_optimizer(config, model_cfg.spec, total_steps, steps_per_epoch)
    schedule = optim.make_schedule(config.opt, total_steps)

    checkpoint.write_config(workdir, config)
    checkpoint.write_model(workdir, model_cfg.spec, use_lengths=model_cfg.use_lengths)
    state = create_train_state(model_cfg.spec, tx, config.seed)
    # chrono initialisation: gate-bias time scales up to config.model.chrono steps (diagnostics.chrono_init)
    if int(config.model.get("chrono", 0)):
        params = diagnostics.chrono_init(
            state.params, model_cfg.spec, int(config.model.chrono), jax.random.key(config.seed + 1)
        )
        state = state._replace(params=params, opt_state=tx.init(params))
    state = transfer.init_state(config, state, model_cfg.spec, splits["vocabulary"])  # pretrained layers
    latest = checkpoint.make_manager(
        workdir / checkpoint.CHECKPOINTS, max_to_keep=int(train_cfg.keep_checkpoints)
    )
    best = checkpoint.make_manager(workdir / checkpoint.BEST, max_to_keep=1)
    history: dict[str, list] = {}
    partial: dict[str, Any] | None = None
    restored = checkpoint.restore_latest(latest, state)
    if restored is not None:
        state, meta = restored
        history, partial = meta["history"], meta.get("epoch_sums")
        print(
            f"Resuming {workdir} at step {int(state.step)} (epoch {len(history.get('epoch', []))}).",
            flush=True,
        )
    compute_dtype = _compute_dtype(train_cfg)
    train_step, eval_step = (
        make_train_step(model_cfg, tx, compute_dtype),
        make_eval_step(model_cfg, compute_dtype),
    )
    put_batch = jax.device_put
    if train_cfg.get("data_parallel", False):
        from rnnjax.training import sharding as distributed  # distributed imports this module

        parallel = distributed.setup_data_parallel(
            model_cfg,
            tx,
            state,
            distributed.make_mesh(int(train_cfg.get("num_devices", 0)) or None),
            compute_dtype,
        )
        state, train_step, eval_step, put_batch = parallel[:4]
    param_count = models.count_params(state.params)

    train_events = tensorboard.create_event_file(workdir / "tensorboard" / "train")
    val_events = tensorboard.create_event_file(workdir / "tensorboard" / "validation")
    show_bar = bool(train_cfg.progress_bar) and sys.stdout.isatty()
    skip_nonfinite = bool(train_cfg.get("skip_nonfinite", False))
    first_bad = jnp.asarray(_NO_STEP, jnp.int32)  # the first non-finite step not yet reported, on the device
    step = int(state.step)
    patience = int(train_cfg.patience)
    with _StopRequest() as stop:
        for epoch in range(step // steps_per_epoch, epochs):
            best_epoch, wait = early_stopping_status(history, monitor, float(train_cfg.min_delta))
            if patience > 0 and best_epoch and wait >= patience:
                break
            if step >= total_steps:
                break
            skip = step - epoch * steps_per_epoch
            sums = _sums_to_device(partial) if (skip and partial) else _zero_sums()
            partial = None
            start = last_draw = time.perf_counter()
            for index, batch in enumerate(
                data.batches(train_arrays, batch_size, shuffle=True, seed=config.seed, epoch=epoch)
            ):
                if index < skip:
                    continue
                if step >= total_steps:
                    break
                if stop.signum is not None:
                    _stop_on_signal(
                        stop.signum, latest, step, state, history, sums, first_bad, skip_nonfinite
                    )
                state, metrics = train_step(state, put_batch(batch))
                sums, first_bad = _accumulate(sums, first_bad, metrics)
                step += 1
                if train_cfg.log_every_steps and step % int(train_cfg.log_every_steps) == 0:
                    _check_finite(first_bad, skip_nonfinite, latest)
                    step_metrics = _host(metrics)
                    tensorboard.write_scalars(
                        train_events,
                        step,
                        {
                            "batch_loss": step_metrics["loss_sum"] / max(step_metrics["n_examples"], 1),
                            "grad_norm": step_metrics["grad_norm"],
                            "learning_rate": float(schedule(step - 1)),
                        },
                    )
                if show_bar and time.perf_counter() - last_draw > 0.25:
                    last_draw = time.perf_counter()
                    line = _progress_line(
                        epoch + 1, epochs, index + 1, steps_per_epoch, last_draw - start, _host(sums)
                    )
                    print("\r\x1b[K" + line, end="", flush=True)  # \x1b[K clears the rest of the line
                every = int(train_cfg.checkpoint_every_steps)
                if every and step % every == 0 and step % steps_per_epoch and step < total_steps:
                    _check_finite(first_bad, skip_nonfinite, latest)
                    checkpoint.save(latest, step, state, {"history": history, "epoch_sums": _host(sums)})
            _check_finite(first_bad, skip_nonfinite, latest)
            epoch_sums = _host(sums)
            if step % steps_per_epoch and step >= total_steps:
                # Stopped by max_steps inside an epoch: keep the partial epoch so a longer rerun continues it.
                checkpoint.save(latest, step, state, {"history": history, "epoch_sums": epoch_sums})
                if show_bar:
                    print(flush=True)
                break
            train_time = time.perf_counter() - start
            n = max(epoch_sums["n_examples"], 1)
            row = {
                "epoch": epoch + 1,
                "loss": epoch_sums["loss_sum"] / n,
                "accuracy": epoch_sums["n_correct"] / n,
            }
            if skip_nonfinite:
                row["skipped_steps"] = epoch_sums["n_nonfinite"]
            if validation is not None:
                val = evaluate_counts(
                    eval_step,
                    state.params,
                    data.batches(
                        validation, int(train_cfg.eval_batch_size), shuffle=False, seed=config.seed, epoch=0
                    ),
                    put_batch,
                )
                row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            row.update(
                time_s=time.perf_counter() - start,
                train_time_s=train_time,
                steps_per_s=epoch_sums["n_steps"] / max(train_time, 1e-9),
                learning_rate=float(schedule(step - 1)),
            )
            for name, value in row.items():
                history.setdefault(name, []).append(value)
            extra = "".join(f" - {k}: {row[k]:.4f}" for k in ("val_loss", "val_accuracy") if k in row)
            if row.get("skipped_steps"):
                extra += f" - skipped non-finite steps: {row['skipped_steps']}"
            line = _progress_line(
                epoch + 1, epochs, steps_per_epoch, steps_per_epoch, row["train_time_s"], epoch_sums, extra
            )
            print(("\r\x1b[K" if show_bar else "") + line, flush=True)

            tensorboard.write_scalars(
                train_events, epoch + 1, {"epoch_loss": row["loss"], "epoch_accuracy": row["accuracy"]}
            )
            if "val_loss" in row:
                tensorboard.write_scalars(
                    val_events,
                    epoch + 1,
                    {"epoch_loss": row["val_loss"], "epoch_accuracy": row["val_accuracy"]},
                )
            best_epoch, _ = early_stopping_status(history, monitor, float(train_cfg.min_delta))
            if best_epoch == epoch + 1:
                checkpoint.save(
                    best, step, state, {"history": history, "monitor": monitor, "epoch": epoch + 1}
                )
            checkpoint.save(latest, step, state, {"history": history, "epoch_sums": None})
            checkpoint.write_json(workdir / "history.json", history)
            if stop.signum is not None:
                _stop_on_signal(stop.signum, latest, step, state, history, None, first_bad, skip_nonfinite)

    if history:
        plots.plot_history(history, workdir / "curves.png", title=workdir.name)
    used_checkpoint, best_step = "latest", best.latest_step()
    if train_cfg.restore_best and best_step is not None:
        if best_step != int(state.step):
            state, _ = checkpoint.restore(best, best_step, state)
        used_checkpoint = "best"
    results: dict[str, Any] = {
        "workdir": str(workdir),
        "dataset": splits["name"],
        "params": param_count,
        "step": int(state.step),
        "epochs_run": len(history.get("epoch", [])),
        "fit_time_s": float(sum(history.get("time_s", []))),
        "checkpoint": used_checkpoint,
        "monitor": monitor,
        "best_epoch": early_stopping_status(history, monitor, float(train_cfg.min_delta))[0],
        "history": history,
    }
    if test is not None and train_cfg.evaluate_test:
        counts = evaluate_counts(
            eval_step,
            state.params,
            data.batches(test, int(train_cfg.eval_batch_size), shuffle=False, seed=config.seed, epoch=0),
            put_batch,
        )
        results["test"] = counts
        print(
            f"Test: loss {counts['loss']:.4f} - accuracy {counts['accuracy']:.4f} ({counts['n_examples']} reviews)",
            flush=True,
        )
    checkpoint.write_json(workdir / "results.json", results)
    return state, results
