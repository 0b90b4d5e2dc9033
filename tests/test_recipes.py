"""The other texts' recipes: Keras' parameter totals, keras.datasets.imdb's encoding rebuilt from raw text, the
bag-of-words baseline against Keras with the same weights, and experiments.compare over seeds beside Keras."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from rnnjax import baselines
from rnnjax.data import text

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), "KERAS_BACKEND": "jax"}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize(
    "config, total",
    [("dlwp_simple_rnn", "322,113"), ("dlwp_lstm", "328,353"), ("keras_tutorial_lstm", "76,051"),
     ("bow_dense", "160,305")],
)
def test_recipe_parameter_totals_equal_keras(config, total):
    result = _run("experiments.summary", f"--config=experiments/configs/{config}.py")
    assert result.returncode == 0, result.stderr
    assert f"Total params: {total}" in result.stdout, result.stdout


def test_keras_imdb_encoding_on_a_hand_computed_example():
    train = [["a", "b", "b", "c"], ["b", "c", "d"]]
    vocab = text.fit_vocabulary(train, 5, oov=True, start=True)  # ids 0 pad, 1 start, 2 OOV, words from 3
    assert vocab.index == {"b": 3, "c": 4}  # by frequency; num_words=5 keeps ids below 5: two words
    ids = [text.encode(vocab, words) for words in (*train, ["d", "e", "a"], ["c"])]
    assert ids == [[1, 2, 3, 3, 4], [1, 3, 4, 2], [1, 2, 2, 2], [1, 4]]
    padded = text.pad_sequences(ids, maxlen=4, padding="pre", truncating="pre")
    assert padded.tolist() == [[2, 3, 3, 4], [1, 3, 4, 2], [1, 2, 2, 2], [0, 0, 1, 4]]  # the start id cut first


def test_pad_sequences_equals_keras():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    ids = [list(rng.integers(1, 50, size=n)) for n in (0, 1, 3, 7, 12)]
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            ours = text.pad_sequences(ids, maxlen=6, padding=padding, truncating=truncating)
            theirs = keras.utils.pad_sequences(ids, maxlen=6, padding=padding, truncating=truncating)
            np.testing.assert_array_equal(ours, theirs)


def test_bag_of_words_equals_keras_with_the_same_weights():
    keras = pytest.importorskip("keras")
    model = baselines.dlwp_bag_of_words(50, 2)
    params = model.init(jax.random.key(0))
    tokens = np.array([[1, 5, 5, 9, 0, 0], [1, 2, 49, 3, 7, 8], [0, 0, 0, 1, 4, 4]], np.int32)
    ours = jax.nn.sigmoid(model.apply(params, {"tokens": tokens, "lengths": np.array([4, 6, 3])}))
    hot = np.zeros((3, 50), np.float32)
    for row, ids in enumerate(tokens):
        hot[row, [i for i in ids if i]] = 1.0  # the book's vectorize_sequences
    with jax.numpy_rank_promotion("allow"):  # Keras' own code broadcasts implicitly
        twin = keras.Sequential([keras.Input((50,)), *(keras.layers.Dense(n, activation=a) for n, a in
                                                       ((16, "relu"), (16, "relu"), (1, "sigmoid")))])
        twin.set_weights([np.asarray(params[f"dense_{i}"][k]) for i in range(3) for k in ("kernel", "bias")])
        theirs = twin.predict(hot, verbose=0)[:, 0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_compare_runs_configs_over_seeds_beside_keras(tmp_path):
    pytest.importorskip("keras")
    result = _run("experiments.compare", f"--workdir={tmp_path}", "--models=tiny", "--seeds=0,1", "--keras")
    assert result.returncode == 0, result.stderr[-3000:]
    for seed in (0, 1):
        assert (tmp_path / f"tiny-s{seed}" / "results.json").exists()
        keras_fit = json.loads((tmp_path / f"tiny-s{seed}" / "keras_fit.json").read_text())
        assert keras_fit["params"] == json.loads((tmp_path / f"tiny-s{seed}" / "results.json").read_text())["params"]
    row = next(line for line in (tmp_path / "comparison.md").read_text().splitlines() if line.startswith("| tiny |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[4] == "2" and "±" in cells[5] and "±" in cells[7] and cells[9].endswith("x"), row
