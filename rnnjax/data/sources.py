"""Data sources through tensorflow-datasets (without TensorFlow): builders, file readers and the IMDB download.

* ``prepare_imdb(*, data_dir, source_dir=None)``: IMDB's ``train`` / ``test`` (25,000 each, neg=0, pos=1) and
  ``unsupervised`` (50,000, label -1) splits as random-access array_record sources; the text is stripped of
  surrounding ASCII whitespace, as TFDS' own builder does. Sources, in order: this builder's data already
  prepared under ``data_dir``; TFDS' stock ``imdb_reviews/plain_text/1.0.0`` prepared there as array_record;
  the local copy ``source_dir`` (the original ``aclImdb_v1.tar.gz`` or any aclImdb-layout tarball, an extracted
  ``aclImdb/`` folder, or a folder of ``train/test/unsup.jsonl.gz``); the official download (checksum-verified).
* ``prepare_reviews_file(path, *, data_dir, ...)``: a JSON-lines (``.jsonl``, ``.json``, ``.ndjson``,
  optionally ``.gz``) or CSV/TSV file of (text, label) rows as one ``train`` source in file order, prepared
  once per file version.
* ``read_source(source) -> (texts, labels)``: every record of a prepared source.

The prepared IMDB records are in TFDS' deterministic key-hashed order, the same from every local source. Every
reader raises ``DataError`` (``rnnjax.data.text``) with one line naming the file, line and problem. Splitting,
the vocabulary and batching live in ``datasets.py``.
"""

import csv
import gzip
import hashlib
import json
import re
import socket
import tarfile
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from rnnjax.data.text import DataError

IMDB_URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
IMDB_SIZE = 84_125_825
LABEL_NAMES = ("neg", "pos")

# Split -> (aclImdb folder, class folders) and the JSON-lines file name.
_IMDB_DIRS = {
    "train": ("train", ("neg", "pos")),
    "test": ("test", ("neg", "pos")),
    "unsupervised": ("train", ("unsup",)),
}
_IMDB_JSONL = {"train": "train", "test": "test", "unsupervised": "unsup"}
_IMDB_MEMBER = re.compile(r"(?:.*/)?aclImdb/((train|test)/(neg|pos|unsup)/[^/]+)\.txt")
_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() removes, as in TFDS' imdb_reviews


def _reviews_info(
    builder: tfds.core.DatasetBuilder, description: str, **kwargs: Any
) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=builder,
        description=description,
        features=tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=LABEL_NAMES)}
        ),
        supervised_keys=("text", "label"),
        **kwargs,
    )


class ImdbReviews(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """TFDS builder for IMDB without TensorFlow: the (text, label) records of stock ``imdb_reviews``."""

    name = "rnnjax_imdb_reviews"
    VERSION = tfds.core.Version("1.0.0")
    # The stock builder's registered checksum, so a download (or a file in the download cache) is verified.
    url_infos: ClassVar = {
        IMDB_URL: tfds.core.download.checksums.UrlInfo(IMDB_SIZE, IMDB_SHA256, "aclImdb_v1.tar.gz")
    }

    def __init__(self, *, source_dir: str | Path | None = None, **kwargs: Any):
        self._source_dir = Path(source_dir).expanduser() if source_dir else None
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return _reviews_info(
            self,
            "Large Movie Review Dataset (Maas et al., 2011).",
            homepage="http://ai.stanford.edu/~amaas/data/sentiment/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        kind, path = (
            _imdb_layout(self._source_dir) if self._source_dir else ("tar", _download_imdb(dl_manager))
        )
        if kind == "tar":
            rows = _read_imdb_tar(path)  # one pass over the archive for all splits (three take 3x as long)
        else:
            read = _read_imdb_jsonl if kind == "jsonl" else _read_imdb_folder
            rows = {split: read(path, split) for split in _IMDB_DIRS}
        return {split: self._generate_examples(rows[split]) for split in _IMDB_DIRS}

    def _generate_examples(
        self, rows: Iterable[tuple[str, str, int]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, review, label in rows:
            yield key, {"text": review.strip(_ASCII_WHITESPACE), "label": label}


class ReviewsFile(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """TFDS builder for a JSON-lines or CSV/TSV file of (text, label) rows: one ``train`` split, file order.

    The config name holds a digest of the file's content and the reading options, so each file version is
    prepared once under ``data_dir`` and a changed file is prepared anew.
    """

    name = "rnnjax_reviews_file"
    VERSION = tfds.core.Version("1.0.0")

    def __init__(
        self, *, path: str | Path, text_column: str, label_column: str, delimited: bool, **kwargs: Any
    ):
        self._path = Path(path).expanduser()
        self._options = (text_column, label_column, delimited)
        digest = hashlib.sha256(repr(self._options).encode())
        try:
            with open(self._path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as e:
            raise DataError(f"{self._path}: cannot read ({e.strerror or e})") from None
        slug = re.sub(r"[^A-Za-z0-9]+", "_", self._path.name).strip("_")
        config = tfds.core.BuilderConfig(
            name=f"{slug}-{digest.hexdigest()[:16]}", description=str(self._path)
        )
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return _reviews_info(self, f"Reviews read from {self._path}.", disable_shuffling=True)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        text_column, label_column, delimited = self._options
        read = _read_csv if delimited else _read_jsonl
        for line, review, label, _ in read(self._path, text_column, label_column, (0, 1)):
            yield line, {"text": review, "label": label}


def prepare_imdb(*, data_dir: str | Path, source_dir: str | Path | None = None) -> Mapping[str, Sequence]:
    """Prepares IMDB once under ``data_dir`` (see the module docstring for the sources) and opens it.

    Args:
      data_dir: the TFDS data directory.
      source_dir: a local copy: a tarball, an ``aclImdb/`` folder (or its parent), a folder of jsonl.gz files.

    Returns:
      ``{"train", "test", "unsupervised"}``: random-access sources of ``{"text": bytes, "label": int}``.

    Raises:
      DataError: if the source is missing, unreadable or malformed, or the download fails.
    """
    data_dir = Path(data_dir).expanduser()
    builder = ImdbReviews(data_dir=data_dir, source_dir=source_dir, file_format="array_record")
    if not builder.is_prepared():
        stock = data_dir / "imdb_reviews" / "plain_text" / "1.0.0"
        if (stock / "dataset_info.json").exists():
            stock_builder = tfds.builder_from_directory(stock)
            if stock_builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
                return stock_builder.as_data_source()
            logging.info("%s is not array_record (reading it needs TensorFlow); preparing anew", stock)
        builder.download_and_prepare()
    return builder.as_data_source()


def prepare_reviews_file(
    path: str | Path,
    *,
    data_dir: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    delimited: bool | None = None,
) -> Sequence:
    """Prepares a reviews file once under ``data_dir`` and opens it.

    Args:
      path: a JSON-lines or CSV/TSV file, optionally gzip'd.
      data_dir: the TFDS data directory.
      text_column: the field or column holding the text.
      label_column: the field or column holding the label, 0 or 1.
      delimited: read as CSV/TSV; None decides by the file name (JSON lines for .jsonl, .json, .ndjson).

    Returns:
      A random-access source of ``{"text": bytes, "label": int}`` in file order.

    Raises:
      DataError: if the file is missing, unreadable or malformed, or a label is not 0 or 1.
    """
    path = Path(path).expanduser()
    if delimited is None:
        delimited = not path.name.removesuffix(".gz").endswith(_JSON_SUFFIXES)
    builder = ReviewsFile(
        path=path,
        text_column=text_column,
        label_column=label_column,
        delimited=delimited,
        data_dir=Path(data_dir).expanduser(),
        file_format="array_record",
    )
    builder.download_and_prepare()
    return builder.as_data_source()["train"]


def read_source(source: Sequence) -> tuple[list[str], np.ndarray]:
    """Every record of a prepared source as (texts, labels [N] int32), in the source's order."""
    records = source.__getitems__(range(len(source)))
    return [r["text"].decode("utf-8") for r in records], np.array([r["label"] for r in records], np.int32)


# Readers. Each yields validated rows and raises DataError naming the file (and line) for anything else.


def _open_binary(path: Path):
    """Opens a file for reading bytes, gunzipping ``.gz``; a missing or unreadable file is a DataError."""
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e})") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yields (1-based line number, decoded line); bad UTF-8 or a corrupt or truncated gzip is a DataError."""
    line = 0
    try:
        with _open_binary(path) as f:
            for line, raw in enumerate(f, 1):
                try:
                    decoded = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(
                        f"{path}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                    ) from None
                yield line, decoded.removeprefix("\ufeff") if line == 1 else decoded
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}:{line + 1}: cannot read ({type(e).__name__}: {e})") from None


def _label(value: Any, allowed: tuple[int, ...], where: str) -> int:
    """Parses a label given as an integer or a string of digits and checks it is allowed."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise DataError(f"{where}: label {value!r} is not {' or '.join(map(str, allowed))}")
    return value


def _read_jsonl(
    path: Path, text_field: str, label_field: str, allowed: tuple[int, ...]
) -> Iterator[tuple[int, str, int, dict]]:
    """Yields (line, text, label, row) for each non-blank line of a JSON-lines file."""
    for line, raw in _lines(path):
        if not raw.strip():
            continue
        where = f"{path}:{line}"
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: truncated or malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, found {type(row).__name__}")
        missing = [k for k in (text_field, label_field) if k not in row]
        if missing:
            raise DataError(f"{where}: missing field {' and '.join(map(repr, missing))}")
        if not isinstance(row[text_field], str):
            raise DataError(
                f"{where}: field {text_field!r} is {type(row[text_field]).__name__}, not a string"
            )
        yield line, row[text_field], _label(row[label_field], allowed, where), row


def _read_csv(
    path: Path, text_column: str, label_column: str, allowed: tuple[int, ...]
) -> Iterator[tuple[int, str, int, dict]]:
    """Yields (line, text, label, row) for each row of a CSV (TSV for .tsv, .tab) file with a header line."""
    delimiter = "\t" if path.name.removesuffix(".gz").endswith((".tsv", ".tab")) else ","
    reader = csv.reader((raw for _, raw in _lines(path)), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file, expected a header line naming the columns")
        missing = [c for c in (text_column, label_column) if c not in header]
        if missing:
            raise DataError(
                f"{path}:1: no column {' or '.join(map(repr, missing))} (columns: {', '.join(header)})"
            )
        for fields in reader:
            where = f"{path}:{reader.line_num}"
            if not fields:
                continue
            if len(fields) != len(header):
                raise DataError(
                    f"{where}: {len(fields)} fields, expected {len(header)} (truncated or malformed row)"
                )
            row = dict(zip(header, fields))
            yield reader.line_num, row[text_column], _label(row[label_column], allowed, where), row
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def _imdb_layout(source: Path) -> tuple[str, Path]:
    """Finds what ``source`` holds: ("jsonl" | "folder" | "tar", path)."""
    if source.is_file():
        return ("jsonl", source.parent) if source.name.endswith(".jsonl.gz") else ("tar", source)
    candidates = (
        ("jsonl", source, source / "train.jsonl.gz"),
        ("folder", source / "aclImdb", source / "aclImdb" / "train"),
        ("folder", source, source / "train" / "neg"),
        ("tar", source / "aclImdb_v1.tar.gz", source / "aclImdb_v1.tar.gz"),
    )
    for kind, path, marker in candidates:
        if marker.exists():
            return kind, path
    if not source.exists():
        raise DataError(f"{source}: not found (config.data.source_dir)")
    raise DataError(
        f"{source}: no IMDB copy here (expected train.jsonl.gz, an aclImdb/ folder or aclImdb_v1.tar.gz)"
    )


def _read_imdb_jsonl(folder: Path, split: str) -> Iterator[tuple[str, str, int]]:
    path = folder / f"{_IMDB_JSONL[split]}.jsonl.gz"
    allowed = (-1,) if split == "unsupervised" else (0, 1)
    for line, review, label, row in _read_jsonl(path, "text", "label", allowed):
        yield str(row.get("id", f"{split}/{line}")), review, label


def _imdb_review(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def _read_imdb_folder(root: Path, split: str) -> Iterator[tuple[str, str, int]]:
    directory, classes = _IMDB_DIRS[split]
    for cls in classes:
        files = sorted((root / directory / cls).glob("*.txt"))
        if not files:
            raise DataError(f"{root / directory / cls}: no .txt reviews (an incomplete aclImdb folder?)")
        for file in files:
            try:
                raw = file.read_bytes()
            except OSError as e:
                raise DataError(f"{file}: cannot read ({e.strerror})") from None
            yield f"{directory}/{cls}/{file.stem}", _imdb_review(raw, str(file)), _class_label(cls)


def _read_imdb_tar(path: Path) -> dict[str, list[tuple[str, str, int]]]:
    rows = {(directory, cls): [] for directory, classes in _IMDB_DIRS.values() for cls in classes}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                match = _IMDB_MEMBER.fullmatch(member.name)
                if match and member.isfile() and (match[2], match[3]) in rows:
                    review = _imdb_review(archive.extractfile(member).read(), f"{path}:{member.name}")
                    rows[match[2], match[3]].append((match[1], review, _class_label(match[3])))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar archive ({type(e).__name__}: {e})") from None
    for (directory, cls), found in rows.items():
        if not found:
            raise DataError(f"{path}: no aclImdb/{directory}/{cls}/*.txt members (not an aclImdb archive?)")
    return {
        split: [r for cls in classes for r in rows[directory, cls]]
        for split, (directory, classes) in _IMDB_DIRS.items()
    }


def _class_label(cls: str) -> int:
    return -1 if cls == "unsup" else LABEL_NAMES.index(cls)


def _download_imdb(dl_manager: tfds.download.DownloadManager) -> Path:
    """Downloads the official archive through TFDS (checksum-verified), failing fast when offline."""
    cached = Path(dl_manager.download_dir) / tfds.core.download.resource.get_dl_fname(IMDB_URL, IMDB_SHA256)
    if not cached.exists():
        # TFDS retries a failed connection for minutes; a quick probe makes "offline" a prompt DataError.
        try:
            socket.create_connection((urllib.parse.urlsplit(IMDB_URL).hostname, 80), timeout=10).close()
        except OSError as e:
            raise DataError(
                f"{IMDB_URL}: cannot connect ({e}); set config.data.source_dir to a local copy"
            ) from None
    try:
        return Path(dl_manager.download(IMDB_URL))
    except Exception as e:  # noqa: BLE001 - network errors and a wrong checksum alike: IMDB cannot be had
        raise DataError(f"{IMDB_URL}: download failed ({type(e).__name__}: {e})") from None

