"""Datasets as padded splits and fixed-shape NumPy batches: splitting, class ids, vocabulary, batching, stats.

Public API:

* ``load_splits(data_cfg, *, seed, workdir=None) -> dict``: ``config.data`` as padded train, validation and
  test arrays, the vocabulary (fitted on the training part only) and the class names; kept by ``cache.py``.
* ``batches(arrays, batch_size, *, shuffle, seed=0, epoch=0, drop_remainder=False) -> Iterator[Batch]``.
* ``describe_splits(data_cfg, *, seed) -> dict``: counts, label balance, lengths, OOV rate, maxlen coverage.
* ``save_classes(classes, workdir)``, ``load_classes(workdir)`` and ``CLASSES_FILE``: a run's class names
  (``workdir/classes.json``), defined in ``labels.py``; ``load_splits`` reads that file but never writes it.
* ``prepare_imdb`` and ``prepare_reviews_file``: the prepared TFDS sources (e.g. IMDB's ``unsupervised``
  split for a language model), defined in ``sources.py``.
* ``DataError`` (a ``ValueError``): bad input, with a one-line message naming the file, line and problem.

Datasets (``config.data.name``):

* ``imdb_reviews``: the Large Movie Review Dataset's train and test splits, from ``sources.prepare_imdb`` (see
  there for where it is read from). When it cannot be had and ``source_dir`` is empty,
  ``fallback_to_synthetic`` switches to ``synthetic`` with a warning in the log.
* ``amazon_reviews``: a JSON-lines (``.jsonl``, ``.json``, ``.ndjson``, optionally ``.gz``) or CSV/TSV file
  ``source_file`` of (text, label) rows; ``csv``: the same, always read as CSV (TSV for ``.tsv``, ``.tab``).
  Both are split into train and test by a seeded random ``test_split`` fraction (default 0.2: 80/20).
* ``synthetic``: ``rnnjax.data.synthetic.generate_reviews`` from ``seed``, nothing on disk, then split like a file.

Classes (``labels.assign_ids``): the names, in id order, are the run directory's ``classes.json`` when there
is one, else ``config.data.classes`` when set (a label outside them is a DataError), else the dataset's own:
IMDB's ``label`` is neg/pos and its ``rating`` (``data.label_column = "rating"``) the 8 star ratings 1-4 and
7-10; a file's or the synthetic set's labels are inferred from train+test: integers in numeric order as
``str(value)`` (so 0/1 stay 0/1, and other values get their rank), anything else as sorted strings.

The prepared IMDB records are in TFDS' deterministic key-hashed order, the same from every local source; a
reviews file keeps its row order. Validation is ``validation_split`` of the training part: a seeded random
subset (``validation_mode="random"``) or, as Keras' ``validation_split``, the last rows (``"last"``). Reviews
whose encoded sequence is empty (empty text, or nothing left after cleaning) are dropped; the count per split
is logged. Each split must hold at least 2 classes; with K > 2, a training split without some class is logged.
Reading sources lives in ``sources.py``, label values and class names in ``labels.py``, the text pipeline in
``text.py``, the cache of encoded splits in ``cache.py``; moving batches to the device is left to the loop.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from rnnjax.data import cache, reverse, synthetic, text
from rnnjax.data.labels import (  # noqa: F401 - the run's classes file, re-exported beside load_splits
    CLASSES_FILE,
    assign_ids,
    check_classes,
    load_classes,
    save_classes,
)
from rnnjax.data.sources import (  # noqa: F401 - prepare_* re-exported: the prepared sources
    LABEL_NAMES,
    imdb_copy,
    prepare_imdb,
    prepare_reviews_file,
    read_imdb,
    read_reviews_file,
)
from rnnjax.data.text import DataError, Vocabulary
from rnnjax.types import Batch

BATCH_KEYS = ("tokens", "lengths", "label")
SPLITS = ("train", "validation", "test")
DATASETS = ("imdb_reviews", "amazon_reviews", "csv", "synthetic")
IMDB_RATINGS = ("1", "2", "3", "4", "7", "8", "9", "10")  # IMDB's star ratings: 5 and 6 are left out
# Independent random streams per purpose: SeedSequence([seed, stream, ...]).
_TEST_STREAM, _VALIDATION_STREAM, _SHUFFLE_STREAM = 1, 2, 3


def load_splits(
    data_cfg: ml_collections.ConfigDict, *, seed: int, workdir: str | Path | None = None
) -> dict[str, Any]:
    """Loads the configured dataset as padded train, validation and test arrays.

    The vocabulary is fitted on the training part (after the validation rows are held out). With a
    ``workdir``, it is read from ``workdir/vocabulary.json`` when that exists (a resumed run) and written
    there otherwise; the class names are read from ``workdir/classes.json`` when that exists (never written
    here: the trainer calls ``save_classes``). With ``data_cfg.cache`` (the default), the result is kept
    under ``data_dir`` and read back by the next call with the same settings, source, classes and run
    vocabulary (``cache.py``); it is the same, array for array, as without the cache.

    Args:
      data_cfg: ``config.data`` (see ``rnnjax/configs/default.py``).
      seed: ``config.seed``; it fixes the test and validation splits and the synthetic data.
      workdir: the run directory, or None.

    Returns:
      ``{"train", "validation", "test"}`` each ``{"tokens": [N, T] int32, "lengths": [N] int32,
      "label": [N] int32}`` with T = ``maxlen``, lengths in ``[1, T]`` and labels in ``[0, K)``;
      ``"vocabulary"``: the Vocabulary, whose ``size`` (<= ``num_words``) is the embedding's input dimension
      V; ``"classes"``: the K class names in id order (tuple of str); ``"name"``: the dataset used;
      ``"source"``: where it was read (the file for amazon_reviews/csv, IMDB's prepared copy, "synthetic").

    Raises:
      DataError: for unusable data (see ``DataError``), a label outside the fixed classes, a damaged
        ``classes.json`` or one that disagrees with ``config.data.classes``; ValueError: for an invalid
        ``data_cfg`` value.
    """
    _check_config(data_cfg)
    backwards = reverse.reads_reversed(data_cfg)
    fixed = _fixed_classes(data_cfg, workdir)
    has_vocab = workdir is not None and (Path(workdir) / text.VOCABULARY_FILE).exists()
    own_vocab = text.load_vocabulary(workdir) if has_vocab else None
    use_cache = bool(data_cfg.get("cache", True))
    key_args = {"seed": seed, "classes": fixed and fixed[0], "vocabulary": own_vocab}
    key = cache.splits_key(data_cfg, **key_args) if use_cache else None
    out = cache.load(data_cfg.data_dir, key) if key is not None else None
    for note in out.pop("notes") if out is not None else ():
        logging.warning("%s", note)
    if out is None:
        notes: list[str] = []
        out = _encode_splits(data_cfg, seed=seed, fixed=fixed, vocab=own_vocab, notes=notes)
        if use_cache and (key := cache.splits_key(data_cfg, **key_args)) is not None:  # the copy just read
            cache.save(data_cfg.data_dir, key, out, notes)
    if backwards:  # after the cache, which keeps forward rows
        for split in SPLITS:
            out[split] = {**out[split], "tokens": reverse.reverse_rows(out[split]["tokens"], out[split]["lengths"])}
    if workdir is not None and own_vocab is None:
        text.save_vocabulary(out["vocabulary"], workdir)
    counts = ", ".join(f"{s} {len(out[s]['label'])}" for s in SPLITS)
    logging.info("%s: %s examples; %d classes; vocabulary size %d", out["name"], counts, len(out["classes"]),
                 out["vocabulary"].size)
    return out


def _encode_splits(
    data_cfg: ml_collections.ConfigDict,
    *,
    seed: int,
    fixed: tuple[tuple[str, ...], str] | None,
    vocab: Vocabulary | None,
    notes: list[str],
) -> dict[str, Any]:
    """Reads, tokenizes and encodes the splits (no cache); warnings are also put in ``notes``."""
    name, source, classes, words = _tokenized_splits(data_cfg, seed=seed, fixed=fixed)
    vocab = _fit(words["train"][0], data_cfg) if vocab is None else vocab
    out: dict[str, Any] = {"vocabulary": vocab, "classes": classes, "name": name, "source": source}
    pad = {"maxlen": data_cfg.maxlen, "padding": data_cfg.padding, "truncating": data_cfg.truncating}
    for split, (split_words, labels) in words.items():
        ids, labels = _encode_split(split_words, labels, vocab, classes, source=source, split=split,
                                    notes=notes)
        out[split] = {
            "tokens": text.pad_sequences(ids, **pad),
            "lengths": text.sequence_lengths(ids, data_cfg.maxlen),
            "label": labels,
        }
    return out


def batches(
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    drop_remainder: bool = False,
) -> Iterator[Batch]:
    """Yields fixed-shape batches; the final partial batch is padded (or dropped with ``drop_remainder``).

    Padding rows have tokens 0, lengths 0 and label -1, so counting only ``label >= 0`` counts real examples.
    The order is a pure function of ``(seed, epoch)`` when shuffling, the array order otherwise.

    Args:
      arrays: ``{"tokens": [N, T] int32, "lengths": [N] int32, "label": [N] int32}`` from ``load_splits``.
      batch_size: B.
      shuffle: permute the examples (training).
      seed: the shuffling seed (``config.seed``), >= 0.
      epoch: the epoch, >= 0; each epoch has its own permutation.
      drop_remainder: drop the final partial batch instead of padding it (a training choice).

    Yields:
      ``{"tokens": [B, T] int32, "lengths": [B] int32, "label": [B] int32}``.

    Raises:
      ValueError: for ``batch_size < 1`` or arrays of different lengths N.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    n = len(arrays["label"])
    if any(len(arrays[k]) != n for k in BATCH_KEYS):
        raise ValueError(
            f"arrays have lengths {[len(arrays[k]) for k in BATCH_KEYS]} for {BATCH_KEYS}: expected equal"
        )
    order = np.random.default_rng([seed, _SHUFFLE_STREAM, epoch]).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_remainder else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        batch = {k: arrays[k][idx] for k in BATCH_KEYS}
        if fill := batch_size - len(idx):  # padding rows: tokens 0, lengths 0, label -1
            batch = {k: np.pad(v, [(0, fill)] + [(0, 0)] * (v.ndim - 1), constant_values=-(k == "label"))
                     for k, v in batch.items()}
        yield batch


def describe_splits(data_cfg: ml_collections.ConfigDict, *, seed: int) -> dict[str, Any]:
    """Statistics of the configured dataset, as ``load_splits`` would build it (never from the cache).

    Args:
      data_cfg: ``config.data``.
      seed: ``config.seed``.

    Returns:
      ``{"name", "vocab_size", "maxlen", "classes", "splits"}``; ``classes``: the K class names in id order;
      ``splits[split]`` has ``examples``, ``label_counts`` ([K] int: examples per class id), ``lengths`` ([N]
      int32 ids per review before truncation), ``length_percentiles`` ({50, 90, 95, 99, 100: ids}),
      ``oov_rate`` (fraction of words outside the vocabulary), ``maxlen_coverage`` (fraction of reviews no
      longer than maxlen) and ``token_coverage`` (fraction of ids kept).

    Raises:
      DataError, ValueError: as ``load_splits``.
    """
    _check_config(data_cfg)
    fixed = _fixed_classes(data_cfg, None)
    name, source, classes, words = _tokenized_splits(data_cfg, seed=seed, fixed=fixed)
    vocab = _fit(words["train"][0], data_cfg)
    quantiles = (50, 90, 95, 99, 100)
    splits = {}
    for split, (split_words, labels) in words.items():
        ids, labels = _encode_split(split_words, labels, vocab, classes, source=source, split=split, notes=[])
        lengths = text.sequence_lengths(ids)
        num_words = sum(map(len, split_words))
        num_oov = sum(w not in vocab.index for ws in split_words for w in ws)
        splits[split] = {
            "examples": len(labels),
            "label_counts": np.bincount(labels, minlength=len(classes)),
            "lengths": lengths,
            "length_percentiles": dict(
                zip(quantiles, np.percentile(lengths, quantiles) if len(lengths) else [np.nan] * 5)
            ),
            "oov_rate": num_oov / max(num_words, 1),
            "maxlen_coverage": float(np.mean(lengths <= data_cfg.maxlen)),
            "token_coverage": float(np.minimum(lengths, data_cfg.maxlen).sum() / max(lengths.sum(), 1)),
        }
    return {"name": name, "vocab_size": vocab.size, "maxlen": data_cfg.maxlen, "classes": classes,
            "splits": splits}


def _fit(train_words: list[list[str]], data_cfg: ml_collections.ConfigDict) -> Vocabulary:
    return text.fit_vocabulary(
        train_words, data_cfg.num_words, oov=data_cfg.oov_token, start=data_cfg.start_token
    )


def _tokenized_splits(
    data_cfg: ml_collections.ConfigDict, *, seed: int, fixed: tuple[tuple[str, ...], str] | None
) -> tuple[str, str, tuple[str, ...], dict[str, tuple[list[list[str]], np.ndarray]]]:
    """Returns (dataset name, source for messages, class names, {split: (word lists, class ids)})."""
    name, source, classes, (train_texts, train_labels), test = _load_texts(data_cfg, seed=seed, fixed=fixed)
    rng = np.random.default_rng([seed, _VALIDATION_STREAM]) if data_cfg.validation_mode == "random" else None
    train, validation = _hold_out(train_texts, train_labels, data_cfg.validation_split, rng)
    tokenize = {"method": data_cfg.tokenizer, "strip_html": data_cfg.strip_html}
    splits = {"train": train, "validation": validation, "test": test}
    return (
        name,
        source,
        classes,
        {s: (text.tokenize(texts, **tokenize), labels) for s, (texts, labels) in splits.items()},
    )


def _fixed_classes(
    data_cfg: ml_collections.ConfigDict, workdir: str | Path | None
) -> tuple[tuple[str, ...], str] | None:
    """(class names, where they come from): the run's classes.json, else config.data.classes, else None."""
    configured = tuple(data_cfg.get("classes", ()))
    saved = load_classes(workdir) if workdir is not None else None
    if saved is None:
        return (configured, "config.data.classes") if configured else None
    path = Path(workdir) / CLASSES_FILE
    if configured and configured != saved:
        raise DataError(
            f"{path}: the run's classes ({', '.join(saved)}) differ from config.data.classes "
            f"({', '.join(configured)})"
        )
    return saved, str(path)


def _check_config(data_cfg: ml_collections.ConfigDict) -> None:
    """Rejects invalid values before any data is read, naming the config field."""
    choices = {
        "name": DATASETS,
        "validation_mode": ("random", "last"),
        "padding": ("pre", "post"),
        "truncating": ("pre", "post"),
        "tokenizer": ("keras", "porter"),
    }
    for field, allowed in choices.items():
        if data_cfg[field] not in allowed:
            raise ValueError(f"config.data.{field}={data_cfg[field]!r} is not one of {', '.join(allowed)}")
    if not isinstance(data_cfg.maxlen, int) or data_cfg.maxlen < 1:
        raise ValueError(f"config.data.maxlen={data_cfg.maxlen!r} must be an integer >= 1")
    for field in ("validation_split", "test_split"):
        if not 0 <= data_cfg[field] < 1:
            raise ValueError(f"config.data.{field}={data_cfg[field]} must be in [0, 1)")
    classes = data_cfg.get("classes", ())
    if classes and (problem := check_classes(classes)):
        raise ValueError(f"config.data.classes={classes!r}: {problem}")
    if data_cfg.name == "imdb_reviews" and data_cfg.label_column not in ("label", "rating"):
        raise ValueError(
            f"config.data.label_column={data_cfg.label_column!r}: imdb_reviews has label (neg/pos) or rating"
        )


def _load_texts(
    data_cfg: ml_collections.ConfigDict, *, seed: int, fixed: tuple[tuple[str, ...], str] | None
) -> tuple[str, str, tuple[str, ...], tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    """Returns (dataset name, source for messages, class names, train (texts, ids), test (texts, ids))."""
    name, field = data_cfg.name, data_cfg.label_column
    if name == "imdb_reviews":
        read = read_imdb(data_dir=data_cfg.data_dir, source_dir=data_cfg.source_dir or None, label_field=field)
        copy = imdb_copy(data_cfg.data_dir, with_rating=field == "rating")  # the prepared copy just read
        return name, f"{name} ({copy})", *_imdb_classes(read["train"], read["test"], field, fixed)
    if name in ("amazon_reviews", "csv"):
        if not data_cfg.source_file:
            raise ValueError(
                f"config.data.source_file is empty: {name} needs a JSON-lines or CSV file of reviews"
            )
        texts, labels = read_reviews_file(
            data_cfg.source_file,
            data_dir=data_cfg.data_dir,
            text_column=data_cfg.text_column,
            label_column=data_cfg.label_column,
            delimited=True if name == "csv" else None,
        )
        source = str(data_cfg.source_file)
    else:  # synthetic
        texts, labels = synthetic.generate_reviews(
            data_cfg.synthetic_examples,
            seed=seed,
            length=data_cfg.synthetic_length,
            distance=data_cfg.synthetic_distance,
        )
        source = "synthetic"
    classes, origin = fixed or (None, "")
    classes, ids = assign_ids(labels, classes=classes, origin=origin, where=source)
    train, test = _hold_out(texts, ids, data_cfg.test_split, np.random.default_rng([seed, _TEST_STREAM]))
    return name, source, classes, train, test


def _imdb_classes(
    train: tuple[list[str], list[int]],
    test: tuple[list[str], list[int]],
    field: str,
    fixed: tuple[tuple[str, ...], str] | None,
) -> tuple[tuple[str, ...], tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    """IMDB's labels as class ids: neg/pos for ``label``, the 8 star ratings for ``rating``, unless fixed."""
    values = [*train[1], *test[1]]
    if field == "rating" and (missing := sum(v < 0 for v in values)):
        raise DataError(f"imdb_reviews: {missing} train and test reviews have no rating in their names")
    if field == "label":
        names = dict(enumerate(LABEL_NAMES))
        values = [names.get(v, str(v)) for v in values]
    classes, origin = fixed or (LABEL_NAMES if field == "label" else IMDB_RATINGS, f"imdb_reviews' {field}")
    classes, ids = assign_ids(values, classes=classes, origin=origin, where="imdb_reviews")
    return classes, (train[0], ids[: len(train[1])]), (test[0], ids[len(train[1]) :])


def _hold_out(
    texts: list[str], labels: np.ndarray, fraction: float, rng: np.random.Generator | None
) -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    """Splits off ``fraction`` of the rows: random ones with ``rng``, else the last ones (as Keras)."""
    n = len(labels)
    num_kept = int(n * (1 - fraction))  # Keras' split_at
    order = np.arange(n) if rng is None else rng.permutation(n)
    parts = np.sort(order[:num_kept]), np.sort(order[num_kept:])
    return tuple(([texts[i] for i in idx], labels[idx]) for idx in parts)


def _encode_split(
    words: list[list[str]], labels: np.ndarray, vocab: Vocabulary, classes: tuple[str, ...], *, source: str,
    split: str, notes: list[str],
) -> tuple[list[list[int]], np.ndarray]:
    """Encodes, drops empty sequences, checks that 2 classes remain; warnings logged and put in ``notes``."""
    where = f"{source} {split}"
    ids = [text.encode(vocab, ws) for ws in words]
    keep = np.array([len(seq) > 0 for seq in ids], bool)
    if not keep.all():
        notes.append(f"{where}: dropped {(~keep).sum()} reviews with no word after the text pipeline")
        logging.warning("%s", notes[-1])
        ids, labels = [seq for seq, k in zip(ids, keep) if k], labels[keep]
    present = np.unique(labels)
    if len(labels) and len(present) < 2:
        raise DataError(
            f"{where}: all its {len(labels)} reviews have label {classes[labels[0]]}; "
            "a split needs at least 2 classes"
        )
    if split == "train" and len(classes) > 2 and len(present) < len(classes):
        absent = [c for i, c in enumerate(classes) if i not in present]
        notes.append(f"{where}: no review of class {', '.join(absent)} (of {len(classes)} classes)")
        logging.warning("%s", notes[-1])
    return ids, labels
