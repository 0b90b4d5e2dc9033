"""The encoded-splits cache: ``load_splits``' arrays and vocabulary kept under the TFDS data directory.

A second run with the same data settings reads NumPy arrays instead of reading, tokenizing and encoding the
texts again. Each entry is a folder ``<data_dir>/rnnjax_splits/<key>/`` of ``.npy`` files, the vocabulary and
a ``manifest.json`` that lists every file's size and SHA-256 digest.

* ``splits_key(data_cfg, *, seed, classes, vocabulary) -> dict | None``: what the encoding depends on: every
  ``config.data`` field that can change it, the seed, the run's fixed classes and own vocabulary, the identity
  of the source (the prepared IMDB copy's files by name, size and modification time; a reviews file's content
  digest) and a digest of the text pipeline's code. None when the source cannot be identified yet (IMDB not
  yet prepared, a missing file) or the data is generated (``synthetic``: nothing to save).
* ``load(data_dir, key) -> dict | None``: the entry, verified; None when there is none. A damaged entry (a
  missing or altered file, a manifest that does not match) is renamed ``<key>.damaged-<time>-<pid>``, a
  warning says so, and None is returned so that the caller rebuilds it.
* ``save(data_dir, key, splits, notes) -> Path | None``: writes an entry into a private temporary folder, the
  manifest last, then renames the folder into place in one step. When two processes write the same entry,
  the first rename wins and the other's folder is removed; a reader never sees a half-written entry. A
  directory that cannot be written is said in a warning, never raised.

What the splits are, and when the cache is used (``config.data.cache``), is ``datasets.py``'s.
"""

import dataclasses
import hashlib
import io
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from rnnjax.data import sources, text
from rnnjax.data.text import Vocabulary

CACHE_FOLDER = "rnnjax_splits"
MANIFEST = "manifest.json"
FORMAT = 1  # the entry layout; a new layout gets a new number and so new keys
SPLITS = ("train", "validation", "test")
ARRAYS = ("tokens", "lengths", "label")
# config.data fields that never change the encoded splits: where data is read from (the source's identity
# stands for it), whether to fall back (decided before load_splits), the cache switch itself, and reverse
# (load_splits reverses the rows after the cache, which keeps them forward).
_NOT_IN_KEY = frozenset({"data_dir", "source_dir", "fallback_to_synthetic", "cache", "reverse"})
_STALE_TMP_S = 24 * 3600  # a temporary folder this old was left by a killed process
# The modules that read, split, tokenize and encode: a change to any of them rebuilds every entry.
_PIPELINE = (
    "cache.py",
    "datasets.py",
    "labels.py",
    "prepared.py",
    "readers.py",
    "sources.py",
    "synthetic.py",
    "text.py",
)


def splits_key(
    data_cfg: ml_collections.ConfigDict,
    *,
    seed: int,
    classes: tuple[str, ...] | None,
    vocabulary: Vocabulary | None,
) -> dict[str, Any] | None:
    """Everything the encoded splits depend on, as JSON-able data, or None when they are not to be cached.

    Args:
      data_cfg: ``config.data``.
      seed: ``config.seed``.
      classes: the fixed class names (the run's ``classes.json`` or ``config.data.classes``), or None.
      vocabulary: the run's own vocabulary, or None when it is fitted on the training part.

    Returns:
      The key's parts, or None.
    """
    source = _source_identity(data_cfg)
    if source is None:
        return None
    settings = {name: value for name, value in data_cfg.items() if name not in _NOT_IN_KEY}
    key = {
        "format": FORMAT,
        "code": _code_digest(),
        "seed": int(seed),
        "data": dict(sorted(settings.items())),
        "classes": None if classes is None else list(classes),
        "vocabulary": None if vocabulary is None else _digest(_vocabulary_json(vocabulary)),
        "source": source,
    }
    return json.loads(json.dumps(key, default=str))  # as the manifest holds it: tuples as lists


def load(data_dir: str | Path, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached splits for ``key``, verified by its manifest, or None (absent, or damaged and set aside).

    With a run's own vocabulary in the key, the entry whose vocabulary was fitted is read first and taken when
    that vocabulary is the run's (a resumed run whose vocabulary was fitted on the same data: the same ids).

    Returns:
      ``{"train", "validation", "test"}`` arrays as ``load_splits`` returns them, ``"vocabulary"``,
      ``"classes"``, ``"name"``, ``"source"`` and ``"notes"`` (the warnings of the run that built them).
    """
    if key["vocabulary"] is not None:
        fitted = _load(data_dir, {**key, "vocabulary": None})
        if fitted is not None and _digest(_vocabulary_json(fitted["vocabulary"])) == key["vocabulary"]:
            return fitted
    return _load(data_dir, key)


def _load(data_dir: str | Path, key: Mapping[str, Any]) -> dict[str, Any] | None:
    entry = _entry(data_dir, key)
    if not entry.exists():
        return None
    try:
        splits = _read(entry, key)
        logging.info("%s: the encoded splits, read from the cache", entry)
        return splits
    except Exception as error:  # noqa: BLE001 - whatever is wrong with an entry, it is rebuilt, never trusted
        aside = entry.with_name(f"{entry.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            entry.rename(aside)
            where = f"set aside as {aside}"
        except OSError:  # another process set it aside first, or the folder is read-only
            where = "left in place"
        logging.warning("%s: a damaged cache entry (%s), %s; the splits are built again", entry, error, where)
        return None


def save(
    data_dir: str | Path, key: Mapping[str, Any], splits: Mapping[str, Any], notes: list[str]
) -> Path | None:
    """Writes ``splits`` (as ``load_splits`` returns them) as the entry of ``key``; returns it, or None.

    Args:
      data_dir: the TFDS data directory.
      key: from ``splits_key``.
      splits: ``{"train", "validation", "test"}`` arrays, ``"vocabulary"``, ``"classes"``, ``"name"``,
        ``"source"``.
      notes: the warnings said while building them, said again when the entry is read.
    """
    entry = _entry(data_dir, key)
    tmp = entry.with_name(f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        _remove_stale(entry.parent)
        tmp.mkdir(parents=True)
        files = {}
        for split in SPLITS:
            for name in ARRAYS:
                array = np.ascontiguousarray(splits[split][name])
                files[f"{split}.{name}.npy"] = _write_npy(tmp / f"{split}.{name}.npy", array)
        vocab_bytes = _vocabulary_json(splits["vocabulary"]).encode("utf-8")
        files[text.VOCABULARY_FILE] = _write(tmp / text.VOCABULARY_FILE, vocab_bytes)
        manifest = {
            "key": key,
            "files": files,
            "classes": list(splits["classes"]),
            "name": splits["name"],
            "source": splits["source"],
            "notes": list(notes),
        }
        # Written last: a manifest vouches for every file it lists.
        _write(tmp / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
        try:
            tmp.rename(entry)
        except OSError:
            if not (entry / MANIFEST).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process wrote the same entry first
        return entry
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        logging.warning(
            "%s: could not cache the encoded splits (%s); the next run builds them again", entry, error
        )
        return None


def _entry(data_dir: str | Path, key: Mapping[str, Any]) -> Path:
    return Path(data_dir).expanduser() / CACHE_FOLDER / _digest(json.dumps(key, sort_keys=True))[:32]


def _read(entry: Path, key: Mapping[str, Any]) -> dict[str, Any]:
    """Reads and verifies an entry; raises (OSError, ValueError, KeyError, ...) when it is damaged."""
    manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    if manifest["key"] != key:
        raise ValueError("its manifest is for other settings")
    expected = {f"{split}.{name}.npy" for split in SPLITS for name in ARRAYS} | {text.VOCABULARY_FILE}
    if set(manifest["files"]) != expected:
        raise ValueError("its manifest lists other files")
    contents = {}
    for name, (size, digest) in manifest["files"].items():
        data = (entry / name).read_bytes()
        if len(data) != size or _digest(data) != digest:
            raise ValueError(f"{name} differs from its manifest")
        contents[name] = data
    out: dict[str, Any] = {
        "vocabulary": text.load_vocabulary(entry),
        "classes": tuple(manifest["classes"]),
        "name": str(manifest["name"]),
        "source": str(manifest["source"]),
        "notes": [str(note) for note in manifest["notes"]],
    }
    maxlen = key["data"]["maxlen"]
    for split in SPLITS:
        arrays = {name: _read_npy(contents[f"{split}.{name}.npy"]) for name in ARRAYS}
        n = len(arrays["label"])
        shapes = {name: arrays[name].shape for name in ARRAYS}
        if shapes != {"tokens": (n, maxlen), "lengths": (n,), "label": (n,)}:
            raise ValueError(f"{split}'s arrays have shapes {shapes}")
        out[split] = arrays
    return out


def _write_npy(path: Path, array: np.ndarray) -> list:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    data = path.read_bytes()
    return [len(data), _digest(data)]


def _read_npy(data: bytes) -> np.ndarray:
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.dtype != np.int32:
        raise ValueError(f"an array of {array.dtype}, not int32")
    return array


def _write(path: Path, data: bytes) -> list:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return [len(data), _digest(data)]


def _remove_stale(root: Path) -> None:
    """Removes temporary folders left by killed processes (never an entry, nor a damaged one set aside)."""
    if not root.is_dir():
        return
    now = time.time()
    for path in root.glob(".tmp-*"):
        try:
            if now - path.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _source_identity(data_cfg: ml_collections.ConfigDict) -> dict[str, Any] | None:
    """The prepared IMDB copy's files, or a reviews file's path and content digest; None when not had."""
    if data_cfg.name == "imdb_reviews":
        if data_cfg.source_dir and not Path(data_cfg.source_dir).expanduser().exists():
            return None  # load_splits' reading says what is wrong
        copy = sources.imdb_copy(data_cfg.data_dir, with_rating=data_cfg.label_column == "rating")
        if copy is None:
            return None
        try:
            stats = [(p.name, p.stat()) for p in sorted(copy.iterdir()) if p.is_file()]
        except OSError:
            return None
        return {"copy": str(copy.resolve()), "files": [[name, s.st_size, s.st_mtime_ns] for name, s in stats]}
    if data_cfg.name in ("amazon_reviews", "csv") and data_cfg.source_file:
        digest = hashlib.sha256()
        try:
            with open(Path(data_cfg.source_file).expanduser(), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError:
            return None
        return {"file": str(data_cfg.source_file), "sha256": digest.hexdigest()}
    return None


def _code_digest() -> str:
    digest = hashlib.sha256()
    for name in _PIPELINE:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def _vocabulary_json(vocab: Vocabulary) -> str:
    return json.dumps(dataclasses.asdict(vocab), ensure_ascii=False, indent=0)


def _digest(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()
