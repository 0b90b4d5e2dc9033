"""Figures as PNG files: a run's training/validation curves and the comparison chart of several runs.

Matplotlib runs on its file-only Agg backend, so plotting works without a display. The numbers come from
``history.json`` / ``results.json`` written by the fit loop (``training/loop.py``); this file only draws them.
"""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_history(history: dict[str, list], path: str | Path, *, title: str = "") -> Path:
    """Draws accuracy and loss per epoch, training and validation, side by side (the chapter's two plots).

    Args:
        history: ``{"epoch": [...], "loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}``;
            the validation keys are optional.
        path: the PNG to write.
        title: a figure title, e.g. the run's name.

    Returns:
        The path written.
    """
    path = Path(path)
    epochs = history.get("epoch", list(range(1, len(history.get("loss", [])) + 1)))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("accuracy", "loss")):
        if history.get(metric):
            axis.plot(epochs, history[metric], "o-", label=f"training {metric}")
        if history.get(f"val_{metric}"):
            axis.plot(epochs, history[f"val_{metric}"], "s--", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.set_title(f"Training and validation {metric}")
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(figure, path)
    plt.close(figure)
    return path


def plot_comparison(
    names: Sequence[str],
    accuracies: Sequence[float],
    fit_times: Sequence[float],
    path: str | Path,
    *,
    keras_fit_times: Sequence[float | None] | None = None,
) -> Path:
    """Draws test accuracy (%) and training time (s) per model as two bar charts.

    Args:
        names: model names.
        accuracies: test accuracy per model, as a fraction.
        fit_times: total training time per model, in seconds.
        path: the PNG to write.
        keras_fit_times: Keras' training time per model (None where not measured), drawn beside rnnjax's.

    Returns:
        The path written.
    """
    path = Path(path)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    positions = list(range(len(names)))
    percents = [100 * a for a in accuracies]
    bars = left.bar(positions, percents, color="tab:blue")
    left.bar_label(bars, fmt="%.1f")
    left.set_ylim(max(0.0, min(percents, default=50.0) - 5), min(100.0, max(percents, default=95.0) + 2))
    left.set_ylabel("test accuracy (%)")
    left.set_title("Test accuracy")
    has_keras = keras_fit_times is not None and any(t is not None for t in keras_fit_times)
    width = 0.4 if has_keras else 0.8
    shift = width / 2 if has_keras else 0.0
    bars = right.bar([x - shift for x in positions], fit_times, width, color="tab:orange", label="rnnjax")
    right.bar_label(bars, fmt="%.0f")
    if has_keras:
        keras = [t if t is not None else 0.0 for t in keras_fit_times]
        bars = right.bar(
            [x + shift for x in positions], keras, width, color="tab:gray", label="Keras 3 fit (JAX)"
        )
        right.bar_label(bars, labels=[f"{t:.0f}" if t is not None else "" for t in keras_fit_times])
        right.legend()
    right.set_ylabel("training time (s)")
    right.set_title("Training time")
    for axis in (left, right):
        axis.set_xticks(positions, names, rotation=25, ha="right")
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(figure, path)
    plt.close(figure)
    return path


def _save(figure, path) -> None:
    """Writes a figure; an OSError (full or read-only disk) names the file."""
    try:
        figure.savefig(path, dpi=100)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
