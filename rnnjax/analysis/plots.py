"""Figures: a run's training/validation curves, the comparison chart of several runs, attention heat maps.

Matplotlib runs on its file-only Agg backend, so plotting works without a display. The numbers come from
``history.json`` / ``results.json`` written by the fit loop (``training/loop.py``) and from the model's own
outputs; this file only draws them, and names a run for a title from its run directory (``run_title``).
Each figure has a builder that returns the matplotlib Figure (for a notebook, or a test) and, where a script
saves it, a ``plot_*`` function that writes the PNG.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rnnjax.training import runs

# How titles spell the stock cells; a registered cell keeps its own name.
CELL_NAMES = {
    "simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU", "min_gru": "minGRU", "min_lstm": "minLSTM"
}


def history_figure(history: Mapping[str, Sequence[float]], *, title: str = "") -> Figure:
    """Training and validation curves per epoch, two panels side by side.

    A classifier's history shows accuracy and loss. A language model's (one with ``perplexity``) shows
    perplexity, ``exp`` of the mean per-token loss (on a log scale), and next-word accuracy.

    Args:
        history: ``{"epoch": [...], "loss": [...], "accuracy": [...], "val_loss": [...],
            "val_accuracy": [...]}`` (a language model's also ``"perplexity"``); the validation keys are optional.
        title: a figure title naming the model and the data (``run_title``).

    Returns:
        The figure; the caller saves or shows it.
    """
    epochs = history.get("epoch") or list(range(1, len(history.get("loss", [])) + 1))
    language_model = "perplexity" in history
    curves = {f"{prefix}{name}": list(history.get(f"{prefix}{name}") or []) for prefix in ("", "val_")
              for name in ("loss", "accuracy")}
    metrics = {"accuracy": "accuracy", "loss": "loss"}
    if language_model:  # perplexity from the loss itself, so the curve is exp(loss) by construction
        for prefix in ("", "val_"):
            curves[f"{prefix}perplexity"] = [math.exp(value) for value in curves[f"{prefix}loss"]]
        metrics = {"perplexity": "perplexity (exp of loss per token)", "accuracy": "next-word accuracy"}
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, (metric, label) in zip(axes, metrics.items()):
        if curves[metric]:
            axis.plot(epochs, curves[metric], "o-", label=f"training {metric}")
        if curves[f"val_{metric}"]:
            axis.plot(epochs, curves[f"val_{metric}"], "s--", label=f"validation {metric}")
        if metric == "perplexity" and curves[metric]:
            axis.set_yscale("log")  # perplexity falls over orders of magnitude in the first epochs
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_title(f"Training and validation {label}")
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_history(history: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "") -> Path:
    """Writes ``history_figure(history, title=title)`` as a PNG.

    Args:
        history: as for ``history_figure``.
        path: the PNG to write.
        title: a figure title naming the model and the data, e.g. ``run_title(workdir)``.

    Returns:
        The path written.
    """
    return _save(history_figure(history, title=title), Path(path))


def run_title(workdir: str | Path) -> str:
    """A run's model and data in a few words, e.g. ``LSTM(32) on imdb_reviews``, for a figure title.

    Read from the run's model file (``model.json`` or ``lm.json``) and the dataset its ``results.json`` (else
    its ``config.json``) names. Falls back to the run directory's name for anything missing or unreadable: a
    title never stops a finished run.

    Args:
        workdir: a run directory.

    Returns:
        The title.
    """
    workdir = Path(workdir)
    try:
        kind = runs.run_kind(workdir)
        model = describe_model(runs.read_json(workdir / runs.KINDS[kind]), kind) if kind else ""
    except (runs.RunError, KeyError, TypeError, AttributeError):
        model = ""
    dataset = ""
    for name, field in (("results.json", "dataset"), (runs.CONFIG_FILE, "data")):
        try:
            value = runs.read_json(workdir / name).get(field)
        except runs.RunError:
            continue
        dataset = value.get("name", "") if isinstance(value, dict) else str(value or "")
        if dataset:
            break
    if not model:
        return f"{workdir.name} on {dataset}" if dataset else workdir.name
    return f"{model} on {dataset}" if dataset else model


def describe_model(description: Mapping[str, Any], kind: str = "classifier") -> str:
    """A model file's content in a few words: ``LSTM(32)``, ``Bidirectional(LSTM(32)) + attention``,
    ``LSTM(64) × 2``, ``GRU(512) × 2 language model``; a researcher's factory by its name.

    Args:
        description: the content of ``model.json`` (kind ``classifier``) or ``lm.json`` (``language_model``).
        kind: the run kind.

    Returns:
        The description; ``""`` when it names no recurrent layer.
    """
    if kind == "language_model":
        layers = _layer_count(_cell_name(description["cell"], description["hidden_size"]),
                              int(description.get("num_layers", 1)))
        return f"{layers} language model"
    if description.get("factory"):
        return str(description["factory"])
    names, extras = [], []
    for layer in description.get("layers", ()):
        if layer.get("type") == "Recurrent":
            name = _cell_name(layer["cell"], layer["hidden_size"])
            names.append(f"Bidirectional({name})" if layer.get("bidirectional") else name)
        elif layer.get("type") == "Attention":
            extras.append("attention")
        elif layer.get("type") in _POOLING_NAMES:
            extras.append(_POOLING_NAMES[layer["type"]])
    if not names:
        return ""
    stack = _layer_count(names[0], len(names)) if len(set(names)) == 1 else " + ".join(names)
    return " + ".join([stack, *extras])


_POOLING_NAMES = {
    "GlobalAveragePooling1D": "average pooling", "GlobalMaxPooling1D": "max pooling", "ConcatPooling1D": "concat pooling"
}


def _cell_name(cell: str, hidden_size: int) -> str:
    return f"{CELL_NAMES.get(cell, cell)}({hidden_size})"


def _layer_count(name: str, count: int) -> str:
    return name if count == 1 else f"{name} × {count}"


def comparison_figure(
    names: Sequence[str],
    accuracies: Sequence[float],
    fit_times: Sequence[float],
    *,
    keras_fit_times: Sequence[float | None] | None = None,
    title: str = "",
) -> Figure:
    """Test accuracy (%) and training time (s) per model as two bar charts.

    The accuracy axis spans every bar: from below the lowest value to above the highest, with room for the
    labels, so no bar is cut off or hidden under the axis.

    Args:
        names: model names.
        accuracies: test accuracy per model, as a fraction.
        fit_times: total training time per model, in seconds.
        keras_fit_times: Keras' training time per model (None where not measured), drawn beside rnnjax's.
        title: a figure title, e.g. the dataset.

    Returns:
        The figure; the caller saves or shows it.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    positions = list(range(len(names)))
    percents = [100 * a for a in accuracies]
    bars = left.bar(positions, percents, color="tab:blue")
    left.bar_label(bars, fmt="%.1f")
    left.set_ylim(*accuracy_limits(percents))
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
    right.margins(y=0.12)  # room above the tallest bar for its label
    for axis in (left, right):
        axis.set_xticks(positions, names, rotation=25, ha="right")
        axis.grid(axis="y", alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def accuracy_limits(percents: Sequence[float]) -> tuple[float, float]:
    """y-limits that show every accuracy bar (in %) and its label.

    The margin is a tenth of the spread, at least 2 points: the lowest bar stands at least that far above the
    axis, and the highest leaves room for its label. The axis never starts below 0; it may end above 100 so a
    bar at 100 % keeps its label.

    Args:
        percents: the bars' heights, in %.

    Returns:
        ``(bottom, top)``; ``(0, 100)`` when there is no finite value.
    """
    finite = [p for p in percents if math.isfinite(p)]
    if not finite:
        return 0.0, 100.0
    low, high = min(finite), max(finite)
    margin = max(2.0, 0.1 * (high - low))
    return max(0.0, low - margin), high + margin


def plot_comparison(
    names: Sequence[str],
    accuracies: Sequence[float],
    fit_times: Sequence[float],
    path: str | Path,
    *,
    keras_fit_times: Sequence[float | None] | None = None,
    title: str = "",
) -> Path:
    """Writes ``comparison_figure`` of these models as a PNG.

    Args:
        names, accuracies, fit_times, keras_fit_times, title: as for ``comparison_figure``.
        path: the PNG to write.

    Returns:
        The path written.
    """
    figure = comparison_figure(names, accuracies, fit_times, keras_fit_times=keras_fit_times, title=title)
    return _save(figure, Path(path))


def attention_figure(
    words: Sequence[Sequence[str]],
    weights: Sequence[np.ndarray],
    *,
    titles: Sequence[str] = (),
    title: str = "",
) -> Figure:
    """Attention weights over the words of several reviews, one heat-map row each, on one colour scale.

    Every map shares ``vmin = 0`` and ``vmax`` = the largest weight shown, with one colour bar, so equal
    colours mean equal weights across reviews.

    Args:
        words: per review, the words shown (a window of the review is fine).
        weights: per review, ``[T_r] float`` attention weights of those words.
        titles: per review, a panel title (optional).
        title: a figure title.

    Returns:
        The figure; the caller saves or shows it.

    Raises:
        ValueError: when a review's words and weights differ in length, or no review is given.
    """
    maps = [np.asarray(w, dtype=np.float64).reshape(-1) for w in weights]
    if not maps or len(maps) != len(words):
        raise ValueError(
            f"attention_figure: {len(words)} word lists for {len(maps)} weight arrays; give one per review."
        )
    for r, (shown, values) in enumerate(zip(words, maps)):
        if len(shown) != values.size:
            raise ValueError(
                f"attention_figure: review {r} has {len(shown)} words but {values.size} weights."
            )
    vmax = max((float(values.max()) for values in maps if values.size), default=1.0) or 1.0
    figure, axes = plt.subplots(len(maps), 1, figsize=(14, 1.6 * len(maps) + 0.6), layout="constrained",
                                squeeze=False)
    axes = axes[:, 0]
    for r, (axis, shown, values) in enumerate(zip(axes, words, maps)):
        image = axis.imshow(values[None, :], aspect="auto", cmap="Reds", vmin=0.0, vmax=vmax)
        axis.set_xticks(range(len(shown)), list(shown), rotation=90, fontsize=8)
        axis.set_yticks([])
        if r < len(titles):
            axis.set_title(titles[r], fontsize=9)
    figure.colorbar(image, ax=list(axes), pad=0.01, label="attention weight")
    if title:
        figure.suptitle(title)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    """Writes a figure and closes it; an OSError (full or read-only disk) names the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    finally:
        plt.close(figure)
    return path
