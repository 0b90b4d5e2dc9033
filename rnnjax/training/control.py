"""When training stops and what it shows: early stopping by a monitored metric, the SIGINT/SIGTERM flag, and the
Keras-like progress line. Used by the fit loop (``loop.py``); nothing here touches devices or files.
"""

import signal
import threading
from collections.abc import Mapping
from typing import Any


LOG_EVERY_S = 30  # without a terminal, a progress line this often within an epoch


class TrainingStopped(RuntimeError):
    """The loop stopped on purpose (a signal, a non-finite loss); ``exit_status`` is for the command line."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


def monitor_mode(monitor: str) -> str:
    """The mode of a monitored metric: "max" for accuracies, "min" for losses and perplexities."""
    return "max" if "accuracy" in monitor else "min"


def early_stopping_status(history: Mapping[str, list], monitor: str, min_delta: float) -> tuple[int, int]:
    """Best epoch (1-based, 0 if none) and epochs since an improvement, recomputed from the history.

    An epoch improves when it beats the best so far by more than ``min_delta`` (Keras' EarlyStopping rule);
    recomputing from the history keeps a resumed run's decisions identical to an uninterrupted one.
    """
    mode, best_value, best_epoch, wait = monitor_mode(monitor), None, 0, 0
    for epoch, value in enumerate(history.get(monitor, []), start=1):
        if best_value is None or (
            value < best_value - min_delta if mode == "min" else value > best_value + min_delta
        ):
            best_value, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
    return best_epoch, wait


def progress_line(
    epoch: int, epochs: int, done: int, total: int, elapsed: float, metrics: Mapping, shown, *, eta: bool = True
) -> str:
    """``Epoch 2/5 40/157 [=====>....] - 3s 75ms/step - 13.3 steps/s - ETA 9s - loss: 0.6931 - ...``; the ETA
    (the rest of the epoch at the rate so far) only while the epoch runs."""
    width, rate = 30, done / elapsed if elapsed > 0 else 0.0
    filled = int(width * done / max(total, 1))
    bar = ("=" * filled + (">" if filled < width else "") + "." * width)[:width]
    values = "".join(f" - {name}: {metrics[name]:.4f}" for name in shown if name in metrics)
    per_step = 1000 / rate if rate else 0
    left = f" - ETA {duration((total - done) / rate)}" if eta and rate and done < total else ""
    return (
        f"Epoch {epoch}/{epochs} {done}/{total} [{bar}] - {elapsed:.0f}s {per_step:.0f}ms/step - "
        f"{rate:.1f} steps/s{left}{values}"
    )


def duration(seconds: float) -> str:
    """``9s``, ``4m05s``, ``2h03m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def start_line(num_params: int, devices: list, *, step: int, total_steps: int, steps_per_epoch: int,
               batch_size: int) -> str:
    """``Training 12,545 parameters on 1 x cpu: 16 steps of batch 16 (8 per epoch)`` (and where a resumed run is)."""
    kinds = {}
    for device in devices:
        kind = device.device_kind if device.platform != "cpu" else "cpu"
        kinds[kind] = kinds.get(kind, 0) + 1
    on = ", ".join(f"{n} x {kind}" for kind, n in kinds.items())
    left = f"; {total_steps - step} to go from step {step}" if 0 < step < total_steps else ""
    left = "; all done" if step >= total_steps else left
    return (f"Training {num_params:,} parameters on {on}: {total_steps} steps of batch {batch_size} "
            f"({steps_per_epoch} per epoch){left}")


class StopRequest:
    """Remembers a SIGINT/SIGTERM; the loop checks it between steps and saves there, never in the handler."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
