"""TensorBoard event files: CRC-32C test vector, records that read back with valid checksums."""

import struct

import pytest

from rnnjax.training import tensorboard


def test_crc32c_known_value():
    assert tensorboard.crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert tensorboard.crc32c(b"") == 0


def test_scalars_round_trip(tmp_path):
    path = tensorboard.create_event_file(tmp_path / "train")
    tensorboard.write_scalars(path, 1, {"epoch_loss": 0.5, "epoch_accuracy": 0.75}, wall_time=1.0)
    tensorboard.write_scalars(path, 2**40, {"epoch_loss": -1.25})
    assert tensorboard.read_scalars(path) == [
        (1, "epoch_loss", 0.5),
        (1, "epoch_accuracy", 0.75),
        (2**40, "epoch_loss", -1.25),
    ]
    assert path.name.startswith("events.out.tfevents.")
    assert tensorboard.create_event_file(tmp_path / "train") != path  # a resumed run gets its own file


def test_first_record_is_the_file_version(tmp_path):
    data = tensorboard.create_event_file(tmp_path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert b"brain.Event:2" in data[12 : 12 + length]


def test_corruption_is_detected(tmp_path):
    path = tensorboard.create_event_file(tmp_path)
    tensorboard.write_scalars(path, 3, {"loss": 1.0})
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        tensorboard.read_scalars(path)
