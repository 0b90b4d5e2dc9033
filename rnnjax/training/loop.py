"""The fit loop: the one loop that trains every task (classifier, language model, fine-tuning, long range).

A task (``Task``) is a record of pure functions: its initial parameters, its loss with summable counts, its
evaluation counts and how counts become metrics. Everything else is written once, here, and holds for every
task:

* the jitted train step: per-step dropout keys ``fold_in(fold_in(key, step), purpose)``, mixed precision
  (``compute_dtype``: forward and backward in bfloat16, float32 params and optimizer state), and the
  non-finite guard (a NaN/inf loss or gradient leaves params and optimizer state unchanged);
* data parallelism (``sharding.py`` jits the same step over a mesh);
* resume: the state, history, partial epoch sums and the input pipeline's position are restored from the run's
  newest checkpoint (``runs.py``), so a run restarted at step ``s`` continues as if it had never stopped;
* checkpoints at epoch ends (an epoch cut short by ``total_steps`` too: validated, with its history row) and
  every ``checkpoint_every_steps``; the best epoch by ``monitor``; Keras' early stopping; restoring the best;
* SIGINT/SIGTERM: a flag checked between steps; the loop saves there and raises ``TrainingStopped`` (the
  handler never saves). A non-finite step stops the run naming the step (or is skipped and counted, with
  ``skip_nonfinite``), keeping the last good checkpoint;
* the start line (parameters, devices, steps), the Keras-like progress line with an ETA (a line every 30 s
  without a terminal), TensorBoard scalars (``tensorboard.py``) and ``history.json``.
"""

import dataclasses
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rnnjax.training import runs, sharding, tensorboard
from rnnjax.training.control import (  # noqa: F401 - monitor_mode and TrainingStopped re-exported
    LOG_EVERY_S,
    StopRequest,
    TrainingStopped,
    early_stopping_status,
    monitor_mode,
    progress_line,
    start_line,
)
from rnnjax.training.tasks import (  # noqa: F401 - the loop's vocabulary, re-exported for callers of the loop
    NO_STEP,
    Task,
    TrainState,
    accumulate,
    cast_for_compute,
    create_state,
    eval_step_fn,
    evaluate,
    host,
    make_steps,
    train_step_fn,
    zero_sums,
)


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How long and how carefully to train; every field a plain value."""

    epochs: int
    total_steps: int
    monitor: str = "val_loss"
    patience: int = 0  # epochs without improvement before stopping (0: never)
    min_delta: float = 0.0
    restore_best: bool = False
    checkpoint_every_steps: int = 0
    log_every_steps: int = 0
    progress_bar: bool = True
    skip_nonfinite: bool = False
    compute_dtype: Any = None  # e.g. jnp.bfloat16; None for float32
    mesh: Any = None  # a sharding.make_mesh mesh for data parallelism; None for one device


# ------------------------------------------------------------------------------------------------ fit


@dataclasses.dataclass
class _Progress:
    """The loop's mutable bookkeeping between steps."""

    state: TrainState
    history: dict[str, list]
    sums: dict[str, jax.Array]
    first_bad: jax.Array
    data_state: dict | None = None  # the input pipeline's position within the epoch


class FitResult(NamedTuple):
    """What ``fit`` ends with."""

    state: TrainState  # the best epoch's when restore_best and a best exists
    history: dict[str, list]
    checkpoint: str  # "best" or "latest": the parameters ``state`` holds
    monitor: str
    best_epoch: int
    eval_step: (
        Callable  # the loop's own jitted eval step (one device or the mesh), reused for final evaluations
    )
    put_batch: Callable

    def evaluate(self, batches) -> dict[str, Any]:
        """Host sums of the task's counts of ``state.params`` over ``batches``."""
        return evaluate(self.eval_step, self.state.params, batches, self.put_batch)

    def record(self) -> dict[str, Any]:
        """The entries of results.json every task shares."""
        return {
            "params": int(sum(leaf.size for leaf in jax.tree.leaves(self.state.params))),
            "step": int(self.state.step),
            "epochs_run": len(self.history.get("epoch", [])),
            "fit_time_s": float(sum(self.history.get("time_s", []))),
            "checkpoint": self.checkpoint,
            "history": self.history,
        }


def _primary() -> bool:
    return jax.process_index() == 0


def _say(message: str, *, end: str = "\n") -> None:
    if _primary():
        print(message, end=end, flush=True)


def _save(run: runs.Run, which: str, progress: _Progress, step: int, extra: dict) -> None:
    state = progress.state
    rest = {"step": state.step, "opt_state": state.opt_state, "key": state.key}
    runs.save(run, which, step, state.params, rest, {"history": progress.history, **extra})


def _check_finite(progress: _Progress, options: FitOptions, run: runs.Run) -> None:
    if options.skip_nonfinite:
        return
    step = int(jax.device_get(progress.first_bad))
    if step != NO_STEP:
        kept = runs.steps(run.workdir / runs.CHECKPOINTS)
        where = f"the last good checkpoint is step {kept[-1]}" if kept else "no checkpoint was written"
        raise TrainingStopped(
            f"step {step}: the loss or gradient is not finite (NaN or inf); stopped, {where}. Lower "
            "opt.learning_rate, set opt.clip_norm, or set train.skip_nonfinite=True to skip such steps.",
            exit_status=1,
        )


def _stop_on_signal(
    signum: int, run: runs.Run, progress: _Progress, options: FitOptions, in_epoch: bool
) -> None:
    _check_finite(progress, options, run)
    step = int(progress.state.step)
    extra = {"epoch_sums": host(progress.sums) if in_epoch else None, "data_state": progress.data_state}
    _save(run, "latest", progress, step, extra)
    raise TrainingStopped(
        f"{signal.Signals(signum).name} received: saved checkpoint {run.workdir / runs.CHECKPOINTS / str(step)} "
        f"(step {step}); rerun the same command to resume from it.",
        exit_status=128 + signum,
    )


class _Loop(NamedTuple):
    """What one ``fit`` call holds fixed."""

    task: Task
    run: runs.Run
    options: FitOptions
    train_step: Callable
    eval_step: Callable
    put_batch: Callable
    train_data: Any  # pipeline.Loader
    validation: Any  # pipeline.Loader or None
    learning_rate: Callable[[int], Any]
    writers: dict


def _log_step(loop: _Loop, step: int, metrics: dict) -> None:
    values = host({k: v for k, v in metrics.items() if k != "first_nonfinite"})
    scalars = {"batch_loss": loop.task.metrics(values)["loss"], "grad_norm": values["grad_norm"]}
    scalars["learning_rate"] = float(loop.learning_rate(step - 1))
    if _primary():
        tensorboard.write_scalars(loop.writers["train"], step, scalars)


def _save_partial(loop: _Loop, progress: _Progress, step: int) -> None:
    """A checkpoint inside an epoch: with the epoch's sums so far and the input pipeline's position."""
    extra = {"epoch_sums": host(progress.sums), "data_state": progress.data_state}
    _save(loop.run, "latest", progress, step, extra)


def _train_epoch(
    loop: _Loop, progress: _Progress, epoch: int, partial: dict | None, stop: StopRequest
) -> tuple[float, int]:
    """Runs the rest of ``epoch`` (or up to ``total_steps``): its training time in seconds and the steps of
    the epoch done (``steps_per_epoch`` unless it stopped inside the epoch)."""
    options, steps_per_epoch = loop.options, loop.train_data.steps_per_epoch
    data_state = partial.get("data_state") if partial else None
    batches = loop.train_data.epoch(epoch, state=data_state)
    if data_state is None:  # a checkpoint without the input position (older runs): skip the steps taken
        for _ in range(int(progress.state.step) - epoch * steps_per_epoch):
            next(batches)
    if partial and partial.get("epoch_sums"):
        progress.sums = {k: jnp.asarray(partial["epoch_sums"][k], v.dtype) for k, v in progress.sums.items()}
    else:
        progress.sums = jax.tree.map(jnp.zeros_like, progress.sums)
    start = last_draw = time.perf_counter()
    tty = sys.stdout.isatty()
    shows, every_s = options.progress_bar and _primary(), 0.25 if tty else LOG_EVERY_S
    every = options.checkpoint_every_steps
    step = int(progress.state.step)  # counted on the host: reading the device's step would wait for each step
    for batch in batches:
        if stop.signum is not None:
            _stop_on_signal(stop.signum, loop.run, progress, options, in_epoch=True)
        progress.state, metrics = loop.train_step(progress.state, loop.put_batch(batch))
        progress.sums, progress.first_bad = accumulate(progress.sums, progress.first_bad, metrics)
        progress.data_state = batches.get_state()
        step += 1
        if options.log_every_steps and step % options.log_every_steps == 0:
            _check_finite(progress, options, loop.run)
            _log_step(loop, step, metrics)
        if shows and time.perf_counter() - last_draw > every_s:
            last_draw = time.perf_counter()
            shown = loop.task.metrics(host(progress.sums))
            line = progress_line(epoch + 1, options.epochs, batches.position, steps_per_epoch,
                                 last_draw - start, shown, loop.task.shown)
            print("\r\x1b[K" + line if tty else line, end="" if tty else "\n", flush=True)
        if every and step % every == 0 and batches.position < steps_per_epoch and step < options.total_steps:
            _check_finite(progress, options, loop.run)
            _save_partial(loop, progress, step)
        if step >= options.total_steps:  # checked after a step, so no batch is drawn and left untrained
            break
    _check_finite(progress, options, loop.run)
    return time.perf_counter() - start, batches.position


def _end_epoch(
    loop: _Loop, progress: _Progress, epoch: int, started: float, train_time: float, done: int
) -> None:
    """Validation, the history row, the progress line, TensorBoard, the best and latest checkpoints.

    An epoch cut short by ``total_steps`` (``done`` < steps per epoch) gets its row too, with the fraction of
    the epoch as its ``epoch``; its latest checkpoint keeps the epoch's sums and input position, and flags the
    row, so that a run resumed with more steps drops it and finishes the epoch as if it had never stopped.
    """
    task, options, step, per_epoch = loop.task, loop.options, int(progress.state.step), loop.train_data.steps_per_epoch
    sums = host(progress.sums)
    row: dict[str, Any] = {"epoch": epoch + 1 if done == per_epoch else round(epoch + done / per_epoch, 4)}
    row.update(task.metrics(sums))
    if options.skip_nonfinite:
        row["skipped_steps"] = sums["n_nonfinite"]
    if loop.validation is not None:
        val = task.metrics(
            evaluate(loop.eval_step, progress.state.params, loop.validation.epoch(0), loop.put_batch)
        )
        row.update({f"val_{name}": value for name, value in val.items()})
    row.update(
        time_s=time.perf_counter() - started,
        train_time_s=train_time,
        steps_per_s=sums["n_steps"] / max(train_time, 1e-9),
        learning_rate=float(loop.learning_rate(step - 1)),
    )
    for name, value in row.items():
        progress.history.setdefault(name, []).append(value)
    shown = {**task.metrics(sums), **{k: v for k, v in row.items() if k.startswith("val_")}}
    names = task.shown + tuple(f"val_{name}" for name in task.shown)
    line = progress_line(epoch + 1, options.epochs, done, per_epoch, train_time, shown, names, eta=False)
    if row.get("skipped_steps"):
        line += f" - skipped non-finite steps: {row['skipped_steps']}"
    _say(("\r\x1b[K" if options.progress_bar and sys.stdout.isatty() else "") + line)
    if _primary():
        tensorboard.write_scalars(
            loop.writers["train"], epoch + 1, {f"epoch_{k}": row[k] for k in task.metrics(sums)}
        )
        if loop.validation is not None:
            tensorboard.write_scalars(
                loop.writers["validation"], epoch + 1, {f"epoch_{k}": val[k] for k in val}
            )
    position = len(progress.history["epoch"])
    if early_stopping_status(progress.history, options.monitor, options.min_delta)[0] == position:
        _save(loop.run, "best", progress, step, {"monitor": options.monitor, "epoch": row["epoch"]})
    in_epoch = done < per_epoch
    if not in_epoch:
        progress.data_state = None
    extra = {"epoch_sums": sums if in_epoch else None, "data_state": progress.data_state, "row_shown": in_epoch}
    _save(loop.run, "latest", progress, step, extra)
    if _primary():
        runs.write_json(loop.run.workdir / "history.json", progress.history)


def _resume(run: runs.Run, state: TrainState) -> tuple[TrainState, dict, dict | None]:
    restored = runs.restore_latest(
        run, state.params, {"step": state.step, "opt_state": state.opt_state, "key": state.key}
    )
    if restored is None:
        return state, {}, None
    params, rest, meta = restored
    state = TrainState(rest["step"], params, rest["opt_state"], rest["key"])
    history = meta.get("history") or {}
    _say(f"Resuming {run.workdir} at step {int(state.step)} (epoch {len(history.get('epoch', []))}).")
    partial = {"epoch_sums": meta.get("epoch_sums"), "data_state": meta.get("data_state")}
    if meta.get("row_shown"):  # the row of an epoch cut short by total_steps: the epoch goes on without it
        partial["history_with_row"], history = history, {k: v[:-1] for k, v in history.items()}
    return state, history, partial if (partial["data_state"] or partial["epoch_sums"]) else None


def _finish(loop: _Loop, progress: _Progress) -> FitResult:
    options, state = loop.options, progress.state
    used, best = "latest", runs.steps(loop.run.workdir / runs.BEST)
    if options.restore_best and best:
        if best[-1] != int(state.step):
            template = {"step": state.step, "opt_state": state.opt_state, "key": state.key}
            params, rest, _ = runs.restore(
                loop.run.workdir / runs.BEST, best[-1], state.params, template, loop.run.run_id
            )
            state = TrainState(rest["step"], params, rest["opt_state"], rest["key"])
        used = "best"
    best_epoch = early_stopping_status(progress.history, options.monitor, options.min_delta)[0]
    return FitResult(
        state, progress.history, used, options.monitor, best_epoch, loop.eval_step, loop.put_batch
    )


def fit(
    task: Task,
    tx: optax.GradientTransformation,
    state: TrainState,
    run: runs.Run,
    train_data: Any,
    validation: Any,
    options: FitOptions,
    learning_rate: Callable[[int], Any] = lambda step: 0.0,
) -> FitResult:
    """Trains ``state`` on ``train_data`` in the open run ``run``, resuming from its newest checkpoint.

    Args:
        task: the task's pure functions.
        tx: the optimizer (the one ``state.opt_state`` was made by).
        state: the initial state (replaced by the run's newest checkpoint when there is one).
        run: from ``runs.open_run``.
        train_data: a ``pipeline.Loader`` of training batches (shuffled per epoch).
        validation: a ``pipeline.Loader`` of validation batches, or None (the monitor then drops ``val_``).
        options: epochs, steps, checkpoints, early stopping, precision, mesh.
        learning_rate: step -> learning rate, for the logs.

    Returns:
        The FitResult.

    Raises:
        TrainingStopped: on SIGINT/SIGTERM (after saving at the current step) or a non-finite step.
    """
    if validation is None and options.monitor.startswith("val_"):
        options = dataclasses.replace(options, monitor=options.monitor[len("val_") :])
    state, history, partial = _resume(run, state)
    train_step, eval_step, put_batch = make_steps(task, tx, options.compute_dtype, options.mesh)
    if options.mesh is not None:
        state = sharding.replicate(state, options.mesh)
    first = next(iter(train_data.epoch(0)))
    progress = _Progress(
        state, history, zero_sums(train_step, state, put_batch(first)), jnp.asarray(NO_STEP, jnp.int32)
    )
    writers = (
        {
            name: tensorboard.open_writer(run.workdir / "tensorboard" / name)
            for name in ("train", "validation")
        }
        if _primary()
        else {}
    )
    loop = _Loop(
        task, run, options, train_step, eval_step, put_batch, train_data, validation, learning_rate, writers
    )
    steps_per_epoch, step = train_data.steps_per_epoch, int(progress.state.step)
    if partial and "history_with_row" in partial and step >= options.total_steps:  # finished: the row stays
        progress.history = partial["history_with_row"]
    devices = list(options.mesh.devices.flat) if options.mesh is not None else jax.local_devices()[:1]
    _say(start_line(sum(leaf.size for leaf in jax.tree.leaves(state.params)), devices, step=step,
                    total_steps=options.total_steps, steps_per_epoch=steps_per_epoch, batch_size=train_data.batch_size))
    try:
        with StopRequest() as stop:
            for epoch in range(int(progress.state.step) // steps_per_epoch, options.epochs):
                best_epoch, wait = early_stopping_status(progress.history, options.monitor, options.min_delta)
                if (options.patience > 0 and best_epoch and wait >= options.patience) or int(
                    progress.state.step
                ) >= options.total_steps:
                    break
                started = time.perf_counter()
                train_time, done = _train_epoch(loop, progress, epoch, partial, stop)
                partial = None
                _end_epoch(loop, progress, epoch, started, train_time, done)
                if done < steps_per_epoch:
                    break
                if stop.signum is not None:
                    _stop_on_signal(stop.signum, run, progress, options, in_epoch=False)
    finally:
        for writer in writers.values():
            tensorboard.close(writer)
    return _finish(loop, progress)
