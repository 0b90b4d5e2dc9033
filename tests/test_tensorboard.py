"""TensorBoard logs: scalars and hparams written through tensorboardX read back; checksums are checked."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnjax.training import tensorboard

REPO = Path(__file__).resolve().parent.parent


def test_scalars_round_trip(tmp_path):
    writer = tensorboard.open_writer(tmp_path / "train")
    tensorboard.write_scalars(writer, 1, {"epoch_loss": 0.5, "epoch_accuracy": 0.75})
    tensorboard.write_scalars(writer, 2, {"epoch_loss": 0.25, "epoch_accuracy": 0.875})
    tensorboard.write_scalars(writer, 2**40, {"epoch_loss": -1.25})
    tensorboard.close(writer)
    expected = [
        (1, "epoch_loss", 0.5),
        (1, "epoch_accuracy", 0.75),
        (2, "epoch_loss", 0.25),
        (2, "epoch_accuracy", 0.875),
        (2**40, "epoch_loss", -1.25),
    ]
    assert tensorboard.read_scalars(tmp_path / "train") == expected
    (path,) = (tmp_path / "train").glob("events.out.tfevents.*")
    assert tensorboard.read_scalars(path) == expected


def test_directory_reads_every_file_in_order(tmp_path):
    first = tensorboard.open_writer(tmp_path)
    tensorboard.write_scalars(first, 1, {"loss": 1.0})
    tensorboard.close(first)
    second = tensorboard.open_writer(tmp_path)  # a resume, usually within the same second
    tensorboard.write_scalars(second, 2, {"loss": 0.5})
    tensorboard.close(second)
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert tensorboard.read_scalars(tmp_path) == [(1, "loss", 1.0), (2, "loss", 0.5)]


def test_hparams_are_readable_from_the_same_directory(tmp_path):
    writer = tensorboard.open_writer(tmp_path)
    hparams = {
        "seed": 3,
        "model": {"cell": "lstm", "hidden_size": 4, "bidirectional": True},
        "opt": {"learning_rate": 1e-3, "schedule": None},
        "data": {"lengths": (5, 7)},
    }
    tensorboard.write_hparams(writer, hparams, {"hparams/test_accuracy": 0.5})
    tensorboard.close(writer)
    assert [path.parent for path in tmp_path.rglob("events.out.tfevents.*")] == [tmp_path]
    assert tensorboard.read_hparams(tmp_path) == {
        "seed": 3.0,
        "model.cell": "lstm",
        "model.hidden_size": 4.0,
        "model.bidirectional": True,
        "opt.learning_rate": pytest.approx(1e-3),
        "opt.schedule": "None",
        "data.lengths": "(5, 7)",
    }
    assert tensorboard.read_scalars(tmp_path) == [(0, "hparams/test_accuracy", 0.5)]


def test_corruption_is_detected(tmp_path):
    writer = tensorboard.open_writer(tmp_path)
    tensorboard.write_scalars(writer, 3, {"loss": 1.0})
    tensorboard.close(writer)
    (path,) = tmp_path.glob("events.out.tfevents.*")
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        tensorboard.read_scalars(path)
    path.write_bytes(bytes(data[:-3]))
    with pytest.raises(ValueError, match="truncated"):
        tensorboard.read_scalars(path)


@pytest.mark.parametrize("torch_first", [False, True])
def test_tensorboardx_loads_without_torch_unless_torch_is_loaded(tmp_path, torch_first):
    """tensorboardX's writer imports PyTorch when it is installed (about 2 s); this module hides it during the
    import, leaves it importable afterwards, and leaves a PyTorch already loaded as it is (a stand-in here)."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("class Tensor:\n    pass\n")
    code = (
        "import sys\n"
        + ("import torch\n" if torch_first else "")
        + "from rnnjax.training import tensorboard\n"
        "import tensorboardX.writer as w\n"
        f"assert ('torch' in sys.modules) == {torch_first}\n"
        "import torch\n"
        f"assert (w.numpy_compatible is torch.Tensor) == {torch_first}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
