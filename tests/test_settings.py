"""Settings that could only fail later (or train into NaN) are refused before anything is written: one line that
names the field, and exit status 2 from the scripts."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.configs import tiny
from rnnjax.training import classifier, language_model, optim

REPO = Path(__file__).resolve().parent.parent

BAD = [
    ("opt.learning_rate", math.nan, "opt.learning_rate=nan must be a finite number"),
    ("opt.learning_rate", math.inf, "opt.learning_rate=inf must be a finite number"),
    ("opt.learning_rate", 0.0, "opt.learning_rate=0.0 must be positive"),
    ("opt.learning_rate", -1e-3, "opt.learning_rate=-0.001 must be positive"),
    ("opt.eps", 0.0, r"opt.eps=0.0 must be positive"),
    ("opt.rho", 1.0, r"opt.rho=1.0 must be in \(0, 1\)"),
    ("opt.rho", 0.0, r"opt.rho=0.0 must be in \(0, 1\)"),
    ("opt.beta_2", 1.5, r"opt.beta_2=1.5 must be in \(0, 1\)"),
    ("opt.momentum", -0.1, r"opt.momentum=-0.1 must be in \[0, 1\)"),
    ("opt.warmup_steps", -5, "opt.warmup_steps=-5 must be >= 0"),
    ("opt.clip_norm", -1.0, "opt.clip_norm=-1.0 must be >= 0"),
    ("opt.name", "adagrad", "opt.name must be one of"),
    ("train.max_steps", -1, "train.max_steps=-1 must be >= 0"),
    ("train.patience", -2, "train.patience=-2 must be >= 0"),
    ("train.checkpoint_every_steps", -3, "train.checkpoint_every_steps=-3 must be >= 0"),
    ("train.monitor", "val_acc", "train.monitor='val_acc' is not a metric of this task; choose one of"),
    ("train.min_delta", -0.1, "train.min_delta=-0.1 must be >= 0"),
    ("seed", -1, "seed=-1 must be >= 0"),
    ("model.attention_units", -4, "model.attention_units=-4 must be >= 0"),
    ("model.hidden_size", 0, "model.hidden_size=0 must be >= 1"),
    ("model.dropout", 1.0, r"model.dropout=1.0 must be a rate in \[0, 1\)"),
    ("model.dense_units", (32, 0), r"model.dense_units=\(32, 0\) must hold positive sizes"),
]


def _config(field: str, value):
    config = tiny.get_config()
    *path, name = field.split(".")
    section = config
    for part in path:
        section = section[part]
    section[name] = value
    return config


@pytest.mark.parametrize("field,value,message", BAD, ids=[f"{f}={v}" for f, v, _ in BAD])
def test_a_bad_setting_is_refused_before_anything_is_written(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        classifier.train_and_evaluate(_config(field, value), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_language_model_refuses_them_too_and_knows_its_own_metrics(tmp_path):
    from experiments.configs import lm_gru

    config = lm_gru.get_config()
    config.opt.eps = -1.0
    with pytest.raises(ValueError, match="opt.eps=-1.0 must be positive"):
        language_model.train_lm(config, tmp_path / "lm")
    config = lm_gru.get_config()
    config.train.monitor = "val_accuracy_top5"
    with pytest.raises(ValueError, match="choose one of .*'val_perplexity'"):
        language_model.train_lm(config, tmp_path / "lm")
    assert not (tmp_path / "lm").exists()


def test_a_warm_up_longer_than_the_run_warns(caplog):
    config = tiny.get_config()
    config.opt.warmup_steps = 50
    optim.make_optimizer(config.opt, 16)
    assert "opt.warmup_steps=50 is not shorter than the run's 16 steps" in caplog.text


@pytest.mark.parametrize("flag,message", [
    ("--config.opt.learning_rate=nan", "opt.learning_rate=nan must be a finite number"),
    ("--config.model.attention_units=-1", "model.attention_units=-1 must be >= 0"),
])
def test_the_script_says_it_in_one_line_with_exit_status_2(tmp_path, flag, message):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.train", f"--config={REPO / 'experiments/configs/tiny.py'}",
         f"--workdir={tmp_path / 'run'}", flag],
        cwd=REPO, capture_output=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)},
    )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr.decode()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("script,args,message", [
    ("experiments.train", ("--config=CONFIG", "--config.train.epoch=1"),
     "--config.train.epoch: the config has no field train.epoch; did you mean train.epochs?"),
    ("experiments.train", ("--config.opt.learnin_rate=3",),
     "--config.opt.learnin_rate: the config has no field opt.learnin_rate; did you mean opt.learning_rate?"),
    ("experiments.train", ("--config=CONFIG", "--config.no_such_field=3"), "the config has no field no_such_field"),
    ("experiments.train_lm", ("--config.train.epoch=1",), "did you mean train.epochs?"),
])
def test_a_mistyped_override_names_the_field_and_the_nearest(tmp_path, script, args, message):
    args = [a.replace("CONFIG", str(REPO / "experiments/configs/tiny.py")) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", script, f"--workdir={tmp_path / 'run'}", *args], cwd=REPO, capture_output=True,
        timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)},
    )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr.decode()
    assert not (tmp_path / "run").exists()
