"""A researcher's own model and cell trained by the one fit loop, with all its guarantees, and multi-class
classification end to end: training, resume, evaluation and prediction from the run directory."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from tests import test_robustness as robustness
from experiments.own import cifg

REPO = Path(__file__).resolve().parent.parent
OWN = str(REPO / "tests" / "own" / "config.py")
TINY = str(REPO / "experiments" / "configs" / "tiny.py")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, timeout=300)


def _tiny(**changes):
    from experiments.configs import tiny

    config = tiny.get_config()
    config.train.progress_bar = False
    for key, value in changes.items():
        section, field = key.split("__")
        setattr(getattr(config, section), field, value)
    return config


def test_a_hand_written_model_trains_evaluates_and_predicts_in_process(tmp_path):
    from rnnjax.analysis import evaluate
    from rnnjax.training import classifier, runs

    _, results = classifier.train_and_evaluate(_tiny(), tmp_path / "run", model_fn=cifg.cifg_maxpool)
    assert np.isfinite(results["test"]["loss"]) and results["history"]
    description = json.loads((tmp_path / "run" / "model.json").read_text())
    assert description["factory"] == "experiments.own.cifg:cifg_maxpool"
    run = evaluate.load_run(tmp_path / "run")  # the factory is imported by the name model.json records
    assert run.spec is None and run.model_cfg is None
    _, again = classifier.train_and_evaluate(_tiny(), tmp_path / "run", model_fn=cifg.cifg_maxpool)
    assert again["test"] == results["test"]  # a finished run trains no more
    with pytest.raises(runs.RunError, match="keeps its model"):
        classifier.train_and_evaluate(_tiny(), tmp_path / "run")  # the same directory with the config's model
    predictions = evaluate.predict_texts(run, ["good fine great", "bad awful poor"])
    assert [p["label"] in ("positive", "negative") for p in predictions] == [True, True]


def _params(workdir: Path) -> list[np.ndarray]:
    from rnnjax.analysis import evaluate

    return [np.asarray(leaf) for leaf in jax.tree.leaves(evaluate.load_run(workdir, which="latest").params)]


def test_a_hand_written_model_resumes_bit_exact_after_a_signal_and_evaluates_from_its_directory(tmp_path):
    """The CLI path: a config file names the model (``model.factory``); killed, resumed, then evaluated and
    used for prediction by commands that import the model by the name model.json records."""
    args = (f"--config={OWN}", *robustness.LONG)
    reference = tmp_path / "reference"
    done = _run("experiments.train", f"--workdir={reference}", *args)
    assert done.returncode == 0, done.stderr.decode()
    workdir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *args], cwd=REPO,
                               env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in process.stdout:
        if line.startswith(b"Epoch 1/"):
            break
    robustness.time.sleep(random.Random(0).uniform(0.0, 0.4))
    process.send_signal(robustness.signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, 128 + robustness.signal.SIGTERM), stderr.decode()
    resumed = _run("experiments.train", f"--workdir={workdir}", *args)
    assert resumed.returncode == 0, resumed.stderr.decode()
    for got, want in zip(_params(workdir), _params(reference), strict=True):
        assert np.array_equal(got, want), "the resumed run differs from the uninterrupted one"
    evaluated = _run("experiments.evaluate", f"--workdir={workdir}", "--json")
    assert evaluated.returncode == 0, evaluated.stderr.decode()
    assert 0 <= json.loads(evaluated.stdout)["accuracy"] <= 1
    predicted = _run("experiments.predict", f"--workdir={workdir}", "--json", "a good film")
    assert predicted.returncode == 0, predicted.stderr.decode()
    assert json.loads(predicted.stdout.splitlines()[0])["label"] in ("positive", "negative")


def test_a_registered_cell_trains_by_config_name_and_evaluates_in_another_process(tmp_path):
    workdir = tmp_path / "run"
    done = _run("experiments.train", f"--config={OWN}", f"--workdir={workdir}", "--config.model.factory=",
                "--config.model.cell=cifg_lstm", "--config.model.bidirectional=True")
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads((workdir / "model.json").read_text())["modules"] == ["experiments.own.cifg"]
    evaluated = _run("experiments.evaluate", f"--workdir={workdir}", "--json")
    assert evaluated.returncode == 0, evaluated.stderr.decode()


def _reviews_file(path: Path, n: int = 240) -> Path:
    """Three classes by their cue word, with string labels."""
    rng = random.Random(0)
    filler = ["the", "film", "was", "and", "a", "plot", "story", "it"]
    cues = {"sports": "goal", "politics": "vote", "science": "atom"}
    rows = []
    for i in range(n):
        label = list(cues)[i % 3]
        words = [rng.choice(filler) for _ in range(rng.randint(4, 10))]
        words.insert(rng.randrange(len(words)), cues[label])
        rows.append({"text": " ".join(words), "topic": label})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_multi_class_training_evaluation_and_prediction(tmp_path):
    from rnnjax.analysis import evaluate
    from rnnjax.data import datasets
    from rnnjax.training import classifier

    config = _tiny(data__name="amazon_reviews", data__source_file=str(_reviews_file(tmp_path / "topics.jsonl")),
                   data__label_column="topic", data__data_dir=str(tmp_path / "tfds"), model__cell="gru",
                   model__embed_dim=8, model__hidden_size=8, train__epochs=8)
    config.opt.learning_rate = 1e-2
    _, results = classifier.train_and_evaluate(config, tmp_path / "run")
    assert results["classes"] == ["politics", "science", "sports"]
    assert datasets.load_classes(tmp_path / "run") == ("politics", "science", "sports")
    assert np.asarray(results["test"]["confusion"]).shape == (3, 3)
    assert results["test"]["accuracy"] > 0.6, results["test"]
    run = evaluate.load_run(tmp_path / "run")
    assert run.spec.layers[-1].units == 3 and run.spec.layers[-1].activation == "softmax"
    splits = datasets.load_splits(config.data, seed=config.seed, workdir=run.workdir)
    report = evaluate.evaluate_split(run, splits["test"], batch_size=32)
    assert set(report["per_class"]) == {"politics", "science", "sports"}
    assert report["accuracy"] == pytest.approx(results["test"]["accuracy"])
    assert "politics" in evaluate.format_report(report)
    (prediction,) = evaluate.predict_texts(run, ["the vote and the story"])
    assert prediction["label"] in run.classes and set(prediction["probabilities"]) == set(run.classes)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    printed = _run("experiments.predict", f"--workdir={tmp_path / 'run'}", "the vote and the story")
    assert printed.returncode == 0, printed.stderr.decode()
    line = printed.stdout.decode().strip()
    assert line.split()[0] in run.classes and line.count("(") == 1, line  # the class, then the runners-up


def test_the_long_range_lab_sweeps_a_registered_cell(tmp_path):
    done = _run("experiments.long_range", f"--config={REPO / 'tests' / 'own' / 'long_range.py'}", f"--workdir={tmp_path}")
    assert done.returncode == 0, done.stderr.decode()
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert [row["model"] for row in sweep] == ["cifg_lstm", "lstm"]
    assert {"cifg_lstm, trained", "cifg_lstm, untrained"} <= set(json.loads((tmp_path / "gradients.json").read_text()))


def test_a_run_with_a_registered_cell_resumes_from_its_directory_alone(tmp_path):
    """``--workdir`` alone reuses config.json, whose model.cell names a registered cell: the module model.json
    records is imported before the config is checked."""
    workdir = tmp_path / "run"
    done = _run("experiments.train", f"--config={OWN}", f"--workdir={workdir}", "--config.model.factory=",
                "--config.model.cell=cifg_lstm", "--config.train.epochs=1")
    assert done.returncode == 0, done.stderr.decode()
    resumed = _run("experiments.train", f"--workdir={workdir}", "--config.train.epochs=2")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert len(json.loads((workdir / "history.json").read_text())["loss"]) == 2
