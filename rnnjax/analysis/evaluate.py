"""Using a finished run: load it from its directory, measure it on a split, predict on raw texts.

``load_run(workdir)`` restores a classifier's parameters through ``runs.load_run`` (the one loader of every
run kind); ``evaluate_split`` gives accuracy, loss, the confusion matrix and precision/recall/F1;
``predict_texts`` applies the run's own text preprocessing (its saved vocabulary, ``maxlen``, padding) before
the model, and ``make_predict_fn`` does the same one fixed-shape batch at a time, so that any number of texts
streams through one compiled model. The counts come from the classifier task's eval step; reading and encoding
data is ``data/``'s job, measuring a run on a labelled file batch by batch is ``labelled_file``'s.
"""

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnnjax.analysis import metrics as report
from rnnjax.data import pipeline, text
from rnnjax.data.reverse import reads_reversed, reverse_rows
from rnnjax.training import classifier, loop, runs

CHECKPOINT_CHOICES = runs.CHECKPOINT_CHOICES


class Run(runs.LoadedRun):
    """A classifier run restored for inference (``runs.LoadedRun``), with its config as a ConfigDict."""

    __slots__ = ()

    @property
    def model_cfg(self) -> classifier.ModelConfig | None:
        """The spec'd model's ModelConfig; None for a researcher's own model (use ``model``)."""
        return None if self.spec is None else classifier.ModelConfig(spec=self.spec, use_lengths=self.use_lengths)

    @property
    def data_cfg(self) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(self.config["data"])


def load_run(workdir, *, which: str = "final", model_fn=None) -> Run:
    """Restores a classifier run's parameters (any classifier this project trains, ``config.init`` or not, or a
    researcher's own model: its factory is imported by name, or given as ``model_fn``).

    Args:
        workdir: a run directory written by ``classifier.train_and_evaluate``.
        which: "final" (what training ended with), "best" or "latest".
        model_fn: the factory of a researcher's model whose module cannot be imported (see ``runs.load_run``).

    Raises:
        runs.RunError: not a classifier run, or no intact checkpoint.
    """
    return Run(*runs.load_run(workdir, which=which, kind="classifier", model_fn=model_fn))


def classification_metrics(counts: dict[str, float]) -> dict[str, Any]:
    """Accuracy, loss, precision, recall and F1 of the positive class, and the confusion matrix, from counts.

    Args:
        counts: ``loss_sum``, ``n_examples``, ``true_pos``, ``false_pos``, ``true_neg``, ``false_neg``
            (as from ``loop.evaluate``).

    Returns:
        ``accuracy``, ``loss``, ``precision``, ``recall``, ``f1``, ``n_examples`` and ``confusion_matrix``
        ``[[true_neg, false_pos], [false_neg, true_pos]]`` (rows: actual 0/1, columns: predicted 0/1, as in
        scikit-learn). A ratio with a zero denominator is 0.
    """
    tp, fp, tn, fn = (int(counts[k]) for k in ("true_pos", "false_pos", "true_neg", "false_neg"))
    n = int(counts["n_examples"])

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "n_examples": n,
        "accuracy": ratio(tp + tn, n),
        "loss": ratio(float(counts["loss_sum"]), n),
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * precision * recall, precision + recall),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def format_report(metrics: dict[str, Any], *, title: str = "") -> str:
    """The metrics of ``evaluate_split`` as a short text report with the confusion matrix."""
    if "per_class" in metrics:
        return "\n".join(([title] if title else []) + [report.format_classification_report(metrics)])
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    width = max(len(f"{v:,}") for v in (tn, fp, fn, tp)) + 2
    lines = [title] if title else []
    lines += [
        f"examples:  {metrics['n_examples']:,}",
        f"accuracy:  {metrics['accuracy']:.4f}",
        f"loss:      {metrics['loss']:.4f}",
        f"precision: {metrics['precision']:.4f}",
        f"recall:    {metrics['recall']:.4f}",
        f"f1:        {metrics['f1']:.4f}",
        "confusion matrix (rows: actual, columns: predicted):",
        f"{'':>10}{'neg':>{width}}{'pos':>{width}}",
        f"{'neg':>10}{tn:>{width},}{fp:>{width},}",
        f"{'pos':>10}{fn:>{width},}{tp:>{width},}",
    ]
    return "\n".join(lines)


def evaluate_split(run: Run, arrays: dict[str, np.ndarray], *, batch_size: int) -> dict[str, Any]:
    """Measures a run on a split ({tokens, lengths, label} arrays, as ``datasets.load_splits`` gives them).

    Returns:
        Binary: the ``classification_metrics`` of the split; C > 2 classes: ``metrics.classification_report``
        (per-class precision/recall/F1, the C x C confusion matrix, the majority baseline, and the mean absolute
        error when the class names are numbers, e.g. star ratings).
    """
    eval_step = jax.jit(loop.eval_step_fn(classifier.classifier_task(run.model)))
    batches = pipeline.Loader(arrays, batch_size, seed=0, shuffle=False).epoch(0)
    return metrics_from_counts(run, loop.evaluate(eval_step, run.params, batches))


def metrics_from_counts(run: Run, counts: dict[str, Any]) -> dict[str, Any]:
    """``evaluate_split``'s metrics from the eval step's summed counts (as ``loop.evaluate`` gives them)."""
    if "confusion" in counts:
        return report.classification_report(counts, run.classes)
    return classification_metrics(counts)


def check_vocabulary(run: Run) -> None:
    """Refuses a run whose vocabulary file has another number of ids than its model embeds.

    Raises:
        ValueError: the vocabulary is from another run, so every id would stand for another word.
    """
    embedding = run.spec.layers[0] if run.spec is not None else None  # a researcher's model has no spec
    if embedding is not None and run.vocabulary.size != embedding.vocab_size:
        raise ValueError(
            f"{run.workdir}/{text.VOCABULARY_FILE} has {run.vocabulary.size} ids but the model embeds "
            f"{embedding.vocab_size}: the vocabulary is from another run; restore the run's own vocabulary file "
            "or retrain"
        )


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily: ``itertools.batched``."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def encode_texts(
    texts: Sequence[str], data_cfg: ml_collections.ConfigDict, vocab: text.Vocabulary
) -> tuple[np.ndarray, np.ndarray]:
    """Tokenizes, encodes and pads raw texts as ``datasets.load_splits`` does with the same ``config.data``
    (rows reversed with ``data.reverse``).

    Returns:
        ``(tokens [N, T] int32, lengths [N] int32)`` with T = ``data_cfg.maxlen``; a text with no word has
        length 0 (the model then sees only padding); words outside the vocabulary become its OOV id or are
        dropped, as in training.
    """
    words = text.tokenize(texts, method=data_cfg.tokenizer, strip_html=data_cfg.strip_html)
    ids = [text.encode(vocab, w) for w in words]
    tokens = text.pad_sequences(
        ids, maxlen=data_cfg.maxlen, padding=data_cfg.padding, truncating=data_cfg.truncating
    )
    lengths = text.sequence_lengths(ids, data_cfg.maxlen)
    return (reverse_rows(tokens, lengths) if reads_reversed(data_cfg) else tokens), lengths


def known_words(tokens: np.ndarray, vocab: text.Vocabulary) -> np.ndarray:
    """[N] int32: the vocabulary words among each row of ``encode_texts``' tokens [N, T] (not padding, the
    start id or the OOV id): the words of a text that the model reads, after truncation to T."""
    return np.sum(tokens >= vocab.index_from, axis=1, dtype=np.int32)


def pad_rows(array: np.ndarray, rows: int, value: int = 0) -> np.ndarray:
    """``array`` [N, ...] with ``rows - N`` rows of ``value`` appended, so that every batch has one shape."""
    return np.pad(array, [(0, rows - len(array))] + [(0, 0)] * (array.ndim - 1), constant_values=value)


def make_predict_fn(
    run: Run, *, batch_size: int, threshold: float = 0.5
) -> Callable[[Sequence[str]], list[dict[str, Any]]]:
    """``predict(texts) -> predictions`` for up to ``batch_size`` texts per call, the model compiled once.

    Every call runs the model on exactly ``batch_size`` rows (a shorter batch is padded with empty rows), so
    classifying texts batch by batch costs one compilation and the memory of one batch, however many texts.

    Args:
        run: the trained run.
        batch_size: B, the most texts per call.
        threshold: binary models: the probability of positive above which a text is positive.

    Returns:
        ``predict``: a list of texts (at most B) -> one prediction each, as ``predict_texts`` describes them.

    Raises:
        ValueError: for ``batch_size < 1``; ``predict`` for more than B texts.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    model, data_cfg, vocab = run.model, run.data_cfg, run.vocabulary

    @jax.jit
    def probabilities(params, tokens, lengths):
        batch = {"tokens": tokens, "lengths": lengths, "label": jnp.zeros(tokens.shape[:1], jnp.int32)}
        logits = classifier.logits(model, params, batch)
        return jax.nn.sigmoid(logits) if logits.ndim == 1 else jax.nn.softmax(logits, axis=-1)

    def predict(texts: Sequence[str]) -> list[dict[str, Any]]:
        if len(texts) > batch_size:
            raise ValueError(f"predict: {len(texts)} texts, more than batch_size={batch_size}")
        if not texts:
            return []
        tokens, lengths = encode_texts(texts, data_cfg, vocab)
        p = probabilities(run.params, pad_rows(tokens, batch_size), pad_rows(lengths, batch_size))
        p = np.asarray(p)[: len(texts)]
        return _predictions(texts, p, known_words(tokens, vocab), run.classes, threshold)

    return predict


def _predictions(
    texts: Sequence[str], p: np.ndarray, known: np.ndarray, classes: Sequence[str], threshold: float
) -> list[dict[str, Any]]:
    """The prediction dicts of ``predict_texts`` from probabilities ``p``: [N] (binary) or [N, C]."""
    if p.ndim == 1:
        return [
            {
                "text": t,
                "label": "positive" if p_t > threshold else "negative",
                "probability": float(p_t),
                "probability_of": "positive",
                "known_words": int(k),
            }
            for t, p_t, k in zip(texts, p, known)
        ]
    predictions = []
    for t, p_t, k in zip(texts, p, known):
        label = classes[int(np.argmax(p_t))]
        predictions.append(
            {
                "text": t,
                "label": label,
                "probability": float(np.max(p_t)),
                "probability_of": label,
                "probabilities": {name: float(v) for name, v in zip(classes, p_t)},
                "known_words": int(k),
            }
        )
    return predictions


def predict_texts(
    run: Run, texts: Sequence[str], *, threshold: float = 0.5, batch_size: int | None = None
) -> list[dict[str, Any]]:
    """Classifies raw texts with exactly the preprocessing the run was trained with.

    Args:
        run: the trained run (its directory holds the vocabulary and the class names).
        texts: raw texts.
        threshold: binary models: the probability of positive above which a text is positive.
        batch_size: texts per model call; None for the run's ``train.eval_batch_size`` (fewer for fewer
            texts). To stream more texts than fit in memory, use ``make_predict_fn`` on batches of them.

    Returns:
        One dict per text, in order. Binary: ``{"text", "label"`` ("positive" or "negative"),
        ``"probability"`` (of positive), ``"probability_of": "positive", "known_words"}``. C classes:
        ``{"text", "label"`` (the most probable class's name), ``"probability"`` (its probability),
        ``"probability_of"`` (the label), ``"probabilities"`` ({class name: probability}), ``"known_words"}``.
        ``known_words`` counts the text's words that are in the run's vocabulary and within ``maxlen``; with 0
        (an empty text, or only unknown words) the probability is the model's output for a text it cannot
        read: finite, but it says nothing about the text.

    Raises:
        ValueError: for no texts.
    """
    if not texts:
        raise ValueError("no texts to classify; pass texts as arguments, --input_file or standard input.")
    size = batch_size or min(len(texts), int(run.config["train"]["eval_batch_size"]))
    predict = make_predict_fn(run, batch_size=size, threshold=threshold)
    return [prediction for chunk in batched(texts, size) for prediction in predict(chunk)]
