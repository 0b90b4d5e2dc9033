"""Averaging classifier runs: the mean of probabilities, each run's own (forward or backward) reading of the
examples, the script's report and its one-line refusals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnjax.analysis import ensemble, evaluate, labelled_file
from rnnjax.data import datasets
from rnnjax.data.reverse import reverse_rows
from rnnjax.training import classifier

REPO = Path(__file__).resolve().parent.parent


def test_the_ensemble_averages_probabilities():
    labels = np.array([1, 1, 0])
    first, second = np.array([0.9, 0.4, 0.2]), np.array([0.3, 0.8, 0.1])  # mean 0.6, 0.6, 0.15
    metrics = ensemble.ensemble_metrics([first, second], labels)
    assert metrics == {"n_examples": 3, "accuracy": [2 / 3, 2 / 3], "ensemble_accuracy": 1.0}
    three = [np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), np.array([[0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])]
    metrics = ensemble.ensemble_metrics(three, np.array([1, 2]))
    assert metrics["accuracy"] == [0.5, 1.0] and metrics["ensemble_accuracy"] == 1.0  # mean row 0: .3 .45 .25
    with pytest.raises(ValueError, match="share one shape"):
        ensemble.ensemble_metrics([first, three[0]], labels)
    with pytest.raises(ValueError, match="no runs"):
        ensemble.ensemble_metrics([], labels)


def _tiny(**data):
    from experiments.configs import tiny

    config = tiny.get_config()
    config.train.max_steps, config.train.progress_bar = 6, False
    config.data.update(data)
    return config


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A forward run and a run whose config reads backwards, trained on the same synthetic data."""
    root = tmp_path_factory.mktemp("ensemble")
    forward, backward = _tiny(), _tiny(reverse=True)
    backward.model.hidden_size = 5
    classifier.train_and_evaluate(forward, root / "forward")
    classifier.train_and_evaluate(backward, root / "backward")
    return root / "forward", root / "backward", forward


def test_each_run_reads_the_split_its_own_way_and_the_mean_is_scored(two_runs):
    forward_dir, backward_dir, config = two_runs
    runs = [evaluate.load_run(forward_dir), evaluate.load_run(backward_dir)]
    data_cfgs = [run.data_cfg for run in runs]
    report = ensemble.ensemble_split(runs, data_cfgs, split="test", batch_size=7)
    test = datasets.load_splits(config.data, seed=config.seed, workdir=forward_dir)["test"]
    assert report["n_examples"] == len(test["label"])
    assert [m["reverse"] for m in report["runs"]] == [False, True]
    # Each run's accuracy is the evaluation of its own rows: the backward run's are the reversed ones.
    assert report["runs"][0]["accuracy"] == pytest.approx(
        evaluate.evaluate_split(runs[0], test, batch_size=9)["accuracy"]
    )
    backward_rows = {**test, "tokens": reverse_rows(test["tokens"], test["lengths"])}
    backward = evaluate.evaluate_split(runs[1], backward_rows, batch_size=9)
    assert report["runs"][1]["accuracy"] == pytest.approx(backward["accuracy"])
    p_forward = ensemble.predict_probabilities(runs[0], test["tokens"], test["lengths"], batch_size=5)
    p_backward = ensemble.predict_probabilities(
        runs[1], backward_rows["tokens"], test["lengths"], batch_size=5
    )
    assert not np.allclose(
        p_backward, ensemble.predict_probabilities(runs[1], test["tokens"], test["lengths"], batch_size=5)
    )
    expected = ensemble.accuracy((p_forward + p_backward) / 2, test["label"])
    assert report["ensemble_accuracy"] == pytest.approx(expected)
    table = ensemble.format_table(report)
    assert "backward" in table and "ensemble (mean)" in table


def test_labelled_texts_are_read_by_every_run(two_runs, tmp_path):
    forward_dir, backward_dir, _ = two_runs
    from rnnjax.data import synthetic

    texts, labels = synthetic.generate_reviews(30, seed=5, length=24, distance=4)
    texts = [*texts, "", "zzz qqq"]  # no word at all; unknown words only (the OOV id: a word for the model)
    labels = np.array([*labels, 0, 1], np.int32)
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": int(y)}) + "\n" for t, y in zip(texts, labels)))
    runs = [evaluate.load_run(forward_dir), evaluate.load_run(backward_dir)]
    report = ensemble.ensemble_texts(runs, texts, labels, batch_size=8)
    assert report["n_skipped_empty"] == 1 and report["n_examples"] == 31
    alone = labelled_file.evaluate(runs[0], path, batch_size=8)
    assert report["runs"][0]["accuracy"] == pytest.approx(alone["accuracy"])


def _script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "experiments.ensemble", *args]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow  # subprocesses; the library it calls is tested in-process above
def test_the_script_reports_one_json_line_and_refuses_bad_input_in_one_line(two_runs, tmp_path):
    forward_dir, backward_dir, _ = two_runs
    done = _script(f"--workdirs={forward_dir},{backward_dir}", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["split"] == "test" and len(report["runs"]) == 2 and 0 <= report["ensemble_accuracy"] <= 1
    other = _tiny()
    other.seed = 3  # another synthetic data set and split
    classifier.train_and_evaluate(other, tmp_path / "other")
    for args, message in [
        ([f"--workdirs={forward_dir}"], "two or more"),
        ([f"--workdirs={forward_dir},{tmp_path / 'missing'}"], "does not exist"),
        ([f"--workdirs={forward_dir},{tmp_path / 'other'}"], "do not read the same examples"),
        ([f"--workdirs={forward_dir},{backward_dir}", "--text_column=body"], "only with --data_file"),
    ]:
        done = _script(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, done.stderr)
