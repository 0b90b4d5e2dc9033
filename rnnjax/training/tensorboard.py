"""TensorBoard scalar event files without TensorFlow: a minimal writer and reader of the event-file format.

An event file is a sequence of TFRecords (``uint64 length``, masked CRC-32C of the length, payload, masked
CRC-32C of the payload), each payload an ``Event`` protocol buffer. Only the fields scalars need are encoded:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; }

Each call opens the file, appends and closes it, so nothing is lost when a run is killed and no handle is
held between epochs. What to log and when is decided in ``train.py``.
"""

import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli polynomial, reflected
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as TFRecord framing uses it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 fields encode negatives as 10-byte two's complement
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return _varint((number << 3) | wire_type) + payload


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2, _varint(len(payload)) + payload)


def _encode_event(
    wall_time: float, step: int, *, file_version: str = "", scalars: dict[str, float] | None = None
) -> bytes:
    event = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(int(step)))
    if file_version:
        event += _length_delimited(3, file_version.encode())
    if scalars:
        values = b"".join(
            _length_delimited(
                1, _length_delimited(1, tag.encode()) + _field(2, 5, struct.pack("<f", float(value)))
            )
            for tag, value in scalars.items()
        )
        event += _length_delimited(5, values)
    return event


def _record(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", _masked_crc(header)) + payload + struct.pack("<I", _masked_crc(payload))


def create_event_file(logdir: str | Path) -> Path:
    """Creates ``logdir/events.out.tfevents.<time>.<host>`` holding the file-version header event.

    Args:
        logdir: folder of one TensorBoard run (e.g. ``workdir/tensorboard/train``); created if missing.

    Returns:
        The new file's path, to pass to ``write_scalars``.
    """
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path = logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
    suffix = 0
    while path.exists():  # a resumed run within the same second gets its own file
        suffix += 1
        path = logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{suffix}"
    path.write_bytes(_record(_encode_event(now, 0, file_version="brain.Event:2")))
    return path


def write_scalars(
    path: str | Path, step: int, scalars: dict[str, float], wall_time: float | None = None
) -> None:
    """Appends one event with the given scalars at ``step`` to an event file from ``create_event_file``.

    Args:
        path: the event file.
        step: the x coordinate in TensorBoard (an epoch or an optimizer step).
        scalars: tag -> value; values are stored as float32.
        wall_time: seconds since the epoch; now when None.
    """
    payload = _encode_event(time.time() if wall_time is None else wall_time, step, scalars=scalars)
    with open(path, "ab") as f:
        f.write(_record(payload))


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _parse_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire_type == 5:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire_type == 2:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type} in an event file")
        fields.append((number, value))
    return fields


def read_scalars(path: str | Path) -> list[tuple[int, str, float]]:
    """Reads back ``(step, tag, value)`` for every scalar in an event file, checking every CRC.

    Raises:
        ValueError: if a record is truncated or a checksum does not match.
    """
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        payload = data[pos + 12 : pos + 12 + length]
        end = pos + 12 + length + 4
        if header_crc != _masked_crc(header) or end > len(data):
            raise ValueError(f"{path}: corrupt or truncated record at byte {pos}")
        if struct.unpack("<I", data[end - 4 : end])[0] != _masked_crc(payload):
            raise ValueError(f"{path}: payload checksum mismatch at byte {pos}")
        pos = end
        step = 0
        for number, value in _parse_fields(payload):
            if number == 2:
                step = value
            elif number == 5:
                for _, summary_value in _parse_fields(value):
                    parts = dict(_parse_fields(summary_value))
                    out.append((step, parts[1].decode(), struct.unpack("<f", parts[2])[0]))
    return out
