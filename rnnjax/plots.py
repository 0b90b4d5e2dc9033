"""Figures as PNG files: a run's training/validation curves and the comparison chart of several runs.

Matplotlib runs on its file-only Agg backend, so plotting works without a display. The numbers come from
``history.json`` / ``results.json`` written by ``train.py``; this file only draws them.
"""

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_comparison(
    names: Sequence[str], accuracies: Sequence[float], fit_times: Sequence[float], path: str | Path
) -> Path:
    """Draws test accuracy (%) and training time (s) per model as two bar charts.

    Args:
        names: model names.
        accuracies: test accuracy per model, as a fraction.
        fit_times: total training time per model, in seconds.
        path: the PNG to write.

    Returns:
        The path written.
    """
    path = Path(path)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    percents = [100 * a for a in accuracies]
    bars = left.bar(names, percents, color="tab:blue")
    left.bar_label(bars, fmt="%.1f")
    low = min(percents, default=50.0)
    left.set_ylim(max(0.0, low - 5), 100)
    left.set_ylabel("test accuracy (%)")
    left.set_title("Test accuracy")
    bars = right.bar(names, fit_times, color="tab:orange")
    right.bar_label(bars, fmt="%.0f")
    right.set_ylabel("training time (s)")
    right.set_title("Training time")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=20)
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
