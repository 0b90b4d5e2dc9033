"""A language model's data: reviews tokenized and cut into next-word rows, with held-out validation rows.

Each sequence is tokenized as for the classifier (``text.py``), encoded with the start id first (and with
``data.end_token`` the end id last) and cut into rows of at most ``data.maxlen`` ids that overlap by one id,
so every next-word target is predicted exactly once. A sequence is a whole review (``data.unit = "review"``)
or one of its sentences (``"sentence"``, see ``split_sentences``). A backward model (``data.reverse``) reads
each encoded sequence from its last id to its first (the start id comes last), as ``reverse.reverse_rows``
gives a classifier's rows. Validation rows come from held-out reviews (all sentences of a review fall on one
side). The vocabulary (with the start id, and the end id when asked) is fitted on the training reviews, or
read from a run directory when resuming. Training on the rows is ``training/language_model.py``'s job.
"""

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from rnnjax.data import datasets, synthetic, text

_VALIDATION_STREAM = 2  # SeedSequence stream of the held-out reviews (as datasets.py's validation stream)
UNITS = ("review", "sentence")  # what one sequence of ``data.unit`` is
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+")


def split_sentences(review: str) -> list[str]:
    """Splits a text into sentences, each ending at ``.``, ``!`` or ``?`` followed by whitespace.

    HTML line breaks (``<br />``, IMDB's paragraph breaks) become spaces first, so they do not end a sentence.
    No abbreviation list: "Mr. Smith" is two sentences; and an end mark followed by a closing quote or bracket
    (``"Wow!" he said``) ends no sentence.

    Args:
        review: the raw text.

    Returns:
        The non-blank sentences, stripped, with their end marks, e.g. ``["Great film!", "Really."]`` for
        ``"Great film! <br /><br />Really."``.
    """
    return [s.strip() for s in _SENTENCE_BOUNDARY.split(_HTML_BREAK.sub(" ", review)) if s.strip()]


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


def _review_sequences(texts: list[str], unit: str, tokenizer: str, strip_html: bool) -> list[list[list[str]]]:
    """Per review, the word lists of its sequences (the review, or each sentence), empty ones dropped."""
    units = [split_sentences(t) for t in texts] if unit == "sentence" else [[t] for t in texts]
    words = text.tokenize([u for review in units for u in review], method=tokenizer, strip_html=strip_html)
    ends = np.cumsum([len(review) for review in units]).tolist()
    return [[ws for ws in words[start:end] if ws] for start, end in zip([0, *ends[:-1]], ends)]


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
        ``{"train", "validation"}`` rows (see ``make_rows``), ``"vocabulary"``, ``"name"``, ``"reviews"``
        (reviews per split) and ``"sequences"`` (non-empty reviews or sentences per split).

    Raises:
        ValueError, DataError: for invalid settings or data.
    """
    # Configs written before these options existed mean whole forward reviews without an end id.
    unit, end = data_cfg.get("unit", "review"), bool(data_cfg.get("end_token", False))
    direction = -1 if data_cfg.get("reverse", False) else 1  # a backward model reads every sequence reversed
    if unit not in UNITS:
        raise ValueError(f"config.data.unit must be one of {UNITS}, got {unit!r}.")
    if not 0 <= data_cfg.validation_split < 1:
        raise ValueError(f"config.data.validation_split={data_cfg.validation_split} must be in [0, 1).")
    name, texts = _read_texts(data_cfg, seed=seed)
    if data_cfg.max_reviews:
        order = np.random.default_rng([seed, _VALIDATION_STREAM, 1]).permutation(len(texts))
        texts = [texts[i] for i in np.sort(order[: int(data_cfg.max_reviews)])]
    reviews = _review_sequences(texts, unit, data_cfg.tokenizer, data_cfg.strip_html)
    order = np.random.default_rng([seed, _VALIDATION_STREAM]).permutation(len(reviews))
    num_kept = int(len(reviews) * (1 - data_cfg.validation_split))
    held_out = {"train": np.sort(order[:num_kept]), "validation": np.sort(order[num_kept:])}
    words = {split: [ws for i in kept for ws in reviews[i]] for split, kept in held_out.items()}
    if workdir is not None and (Path(workdir) / text.VOCABULARY_FILE).exists():
        vocab = text.load_vocabulary(workdir)
        if (vocab.end_id is not None) != end:
            raise ValueError(
                f"config.data.end_token={end}, but {Path(workdir) / text.VOCABULARY_FILE} was fitted "
                f"{'without' if end else 'with'} an end id; use the run's own config.json."
            )
    else:
        vocab = text.fit_vocabulary(words["train"], int(data_cfg.num_words), oov=True, start=True, end=end)
    maxlen = int(data_cfg.maxlen)
    encoded = {split: (text.encode(vocab, ws)[::direction] for ws in words[split]) for split in held_out}
    return {
        **{split: make_rows(encoded[split], maxlen) for split in held_out},
        "vocabulary": vocab,
        "name": name,
        "reviews": {split: len(kept) for split, kept in held_out.items()},
        "sequences": {split: len(words[split]) for split in held_out},
    }
