"""What a user sees while training: the start-up lines (data, parameters, devices, steps), progress with an ETA
within an epoch (on a terminal and in a log), and where the run's files went at the end."""

import os
import re
import subprocess
import sys
from pathlib import Path

import jax

from rnnjax.training import classifier, control, loop

REPO = Path(__file__).resolve().parents[1]


def test_progress_line_has_rate_and_eta_only_while_the_epoch_runs():
    line = control.progress_line(1, 5, 40, 160, 10.0, {"loss": 0.5}, ("loss",))
    assert "4.0 steps/s" in line and "ETA 30s" in line and line.endswith("loss: 0.5000")
    assert "ETA" not in control.progress_line(1, 5, 160, 160, 40.0, {}, ())
    assert "ETA" not in control.progress_line(1, 5, 40, 160, 10.0, {}, (), eta=False)


def test_duration_reads_as_seconds_minutes_and_hours():
    assert [control.duration(s) for s in (9.4, 59.6, 245, 7380)] == ["9s", "1m00s", "4m05s", "2h03m"]


def test_start_line_counts_parameters_devices_and_steps():
    line = control.start_line(12545, jax.devices("cpu")[:1], step=0, total_steps=16, steps_per_epoch=8,
                              batch_size=16)
    assert line == "Training 12,545 parameters on 1 x cpu: 16 steps of batch 16 (8 per epoch)"
    resumed = control.start_line(10, jax.devices("cpu")[:1], step=5, total_steps=16, steps_per_epoch=8,
                                 batch_size=16)
    assert resumed.endswith("; 11 to go from step 5")
    assert control.start_line(10, jax.devices("cpu")[:1], step=16, total_steps=16, steps_per_epoch=8,
                              batch_size=16).endswith("; all done")


def test_without_a_terminal_the_epoch_prints_progress_lines_with_an_eta(tmp_path, capsys, monkeypatch):
    from experiments.configs import tiny

    monkeypatch.setattr(loop, "LOG_EVERY_S", 0.0)  # a line after every step instead of every 30 s
    config = tiny.get_config()
    config.train.epochs = 1
    classifier.train_and_evaluate(config, tmp_path)
    out = capsys.readouterr().out.splitlines()
    within = [line for line in out if re.match(r"Epoch 1/1 [1-7]/8 ", line)]
    assert len(within) >= 6 and all("steps/s - ETA " in line for line in within), out
    assert any(line.startswith("Epoch 1/1 8/8 ") and "val_loss" in line and "ETA" not in line for line in out)
    assert any(line.startswith("Data: synthetic: train ") and "vocabulary" in line for line in out), out
    assert any(line.startswith("Training ") and " parameters on 1 x cpu: 8 steps of batch 16" in line for line in out)


def test_a_training_command_says_where_everything_went(tmp_path):
    workdir = tmp_path / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--config=experiments/configs/tiny.py", f"--workdir={workdir}",
         "--config.train.max_steps=3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"Epoch 1/1 3/8 .* val_loss", out), out  # max_steps below one epoch still validates
    assert (workdir / "curves.png").exists() and (workdir / "history.json").exists()
    saved = next(line for line in out.splitlines() if line.startswith("Saved in"))
    for name in ("checkpoints/", "best/", "history.json", "curves.png", "results.json",
                 f"python -m experiments.evaluate --workdir={workdir}"):
        assert name in saved, saved
    assert f"tensorboard --logdir {workdir / 'tensorboard'}" in out
