"""A prepared TFDS copy that survives mistakes: prepared under a lock, interrupted cleanly, damage set aside.

* ``prepare(builder, what)``: ``builder.download_and_prepare()`` with one preparer at a time per copy (an
  ``fcntl`` lock beside it; readers of a finished copy never take it). While the lock is held, half-written
  ``incomplete.*`` folders of that copy can only be left by a killed process, so they are removed. SIGINT or
  SIGTERM during preparation raises ``PreparationInterrupted``: TFDS removes its half-written folder on the
  way out, and the command line prints one line and exits with 128 + the signal number.
* ``read_or_reprepare(copy, read, reprepare)``: reads a prepared copy; when it cannot be read (a damaged record
  or info file), the copy is renamed ``<version>.damaged-<time>`` (never deleted), a warning says so, and the
  data is prepared again from its source.
"""

import contextlib
import fcntl
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from absl import logging
from tensorflow_datasets.core.utils import tqdm_utils

from rnnjax.data.text import DataError

_INCOMPLETE_PREFIX = "incomplete."  # tensorflow_datasets.core.constants.INCOMPLETE_PREFIX
T = TypeVar("T")


class PreparationInterrupted(BaseException):
    """SIGINT/SIGTERM while a dataset was being prepared. A BaseException, so that no ``except Exception``
    on the way (a download's error handling) mistakes it for a failed download; ``exit_status`` is for the
    command line."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


def prepare(builder: Any, what: str) -> None:
    """Prepares ``builder``'s copy unless it exists; see the module docstring.

    Args:
      builder: a ``tfds.core.DatasetBuilder``.
      what: the dataset's name for messages.

    Raises:
      PreparationInterrupted: on SIGINT/SIGTERM (nothing half-written is kept).
      DataError: if the lock file cannot be written (a read-only data dir).
    """
    path = Path(builder.data_path)
    if path.exists():
        return
    lock_path = path.parent / f".{path.name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a")  # noqa: SIM115 - held for the whole preparation
    except OSError as e:
        raise DataError(f"{lock_path}: cannot prepare {what} here ({e.strerror or e}); choose a writable "
                        "config.data.data_dir") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits while another process prepares the same copy
        if path.exists():  # that process finished it
            return
        for stale in path.parent.glob(f"{_INCOMPLETE_PREFIX}*_{path.name}"):
            logging.warning("%s: removing a half-prepared copy left by an interrupted process", stale)
            shutil.rmtree(stale, ignore_errors=True)
        with _interruptible(f"while preparing {what} in {path.parent}"), _progress_on_terminal():
            builder.download_and_prepare()


@contextlib.contextmanager
def _progress_on_terminal() -> Iterator[None]:
    """TFDS' progress bars only where someone watches them (a terminal), never in a log file."""
    shown = tqdm_utils._active  # noqa: SLF001 - TFDS keeps the switch there, without a getter
    tqdm_utils.display_progress_bar(shown and sys.stderr.isatty())
    try:
        yield
    finally:
        tqdm_utils.display_progress_bar(shown)


@contextlib.contextmanager
def _interruptible(doing: str) -> Iterator[None]:
    """Turns SIGINT/SIGTERM into ``PreparationInterrupted`` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        raise PreparationInterrupted(
            f"interrupted by {name} {doing}; nothing half-written was kept; rerun the command to prepare it",
            128 + signum,
        )

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def read_or_reprepare(copy: Path | None, read: Callable[[], T], reprepare: Callable[[], T]) -> T:
    """``read()``; if that fails on the existing prepared ``copy``, sets it aside and returns ``reprepare()``.

    Args:
      copy: the prepared folder ``read`` opens, or None when there was none before (then a failure is raised:
        a copy prepared just now that cannot be read is not damage to repair).
      read: opens the copy and reads what is needed.
      reprepare: prepares the copy again (from its source) and reads it.

    Raises:
      DataError: from ``read`` (bad content, not damage), or when the copy cannot be set aside.
    """
    try:
        return read()
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - array_record, riegeli, protobuf and OS errors alike
        if copy is None or not copy.exists():
            raise
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    aside = copy.with_name(f"{copy.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        copy.rename(aside)
    except FileNotFoundError:
        pass  # another process set it aside first
    except OSError as e:
        raise DataError(f"{copy}: the prepared copy is damaged ({reason}) and cannot be moved aside "
                        f"({e.strerror or e}); choose another config.data.data_dir") from None
    logging.warning("%s: the prepared copy is damaged (%s); moved it to %s and preparing it again",
                    copy, reason, aside)
    return reprepare()
