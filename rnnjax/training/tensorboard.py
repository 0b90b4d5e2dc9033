"""TensorBoard logs: a thin layer over tensorboardX's ``SummaryWriter``, plus a reader for tests.

This file owns opening, writing (scalars; hyperparameters with final metrics) and reading back event files.
The format is tensorboardX's; what to log and when is the fit loop's (``loop.py``). tensorboardX writes from
a background thread, so an event reaches the disk within about ``flush_secs`` (1 s here), all at ``close``.
"""

import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _import_without_torch() -> None:
    """Imports tensorboardX with PyTorch hidden unless PyTorch is already loaded.

    tensorboardX's writer imports PyTorch when it is installed, only to accept torch tensors as values; this
    file passes Python floats. Hidden, the import takes about 0.03 s instead of about 2 s on a 2-core CPU.
    """
    if "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # ``import torch`` raises ImportError, which tensorboardX handles
    try:
        import tensorboardX  # noqa: F401
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


_import_without_torch()

from tensorboardX import SummaryWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
from tensorboardX.record_writer import masked_crc32c
from tensorboardX.summary import hparams as hparams_summaries

_EVENT_GLOB = "events.out.tfevents.*"


def open_writer(logdir: str | Path) -> SummaryWriter:
    """Opens a writer on a new event file in ``logdir`` (created if missing).

    Args:
        logdir: folder of one TensorBoard run, e.g. ``workdir/tensorboard/train``.

    Returns:
        The writer; pass it to ``write_scalars`` / ``write_hparams`` and finally to ``close``.
    """
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    # tensorboardX names files by whole seconds and opens them with "wb"; numbering them keeps a writer
    # opened within the same second (a quick resume) from truncating the previous file.
    suffix = f".{len(list(logdir.glob(_EVENT_GLOB)))}"
    return SummaryWriter(logdir=str(logdir), flush_secs=1, filename_suffix=suffix)


def write_scalars(writer: SummaryWriter, step: int, scalars: Mapping[str, float]) -> None:
    """Logs each ``tag -> value`` of ``scalars`` at ``step`` (stored as float32), then flushes.

    Args:
        writer: from ``open_writer``.
        step: the x coordinate in TensorBoard (an epoch or an optimizer step).
        scalars: tag -> value; anything ``float()`` accepts, e.g. a host NumPy scalar.
    """
    for tag, value in scalars.items():
        writer.add_scalar(tag, float(value), global_step=int(step))
    writer.flush()


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def write_hparams(writer: SummaryWriter, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Logs hyperparameters with the final metrics for TensorBoard's HParams dashboard, then flushes.

    Unlike ``SummaryWriter.add_hparams``, which starts a timestamped sub-run, this writes into the writer's
    own event file, so the session is the run directory itself. The metrics are also logged as scalars at
    step 0, which is where the dashboard reads their values; give them tags ``write_scalars`` does not use.

    Args:
        writer: from ``open_writer``.
        hparams: name -> value; nested mappings become dotted names (``opt.learning_rate``), and values
            that are not bool, int, float or str are stored as their ``str``. Pass a ConfigDict as
            ``config.to_dict()``.
        metrics: tag -> final value.
    """
    metrics = {tag: float(value) for tag, value in metrics.items()}
    for summary in hparams_summaries(_flatten(hparams), metrics):
        writer.file_writer.add_summary(summary)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, global_step=0)
    writer.flush()


def close(writer: SummaryWriter) -> None:
    """Flushes and closes ``writer``'s event file."""
    writer.close()


def _read_events(path: str | Path) -> list[Event]:
    """Every event in an event file, or in all event files of a folder sorted by name; checks each CRC."""
    path = Path(path)
    files = sorted(path.glob(_EVENT_GLOB)) if path.is_dir() else [path]
    events = []
    for file in files:
        data, pos = file.read_bytes(), 0
        while pos < len(data):
            if pos + 12 > len(data):
                raise ValueError(f"{file}: truncated record header at byte {pos}")
            header = data[pos : pos + 8]
            end = pos + 12 + struct.unpack("<Q", header)[0] + 4
            if end > len(data) or struct.unpack("<I", data[pos + 8 : pos + 12])[0] != masked_crc32c(header):
                raise ValueError(f"{file}: corrupt or truncated record at byte {pos}")
            payload = data[pos + 12 : end - 4]
            if struct.unpack("<I", data[end - 4 : end])[0] != masked_crc32c(payload):
                raise ValueError(f"{file}: payload checksum mismatch at byte {pos}")
            events.append(Event.FromString(payload))
            pos = end
    return events


def read_scalars(path: str | Path) -> list[tuple[int, str, float]]:
    """Reads ``(step, tag, value)`` of every scalar in an event file or a folder of them, in file order.

    Raises:
        ValueError: if a record is truncated or a checksum does not match.
    """
    return [
        (event.step, value.tag, value.simple_value)
        for event in _read_events(path)
        for value in event.summary.value
        if value.HasField("simple_value")
    ]


def read_hparams(path: str | Path) -> dict[str, bool | float | str]:
    """Reads the hyperparameters written by ``write_hparams`` (numbers come back as float).

    Raises:
        ValueError: if a record is truncated or a checksum does not match.
    """
    found = {}
    for event in _read_events(path):
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "hparams":
                data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
                for name, hparam in data.session_start_info.hparams.items():
                    found[name] = getattr(hparam, hparam.WhichOneof("kind"))
    return found


def log_hparams(logdir: str | Path, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Writes a run's hyperparameters and final metrics in their own folder (e.g. ``workdir/tensorboard/hparams``)."""
    writer = open_writer(logdir)
    try:
        write_hparams(writer, hparams, metrics)
    finally:
        close(writer)
