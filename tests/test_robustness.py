"""Faults and bad inputs, through the command line: interrupted, killed and diverging runs, and every input a
user controls, each bad form answered with exit status 2 and one line on stderr (no traceback).

Faults (``experiments.train`` on the tiny config, final params compared bitwise with an uninterrupted run):

====================================================  ===============================================
fault                                                 expected
====================================================  ===============================================
SIGTERM / SIGINT at a random point                    checkpoint at the current step, exit 128 + signal,
                                                      rerun resumes and ends bit-identical
SIGKILL at a random point (also inside a save)        last complete checkpoint restorable, rerun
                                                      resumes and ends bit-identical
Orbax temporary folder left by a kill inside a save   never listed or restored
a file of the latest checkpoint truncated / garbage   train: warning, moves it to checkpoints-damaged/,
                                                      falls back to the older checkpoint and ends
                                                      bit-identical; evaluate/predict: exit 2
non-finite loss (learning rate 1e38)                  exit 1, one line naming the step, last good
                                                      checkpoint restorable
the same with ``train.skip_nonfinite``                runs to the end, skipped steps in the history
====================================================  ===============================================

Bad inputs (``BAD_INPUTS`` below; every row is run, each must exit 2 with one ``error:`` line naming the
problem):

==================  ===========================================================================
input               bad forms
==================  ===========================================================================
config values       unknown cell, optimizer, dataset, padding; hidden_size, embed_dim, num_layers,
                    batch_size, eval_batch_size, epochs <= 0; maxlen 0; dropout, spatial_dropout,
                    recurrent_dropout outside [0, 1); learning_rate <= 0; batch larger than the data;
                    an unparsable value; a config file that does not exist; positional arguments
train --workdir     a non-empty directory that is not a run; a file; a run of another model
evaluate/predict    no --workdir; a missing directory; a directory that is not a run; a run with no
                    checkpoint yet; a checkpoint of another model; a vocabulary of another run;
                    every checkpoint truncated or overwritten with garbage; an unknown --checkpoint
                    or --split
predict texts       no texts at all (empty standard input); a missing --input_file
==================  ===========================================================================

Accepted predict inputs (exit 0, one prediction each): a 5 MB text (truncated to ``maxlen`` like training
data), a text mixing English words with emoji and other scripts, and texts the model cannot read (empty, only
punctuation, only unknown words, only emoji) or that are not UTF-8, each in its own row, marked.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "experiments" / "configs" / "tiny.py")
# Longer epochs than tiny's 8 steps, so that a signal sent after the first epoch lands mid-epoch.
LONG = ("--config.data.synthetic_examples=600", "--config.train.batch_size=4", "--config.train.epochs=3")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}


def _run(*args: str, stdin: bytes | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=ENV, input=stdin, capture_output=True, timeout=300
    )


def _train(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run("experiments.train", f"--config={TINY}", f"--workdir={workdir}", *LONG, *extra)


def _params(workdir: Path) -> list[np.ndarray]:
    from rnnjax.analysis import evaluate

    return [np.asarray(leaf) for leaf in jax.tree.leaves(evaluate.load_run(workdir, which="latest").params)]


def _assert_bitwise_equal(workdir: Path, reference: list[np.ndarray]) -> None:
    params = _params(workdir)
    assert len(params) == len(reference)
    for got, want in zip(params, reference, strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want), "resumed run differs from the reference"


def _steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def _one_error_line(result: subprocess.CompletedProcess, status: int = 2) -> str:
    stderr = result.stderr.decode(errors="replace")
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("IMDB not found")]
    assert result.returncode == status, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """An uninterrupted run with the LONG settings and its final params."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    result = _train(workdir)
    assert result.returncode == 0, result.stderr.decode()
    return workdir, _params(workdir)


def _interrupt(workdir: Path, signum: int, rng: random.Random) -> int:
    """Starts a training run, sends ``signum`` at a random point after the first epoch, returns the status."""
    args = [sys.executable, "-m", "experiments.train", f"--config={TINY}", f"--workdir={workdir}", *LONG]
    process = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in process.stdout:
        if line.startswith(b"Epoch 1/"):
            break
    time.sleep(rng.uniform(0.0, 0.4))
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 128 + signum:
        line = stderr.decode().strip().splitlines()[-1]
        assert "saved checkpoint" in line and "Traceback" not in stderr.decode(), stderr.decode()
    return process.returncode


def _interrupt_and_resume(reference, tmp_path, signum: int, seed: int) -> int:
    rng = random.Random(seed)
    workdir = tmp_path / "run"
    status = _interrupt(workdir, signum, rng)
    assert status in (0, 128 + signum, -signum), status
    resumed = _train(workdir)
    assert resumed.returncode == 0, resumed.stderr.decode()
    _assert_bitwise_equal(workdir, reference[1])
    return status


def test_sigterm_saves_and_the_rerun_ends_bit_identical(reference, tmp_path):
    _interrupt_and_resume(reference, tmp_path, signal.SIGTERM, seed=0)


def test_sigkill_keeps_a_restorable_checkpoint_and_the_rerun_ends_bit_identical(reference, tmp_path):
    _interrupt_and_resume(reference, tmp_path, signal.SIGKILL, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_random_interruptions_resume_bit_identical(reference, tmp_path, signum, seed):
    _interrupt_and_resume(reference, tmp_path, signum, seed)


def test_temporary_and_uncommitted_checkpoints_are_never_restored(reference, tmp_path):
    from rnnjax.training import runs

    workdir = tmp_path / "run"
    shutil.copytree(reference[0], workdir)
    latest = max(_steps(workdir))
    # What a kill inside a save leaves: Orbax's temporary folder, never renamed to its step.
    shutil.copytree(workdir / "checkpoints" / str(latest), workdir / "checkpoints" / f"{latest + 5}.orbax-checkpoint-tmp-1")
    garbage = workdir / "checkpoints" / f"{latest + 9}.orbax-checkpoint-tmp-2"
    garbage.mkdir()
    (garbage / "state").write_bytes(b"\x00" * 10)
    assert runs.steps(workdir / "checkpoints")[-1] == latest
    _assert_bitwise_equal(workdir, reference[1])


def _corrupt_latest(workdir: Path, how: str) -> int:
    latest = max(_steps(workdir))
    for file in (workdir / "checkpoints" / str(latest) / "state").rglob("*"):
        if file.is_file() and "/d/" in str(file):
            if how == "truncate":
                file.write_bytes(file.read_bytes()[: file.stat().st_size // 3])
            else:
                file.write_bytes(os.urandom(file.stat().st_size))
    return latest


@pytest.mark.parametrize("how", ["truncate", pytest.param("garbage", marks=pytest.mark.slow)])
def test_train_falls_back_from_a_corrupted_checkpoint(reference, tmp_path, how):
    workdir = tmp_path / "run"
    shutil.copytree(reference[0], workdir)
    (workdir / "results.json").unlink()
    latest = _corrupt_latest(workdir, how)
    result = _train(workdir)
    assert result.returncode == 0, result.stderr.decode()
    assert "moved it to" in result.stderr.decode() and "Traceback" not in result.stderr.decode()
    assert (workdir / "checkpoints-damaged" / str(latest)).is_dir()  # moved aside, never deleted
    assert latest in _steps(workdir)  # saved afresh by the rerun
    _assert_bitwise_equal(workdir, reference[1])


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    result = _run(
        "experiments.train",
        f"--config={TINY}",
        f"--workdir={workdir}",
        "--config.opt.learning_rate=1e38",
        "--config.train.checkpoint_every_steps=1",
    )
    line = _one_error_line(result, status=1)
    assert "step 2: the loss or gradient is not finite" in line and "last good checkpoint is step 1" in line
    params = _params(workdir)
    assert all(np.isfinite(p).all() for p in params)


def test_skip_nonfinite_runs_to_the_end_and_counts_the_skipped_steps(tmp_path):
    config = tmp_path / "skip.py"
    config.write_text(
        "from experiments.configs import tiny\n\n\ndef get_config():\n    config = tiny.get_config()\n"
        "    config.train.skip_nonfinite = True\n    config.opt.learning_rate = 1e38\n    return config\n"
    )
    workdir = tmp_path / "run"
    result = _run("experiments.train", f"--config={config}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr.decode()
    history = json.loads((workdir / "history.json").read_text())
    assert len(history["epoch"]) == 2 and sum(history["skipped_steps"]) > 0
    assert "skipped non-finite steps" in result.stdout.decode()
    assert all(np.isfinite(p).all() for p in _params(workdir))


# ---------------------------------------------------------------------------------------------------------
# Bad inputs: all commands run concurrently once (module fixture); each row checks its own result.


def _foreign(tmp: Path) -> Path:
    folder = tmp / "foreign"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    return folder


def _copy_run(reference_dir: Path, tmp: Path, name: str) -> Path:
    target = tmp / name
    shutil.copytree(reference_dir, target)
    return target


def _no_checkpoint(reference_dir: Path, tmp: Path) -> Path:
    run = _copy_run(reference_dir, tmp, "no_checkpoint")
    shutil.rmtree(run / "checkpoints")
    shutil.rmtree(run / "best")
    (run / "results.json").unlink()
    return run


def _other_model(reference_dir: Path, tmp: Path) -> Path:
    run = _copy_run(reference_dir, tmp, "other_model")
    model = json.loads((run / "model.json").read_text())
    for layer in model["layers"]:
        if layer["type"] == "Recurrent":
            layer["hidden_size"] += 3
    (run / "model.json").write_text(json.dumps(model))
    return run


def _other_vocabulary(reference_dir: Path, tmp: Path) -> Path:
    run = _copy_run(reference_dir, tmp, "other_vocabulary")
    vocab = json.loads((run / "vocabulary.json").read_text())
    vocab["words"] = vocab["words"][:10]
    (run / "vocabulary.json").write_text(json.dumps(vocab))
    return run


def _all_corrupted(reference_dir: Path, tmp: Path, how: str) -> Path:
    run = _copy_run(reference_dir, tmp, f"corrupted_{how}")
    for folder in ("checkpoints", "best"):
        for file in (run / folder).rglob("*"):
            if file.is_file() and "/d/" in str(file):
                data = file.read_bytes()
                file.write_bytes(data[: len(data) // 3] if how == "truncate" else os.urandom(len(data)))
    return run


def _file_with(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / name
    path.write_bytes(content)
    return path


def _bad_inputs(run: Path, tmp: Path) -> dict[str, tuple[tuple[str, ...], bytes | None, str]]:
    """name -> (command, stdin, a word the error line must contain)."""
    predict = ("experiments.predict", f"--workdir={run}")
    workdirs = iter(range(1000))

    def train() -> tuple[str, ...]:  # a fresh --workdir per row, so that no row sees another's files
        return ("experiments.train", f"--config={TINY}", f"--workdir={tmp / f'new{next(workdirs)}'}")

    rows = {
        "unknown cell": ((*train(), "--config.model.cell=transformer"), None, "transformer"),
        "unknown optimizer": ((*train(), "--config.opt.name=adagrad"), None, "opt.name"),
        "unknown dataset": ((*train(), "--config.data.name=mnist"), None, "data.name"),
        "unknown padding": ((*train(), "--config.data.padding=middle"), None, "padding"),
        "hidden_size 0": ((*train(), "--config.model.hidden_size=0"), None, "hidden_size"),
        "embed_dim -1": ((*train(), "--config.model.embed_dim=-1"), None, "embed_dim"),
        "num_layers 0": ((*train(), "--config.model.num_layers=0"), None, "num_layers"),
        "batch_size 0": ((*train(), "--config.train.batch_size=0"), None, "batch_size"),
        "eval_batch_size 0": ((*train(), "--config.train.eval_batch_size=0"), None, "eval_batch_size"),
        "epochs 0": ((*train(), "--config.train.epochs=0"), None, "epochs"),
        "maxlen 0": ((*train(), "--config.data.maxlen=0"), None, "maxlen"),
        "dropout 1": ((*train(), "--config.model.dropout=1.0"), None, "rate"),
        "spatial_dropout -0.1": ((*train(), "--config.model.spatial_dropout=-0.1"), None, "rate"),
        "recurrent_dropout 1.5": ((*train(), "--config.model.recurrent_dropout=1.5"), None, "dropout"),
        "learning_rate 0": ((*train(), "--config.opt.learning_rate=0"), None, "learning_rate"),
        "batch larger than data": ((*train(), "--config.train.batch_size=100000"), None, "larger than"),
        "unparsable value": ((*train(), "--config.train.epochs=many"), None, "epochs"),
        "missing config file": (("experiments.train", "--config=/nonexistent/config.py"), None, "config"),
        "positional argument": ((*train(), "extra"), None, "unexpected"),
        "train into a foreign directory": (
            ("experiments.train", f"--config={TINY}", f"--workdir={_foreign(tmp)}"),
            None,
            "not a run directory",
        ),
        "train into a file": (
            ("experiments.train", f"--config={TINY}", f"--workdir={_file_with(tmp, 'afile', b'x')}"),
            None,
            "is a file",
        ),
        "train another model into a run": (
            (
                "experiments.train",
                f"--config={TINY}",
                f"--workdir={_copy_run(run, tmp, 'resume_other')}",
                *LONG,
                "--config.model.hidden_size=7",
            ),
            None,
            "model.hidden_size",
        ),
        "evaluate without --workdir": (("experiments.evaluate",), None, "workdir"),
        "predict without --workdir": (("experiments.predict", "text"), None, "workdir"),
        "evaluate a missing directory": (("experiments.evaluate", f"--workdir={tmp / 'missing'}"), None, "exist"),
        "predict a missing directory": (("experiments.predict", f"--workdir={tmp / 'missing'}", "a"), None, "exist"),
        "predict a directory that is not a run": (
            ("experiments.predict", f"--workdir={tmp}", "good movie"),
            None,
            "not a run directory",
        ),
        "predict before any checkpoint": (
            ("experiments.predict", f"--workdir={_no_checkpoint(run, tmp)}", "good movie"),
            None,
            "no complete checkpoint",
        ),
        "evaluate a checkpoint of another model": (
            ("experiments.evaluate", f"--workdir={_other_model(run, tmp)}"),
            None,
            "does not fit this model",
        ),
        "predict with another vocabulary": (
            ("experiments.predict", f"--workdir={_other_vocabulary(run, tmp)}", "good movie"),
            None,
            "vocabulary",
        ),
        "predict truncated checkpoints": (
            ("experiments.predict", f"--workdir={_all_corrupted(run, tmp, 'truncate')}", "good movie"),
            None,
            "can be read",
        ),
        "evaluate garbage checkpoints": (
            ("experiments.evaluate", f"--workdir={_all_corrupted(run, tmp, 'garbage')}"),
            None,
            "can be read",
        ),
        "unknown --checkpoint": ((*predict, "--checkpoint=newest", "a"), None, "checkpoint"),
        "unknown --split": (("experiments.evaluate", f"--workdir={run}", "--split=dev"), None, "split"),
        "predict no texts": ((*predict, "--input_file=-"), b"", "no texts"),
        "predict a missing --input_file": ((*predict, f"--input_file={tmp / 'none.txt'}"), None, "no such file"),
    }
    return rows


@pytest.fixture(scope="module")
def bad_input_results(reference, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    rows = _bad_inputs(reference[0], tmp)
    cwd = tmp_path_factory.mktemp("cwd")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, *args, stdin=stdin, cwd=cwd) for name, (args, stdin, _) in rows.items()}
        return {name: (future.result(), rows[name][2]) for name, future in futures.items()}


BAD_INPUTS = [
    "unknown cell", "unknown optimizer", "unknown dataset", "unknown padding", "hidden_size 0", "embed_dim -1",
    "num_layers 0", "batch_size 0", "eval_batch_size 0", "epochs 0", "maxlen 0", "dropout 1",
    "spatial_dropout -0.1", "recurrent_dropout 1.5", "learning_rate 0", "batch larger than data",
    "unparsable value", "missing config file", "positional argument", "train into a foreign directory",
    "train into a file", "train another model into a run", "evaluate without --workdir",
    "predict without --workdir", "evaluate a missing directory", "predict a missing directory",
    "predict a directory that is not a run", "predict before any checkpoint",
    "evaluate a checkpoint of another model", "predict with another vocabulary", "predict truncated checkpoints",
    "evaluate garbage checkpoints", "unknown --checkpoint", "unknown --split", "predict no texts",
    "predict a missing --input_file",
]  # fmt: skip


def test_the_inventory_lists_every_command(reference, tmp_path):
    assert sorted(BAD_INPUTS) == sorted(_bad_inputs(reference[0], tmp_path))


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line(bad_input_results, name):
    result, expected = bad_input_results[name]
    line = _one_error_line(result)
    assert "error:" in line and expected.lower() in line.lower(), line


def test_predict_accepts_a_5mb_text_and_mixed_scripts(reference, tmp_path):
    huge = ("a wonderful film " * 320_000).encode()[: 5 * 2**20] + b"\n"
    mixed = "Great movie 😀 très bien, 映画 очень хороший!\n".encode()
    result = _run("experiments.predict", f"--workdir={reference[0]}", "--input_file=-", "--json", stdin=huge + mixed)
    assert result.returncode == 0, result.stderr.decode()
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(rows) == 2 and all(0 <= row["probability"] <= 1 for row in rows)


def test_predict_marks_texts_it_cannot_read_in_their_own_rows(reference):
    lines = [b"", b"?!... -- ;;", b"zzyzx qwxvb plmokn", "😀 🎬 👍".encode(), "très bon film".encode("latin-1")]
    stdin = b"\n".join([*lines, b"good \xff\xfe movie"]) + b"\n"
    result = _run("experiments.predict", f"--workdir={reference[0]}", "--input_file=-", "--json", stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(rows) == 6 and all(0 <= row["probability"] <= 1 for row in rows)
    assert [row["known_words"] for row in rows[:4]] == [0, 0, 0, 0]
    assert [row["invalid_utf8"] for row in rows] == [False] * 4 + [True, True]
