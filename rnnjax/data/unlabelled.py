"""Unlabelled reviews as training rows (label -1), for losses that need no label (virtual adversarial training).

IMDB's ``unsupervised`` split (50,000 reviews) is read like the labelled ones (``sources.read_imdb``), a seeded
subset is kept, and each review goes through the classifier's own text pipeline: its tokenizer, its vocabulary,
its padding and truncation. The synthetic data makes fresh unlabelled reviews from its own generator, for tests.
"""

from typing import Any

import ml_collections
import numpy as np

from rnnjax.data import synthetic, text
from rnnjax.data.sources import read_imdb
from rnnjax.data.text import Vocabulary

NO_LABEL = -1  # the label of a row that no classification loss counts
_UNLABELLED_STREAM = 3  # seed stream of the subset kept (datasets.py uses 0-2)


def unlabelled_rows(
    data_cfg: ml_collections.ConfigDict, vocab: Vocabulary, *, count: int, seed: int
) -> dict[str, np.ndarray]:
    """``count`` unlabelled reviews encoded as the classifier's rows: ``{"tokens" [N, T], "lengths" [N],
    "label" [N] = -1}``; reviews with no word left after the pipeline are dropped.

    Args:
        data_cfg: ``config.data`` (name, data_dir, source_dir, tokenizer, strip_html, maxlen, padding,
            truncating; synthetic_length and synthetic_distance for the synthetic data).
        vocab: the run's vocabulary (fitted on the labelled training reviews, or the language model's).
        count: reviews to keep, a seeded subset; -1 for all of them.
        seed: ``config.seed``.

    Raises:
        ValueError: for a dataset without unlabelled reviews (only imdb_reviews and synthetic have them) or a
            count below -1. DataError: as ``sources.read_imdb``.
    """
    if count < -1:
        raise ValueError(f"data.unlabelled={count} must be >= 0, or -1 for all the unlabelled reviews.")
    texts = _texts(data_cfg, count, seed)
    rng = np.random.default_rng([seed, _UNLABELLED_STREAM])
    if 0 <= count < len(texts):
        texts = [texts[i] for i in np.sort(rng.permutation(len(texts))[:count])]
    words = text.tokenize(texts, method=data_cfg.tokenizer, strip_html=data_cfg.strip_html)
    ids = [seq for seq in (text.encode(vocab, ws) for ws in words) if seq]
    pad: dict[str, Any] = {"maxlen": data_cfg.maxlen, "padding": data_cfg.padding, "truncating": data_cfg.truncating}
    return {
        "tokens": text.pad_sequences(ids, **pad),
        "lengths": text.sequence_lengths(ids, data_cfg.maxlen),
        "label": np.full(len(ids), NO_LABEL, np.int32),
    }


def _texts(data_cfg: ml_collections.ConfigDict, count: int, seed: int) -> list[str]:
    if data_cfg.name == "imdb_reviews":
        read = read_imdb(data_dir=data_cfg.data_dir, source_dir=data_cfg.source_dir or None, splits=("unsupervised",))
        return list(read["unsupervised"][0])
    if data_cfg.name == "synthetic":
        number = count if count >= 0 else int(data_cfg.synthetic_examples)
        texts, _ = synthetic.generate_reviews(
            number, seed=seed + 1_000_003, length=data_cfg.synthetic_length, distance=data_cfg.synthetic_distance
        )
        return list(texts)
    raise ValueError(
        f"data.unlabelled: {data_cfg.name} has no unlabelled reviews (imdb_reviews and synthetic do); set it to 0."
    )


def add_rows(split: dict[str, np.ndarray], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The split with ``rows`` appended (both ``{"tokens", "lengths", "label"}`` of the same width)."""
    return {name: np.concatenate([split[name], rows[name].astype(split[name].dtype)]) for name in split}


def word_counts(tokens: np.ndarray, vocab_size: int) -> tuple[int, ...]:
    """Occurrences of each id in ``[0, vocab_size)`` among ``tokens`` (padding id 0 counted 0)."""
    counts = np.bincount(np.asarray(tokens).ravel(), minlength=vocab_size)[:vocab_size]
    counts[0] = 0
    return tuple(int(c) for c in counts)
