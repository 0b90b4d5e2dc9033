"""Data sources through tensorflow-datasets (without TensorFlow): builders, IMDB's local layouts and download.

* ``prepare_imdb(*, data_dir, source_dir=None, with_rating=False)``: IMDB's ``train`` / ``test`` (25,000
  each, label neg=0, pos=1) and ``unsupervised`` (50,000, label -1) splits as random-access array_record
  sources; text stripped of outer ASCII whitespace (as TFDS does), ``rating`` from the file name
  ``<n>_<rating>.txt`` (-1: none). Sources, in order: this builder's copy under ``data_dir``; unless
  ``with_rating``, an array_record copy without ratings (this builder's 1.0.0, TFDS' ``imdb_reviews``); the
  local copy ``source_dir`` (an aclImdb tarball or folder, a folder of ``*.jsonl.gz``); the download.
* ``prepare_reviews_file(path, *, data_dir, ...)``: a JSON-lines (``.jsonl``, ``.json``, ``.ndjson``, maybe
  ``.gz``) or CSV/TSV file of (text, label) rows as one ``train`` source in file order, prepared once per file
  version and columns; labels as read (``labels.parse_label``), so no class mapping is baked in.
* ``read_source(source, label_field="label") -> (texts, labels)``: every record of a prepared source.
* ``read_imdb(*, data_dir, source_dir=None, splits=("train", "test"), label_field="label")`` and
  ``read_reviews_file(path, *, data_dir, ...)``: every record of the splits as (texts, labels); a prepared copy
  that cannot be read is set aside and prepared again (``prepared.py``, which also locks and guards preparing).

The prepared IMDB records are in TFDS' deterministic key-hashed order, the same from every local source. Every
reader (JSON lines and CSV in ``readers.py``) raises a one-line ``DataError`` naming the file, line and problem. Class ids, splitting, the vocabulary
and batching live in ``datasets.py``.
"""

import hashlib
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

from rnnjax.data import prepared, readers
from rnnjax.data.labels import label_from_text, label_text, parse_label
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
_CLASS_LABELS = {"neg": 0, "pos": 1, "unsup": -1}  # class folder -> label (LABEL_NAMES' ids; -1: none)
_IMDB_MEMBER = re.compile(r"(?:.*/)?aclImdb/((train|test)/(neg|pos|unsup)/([^/]+))\.txt")
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() removes, as in TFDS' imdb_reviews


class ImdbReviews(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """TFDS builder for IMDB without TensorFlow: stock ``imdb_reviews``' (text, label) and ``rating``."""

    name = "rnnjax_imdb_reviews"
    VERSION = tfds.core.Version("1.1.0")  # 1.1.0 added the rating; keys, order, text and label are 1.0.0's
    # The stock builder's registered checksum, so a download (or a file in the download cache) is verified.
    url_infos: ClassVar = {
        IMDB_URL: tfds.core.download.checksums.UrlInfo(IMDB_SIZE, IMDB_SHA256, "aclImdb_v1.tar.gz")
    }

    def __init__(self, *, source_dir: str | Path | None = None, **kwargs: Any):
        self._source_dir = Path(source_dir).expanduser() if source_dir else None
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        label, rating = tfds.features.ClassLabel(names=LABEL_NAMES), tfds.features.Scalar(np.int32)
        return tfds.core.DatasetInfo(
            builder=self,
            description="Large Movie Review Dataset (Maas et al., 2011).",
            features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": label, "rating": rating}
            ),
            supervised_keys=("text", "label"),
            homepage="http://ai.stanford.edu/~amaas/data/sentiment/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        source = self._source_dir
        kind, path = _imdb_layout(source) if source else ("tar", _download_imdb(dl_manager))
        if kind == "tar":
            rows = _read_imdb_tar(path)  # one pass over the archive for all splits (three take 3x as long)
        else:
            read = _read_imdb_jsonl if kind == "jsonl" else _read_imdb_folder
            rows = {split: read(path, split) for split in _IMDB_DIRS}
        return {split: self._generate_examples(rows[split]) for split in _IMDB_DIRS}

    def _generate_examples(
        self, rows: Iterable[tuple[str, str, int, int]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, review, label, rating in rows:
            yield key, {"text": review.strip(_ASCII_WHITESPACE), "label": label, "rating": rating}


class ReviewsFile(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """TFDS builder for a JSON-lines or CSV/TSV file of (text, label) rows: one ``train`` split, file order.

    The config name holds a digest of the file's content and the reading options (text and label column), so
    each file version and column choice is prepared once under ``data_dir``. Labels are stored as read (their
    ``labels.label_text``): no class mapping is baked into the prepared copy.
    """

    name = "rnnjax_reviews_file"
    VERSION = tfds.core.Version("2.0.0")  # 2.0.0: the label as read, as text (1.0.0: a 0/1 ClassLabel)

    def __init__(self, *, path: str | Path, columns: tuple[str, str], delimited: bool, **kwargs: Any):
        self._path = Path(path).expanduser()
        self._options = (*columns, delimited)  # (text_column, label_column, delimited)
        digest = hashlib.sha256(repr(self._options).encode())
        try:
            with open(self._path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as e:
            raise DataError(f"{self._path}: cannot read ({e.strerror or e})") from None
        name = re.sub(r"[^A-Za-z0-9]+", "_", self._path.name).strip("_") + f"-{digest.hexdigest()[:16]}"
        super().__init__(config=tfds.core.BuilderConfig(name=name, description=str(self._path)), **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict({"text": tfds.features.Text(), "label": tfds.features.Text()})
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Reviews read from {self._path}.",
            features=features,
            supervised_keys=("text", "label"),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        text_column, label_column, delimited = self._options
        read = readers.read_csv if delimited else readers.read_jsonl
        for line, review, label, _ in read(self._path, text_column, label_column):
            yield line, {"text": review, "label": label_text(parse_label(label, f"{self._path}:{line}"))}


def prepare_imdb(
    *, data_dir: str | Path, source_dir: str | Path | None = None, with_rating: bool = False
) -> Mapping[str, Sequence]:
    """Prepares IMDB once under ``data_dir`` (see the module docstring for the sources) and opens it.

    Args:
      data_dir: the TFDS data directory.
      source_dir: a local copy: a tarball, an ``aclImdb/`` folder (or its parent), a folder of jsonl.gz files.
        When given, it must exist, even if a prepared copy makes reading it unnecessary.
      with_rating: accept only a copy with ``rating``; without, an older copy (no ``rating``) may be used.

    Returns:
      ``{"train", "test", "unsupervised"}``: sources of ``{"text": bytes, "label": int, "rating": int}``.

    Raises:
      DataError: if the source is missing, unreadable or malformed, or the download fails.
      prepared.PreparationInterrupted: SIGINT/SIGTERM while preparing.
    """
    data_dir = Path(data_dir).expanduser()
    if source_dir and not Path(source_dir).expanduser().exists():
        raise DataError(f"{source_dir}: not found (config.data.source_dir, or RNNJAX_IMDB_DIR)")
    copy = imdb_copy(data_dir, with_rating=with_rating)
    if copy is not None and copy.name == "1.0.0":  # an older copy: the same keys, order, text and label
        return tfds.builder_from_directory(copy).as_data_source()
    builder = ImdbReviews(data_dir=data_dir, source_dir=source_dir, file_format="array_record")
    prepared.prepare(builder, "IMDB")
    return builder.as_data_source()


def imdb_copy(data_dir: str | Path, *, with_rating: bool = False) -> Path | None:
    """The prepared IMDB folder ``prepare_imdb`` reads under ``data_dir``, or None before it is prepared:
    this builder's, else (unless ``with_rating``) an array_record copy without ratings."""
    data_dir = Path(data_dir).expanduser()
    current = data_dir / ImdbReviews.name / str(ImdbReviews.VERSION)
    if current.exists():
        return current
    older = (data_dir / ImdbReviews.name / "1.0.0", data_dir / "imdb_reviews" / "plain_text" / "1.0.0")
    for copy in older if not with_rating else ():
        if (copy / "dataset_info.json").exists():
            if any(copy.glob("*.array_record-*")):
                return copy
            logging.info("%s is not array_record (reading it needs TensorFlow)", copy)
    return None


def read_imdb(
    *,
    data_dir: str | Path,
    source_dir: str | Path | None = None,
    splits: Sequence[str] = ("train", "test"),
    label_field: str = "label",
) -> dict[str, tuple[list[str], list[int]]]:
    """Every record of IMDB's ``splits`` as (texts, labels) (``prepare_imdb``, then ``read_source``). A
    prepared copy that cannot be read is set aside and prepared again (``prepared.read_or_reprepare``).

    Raises:
      DataError: as ``prepare_imdb``, or for a split IMDB does not have.
    """
    with_rating = label_field == "rating"

    def read() -> dict[str, tuple[list[str], list[int]]]:
        sources = prepare_imdb(data_dir=data_dir, source_dir=source_dir, with_rating=with_rating)
        if unknown := [s for s in splits if s not in sources]:
            choices = ", ".join(sources)
            raise DataError(f"config.data.splits: imdb_reviews has no split {unknown[0]!r}; choose from {choices}")
        return {split: read_source(sources[split], label_field) for split in splits}

    return prepared.read_or_reprepare(imdb_copy(data_dir, with_rating=with_rating), read, read)


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
      label_column: the field or column holding the label: an integer or a class name (``parse_label``).
      delimited: read as CSV/TSV; None decides by the file name (``readers.is_delimited``).

    Returns:
      A random-access source of ``{"text": bytes, "label": bytes}`` (the label's text) in file order.

    Raises:
      DataError: if the file is missing, unreadable or malformed, or a label is neither an integer nor a name.
    """
    return _prepared_reviews(_reviews_builder(path, data_dir, (text_column, label_column), delimited), path)


def read_reviews_file(
    path: str | Path,
    *,
    data_dir: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    delimited: bool | None = None,
) -> tuple[list[str], list]:
    """Every row of a reviews file as (texts, labels) through its prepared copy (``prepare_reviews_file``'s
    arguments), which is set aside and prepared again when it cannot be read."""
    builder = _reviews_builder(path, data_dir, (text_column, label_column), delimited)  # hashes the file once
    copy = Path(builder.data_path)

    def read() -> tuple[list[str], list]:
        return read_source(_prepared_reviews(builder, path))

    return prepared.read_or_reprepare(copy if copy.exists() else None, read, read)


def _reviews_builder(path, data_dir, columns: tuple[str, str], delimited: bool | None) -> "ReviewsFile":
    path = Path(path).expanduser()
    return ReviewsFile(
        path=path, columns=columns, delimited=readers.is_delimited(path) if delimited is None else delimited,
        data_dir=Path(data_dir).expanduser(), file_format="array_record",
    )


def _prepared_reviews(builder: "ReviewsFile", path: str | Path) -> Sequence:
    """The ``train`` source of ``path``'s builder, prepared first unless it is (``prepared.prepare``)."""
    prepared.prepare(builder, str(path))
    return builder.as_data_source()["train"]


def read_source(source: Sequence, label_field: str = "label") -> tuple[list[str], list[int | str]]:
    """Every record of a prepared source as (texts, labels), in the source's order.

    Args:
      source: a source from ``prepare_imdb`` or ``prepare_reviews_file``.
      label_field: the record's label feature (IMDB: ``label`` or ``rating``).

    Returns:
      ([N] texts, [N] labels): ints for integer features, ``label_from_text`` of a text feature.
    """
    records = source.__getitems__(range(len(source)))
    values = [r[label_field] for r in records]
    labels = [label_from_text(v.decode("utf-8")) if isinstance(v, bytes) else int(v) for v in values]
    return [r["text"].decode("utf-8") for r in records], labels


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


def _read_imdb_jsonl(folder: Path, split: str) -> Iterator[tuple[str, str, int, int]]:
    path = folder / f"{_IMDB_JSONL[split]}.jsonl.gz"
    allowed = (-1,) if split == "unsupervised" else (0, 1)
    for line, review, value, row in readers.read_jsonl(path, "text", "label"):
        where, key = f"{path}:{line}", str(row.get("id", f"{split}/{line}"))
        if (label := parse_label(value, where)) not in allowed:
            raise DataError(f"{where}: label {value!r} is not {' or '.join(map(str, allowed))}")
        yield key, review, label, _imdb_rating(row.get("rating", key), where)


def _imdb_rating(value: Any, where: str) -> int:
    """A star rating 1..10 from a number or a review name ``<n>_<rating>``; -1 for none (null, 0, no name)."""
    if isinstance(value, str):
        match = re.fullmatch(r"[0-9]+_([0-9]+)", value.rpartition("/")[2])
        value = int(match[1]) if match else None
    if value not in (None, 0) and (type(value) is not int or not 1 <= value <= 10):
        raise DataError(f"{where}: rating {value!r} is not an integer from 1 to 10")
    return value or -1  # unlabelled reviews: rating null, file names <n>_0


def _imdb_review(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def _read_imdb_folder(root: Path, split: str) -> Iterator[tuple[str, str, int, int]]:
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
            review, rating = _imdb_review(raw, str(file)), _imdb_rating(file.stem, str(file))
            yield f"{directory}/{cls}/{file.stem}", review, _CLASS_LABELS[cls], rating


def _read_imdb_tar(path: Path) -> dict[str, list[tuple[str, str, int, int]]]:
    rows = {(directory, cls): [] for directory, classes in _IMDB_DIRS.values() for cls in classes}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                match = _IMDB_MEMBER.fullmatch(member.name)
                if match and member.isfile() and (match[2], match[3]) in rows:
                    where = f"{path}:{member.name}"
                    review = _imdb_review(archive.extractfile(member).read(), where)
                    row = (match[1], review, _CLASS_LABELS[match[3]], _imdb_rating(match[4], where))
                    rows[match[2], match[3]].append(row)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar archive ({type(e).__name__}: {e})") from None
    for (directory, cls), found in rows.items():
        if not found:
            raise DataError(f"{path}: no aclImdb/{directory}/{cls}/*.txt members (not an aclImdb archive?)")
    return {
        split: [r for cls in classes for r in rows[directory, cls]]
        for split, (directory, classes) in _IMDB_DIRS.items()
    }


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
