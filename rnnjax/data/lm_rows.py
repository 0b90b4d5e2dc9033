"""A language model's data: reviews tokenized and cut into next-word rows, with held-out validation rows.

Each review is tokenized as for the classifier (``text.py``), encoded with the start id first and cut into
rows of at most ``data.maxlen`` ids that overlap by one id, so every next-word target is predicted exactly
once. Validation rows come from held-out reviews. The vocabulary (with the start id) is fitted on the training
reviews, or read from a run directory when resuming. Training on the rows is ``training/language_model.py``'s
job.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from rnnjax.data import datasets, synthetic, text

_VALIDATION_STREAM = 2  # SeedSequence stream of the held-out reviews (as datasets.py's validation stream)


def _read_texts(data_cfg: ml_collections.ConfigDict, *, seed: int) -> tuple[str, list[str]]:
    """Returns (dataset name, review texts) for the language model: IMDB's configured splits or synthetic."""
    if data_cfg.name == "imdb_reviews":
        read = datasets.read_imdb(
            data_dir=data_cfg.data_dir, source_dir=data_cfg.source_dir or None, splits=tuple(data_cfg.splits)
        )
        return "imdb_reviews", [t for split in data_cfg.splits for t in read[split][0]]
    if data_cfg.name != "synthetic":
        raise ValueError(f"config.data.name must be imdb_reviews or synthetic, got {data_cfg.name!r}.")
    texts, _ = synthetic.generate_reviews(
        int(data_cfg.synthetic_examples),
        seed=seed,
        length=int(data_cfg.synthetic_length),
        distance=int(data_cfg.synthetic_distance),
    )
    return "synthetic", list(texts)


def make_rows(sequences: Iterable[list[int]], maxlen: int) -> dict[str, np.ndarray]:
    """Cuts id sequences into right-padded rows of at most ``maxlen`` ids that overlap by one id.

    Row k of a sequence holds ids ``k * (maxlen - 1)`` to ``k * (maxlen - 1) + maxlen``, so the last id of a
    row is the first of the next and every next-word target of the sequence is in exactly one row. Sequences
    of fewer than two ids give no row.

    Args:
        sequences: id lists.
        maxlen: T >= 2.

    Returns:
        ``{"tokens": [N, T] int32, "lengths": [N] int32, "label": [N] int32 zeros}`` (the batch layout of
        ``data.batches``, whose padding rows get label -1 and length 0).

    Raises:
        ValueError: for maxlen < 2.
    """
    if maxlen < 2:
        raise ValueError(f"config.data.maxlen must be >= 2 for a language model, got {maxlen}.")
    chunks = [
        seq[start : start + maxlen]
        for seq in sequences
        for start in range(0, max(len(seq) - 1, 0), maxlen - 1)
    ]
    return {
        "tokens": text.pad_sequences(chunks, maxlen, padding="post", truncating="post"),
        "lengths": text.sequence_lengths(chunks, maxlen),
        "label": np.zeros(len(chunks), np.int32),
    }


def load_lm_splits(
    data_cfg: ml_collections.ConfigDict, *, seed: int, workdir: str | Path | None = None
) -> dict[str, Any]:
    """Reads, tokenizes and encodes the language model's reviews into training and validation rows.

    Args:
        data_cfg: ``config.data``.
        seed: ``config.seed``; it fixes the held-out reviews (and the synthetic texts).
        workdir: a directory whose ``vocabulary.json`` is used when present (a resumed run); nothing is
        written.

    Returns:
        ``{"train", "validation"}`` rows (see ``make_rows``), ``"vocabulary"``, ``"name"`` and
        ``"reviews"`` (reviews per split).

    Raises:
        ValueError, DataError: for invalid settings or data.
    """
    if not 0 <= data_cfg.validation_split < 1:
        raise ValueError(f"config.data.validation_split={data_cfg.validation_split} must be in [0, 1).")
    name, texts = _read_texts(data_cfg, seed=seed)
    if data_cfg.max_reviews:
        order = np.random.default_rng([seed, _VALIDATION_STREAM, 1]).permutation(len(texts))
        texts = [texts[i] for i in np.sort(order[: int(data_cfg.max_reviews)])]
    words = text.tokenize(texts, method=data_cfg.tokenizer, strip_html=data_cfg.strip_html)
    order = np.random.default_rng([seed, _VALIDATION_STREAM]).permutation(len(words))
    num_kept = int(len(words) * (1 - data_cfg.validation_split))
    train_words = [words[i] for i in np.sort(order[:num_kept])]
    validation_words = [words[i] for i in np.sort(order[num_kept:])]
    if workdir is not None and (Path(workdir) / text.VOCABULARY_FILE).exists():
        vocab = text.load_vocabulary(workdir)
    else:
        vocab = text.fit_vocabulary(train_words, int(data_cfg.num_words), oov=True, start=True)
    maxlen = int(data_cfg.maxlen)
    return {
        "train": make_rows((text.encode(vocab, ws) for ws in train_words), maxlen),
        "validation": make_rows((text.encode(vocab, ws) for ws in validation_words), maxlen),
        "vocabulary": vocab,
        "name": name,
        "reviews": {"train": len(train_words), "validation": len(validation_words)},
    }
