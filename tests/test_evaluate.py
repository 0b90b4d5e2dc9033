"""Evaluating and predicting from a run directory: metrics from counts, restoring, exact preprocessing."""

import jax
import numpy as np
import pytest

from rnnjax.analysis import evaluate
from rnnjax.data import datasets as data
from rnnjax.training import classifier


def test_classification_metrics_from_counts():
    counts = {"loss_sum": 6.0, "n_examples": 12, "true_pos": 4, "false_pos": 2, "true_neg": 5, "false_neg": 1}
    metrics = evaluate.classification_metrics(counts)
    assert metrics["accuracy"] == pytest.approx(9 / 12)
    assert metrics["loss"] == pytest.approx(0.5)
    assert metrics["precision"] == pytest.approx(4 / 6)
    assert metrics["recall"] == pytest.approx(4 / 5)
    assert metrics["f1"] == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    assert metrics["confusion_matrix"] == [[5, 2], [1, 4]]
    report = evaluate.format_report(metrics)
    assert "precision" in report and "confusion matrix" in report


def test_no_positive_predictions_give_zero_not_nan():
    counts = {"loss_sum": 1.0, "n_examples": 2, "true_pos": 0, "false_pos": 0, "true_neg": 1, "false_neg": 1}
    metrics = evaluate.classification_metrics(counts)
    assert metrics["precision"] == metrics["f1"] == 0.0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from experiments.configs import tiny

    config = tiny.get_config()
    workdir = tmp_path_factory.mktemp("run")
    state, results = classifier.train_and_evaluate(config, workdir)
    return config, workdir, jax.device_get(state.params), results


def test_load_run_restores_the_final_params(tiny_run):
    _, workdir, params, results = tiny_run
    run = evaluate.load_run(workdir)
    assert run.checkpoint == "latest" and run.step == results["step"]
    jax.tree.map(np.testing.assert_array_equal, params, jax.device_get(run.params))
    assert evaluate.load_run(workdir, which="best").checkpoint == "best"


def test_evaluate_split_matches_training_results(tiny_run):
    config, workdir, _, results = tiny_run
    run = evaluate.load_run(workdir)
    splits = data.load_splits(config.data, seed=config.seed, workdir=workdir)
    metrics = evaluate.evaluate_split(run, splits["test"], batch_size=7)  # a different batching, same numbers
    assert metrics["n_examples"] == results["test"]["n_examples"]
    assert metrics["accuracy"] == pytest.approx(results["test"]["accuracy"])
    assert metrics["loss"] == pytest.approx(results["test"]["loss"], rel=1e-5)


def test_encode_texts_applies_the_training_preprocessing(tmp_path):
    from rnnjax.configs import default
    from rnnjax.data import text

    texts = [
        f"Review {i}: the <br /> movie was {'great' if i % 2 else 'dull'}, scene {i % 7} and {i}"
        for i in range(40)
    ]
    source = tmp_path / "reviews.csv"
    source.write_text("text,label\n" + "".join(f'"{t}",{i % 2}\n' for i, t in enumerate(texts)))
    config = default.get_config()
    config.data.update(
        name="csv",
        source_file=str(source),
        data_dir=str(tmp_path / "tfds"),
        maxlen=6,
        num_words=20,
        validation_split=0.0,
        test_split=0.25,
    )
    splits = data.load_splits(config.data, seed=0, workdir=tmp_path)
    tokens, lengths = evaluate.encode_texts(texts, config.data, text.load_vocabulary(tmp_path))
    encoded = {tuple(row) + (n,) for row, n in zip(tokens.tolist(), lengths.tolist())}
    for split in ("train", "test"):
        rows = {
            tuple(r) + (n,)
            for r, n in zip(splits[split]["tokens"].tolist(), splits[split]["lengths"].tolist())
        }
        assert rows <= encoded, split


def test_predict_texts(tiny_run):
    _, workdir, _, _ = tiny_run
    run = evaluate.load_run(workdir)
    predictions = evaluate.predict_texts(run, ["honestly i did agree overall great", "zzz unknown words"])
    assert [p["text"] for p in predictions] == ["honestly i did agree overall great", "zzz unknown words"]
    for p in predictions:
        assert 0.0 <= p["probability"] <= 1.0 and p["label"] == (
            "positive" if p["probability"] > 0.5 else "negative"
        )
    with pytest.raises(ValueError, match="no texts"):
        evaluate.predict_texts(run, [])


def test_load_run_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        evaluate.load_run(tmp_path / "missing")
    with pytest.raises(ValueError, match="run directory"):
        evaluate.load_run(tmp_path)
