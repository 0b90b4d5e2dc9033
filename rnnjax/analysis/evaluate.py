"""Using a finished run: load it from its directory, measure it on a split, predict on raw texts.

``load_run(workdir)`` rebuilds the model from ``model.json``/``config.json`` and restores the parameters the run
ended with; ``evaluate_split`` gives accuracy, loss, the confusion matrix and precision/recall/F1;
``predict_texts`` applies the run's own text preprocessing (its saved vocabulary, ``maxlen``, padding) before
the model. The counts come from ``train.make_eval_step``; reading and encoding data is ``data.py``'s job.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnnjax import models
from rnnjax.training import runs as checkpoint
from rnnjax.data import datasets as data
from rnnjax.training import optim
from rnnjax.data import text
from rnnjax.training import train
from rnnjax.types import Params

CHECKPOINT_CHOICES = ("final", "best", "latest")


@dataclass(frozen=True)
class Run:
    """A trained model as its run directory describes it."""

    workdir: Path
    config: ml_collections.ConfigDict
    model_cfg: train.ModelConfig
    params: Params
    step: int  # the optimizer step of the restored checkpoint
    checkpoint: str  # "best" or "latest"


def _final_checkpoint(workdir: Path, config: ml_collections.ConfigDict) -> str:
    results = workdir / "results.json"
    if results.exists():
        return json.loads(results.read_text()).get("checkpoint", "latest")
    return "best" if config.train.restore_best else "latest"


def load_run(workdir: str | Path, *, which: str = "final") -> Run:
    """Restores a run's parameters.

    Args:
        workdir: a run directory written by ``train.train_and_evaluate``.
        which: "final" (the parameters training ended with: the best checkpoint when ``train.restore_best``,
            else the latest), "best" or "latest".

    Returns:
        The Run.

    Raises:
        ValueError: if the directory is not a run directory, or holds no (complete) checkpoint.
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise ValueError(
            f"run directory {workdir} does not exist; train first with experiments.train --workdir={workdir}"
        )
    if which not in CHECKPOINT_CHOICES:
        raise ValueError(f"checkpoint must be one of {CHECKPOINT_CHOICES}, got {which!r}.")
    config = checkpoint.read_config(workdir)
    spec, use_lengths = checkpoint.read_model(workdir)
    model_cfg = train.ModelConfig(spec=spec, use_lengths=use_lengths)
    if which == "final":
        which = _final_checkpoint(workdir, config)
    folder = workdir / (checkpoint.BEST if which == "best" else checkpoint.CHECKPOINTS)
    manager = checkpoint.make_manager(folder, max_to_keep=max(int(config.train.keep_checkpoints), 1))
    step = manager.latest_step()
    if step is None and which == "best":  # a run without validation data or not yet through one epoch
        folder = workdir / checkpoint.CHECKPOINTS
        manager = checkpoint.make_manager(folder, max_to_keep=max(int(config.train.keep_checkpoints), 1))
        step, which = manager.latest_step(), "latest"
    if step is None:
        raise ValueError(f"no complete checkpoint in {folder}; train (or resume) the run first.")
    tx = optim.make_optimizer(config.opt, total_steps=1)  # only the structure of the optimizer state matters
    target = jax.eval_shape(lambda: train.create_train_state(spec, tx, int(config.seed)))
    state, _ = checkpoint.restore(manager, step, target)
    return Run(
        workdir=workdir, config=config, model_cfg=model_cfg, params=state.params, step=step, checkpoint=which
    )


def classification_metrics(counts: dict[str, float]) -> dict[str, Any]:
    """Accuracy, loss, precision, recall and F1 of the positive class, and the confusion matrix, from counts.

    Args:
        counts: ``loss_sum``, ``n_examples``, ``true_pos``, ``false_pos``, ``true_neg``, ``false_neg``
            (as from ``train.evaluate_counts``).

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
    """The metrics of ``classification_metrics`` as a short text report with the confusion matrix."""
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
    """Measures a run on a split ({tokens, lengths, label} arrays, as ``data.load_splits`` gives them).

    Returns:
        The ``classification_metrics`` of the split.
    """
    eval_step = train.make_eval_step(run.model_cfg)
    batches = data.batches(arrays, batch_size, shuffle=False, seed=0, epoch=0)
    return classification_metrics(train.evaluate_counts(eval_step, run.params, batches))


def predict_probabilities(run: Run, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positive-class probabilities ``sigmoid(logits)`` for encoded, padded texts.

    Args:
        run: the trained run.
        tokens: [N, T] int32 ids.
        lengths: [N] int32 real tokens per row.

    Returns:
        [N] float32 probabilities.
    """
    spec = run.model_cfg.spec

    @jax.jit
    def probabilities(params, tokens, lengths):
        logits = models.apply_model(spec, params, tokens, lengths if run.model_cfg.use_lengths else None)
        return jax.nn.sigmoid(logits)

    return np.asarray(probabilities(run.params, jnp.asarray(tokens), jnp.asarray(lengths)))


def encode_texts(
    texts: Sequence[str], data_cfg: ml_collections.ConfigDict, vocab: text.Vocabulary
) -> tuple[np.ndarray, np.ndarray]:
    """Tokenizes, encodes and pads raw texts as ``data.load_splits`` does with the same ``config.data``.

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
        run: the trained run (its directory holds the vocabulary).
        texts: raw review texts.
        threshold: the probability above which a text is positive.

    Returns:
        One ``{"text", "label" ("positive"/"negative"), "probability" (of positive)}`` per text.

    Raises:
        ValueError: for no texts.
    """
    if not texts:
        raise ValueError("no texts to classify; pass texts as arguments, --input_file or standard input.")
    tokens, lengths = encode_texts(texts, run.config.data, text.load_vocabulary(run.workdir))
    probabilities = predict_probabilities(run, tokens, lengths)
    return [
        {"text": text, "label": "positive" if p > threshold else "negative", "probability": float(p)}
        for text, p in zip(texts, probabilities)
    ]
