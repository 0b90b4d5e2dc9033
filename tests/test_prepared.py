"""Prepared TFDS copies and where IMDB comes from: damaged copies set aside and prepared again, half-prepared
folders of killed processes removed, SIGTERM while preparing, and the one-line errors of a missing IMDB."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from experiments import _cli
from rnnjax.configs import default
from rnnjax.data import availability, prepared, sources
from rnnjax.data.text import DataError
from tests import fake_imdb

REPO = Path(__file__).resolve().parents[1]


def _rows(split: str, n: int) -> list[dict]:
    label = {"train": (0, 1), "test": (0, 1), "unsup": (-1,)}[split]
    return [{"id": f"{split}/{i}_0", "label": label[i % len(label)], "text": f"{split} review {i}"} for i in range(n)]


@pytest.fixture(scope="module")
def imdb_copy(tmp_path_factory) -> Path:
    """A tiny IMDB as a JSON-lines folder."""
    root = tmp_path_factory.mktemp("imdb_copy")
    for split in ("train", "test", "unsup"):
        fake_imdb.write_jsonl(root / f"{split}.jsonl.gz", _rows(split, 6), compress=True)
    return root


def _no_download(dl_manager):
    raise DataError("test: no download")


def _damage_records(copy: Path) -> None:
    record = next(copy.glob("*-train.array_record-*"))
    record.write_bytes(record.read_bytes()[: record.stat().st_size // 2])


def _damage_info(copy: Path) -> None:
    (copy / "dataset_info.json").write_text("{")


@pytest.mark.parametrize("damage", [_damage_records, _damage_info])
def test_a_damaged_prepared_copy_is_set_aside_and_prepared_again(imdb_copy, tmp_path, damage, caplog):
    first = sources.read_imdb(data_dir=tmp_path, source_dir=imdb_copy)
    copy = sources.imdb_copy(tmp_path)
    damage(copy)
    again = sources.read_imdb(data_dir=tmp_path, source_dir=imdb_copy)
    assert again == first
    aside = list(copy.parent.glob(f"{copy.name}.damaged-*"))
    assert len(aside) == 1 and aside[0].is_dir()  # moved aside, never deleted
    assert any("damaged" in r.getMessage() and str(aside[0]) in r.getMessage() for r in caplog.records)


def test_a_damaged_copy_without_a_source_is_a_data_error_and_kept_aside(imdb_copy, tmp_path, monkeypatch):
    sources.read_imdb(data_dir=tmp_path, source_dir=imdb_copy)
    copy = sources.imdb_copy(tmp_path)
    _damage_records(copy)
    monkeypatch.setattr(sources, "_download_imdb", _no_download)
    with pytest.raises(DataError, match="no download"):
        sources.read_imdb(data_dir=tmp_path)
    assert len(list(copy.parent.glob(f"{copy.name}.damaged-*"))) == 1


def test_a_half_prepared_folder_of_a_killed_process_is_removed(imdb_copy, tmp_path):
    stale = tmp_path / sources.ImdbReviews.name / f"incomplete.ABC123_{sources.ImdbReviews.VERSION}"
    stale.mkdir(parents=True)
    (stale / "rnnjax_imdb_reviews-train.array_record-00000-of-00001").write_bytes(b"half")
    other = tmp_path / sources.ImdbReviews.name / "incomplete.ABC123_0.9.0"  # another copy's: left alone
    other.mkdir()
    sources.prepare_imdb(data_dir=tmp_path, source_dir=imdb_copy)
    assert not stale.exists() and other.exists()
    assert len(sources.read_imdb(data_dir=tmp_path)["train"][0]) == 6


_SLOW_PREPARE = """
import os, time
from experiments import _cli
from rnnjax.data import sources

def slow(folder, split):
    print("preparing", flush=True)
    for i in range(100000):
        time.sleep(0.01)
        yield f"{split}/{i}", "a review", -1 if split == "unsupervised" else i % 2, -1

sources._read_imdb_jsonl = slow

def main(argv):
    sources.prepare_imdb(data_dir=os.environ["DATA_DIR"], source_dir=os.environ["SOURCE_DIR"])

_cli.run(main)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_preparing_is_one_line_and_keeps_nothing_half_written(imdb_copy, tmp_path, signum):
    script = tmp_path / "prepare_slowly.py"
    script.write_text(textwrap.dedent(_SLOW_PREPARE))
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "RNNJAX_FAST_MALLOC": "0",
           "DATA_DIR": str(tmp_path / "tfds"), "SOURCE_DIR": str(imdb_copy)}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "preparing" not in proc.stdout.readline():
        pass
    time.sleep(0.3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 128 + signum, err
    assert len(lines) == 1 and f"interrupted by {signal.Signals(signum).name} while preparing IMDB" in lines[0], err
    folder = tmp_path / "tfds" / sources.ImdbReviews.name
    assert not list(folder.glob("incomplete.*")) and sources.imdb_copy(tmp_path / "tfds") is None


def test_preparation_interrupted_is_not_an_exception_a_download_handler_would_swallow():
    assert not issubclass(prepared.PreparationInterrupted, Exception)


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "RNNJAX_IMDB_DIR"}
    environ.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=300)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    return lines[0]


def test_an_explicit_imdb_config_without_imdb_is_one_line_never_synthetic(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    tfds_dir, workdir = tmp_path / "tfds", tmp_path / "run"
    common = ("--config=experiments/configs/tiny.py", "--config.data.name=imdb_reviews",
              f"--config.data.data_dir={tfds_dir}", f"--workdir={workdir}")
    line = _one_line(_run("experiments.train", *common, RNNJAX_IMDB_DIR=str(empty)))
    assert "no IMDB copy here" in line and str(empty) in line
    line = _one_line(_run("experiments.train", *common, RNNJAX_IMDB_DIR=str(tmp_path / "missing")))
    assert "RNNJAX_IMDB_DIR" in line and "not found" in line
    line = _one_line(_run("experiments.train", *common, f"--config.data.source_dir={tmp_path / 'gone'}"))
    assert "gone: not found" in line
    assert not workdir.exists()
    lm = ("experiments.train_lm", "--config=experiments/configs/lm_gru.py", f"--config.data.data_dir={tfds_dir}",
          f"--workdir={tmp_path / 'lm'}")
    assert "no IMDB copy here" in _one_line(_run(*lm, RNNJAX_IMDB_DIR=str(empty)))
    assert not (tmp_path / "lm").exists()


def test_only_the_main_job_falls_back_and_a_prepared_copy_comes_first(imdb_copy, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RNNJAX_IMDB_DIR", raising=False)
    monkeypatch.setattr(_cli, "REPO", tmp_path / "clone")  # no ../shared beside this checkout
    monkeypatch.setattr(sources, "_download_imdb", _no_download)
    config = default.get_config()
    config.data.data_dir = str(tmp_path / "tfds")
    explicit = _cli.with_data_location(config)
    assert availability.with_available_data(explicit).data.name == "imdb_reviews"  # then an error when loaded
    main_job = availability.with_available_data(_cli.with_data_location(config, fallback=True))
    assert main_job.data.name == "synthetic"
    assert "using the embedded synthetic dataset" in capsys.readouterr().err
    sources.prepare_imdb(data_dir=tmp_path / "tfds", source_dir=imdb_copy)  # IMDB prepared in the TFDS data dir
    main_job = availability.with_available_data(_cli.with_data_location(config, fallback=True))
    assert main_job.data.name == "imdb_reviews" and main_job.data.source_dir == ""
    assert capsys.readouterr().err == ""
