"""Averaging classifiers: every run predicts the same examples from its own encoding of them, and the mean of
their probabilities is the ensemble's prediction (ULMFiT's forward + backward classifiers).

Each run reads the examples as it was trained to: its own ``vocabulary.json``, its own ``config.data``
(tokenizer, ``maxlen``, padding, ...), rows reversed with ``data.reverse`` as ``datasets.load_splits`` and
``evaluate.encode_texts`` reverse them for every command. ``split_arrays`` gives a run's encoding of a split of its dataset and
``text_arrays`` its encoding of given texts; ``predict_probabilities`` runs the model over fixed-shape
batches; ``ensemble_metrics`` averages and scores; ``ensemble_split`` and ``ensemble_texts`` do all of it.
Loading runs and their preprocessing is ``evaluate``'s; reading the datasets is ``data/``'s.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnnjax.analysis import evaluate
from rnnjax.data import datasets
from rnnjax.data.reverse import reads_reversed
from rnnjax.training import classifier


def split_arrays(
    run: evaluate.Run, data_cfg: ml_collections.ConfigDict, *, seed: int, split: str
) -> dict[str, np.ndarray]:
    """A run's own encoding of a split of its dataset, as it was trained to read it.

    Args:
        run: the classifier run (its vocabulary and classes are read from its directory).
        data_cfg: the run's ``config.data`` (with the data location filled in by the caller).
        seed: the run's ``config.seed``, which fixes its held-out splits.
        split: "test" or "validation".

    Returns:
        ``{"tokens": [N, T] int32, "lengths": [N] int32, "label": [N] int32}``, rows reversed with
        ``data.reverse``.

    Raises:
        ValueError, DataError: unusable data or settings.
    """
    return datasets.load_splits(data_cfg, seed=seed, workdir=run.workdir)[split]


def text_arrays(run: evaluate.Run, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A run's own encoding of raw texts (``evaluate.encode_texts``), rows reversed with ``data.reverse``.

    Returns:
        ``(tokens [N, T] int32, lengths [N] int32)``; a text with no word for this run has length 0.
    """
    return evaluate.encode_texts(texts, run.data_cfg, run.vocabulary)


def predict_probabilities(
    run: evaluate.Run, tokens: np.ndarray, lengths: np.ndarray, *, batch_size: int
) -> np.ndarray:
    """The run's class probabilities for encoded rows, over batches of one fixed shape (one compilation).

    Args:
        run: the classifier run.
        tokens: [N, T] int32 rows, as the run reads them (``split_arrays``, ``text_arrays``).
        lengths: [N] int32.
        batch_size: rows per model call, >= 1.

    Returns:
        [N] float64 probabilities of the positive class (binary models) or [N, C] of every class.

    Raises:
        ValueError: for ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    model = run.model

    @jax.jit
    def probabilities(params, tokens, lengths):
        batch = {"tokens": tokens, "lengths": lengths, "label": jnp.zeros(tokens.shape[:1], jnp.int32)}
        logits = classifier.logits(model, params, batch)
        return jax.nn.sigmoid(logits) if logits.ndim == 1 else jax.nn.softmax(logits, axis=-1)

    parts = []
    for start in range(0, len(tokens), batch_size):
        rows = slice(start, start + batch_size)
        p = probabilities(
            run.params,
            evaluate.pad_rows(tokens[rows], batch_size),
            evaluate.pad_rows(lengths[rows], batch_size),
        )
        parts.append(np.asarray(p, np.float64)[: len(tokens[rows])])
    return np.concatenate(parts)


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of [N] positive-class probabilities (above 0.5: class 1) or [N, C] (argmax) against labels."""
    predicted = probabilities > 0.5 if probabilities.ndim == 1 else np.argmax(probabilities, axis=-1)
    return float(np.mean(predicted == labels)) if len(labels) else 0.0


def ensemble_metrics(probabilities: Sequence[np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """Each run's accuracy and the accuracy of the mean of their probabilities.

    Args:
        probabilities: one array per run, all [N] (binary) or all [N, C], for the same examples in one order.
        labels: [N] int class ids.

    Returns:
        ``{"n_examples", "accuracy": [one per run], "ensemble_accuracy"}``.

    Raises:
        ValueError: for no runs, or arrays whose shapes disagree.
    """
    if not probabilities:
        raise ValueError("ensemble_metrics: no runs to average")
    shapes = {p.shape for p in probabilities}
    if len(shapes) != 1 or next(iter(shapes))[:1] != labels.shape:
        raise ValueError(
            f"ensemble_metrics: the runs' probabilities must share one shape [N] or [N, C] with N = "
            f"{len(labels)} labels, got {sorted(shapes)}; average runs with the same classes"
        )
    mean = np.mean(np.stack(probabilities), axis=0)
    return {
        "n_examples": len(labels),
        "accuracy": [accuracy(p, labels) for p in probabilities],
        "ensemble_accuracy": accuracy(mean, labels),
    }


def check_same_examples(
    workdirs: Sequence[str], labels: Sequence[np.ndarray], classes: Sequence[tuple]
) -> None:
    """Refuses runs whose classes or examples differ (an average needs one set of examples in one order).

    Raises:
        ValueError: naming the first run that differs from the first one.
    """
    for workdir, these_labels, these_classes in zip(workdirs[1:], labels[1:], classes[1:]):
        if tuple(these_classes) != tuple(classes[0]):
            raise ValueError(
                f"{workdir} has the classes {', '.join(these_classes)} but {workdirs[0]} has "
                f"{', '.join(classes[0])}; average runs trained on the same labels"
            )
        if len(these_labels) != len(labels[0]) or not np.array_equal(these_labels, labels[0]):
            raise ValueError(
                f"{workdir} and {workdirs[0]} do not read the same examples ({len(these_labels)} and "
                f"{len(labels[0])} rows, or other labels): their data settings (dataset, seed, splits) "
                "differ; average runs trained on the same data"
            )


def _report(
    runs: Sequence[evaluate.Run], probabilities: list[np.ndarray], labels: np.ndarray
) -> dict[str, Any]:
    metrics = ensemble_metrics(probabilities, labels)
    members = [
        {
            "workdir": str(run.workdir),
            "checkpoint": run.checkpoint,
            "step": run.step,
            "reverse": reads_reversed(run.data_cfg),
            "accuracy": value,
        }
        for run, value in zip(runs, metrics["accuracy"])
    ]
    return {
        "n_examples": metrics["n_examples"],
        "runs": members,
        "ensemble_accuracy": metrics["ensemble_accuracy"],
    }


def ensemble_split(
    runs: Sequence[evaluate.Run],
    data_cfgs: Sequence[ml_collections.ConfigDict],
    *,
    split: str,
    batch_size: int,
) -> dict[str, Any]:
    """Averages runs on a split of their (shared) dataset, each reading it with its own settings.

    Args:
        runs: the classifier runs.
        data_cfgs: each run's ``config.data``, with the data location filled in.
        split: "test" or "validation".
        batch_size: rows per model call.

    Returns:
        ``{"n_examples", "runs": [{"workdir", "checkpoint", "step", "reverse", "accuracy"}],
        "ensemble_accuracy"}``.

    Raises:
        ValueError: runs that do not read the same examples (``check_same_examples``), unusable data.
    """
    arrays = [
        split_arrays(run, data_cfg, seed=int(run.config["seed"]), split=split)
        for run, data_cfg in zip(runs, data_cfgs)
    ]
    check_same_examples(
        [str(r.workdir) for r in runs], [a["label"] for a in arrays], [r.classes for r in runs]
    )
    probabilities = [
        predict_probabilities(run, a["tokens"], a["lengths"], batch_size=batch_size)
        for run, a in zip(runs, arrays)
    ]
    return _report(runs, probabilities, arrays[0]["label"])


def ensemble_texts(
    runs: Sequence[evaluate.Run], texts: Sequence[str], labels: np.ndarray, *, batch_size: int
) -> dict[str, Any]:
    """Averages runs on labelled raw texts; a text in which some run finds no word is left out for all.

    Returns:
        ``ensemble_split``'s report, plus ``n_skipped_empty``.

    Raises:
        ValueError: runs with other classes, or no text that every run can read.
    """
    check_same_examples([str(r.workdir) for r in runs], [labels] * len(runs), [r.classes for r in runs])
    encoded = [text_arrays(run, texts) for run in runs]
    kept = np.logical_and.reduce([lengths > 0 for _, lengths in encoded])
    if not kept.any():
        raise datasets.DataError(f"none of the {len(texts)} texts has a word that every run reads")
    probabilities = [
        predict_probabilities(run, tokens[kept], lengths[kept], batch_size=batch_size)
        for run, (tokens, lengths) in zip(runs, encoded)
    ]
    return {**_report(runs, probabilities, np.asarray(labels)[kept]), "n_skipped_empty": int(np.sum(~kept))}


def format_table(report: dict[str, Any]) -> str:
    """``ensemble_split``'s or ``ensemble_texts``' report as a small table: a row per run, then the mean."""
    width = max([len("ensemble (mean)")] + [len(member["workdir"]) for member in report["runs"]])
    lines = [f"{'run':<{width}}  {'reads':<9}  {'step':>7}  accuracy"]
    for member in report["runs"]:
        reads = "backward" if member["reverse"] else "forward"
        lines.append(
            f"{member['workdir']:<{width}}  {reads:<9}  {member['step']:>7}  {member['accuracy']:.4f}"
        )
    lines.append(f"{'ensemble (mean)':<{width}}  {'':<9}  {'':>7}  {report['ensemble_accuracy']:.4f}")
    return "\n".join(lines + [f"({report['n_examples']:,} examples)"])
