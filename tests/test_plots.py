"""Figures: integer epoch ticks, titles naming model and data, every comparison bar in view, perplexity curves
for a language model, one colour scale for attention maps. The checks read the matplotlib objects (Agg)."""

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import AxesImage

import rnnjax
from rnnjax import lm, models
from rnnjax.analysis import plots

CLASSIFIER_HISTORY = {
    "epoch": [1, 2, 3],
    "loss": [0.69, 0.52, 0.41],
    "accuracy": [0.55, 0.74, 0.82],
    "val_loss": [0.61, 0.50, 0.47],
    "val_accuracy": [0.68, 0.77, 0.79],
}
LM_HISTORY = {
    "epoch": [1, 2, 3],
    "loss": [7.1, 5.9, 5.5],
    "accuracy": [0.05, 0.12, 0.15],
    "perplexity": [math.exp(7.1), math.exp(5.9), math.exp(5.5)],
    "val_loss": [6.3, 5.8, 5.6],
    "val_accuracy": [0.08, 0.13, 0.14],
    "val_perplexity": [math.exp(6.3), math.exp(5.8), math.exp(5.6)],
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _visible_ticks(axis) -> np.ndarray:
    axis.figure.canvas.draw()
    low, high = sorted(axis.get_xlim())
    ticks = np.asarray(axis.get_xticks())
    return ticks[(ticks >= low) & (ticks <= high)]


@pytest.mark.parametrize("history", [CLASSIFIER_HISTORY, LM_HISTORY], ids=["classifier", "language_model"])
def test_history_epoch_ticks_are_integers(history):
    figure = plots.history_figure(history, title="LSTM(32) on imdb_reviews")
    for axis in figure.axes:
        ticks = _visible_ticks(axis)
        assert len(ticks) and np.all(ticks == np.round(ticks)), f"{axis.get_title()}: ticks {ticks}"
    assert figure._suptitle.get_text() == "LSTM(32) on imdb_reviews"


def test_language_model_curves_show_perplexity_as_exp_of_loss():
    figure = plots.history_figure(LM_HISTORY)
    axis = figure.axes[0]
    assert "perplexity" in axis.get_ylabel()
    training, validation = axis.get_lines()
    np.testing.assert_allclose(training.get_ydata(), np.exp(LM_HISTORY["loss"]), rtol=1e-12)
    np.testing.assert_allclose(validation.get_ydata(), np.exp(LM_HISTORY["val_loss"]), rtol=1e-12)
    assert "accuracy" in figure.axes[1].get_ylabel()


def test_classifier_curves_show_accuracy_and_loss():
    figure = plots.history_figure(CLASSIFIER_HISTORY)
    assert [axis.get_ylabel() for axis in figure.axes] == ["accuracy", "loss"]
    np.testing.assert_allclose(figure.axes[1].get_lines()[1].get_ydata(), CLASSIFIER_HISTORY["val_loss"])


@pytest.mark.parametrize(
    "accuracies",
    [[0.8402, 0.8715, 0.8692, 0.8705, 0.8736], [0.5, 0.87, 0.99], [0.999, 1.0], [0.12, 0.13], [0.0, 0.4]],
)
def test_comparison_accuracy_axis_shows_every_bar(accuracies):
    names = [f"model {i}" for i in range(len(accuracies))]
    figure = plots.comparison_figure(names, accuracies, [10.0] * len(accuracies), title="imdb_reviews")
    axis = figure.axes[0]
    bottom, top = axis.get_ylim()
    heights = [patch.get_height() for patch in axis.patches]
    np.testing.assert_allclose(heights, [100 * a for a in accuracies])
    for height in heights:
        assert bottom <= height < top, f"bar {height} outside the axis {bottom, top}"
        assert height == bottom == 0 or height > bottom, f"bar {height} hidden under the axis at {bottom}"
    assert top >= max(heights) + 2  # room for the top label


def test_plot_writes_png_and_closes_its_figure(tmp_path):
    before = plt.get_fignums()
    path = plots.plot_history(CLASSIFIER_HISTORY, tmp_path / "sub" / "curves.png", title="x")
    chart = plots.plot_comparison(["a", "b"], [0.8, 0.9], [1.0, 2.0], tmp_path / "comparison.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 0
    assert plt.get_fignums() == before


def test_attention_maps_share_one_colour_scale():
    weights = [np.array([0.1, 0.6, 0.3]), np.array([0.05, 0.05, 0.9, 0.0]), np.array([0.5, 0.5])]
    words = [["a", "fine", "film"], ["dull", "and", "poor", "."], ["so", "good"]]
    figure = plots.attention_figure(words, weights, titles=["r0", "r1", "r2"])
    images = [artist for axis in figure.axes for artist in axis.get_images() if isinstance(artist, AxesImage)]
    assert len(images) == 3
    assert {image.get_clim() for image in images} == {(0.0, 0.9)}
    assert len(figure.axes) == 4  # three maps and one colour bar


def test_attention_figure_refuses_mismatched_words():
    with pytest.raises(ValueError, match="review 0 has 2 words but 3 weights"):
        plots.attention_figure([["a", "b"]], [np.ones(3) / 3])


def _write(path, payload):
    path.write_text(json.dumps(payload))


def test_run_title_names_model_and_data(tmp_path):
    spec = rnnjax.make_classifier(cell="lstm", vocab_size=50, embed_dim=4, hidden_size=32)
    _write(tmp_path / "model.json", models.spec_to_dict(spec))
    _write(tmp_path / "results.json", {"dataset": "imdb_reviews"})
    assert plots.run_title(tmp_path) == "LSTM(32) on imdb_reviews"


def test_run_title_of_stacked_bidirectional_attention_and_language_model(tmp_path):
    spec = rnnjax.make_classifier(
        cell="lstm", vocab_size=50, embed_dim=4, hidden_size=8, bidirectional=True, attention_units=4
    )
    assert plots.describe_model(models.spec_to_dict(spec)) == "Bidirectional(LSTM(8)) + attention"
    stacked = rnnjax.make_classifier(cell="gru", vocab_size=50, embed_dim=4, hidden_size=6, num_layers=2)
    assert plots.describe_model(models.spec_to_dict(stacked)) == "GRU(6) × 2"
    pooled = rnnjax.make_classifier(cell="lstm", vocab_size=50, embed_dim=4, hidden_size=6, pooling="avg")
    assert plots.describe_model(models.spec_to_dict(pooled)) == "LSTM(6) + average pooling"
    spec_lm = lm.LMSpec(cell="gru", vocab_size=50, embed_dim=4, hidden_size=16, num_layers=2)
    _write(tmp_path / "lm.json", lm.spec_to_dict(spec_lm))
    _write(tmp_path / "config.json", {"data": {"name": "synthetic"}})
    assert plots.run_title(tmp_path) == "GRU(16) × 2 language model on synthetic"


def test_run_title_falls_back_to_the_directory_name(tmp_path):
    assert plots.run_title(tmp_path / "my_run") == "my_run"
    (tmp_path / "model.json").write_text("{not json")
    assert plots.run_title(tmp_path) == tmp_path.name
