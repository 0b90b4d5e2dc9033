"""Classification reports on the host: per-class precision, recall and F1, baselines and tables, from counts.

``classification_report`` turns the summed counts of ``losses.classification_counts`` (binary: ``true_pos``,
``false_pos``, ``true_neg``, ``false_neg``; categorical: a ``confusion`` matrix) into the numbers of a report,
and ``format_classification_report`` prints them. Everything here is plain Python and NumPy on counts already
fetched from the device; computing the counts is ``losses.py``'s job, and running a model over a split is
``evaluate.py``'s.
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

_BINARY_KEYS = ("true_neg", "false_pos", "false_neg", "true_pos")


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0 where the denominator is 0 (as scikit-learn's zero_division=0)."""
    return float(numerator) / float(denominator) if denominator else 0.0


def confusion_matrix(counts: dict[str, Any]) -> np.ndarray:
    """The [C, C] confusion matrix (rows: true class, columns: predicted) held by summed counts.

    Args:
        counts: either ``confusion`` ([C, C] integers) or the four binary counts ``true_neg``, ``false_pos``,
            ``false_neg`` and ``true_pos``, which give ``[[true_neg, false_pos], [false_neg, true_pos]]``.

    Returns:
        [C, C] int64.

    Raises:
        ValueError: if neither is present, or ``confusion`` is not square.
    """
    if "confusion" in counts:
        matrix = np.asarray(counts["confusion"], np.int64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(
                f"classification_report: counts['confusion'] must be [C, C], got {matrix.shape}."
            )
        return matrix
    if all(key in counts for key in _BINARY_KEYS):
        tn, fp, fn, tp = (int(counts[key]) for key in _BINARY_KEYS)
        return np.array([[tn, fp], [fn, tp]], np.int64)
    raise ValueError(
        f"classification_report: counts need 'confusion' or all of {list(_BINARY_KEYS)}, got "
        f"{sorted(counts)}; pass the summed counts of losses.classification_counts."
    )


def class_values(classes: Sequence[Any]) -> np.ndarray | None:
    """The class names as numbers (e.g. star ratings "1".."10"); None unless every name is a finite number."""
    try:
        values = [float(name) for name in classes]
    except (TypeError, ValueError):
        return None
    return np.array(values, np.float64) if all(math.isfinite(v) for v in values) else None


def _per_class(matrix: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of each class, 0 where a ratio is undefined."""
    per_class = {}
    for index, name in enumerate(classes):
        tp = int(matrix[index, index])
        predicted, support = int(matrix[:, index].sum()), int(matrix[index, :].sum())
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        per_class[str(name)] = {
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "support": support,
        }
    return per_class


def _averages(per_class: dict[str, dict[str, float | int]]) -> dict[str, float]:
    """Macro (unweighted) and support-weighted means of precision, recall and F1 over the classes."""
    rows = list(per_class.values())
    total = sum(row["support"] for row in rows)
    averages = {}
    for metric in ("precision", "recall", "f1"):
        averages[f"macro_{metric}"] = _ratio(sum(row[metric] for row in rows), len(rows))
        averages[f"weighted_{metric}"] = _ratio(sum(row[metric] * row["support"] for row in rows), total)
    return averages


def _absolute_errors(matrix: np.ndarray, values: np.ndarray, n: int) -> dict[str, float]:
    """Mean |value(predicted) - value(true)| of the model and of always predicting the most frequent class."""
    distance = np.abs(values[None, :] - values[:, None])  # [true, predicted]
    support = matrix.sum(axis=1)
    majority = int(np.argmax(support))
    return {
        "mean_absolute_error": _ratio(float((matrix * distance).sum()), n),
        "majority_mean_absolute_error": _ratio(float((support * distance[:, majority]).sum()), n),
    }


def classification_report(counts: dict[str, Any], classes: Sequence[str]) -> dict[str, Any]:
    """Loss, accuracy, per-class and averaged precision/recall/F1, and baselines from a split's summed counts.

    Args:
        counts: summed counts as ``losses.classification_counts`` gives them (``loss_sum``, ``n_examples`` and
            either ``confusion`` [C, C] or the binary ``true_pos``, ``false_pos``, ``true_neg``,
            ``false_neg``), as NumPy or Python numbers.
        classes: the C class names in label order (binary: the names of labels 0 and 1).

    Returns:
        ``n_examples``, ``loss`` (mean), ``accuracy``, ``classes`` (the names as strings),
        ``confusion_matrix`` (a list of C lists; rows: true class, columns: predicted), ``per_class``
        ({name: {``precision``, ``recall``, ``f1``, ``support``}}), ``macro_precision``, ``macro_recall``,
        ``macro_f1``, ``weighted_precision``, ``weighted_recall``, ``weighted_f1`` (weighted by support) and
        ``majority_accuracy`` (always predicting the most frequent true class). When every class name is a
        number, also ``mean_absolute_error`` (mean |value(predicted) - value(true)|) and
        ``majority_mean_absolute_error``. Every ratio with a zero denominator is 0, never NaN.

    Raises:
        ValueError: for counts without a confusion matrix, a matrix whose size differs from the number of
            classes, or repeated class names.
    """
    matrix = confusion_matrix(counts)
    names = [str(name) for name in classes]
    if matrix.shape[0] != len(names):
        raise ValueError(
            f"classification_report: the confusion matrix is {matrix.shape[0]}x{matrix.shape[1]} but "
            f"{len(names)} classes were given ({names}); pass one name per class, in label order."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"classification_report: class names must be distinct, got {names}.")
    n = int(counts["n_examples"]) if "n_examples" in counts else int(matrix.sum())
    per_class = _per_class(matrix, names)
    report = {
        "n_examples": n,
        "loss": _ratio(float(counts.get("loss_sum", 0.0)), n),
        "accuracy": _ratio(int(np.trace(matrix)), n),
        "classes": names,
        "confusion_matrix": matrix.tolist(),
        "per_class": per_class,
        **_averages(per_class),
        "majority_accuracy": _ratio(int(matrix.sum(axis=1).max(initial=0)), n),
    }
    values = class_values(names)
    if values is not None:
        report.update(_absolute_errors(matrix, values, n))
    return report


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Right-aligned columns, the first as wide as its longest entry and the rest at least 9 wide."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    widths = [widths[0]] + [max(w, 9) for w in widths[1:]]
    return [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]
    ]


def format_classification_report(report: dict[str, Any], *, digits: int = 4) -> str:
    """A ``classification_report`` as text: per-class rows as scikit-learn prints them, then the summary and
    the confusion matrix labelled with the class names.

    Args:
        report: from ``classification_report``.
        digits: decimals of every ratio.

    Returns:
        The report as lines of text (no trailing newline).
    """
    number = f"{{:.{digits}f}}".format
    rows = [["", "", "", "", ""]]
    rows += [
        [name, number(row["precision"]), number(row["recall"]), number(row["f1"]), f"{row['support']:,}"]
        for name, row in report["per_class"].items()
    ]
    n = f"{report['n_examples']:,}"
    rows += [
        ["", "", "", "", ""],
        ["accuracy", "", "", number(report["accuracy"]), n],
        ["macro avg", *(number(report[f"macro_{m}"]) for m in ("precision", "recall", "f1")), n],
        ["weighted avg", *(number(report[f"weighted_{m}"]) for m in ("precision", "recall", "f1")), n],
    ]
    lines = _table(["", "precision", "recall", "f1-score", "support"], rows)
    lines += [
        "",
        f"loss: {number(report['loss'])}",
        f"majority-class accuracy: {number(report['majority_accuracy'])}",
    ]
    if "mean_absolute_error" in report:
        lines += [
            f"mean absolute error: {number(report['mean_absolute_error'])}",
            f"majority-class mean absolute error: {number(report['majority_mean_absolute_error'])}",
        ]
    names = report["classes"]
    matrix_rows = [[name, *(f"{v:,}" for v in row)] for name, row in zip(names, report["confusion_matrix"])]
    lines += ["", "confusion matrix (rows: true class, columns: predicted class):"]
    lines += _table(["", *names], matrix_rows)
    return "\n".join(lines)
