"""Reading review files row by row: JSON lines and CSV/TSV, optionally gzip'd, each row validated.

Each reader yields ``(line, text, label value, row)`` and raises DataError naming the file and line for anything
it cannot read (bad UTF-8, a truncated gzip, malformed JSON or CSV, a missing field or column);
``is_delimited(path)`` tells which of the two a file's name asks for. Turning label values into classes is
``labels.py``'s job; preparing the rows as a TFDS dataset is ``sources.py``'s.
"""

import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnjax.data.text import DataError

_FIELD_LIMIT = 2**31 - 1  # the largest value csv.field_size_limit accepts on every platform
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")  # read as JSON lines (maybe .gz); anything else as CSV/TSV


def is_delimited(path: Path) -> bool:
    """Whether a file is read as CSV/TSV (``read_csv``) rather than JSON lines (``read_jsonl``): its name."""
    return not Path(path).name.removesuffix(".gz").endswith(JSON_SUFFIXES)


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


def read_jsonl(path: Path, text_field: str, label_field: str) -> Iterator[tuple[int, str, Any, dict]]:
    """Yields (line, text, label value, row) for each non-blank line of a JSON-lines file (at least one)."""
    rows = 0
    for line, raw in _lines(path):
        if not raw.strip():
            continue
        rows += 1
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
        yield line, row[text_field], row[label_field], row
    if not rows:
        raise DataError(f"{path}: no rows; expected one JSON object per line with {text_field!r} and {label_field!r}")


def read_csv(path: Path, text_column: str, label_column: str) -> Iterator[tuple[int, str, str, dict]]:
    """Yields (line, text, label, row) for each row of a CSV (TSV for .tsv, .tab) file with a header line."""
    delimiter = "\t" if path.name.removesuffix(".gz").endswith((".tsv", ".tab")) else ","
    # A review may be longer than the csv module's default field limit (131,072 characters); a larger limit
    # never refuses valid input, so it is raised once for the process.
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    reader = csv.reader((raw for _, raw in _lines(path)), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file, expected a header line naming the columns")
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            raise DataError(f"{path}:1: duplicated column {', '.join(map(repr, repeated))} in the header line")
        missing = [c for c in (text_column, label_column) if c not in header]
        if missing:
            raise DataError(
                f"{path}:1: no column {' or '.join(map(repr, missing))} (columns: {', '.join(header)})"
            )
        rows = 0
        for fields in reader:
            where = f"{path}:{reader.line_num}"
            if not fields:
                continue
            if len(fields) != len(header):
                raise DataError(
                    f"{where}: {len(fields)} fields, expected {len(header)} (truncated or malformed row)"
                )
            row = dict(zip(header, fields))
            rows += 1
            yield reader.line_num, row[text_column], row[label_column], row
        if not rows:
            raise DataError(f"{path}: a header line and no rows; expected one row per review after it")
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
