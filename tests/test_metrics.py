"""Host-side classification reports: per-class numbers against hand counts (and scikit-learn when
installed), the binary counts as a 2x2 table, baselines, the mean absolute error of numeric classes, and the
text table."""

import json

import numpy as np
import pytest

from rnnjax.analysis import metrics

STARS = ["1", "2", "3", "4", "7", "8", "9", "10"]

# rows: true class, columns: predicted; class "c" is never predicted and never true.
CONFUSION = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])


def _counts(confusion: np.ndarray, loss_sum: float = 3.0) -> dict:
    return {
        "loss_sum": np.float32(loss_sum),
        "n_correct": np.int32(np.trace(confusion)),
        "n_examples": np.int32(confusion.sum()),
        "confusion": np.asarray(confusion, np.int32),
    }


def test_report_matches_hand_computed_values():
    report = metrics.classification_report(_counts(CONFUSION, 5.5), ["a", "b", "c"])
    assert report["n_examples"] == 11
    assert report["loss"] == pytest.approx(0.5)
    assert report["accuracy"] == pytest.approx(8 / 11)
    assert report["confusion_matrix"] == CONFUSION.tolist()
    a, b, c = (report["per_class"][name] for name in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(5 / 7), pytest.approx(5 / 6), 6)
    assert a["f1"] == pytest.approx(2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6))
    assert (b["precision"], b["recall"], b["support"]) == (pytest.approx(3 / 4), pytest.approx(3 / 5), 5)
    assert c == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro_f1"] == pytest.approx((a["f1"] + b["f1"]) / 3)
    assert report["weighted_f1"] == pytest.approx((6 * a["f1"] + 5 * b["f1"]) / 11)
    assert report["majority_accuracy"] == pytest.approx(6 / 11)
    assert "mean_absolute_error" not in report
    json.dumps(report)  # plain Python numbers, ready for results.json


def test_report_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 200)
    predicted = np.where(rng.random(200) < 0.6, true, rng.integers(0, 3, 200))  # class 3 never predicted
    confusion = sklearn_metrics.confusion_matrix(true, predicted, labels=range(4))
    report = metrics.classification_report(_counts(confusion), ["w", "x", "y", "z"])
    expected = sklearn_metrics.classification_report(
        true, predicted, labels=range(4), target_names=["w", "x", "y", "z"], output_dict=True, zero_division=0
    )
    for name in "wxyz":
        for key, sk_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert report["per_class"][name][key] == pytest.approx(expected[name][sk_key]), (name, key)
        assert report["per_class"][name]["support"] == expected[name]["support"]
    assert report["macro_f1"] == pytest.approx(expected["macro avg"]["f1-score"])
    assert report["weighted_f1"] == pytest.approx(expected["weighted avg"]["f1-score"])
    assert report["accuracy"] == pytest.approx(expected["accuracy"])


def test_binary_counts_give_the_two_by_two_table():
    counts = {
        "loss_sum": 2.0,
        "n_correct": 7,
        "n_examples": 10,
        "true_pos": 4,
        "false_pos": 1,
        "true_neg": 3,
        "false_neg": 2,
    }
    report = metrics.classification_report(counts, ["negative", "positive"])
    assert report["confusion_matrix"] == [[3, 1], [2, 4]]
    assert report["accuracy"] == pytest.approx(0.7)
    positive = report["per_class"]["positive"]
    assert positive["precision"] == pytest.approx(4 / 5) and positive["recall"] == pytest.approx(4 / 6)
    assert report["per_class"]["negative"]["precision"] == pytest.approx(3 / 5)
    assert report["majority_accuracy"] == pytest.approx(0.6)


def test_star_ratings_give_mean_absolute_error():
    confusion = np.zeros((8, 8), np.int64)
    confusion[0, 0] = 3  # "1" predicted "1": error 0
    confusion[0, 4] = 1  # "1" predicted "7": error 6
    confusion[7, 6] = 2  # "10" predicted "9": error 1 each
    confusion[7, 7] = 4  # "10" predicted "10"
    report = metrics.classification_report(_counts(confusion), STARS)
    assert report["mean_absolute_error"] == pytest.approx((6 + 2) / 10)
    # The majority class is "10" (6 examples); predicting it for the four "1"s costs 9 each.
    assert report["majority_accuracy"] == pytest.approx(0.6)
    assert report["majority_mean_absolute_error"] == pytest.approx(4 * 9 / 10)


def test_empty_counts_give_zeros_not_nan():
    report = metrics.classification_report(_counts(np.zeros((3, 3), np.int64), 0.0), ["1", "2", "3"])
    numbers = [report[k] for k in ("loss", "accuracy", "macro_f1", "weighted_f1", "majority_accuracy")]
    numbers += [report["mean_absolute_error"], report["majority_mean_absolute_error"]]
    numbers += [v for row in report["per_class"].values() for v in row.values()]
    assert all(v == 0 for v in numbers)


def test_class_values():
    assert metrics.class_values(["1", "2.5", "-3"]).tolist() == [1.0, 2.5, -3.0]
    assert metrics.class_values(["1", "two"]) is None
    assert metrics.class_values(["1", "nan"]) is None


@pytest.mark.parametrize(
    "counts,classes,match",
    [
        (_counts(CONFUSION), ["a", "b"], "3x3 but 2 classes"),
        (_counts(CONFUSION), ["a", "b", "a"], "distinct"),
        ({"loss_sum": 1.0, "n_examples": 3, "true_pos": 1}, ["n", "p"], "'confusion' or all of"),
        ({"confusion": np.zeros((2, 3))}, ["a", "b"], r"must be \[C, C\]"),
    ],
    ids=["too_few_classes", "repeated_class", "missing_counts", "not_square"],
)
def test_bad_arguments_raise(counts, classes, match):
    with pytest.raises(ValueError, match=match):
        metrics.classification_report(counts, classes)


def test_format_shows_classes_summary_and_matrix():
    confusion = np.array([[50, 3, 0], [4, 1200, 6], [0, 9, 20]])
    text = metrics.format_classification_report(
        metrics.classification_report(_counts(confusion), ["1", "2", "10"])
    )
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1] == "" and lines[4].split()[0] == "10" and lines[4].split()[-1] == "29"
    assert any(line.split()[:1] == ["accuracy"] for line in lines)
    assert any(line.split()[:2] == ["macro", "avg"] for line in lines)
    assert "mean absolute error:" in text and "majority-class accuracy:" in text
    header = lines.index("confusion matrix (rows: true class, columns: predicted class):")
    assert lines[header + 1].split() == ["1", "2", "10"]
    assert lines[header + 3].split() == ["2", "4", "1,200", "6"]
    # Every per-class row ends in the same column (right-aligned like scikit-learn's report).
    assert len({len(line) for line in lines[2:5]}) == 1
