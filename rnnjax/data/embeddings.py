"""Pretrained word vectors: reading GloVe / word2vec text files and building an Embedding table for a vocabulary.

A word-vector text file has one word per line followed by its E numbers, separated by spaces (GloVe); the
word2vec text format adds a first line ``<count> <E>``, which is recognised and skipped. Files may be gzip'd.
``embedding_matrix`` gives the vocabulary's words their vectors and every other row (unknown words, the
reserved ids) a random one, and reports the coverage. Keeping the table frozen during training is the
optimizer's job (``transfer.finetune_optimizer``); wiring into a run is ``transfer.init_state``.
"""

import gzip
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rnnjax.data.text import DataError, Vocabulary
from rnnjax.types import Params, PRNGKey


def _open_text(path: Path):
    try:
        return (
            gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")
        )
    except OSError as error:
        raise DataError(f"{path}: cannot read the word vectors ({error.strerror or error})") from None


def read_word_vectors(path: str | Path, *, words: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """Reads a GloVe or word2vec text file.

    Args:
        path: the file (``.gz`` is decompressed).
        words: keep only these words (saves memory for large files); None keeps all.

    Returns:
        word -> [E] float32 vector; the first occurrence of a repeated word wins.

    Raises:
        DataError: if the file is missing, empty, or has lines of different widths or non-numbers.
    """
    path = Path(path)
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with _open_text(path) as lines:
        try:
            for number, line in enumerate(lines, start=1):
                fields = line.rstrip().split(" ")
                if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    dim = int(fields[1])  # word2vec header: <count> <dim>
                    continue
                if len(fields) < 2:
                    continue
                if dim is None:
                    dim = len(fields) - 1
                if len(fields) < dim + 1:
                    raise DataError(
                        f"{path} line {number}: expected a word and {dim} numbers, got {len(fields)} fields"
                    )
                word = " ".join(fields[: len(fields) - dim])  # a few GloVe words contain spaces
                if word in vectors or (words is not None and word not in words):
                    continue
                try:
                    vectors[word] = np.asarray(fields[len(fields) - dim :], np.float32)
                except ValueError:
                    raise DataError(f"{path} line {number}: the vector of {word!r} is not numbers") from None
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: cannot read the word vectors ({error})") from None
    if dim is None:
        raise DataError(f"{path}: no word vectors found (expected lines 'word v1 v2 ...')")
    return vectors


def save_word_vectors(path: str | Path, words: list[str], vectors: np.ndarray) -> Path:
    """Writes words and their vectors as a GloVe text file (``word v1 ... vE`` per line).

    Args:
        path: the file to write.
        words: N words.
        vectors: [N, E] floats.

    Raises:
        ValueError: if the counts differ.
    """
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise ValueError(f"save_word_vectors: need [N={len(words)}, E] vectors, got {vectors.shape}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for word, row in zip(words, vectors):
            f.write(word + " " + " ".join(f"{v:.6g}" for v in row) + "\n")
    return path


def embedding_matrix(
    vocab: Vocabulary, vectors: Mapping[str, np.ndarray], *, embed_dim: int, key: PRNGKey, scale: float = 0.05
) -> tuple[np.ndarray, dict[str, Any]]:
    """A [V, E] table: the vocabulary's words that have a vector get it, every other row ``U(-scale, scale)``.

    Args:
        vocab: the run's vocabulary (row ``i`` is id ``i``).
        vectors: word -> [E] vector, e.g. from ``read_word_vectors``.
        embed_dim: E; every vector must have this size.
        key: PRNG key of the random rows (Keras' Embedding initialiser: uniform +-0.05).
        scale: half-width of the random rows.

    Returns:
        ``(table [V, E] float32, coverage)`` with coverage ``{"found", "words", "fraction", "missing"}``
        (``missing``: up to 20 of the most frequent words without a vector).

    Raises:
        ValueError: if a vector's size is not E.
    """
    table = np.array(
        jax.random.uniform(key, (vocab.size, embed_dim), minval=-scale, maxval=scale), np.float32
    )
    found, missing = 0, []
    for word, index in vocab.index.items():
        vector = vectors.get(word)
        if vector is None:
            if len(missing) < 20:
                missing.append(word)
            continue
        if vector.shape != (embed_dim,):
            raise ValueError(
                f"word vectors have size {vector.shape[-1]} but the Embedding has embed_dim={embed_dim}; set "
                f"model.embed_dim={vector.shape[-1]} or use a file with {embed_dim}-dimensional vectors."
            )
        table[index] = vector
        found += 1
    words = len(vocab.words)
    coverage = {"found": found, "words": words, "fraction": found / max(words, 1), "missing": missing}
    return table, coverage


def init_embedding(
    params: Params, vocab: Vocabulary, path: str | Path, *, key: PRNGKey, layer: str = "embedding"
) -> tuple[Params, dict[str, Any]]:
    """Replaces a model's embedding table by one built from a word-vector file for ``vocab``.

    Args:
        params: the model's parameters (``params[layer]["embeddings"]`` is [V, E]); not modified.
        vocab: the run's vocabulary; V must equal ``vocab.size``.
        path: the word-vector text file.
        key: PRNG key for the rows of words without a vector.
        layer: the Embedding layer's name.

    Returns:
        ``(new params, coverage)`` (see ``embedding_matrix``).

    Raises:
        ValueError: if the table's shape does not match the vocabulary or the vectors' size; DataError for a
        bad file.
    """
    current = params[layer]["embeddings"]
    if current.shape[0] != vocab.size:
        raise ValueError(
            f"init_embedding: the Embedding has {current.shape[0]} rows but the vocabulary has {vocab.size} ids; "
            "build the model with vocab_size=vocab.size."
        )
    vectors = read_word_vectors(path, words=set(vocab.index))
    table, coverage = embedding_matrix(vocab, vectors, embed_dim=current.shape[1], key=key)
    new = dict(params)
    new[layer] = {**params[layer], "embeddings": jax.numpy.asarray(table, current.dtype)}
    return new, coverage
