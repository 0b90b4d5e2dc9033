"""Class labels: label values as read, their class names and ids 0..K-1, and a run's ``classes.json``.

* ``parse_label(value, where) -> int | str``: a label from a file as an integer or a class name.
* ``label_text`` / ``label_from_text``: the one text form in which a prepared reviews file stores a label.
* ``assign_ids(values, *, classes, origin, where) -> (classes, ids)``: class ids from the given class names,
  or from names inferred from the values: integers in numeric order (so 0/1 keep their values as ids and
  non-contiguous values such as star ratings get their ranks), anything else in sorted string order.
* ``save_classes(classes, workdir)`` / ``load_classes(workdir)``: ``workdir/classes.json``,
  ``{"classes": [...]}``, the names in id order, so a resumed run or an evaluation maps labels as training
  did.
* ``check_classes(classes) -> str | None``: what is wrong with a list of class names, if anything.

Reading files lives in ``sources.py``; which names a dataset supplies, and splitting, live in ``datasets.py``.
"""

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnjax.data.text import DataError

CLASSES_FILE = "classes.json"

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_label(value: Any, where: str) -> int | str:
    """Reads one label value of a JSON-lines or CSV row.

    Integers, booleans, integral floats and text spelling an integral number (``"1"``, ``" 7 "``, ``"2.0"``)
    are integers; other non-empty text is a class name, without surrounding whitespace.

    Args:
      value: the field's value as the JSON or CSV reader gives it.
      where: ``path:line`` for the message.

    Returns:
      The label as an int or a non-empty str.

    Raises:
      DataError: for anything else (a fractional number, null, an empty string, a list, an object).
    """
    if isinstance(value, str):
        stripped = value.strip()
        if _INTEGER.fullmatch(stripped):
            return int(stripped)
        if stripped and not _NUMBER.fullmatch(stripped):
            return stripped
        if stripped and float(stripped).is_integer():
            return int(float(stripped))
    elif isinstance(value, int) or (isinstance(value, float) and value.is_integer()):  # bool: true is 1
        return int(value)
    raise DataError(f"{where}: label {value!r} is not an integer or a class name")


def label_text(label: int | str) -> str:
    """The text form of a ``parse_label`` result; ``label_from_text`` inverts it."""
    return str(label)


def label_from_text(text: str) -> int | str:
    """The label whose ``label_text`` is ``text`` (class names never spell an integer, so this is exact)."""
    return int(text) if _INTEGER.fullmatch(text) else text


def assign_ids(
    values: Sequence[int | str], *, classes: Sequence[str] | None, origin: str, where: str
) -> tuple[tuple[str, ...], np.ndarray]:
    """Maps label values to class ids.

    A value's class name is ``str(value)``. With ``classes``, a value's id is its name's position there;
    without, the names are inferred from the distinct values: numeric order when all are integers (values
    {0..K-1} keep their values as ids), else sorted strings.

    Args:
      values: [N] labels, ints or strs (``parse_label`` results, or names).
      classes: the class names in id order, or None to infer them.
      origin: where ``classes`` come from, for the message (``config.data.classes``, a file).
      where: the data source, for the message.

    Returns:
      (the class names in id order, ids [N] int32).

    Raises:
      DataError: if a value's name is not in ``classes``.
    """
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)  # NumPy ints as ints
    names = [str(v) for v in values]
    if classes is None:
        distinct = set(values)
        if all(isinstance(v, int) for v in distinct):
            classes = tuple(str(v) for v in sorted(distinct))
        else:
            classes = tuple(sorted({str(v) for v in distinct}))
    classes = tuple(classes)
    index = {name: i for i, name in enumerate(classes)}
    ids = np.fromiter((index.get(name, -1) for name in names), np.int32, len(names))
    if (ids < 0).any():
        unknown = sorted({n for n, i in zip(names, ids) if i < 0})
        also = ", ".join(map(repr, unknown[1:4])) + (", ..." if len(unknown) > 4 else "")
        raise DataError(
            f"{where}: label {unknown[0]!r}{f' (also {also})' if also else ''} is not one of the classes of "
            f"{origin} ({', '.join(classes)}); {int((ids < 0).sum())} rows have such labels"
        )
    return classes, ids


def check_classes(classes: Any) -> str | None:
    """What is wrong with ``classes`` as class names in id order (None if nothing is)."""
    if not isinstance(classes, (list, tuple)):
        return f"expected a list of class names, found {type(classes).__name__}"
    if len(classes) < 2:
        return f"{len(classes)} classes; a classifier needs at least 2"
    bad = [c for c in classes if not isinstance(c, str) or not c.strip() or c != c.strip()]
    if bad:
        return f"class name {bad[0]!r} is not a non-empty string without surrounding whitespace"
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        return f"class {duplicates[0]!r} is listed more than once"
    return None


def save_classes(classes: Sequence[str], workdir: str | Path) -> Path:
    """Writes the class names in id order to ``workdir/classes.json`` (replacing it whole, never partly).

    Args:
      classes: the names, as ``load_splits`` returns them under ``"classes"``.
      workdir: the run directory; created if missing.

    Returns:
      The file written.

    Raises:
      ValueError: if ``classes`` are not at least 2 distinct non-empty strings.
    """
    problem = check_classes(list(classes) if isinstance(classes, tuple) else classes)
    if problem:
        raise ValueError(f"classes={classes!r}: {problem}")
    path = Path(workdir) / CLASSES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{CLASSES_FILE}.partial")
    partial.write_text(json.dumps({"classes": list(classes)}, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def load_classes(workdir: str | Path) -> tuple[str, ...] | None:
    """Reads ``workdir/classes.json`` as ``save_classes`` wrote it.

    Args:
      workdir: the run directory.

    Returns:
      The class names in id order, or None when the file does not exist.

    Raises:
      DataError: if the file is unreadable, not JSON or not ``{"classes": [at least 2 distinct names]}``.
    """
    path = Path(workdir) / CLASSES_FILE
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read the classes ({e.strerror or e})") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise DataError(f"{path}: not a classes file ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or "classes" not in payload:
        raise DataError(f'{path}: not a classes file (expected {{"classes": [...]}})')
    problem = check_classes(payload["classes"])
    if problem:
        raise DataError(f"{path}: not a classes file ({problem})")
    return tuple(payload["classes"])
