"""Backward reading: reverse_rows against a row-by-row reference, and a backward language model's rows."""

import itertools

import numpy as np
import pytest

from experiments.configs import lm_gru
from rnnjax.data import lm_rows
from rnnjax.data.reverse import reverse_rows


def test_each_rows_real_ids_are_reversed_and_padding_stays_at_the_end():
    tokens = np.array(
        [[1, 5, 6, 7, 0, 0], [1, 9, 0, 0, 0, 0], [4, 3, 2, 8, 6, 5], [0, 0, 0, 0, 0, 0]], np.int32
    )
    lengths = np.array([4, 2, 6, 0], np.int32)
    out = reverse_rows(tokens, lengths)
    np.testing.assert_array_equal(
        out, [[7, 6, 5, 1, 0, 0], [9, 1, 0, 0, 0, 0], [5, 6, 8, 2, 3, 4], [0, 0, 0, 0, 0, 0]]
    )
    assert out.dtype == np.int32 and out.shape == tokens.shape
    np.testing.assert_array_equal(
        tokens, [[1, 5, 6, 7, 0, 0], [1, 9, 0, 0, 0, 0], [4, 3, 2, 8, 6, 5], [0, 0, 0, 0, 0, 0]]
    )  # the input is not changed


def test_random_rows_match_a_row_by_row_reference_and_reversing_twice_gives_them_back():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 8, size=9)
    tokens = np.where(np.arange(7)[None, :] < lengths[:, None], rng.integers(1, 50, size=(9, 7)), 0)
    lengths = np.minimum(lengths, 7)
    want = np.array([[*row[:n][::-1], *row[n:]] for row, n in zip(tokens.tolist(), lengths)])
    np.testing.assert_array_equal(reverse_rows(tokens, lengths), want)
    np.testing.assert_array_equal(reverse_rows(reverse_rows(tokens, lengths), lengths), tokens)
    assert reverse_rows(np.zeros((0, 4), np.int32), np.zeros(0, np.int32)).shape == (0, 4)


def test_bad_shapes_and_lengths_are_refused():
    with pytest.raises(ValueError, match=r"tokens must be \[N, T\]"):
        reverse_rows(np.zeros(5, np.int32), np.zeros(5, np.int32))
    with pytest.raises(ValueError, match=r"lengths \[N\]"):
        reverse_rows(np.zeros((2, 5), np.int32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"lengths must be in \[0, T=5\]"):
        reverse_rows(np.zeros((2, 5), np.int32), np.array([2, 6]))


def _synthetic_lm_config():
    config = lm_gru.get_config()
    config.data.name = "synthetic"
    config.data.synthetic_examples, config.data.synthetic_length, config.data.synthetic_distance = 30, 20, 2
    config.data.maxlen, config.data.validation_split, config.data.num_words = 40, 0.2, 30
    return config


def test_a_backward_lm_reads_every_review_from_its_last_id_to_its_first():
    config = _synthetic_lm_config()
    assert config.data.reverse is False
    forward = lm_rows.load_lm_splits(config.data, seed=0)
    config.data.reverse = True
    backward = lm_rows.load_lm_splits(config.data, seed=0)
    assert backward["vocabulary"] == forward["vocabulary"]
    for split in ("train", "validation"):
        rows, lengths = forward[split]["tokens"], forward[split]["lengths"]
        assert lengths.max() < config.data.maxlen  # one row per review: the rows are the whole reviews
        np.testing.assert_array_equal(backward[split]["tokens"], reverse_rows(rows, lengths))
        np.testing.assert_array_equal(backward[split]["lengths"], lengths)
        start = forward["vocabulary"].start_id
        real = np.arange(rows.shape[1])[None, :] < lengths[:, None] - 1
        assert np.all(backward[split]["tokens"][np.arange(len(lengths)), lengths - 1] == start)
        assert not np.any(backward[split]["tokens"][real] == start)  # the start id comes last, once


def test_long_reviews_are_reversed_before_they_are_cut_into_rows():
    config = _synthetic_lm_config()
    config.data.maxlen = 5
    forward = lm_rows.load_lm_splits(config.data, seed=0)["train"]
    config.data.reverse = True
    backward = lm_rows.load_lm_splits(config.data, seed=0)["train"]
    assert len(backward["lengths"]) == len(forward["lengths"])

    # The same next-word pairs, each read the other way round.
    def pairs(rows, flip):
        out = set()
        for row, n in zip(rows["tokens"].tolist(), rows["lengths"]):
            out |= {(b, a) if flip else (a, b) for a, b in itertools.pairwise(row[:n])}
        return out

    assert pairs(backward, flip=True) == pairs(forward, flip=False)


def test_the_setting_defaults_to_forward_and_needs_right_padding():
    from rnnjax.data.reverse import reads_reversed

    assert reads_reversed({"padding": "post"}) is False  # a config written before the option
    assert reads_reversed({"padding": "post", "reverse": True}) is True
    assert reads_reversed(lm_gru.get_config().data) is False
    with pytest.raises(ValueError, match="right-padded"):
        reads_reversed({"padding": "pre", "reverse": True})


def test_a_classifier_reads_its_reviews_the_way_its_language_model_did(tmp_path):
    import json

    from experiments.configs import tiny
    from rnnjax.training import pretrained

    from experiments.configs import lm_cpu

    lm_config = lm_cpu.get_config().to_dict()
    lm_config["data"]["reverse"] = True
    (tmp_path / "config.json").write_text(json.dumps(lm_config))
    config = tiny.get_config()
    config.init.from_lm_workdir = str(tmp_path)
    with pytest.raises(ValueError, match=r"reads reviews backwards \(data.reverse=True\); set --config.data.reverse=True"):
        pretrained.init_block(config)
    config.data.reverse = True
    assert pretrained.init_block(config).from_lm_workdir == str(tmp_path)


def test_a_backward_language_model_writes_what_comes_before_its_prompt(tmp_path):
    """``experiments.generate`` on a backward LM: the prompt ends the text, the model writes the words before
    it (greedy here, so the words are known), stops at the start id, and the line reads in reading order."""
    import subprocess
    import sys
    from pathlib import Path

    import jax
    import jax.numpy as jnp

    from rnnjax import lm
    from rnnjax.data import text
    from rnnjax.training import language_model, runs

    config = lm_gru.get_config()
    config.data.name, config.data.reverse = "synthetic", True
    config.data.synthetic_examples, config.data.synthetic_length, config.data.maxlen = 60, 24, 12
    config.model.embed_dim, config.model.hidden_size, config.model.num_layers = 4, 4, 1
    config.train.batch_size, config.train.epochs, config.train.eval_batch_size = 8, 1, 16
    language_model.train_lm(config, tmp_path / "lm")
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "experiments.generate", f"--workdir={tmp_path / 'lm'}", "--prompt=the end",
         "--num_words=6", "--greedy"],
        cwd=repo, capture_output=True, text=True, check=False, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    run = runs.load_run(tmp_path / "lm", which="best")
    vocab = run.vocabulary
    ids = text.encode(vocab, ["the", "end"], end=True)[::-1][:-1]  # reversed, the start id left out
    assert ids[-1] != vocab.start_id and len(ids) >= 2
    banned = tuple(sorted({0, *(i for i in (vocab.end_id, vocab.oov_id) if i is not None)}))
    row = jax.device_get(lm.generate(run.spec, run.params, jnp.asarray([ids], jnp.int32), jax.random.key(0),
                                     num_steps=6, greedy=True, banned=banned, end_id=vocab.start_id)["tokens"])[0]
    before = " ".join(text.decode(vocab, row[::-1]))
    shown = " ".join(text.decode(vocab, ids[::-1]))
    opening = "" if vocab.start_id in row else "... "
    assert result.stdout.rstrip("\n").splitlines()[-1] == f"{opening}{before} << {shown}"
