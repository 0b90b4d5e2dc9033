"""Measuring a finished run on a labelled file of any size, read, encoded and counted one batch at a time.

``read_rows`` reads a JSON-lines or CSV/TSV file (``data.readers``) and maps each label to the run's class id;
``evaluate`` sums the classifier's eval-step counts over fixed-shape batches of those rows and returns the
metrics of ``evaluate.evaluate_split``, so memory holds one batch whatever the file's length. Rows with no
word after the text pipeline are left out and counted, as ``datasets.load_splits`` leaves them out of every
split.
Parsing rows and label values is ``data/``'s job; the metrics and the text preprocessing are ``evaluate``'s.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rnnjax.analysis import evaluate as run_eval
from rnnjax.data import datasets, labels, readers
from rnnjax.training import classifier, loop


def read_rows(
    path: str | Path, *, text_column: str, label_column: str, classes: Sequence[str]
) -> Iterator[tuple[str, int]]:
    """Yields ``(text, class id)`` for each row of a labelled file, lazily, in file order.

    A label is read by ``labels.parse_label`` and matched to a class by name (``1`` matches the class "1").
    For a run with IMDB's classes ("neg", "pos"), an integer label is the class id, as IMDB's files store it.

    Args:
        path: a JSON-lines (``.jsonl``, ``.json``, ``.ndjson``) or CSV/TSV file, optionally gzip'd.
        text_column: the field or column holding the text.
        label_column: the field or column holding the label.
        classes: the run's class names in id order.

    Raises:
        DataError: naming the file and line, for a row the readers refuse or a label outside ``classes``.
    """
    path = Path(path).expanduser()
    read = readers.read_csv if readers.is_delimited(path) else readers.read_jsonl
    index = {name: i for i, name in enumerate(classes)}
    by_id = tuple(classes) == tuple(datasets.LABEL_NAMES)
    for line, review, value, _ in read(path, text_column, label_column):
        where = f"{path}:{line}"
        label = labels.parse_label(value, where)
        if str(label) in index:
            yield review, index[str(label)]
        elif by_id and isinstance(label, int) and 0 <= label < len(classes):
            yield review, label
        else:
            raise datasets.DataError(
                f"{where}: label {label!r} (column {label_column!r}) is not one of the run's classes "
                f"({', '.join(classes)}); give a file labelled as the run's training data"
            )


def evaluate(
    run: run_eval.Run,
    path: str | Path,
    *,
    batch_size: int,
    text_column: str | None = None,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Measures a run on a labelled file, streamed in batches of ``batch_size`` rows.

    Args:
        run: the trained run.
        path: the file, as ``read_rows`` reads it.
        batch_size: rows per model call; every batch has this shape, so the model compiles once.
        text_column: the field or column of the text; None for the run's ``data.text_column``.
        label_column: the field or column of the label; None for the run's ``data.label_column``.

    Returns:
        The metrics of ``evaluate.evaluate_split`` over the rows with a word, plus ``n_skipped_empty``
        (rows with no word after the text pipeline, left out as in training).

    Raises:
        DataError: a row or label ``read_rows`` refuses, or a file in which no row has a word.
        ValueError: for ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    data_cfg = run.data_cfg
    rows = read_rows(
        path,
        text_column=text_column or data_cfg.get("text_column", "text"),
        label_column=label_column or data_cfg.get("label_column", "label"),
        classes=run.classes,
    )
    skipped = 0  # rows with no word, counted as the batches are read

    def batches() -> Iterator[dict[str, np.ndarray]]:
        """Fixed-shape batches of the rows with a word; padding rows have label -1, which nothing counts."""
        nonlocal skipped
        for chunk in run_eval.batched(rows, batch_size):
            texts, ids = zip(*chunk)
            tokens, lengths = run_eval.encode_texts(texts, data_cfg, run.vocabulary)
            kept = lengths > 0
            skipped += int(np.sum(~kept))
            yield {
                "tokens": run_eval.pad_rows(tokens[kept], batch_size),
                "lengths": run_eval.pad_rows(lengths[kept], batch_size),
                "label": run_eval.pad_rows(np.asarray(ids, np.int32)[kept], batch_size, value=-1),
            }

    eval_step = jax.jit(loop.eval_step_fn(classifier.classifier_task(run.model)))
    counts = loop.evaluate(eval_step, run.params, batches())
    if not counts["n_examples"]:
        raise datasets.DataError(f"{path}: none of its {skipped} rows has a word after the text pipeline")
    return {**run_eval.metrics_from_counts(run, counts), "n_skipped_empty": skipped}
