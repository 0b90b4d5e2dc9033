"""Using a finished run: load it from its directory, measure it on a split, predict on raw texts.

``load_run(workdir)`` restores a classifier's parameters through ``runs.load_run`` (the one loader of every
run kind); ``evaluate_split`` gives accuracy, loss, the confusion matrix and precision/recall/F1;
``predict_texts`` applies the run's own text preprocessing (its saved vocabulary, ``maxlen``, padding) before
the model. The counts come from the classifier task's eval step; reading and encoding data is ``data/``'s job.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnnjax.analysis import metrics as report
from rnnjax.data import pipeline, text
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
    counts = loop.evaluate(eval_step, run.params, batches)
    if "confusion" in counts:
        return report.classification_report(counts, run.classes)
    return classification_metrics(counts)


def predict_probabilities(run: Run, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Class probabilities for encoded, padded texts: [N] ``sigmoid(logits)`` (of the positive class) for a
    binary model, [N, C] ``softmax(logits)`` for C classes.

    Args:
        run: the trained run.
        tokens: [N, T] int32 ids.
        lengths: [N] int32 real tokens per row.
    """
    model = run.model

    @jax.jit
    def probabilities(params, tokens, lengths):
        batch = {"tokens": tokens, "lengths": lengths, "label": jnp.zeros(tokens.shape[:1], jnp.int32)}
        logits = classifier.logits(model, params, batch)
        return jax.nn.sigmoid(logits) if logits.ndim == 1 else jax.nn.softmax(logits, axis=-1)

    return np.asarray(probabilities(run.params, jnp.asarray(tokens), jnp.asarray(lengths)))


def encode_texts(
    texts: Sequence[str], data_cfg: ml_collections.ConfigDict, vocab: text.Vocabulary
) -> tuple[np.ndarray, np.ndarray]:
    """Tokenizes, encodes and pads raw texts as ``datasets.load_splits`` does with the same ``config.data``.

    Returns:
        ``(tokens [N, T] int32, lengths [N] int32)`` with T = ``data_cfg.maxlen``; a text with no known word
        has length 0 (the model then sees only padding).
    """
    words = text.tokenize(texts, method=data_cfg.tokenizer, strip_html=data_cfg.strip_html)
    ids = [text.encode(vocab, w) for w in words]
    tokens = text.pad_sequences(
        ids, maxlen=data_cfg.maxlen, padding=data_cfg.padding, truncating=data_cfg.truncating
    )
    return tokens, text.sequence_lengths(ids, data_cfg.maxlen)


def predict_texts(run: Run, texts: Sequence[str], *, threshold: float = 0.5) -> list[dict[str, Any]]:
    """Classifies raw texts with exactly the preprocessing the run was trained with.

    Args:
        run: the trained run (its directory holds the vocabulary and the class names).
        texts: raw texts.
        threshold: binary models: the probability above which a text is positive.

    Returns:
        Binary: one ``{"text", "label" ("positive"/"negative"), "probability" (of positive)}`` per text.
        C classes: ``{"text", "label" (the most probable class's name), "probability" (its probability),
        "probabilities" ({class name: probability})}``.

    Raises:
        ValueError: for no texts.
    """
    if not texts:
        raise ValueError("no texts to classify; pass texts as arguments, --input_file or standard input.")
    tokens, lengths = encode_texts(texts, run.data_cfg, run.vocabulary)
    probabilities = predict_probabilities(run, tokens, lengths)
    if probabilities.ndim == 1:
        return [
            {"text": text, "label": "positive" if p > threshold else "negative", "probability": float(p)}
            for text, p in zip(texts, probabilities)
        ]
    return [
        {
            "text": text,
            "label": run.classes[int(np.argmax(p))],
            "probability": float(np.max(p)),
            "probabilities": {name: float(v) for name, v in zip(run.classes, p)},
        }
        for text, p in zip(texts, probabilities)
    ]
