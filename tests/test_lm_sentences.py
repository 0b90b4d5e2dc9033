"""Sentence language models: sentence splitting, the end id, a GRU without biases against the tutorial's
equations, and a theano_gru_lm-style run that trains and generates sentences that stop at their end id."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import lm_gru, theano_gru_lm
from rnnjax import cells, lm
from rnnjax.data import lm_rows, text
from rnnjax.training import language_model, runs

CORPUS = [["b", "a", "c"], ["a", "d", "b"], ["c", "a", "e"]]  # counts: a 3, b 2, c 2, d 1, e 1


def test_sentences_end_at_a_mark_followed_by_whitespace():
    review = (
        'Great film!  I loved it.<br /><br />Mr. Smith was "superb." Really?<br />No break here<br />'
        "Yes...no ... fine"
    )
    assert lm_rows.split_sentences(review) == [
        "Great film!",
        "I loved it.",
        "Mr.",  # no abbreviation list
        'Smith was "superb." Really?',  # a closing quote after the mark: no end
        "No break here Yes...no ...",  # a line break is a space, not an end
        "fine",
    ]
    assert lm_rows.split_sentences("  <br />  ") == []
    assert lm_rows.split_sentences("One sentence without a mark") == ["One sentence without a mark"]


def test_without_the_end_token_every_id_is_as_before():
    vocab = text.fit_vocabulary(CORPUS, None, start=True)
    assert (vocab.start_id, vocab.oov_id, vocab.index_from, vocab.end_id) == (1, 2, 3, None)
    assert vocab.words == ("a", "b", "c", "d", "e")
    assert text.encode(vocab, ["a", "zzz", "e"]) == [1, 3, 2, 7]
    assert text.fit_vocabulary(CORPUS, 6) == text.Vocabulary(("a", "b", "c", "d"), 2, 1, None)
    imdb = text.fit_vocabulary(CORPUS, 5, start=True, index_from=3)
    assert (imdb.start_id, imdb.oov_id, imdb.index_from, imdb.end_id) == (1, 2, 3, None)


def test_end_ids_are_reserved_after_the_start_id_appended_and_decoded_away():
    vocab = text.fit_vocabulary(CORPUS, 8, start=True, end=True)
    assert (vocab.start_id, vocab.end_id, vocab.oov_id, vocab.index_from, vocab.size) == (1, 2, 3, 4, 8)
    assert vocab.words == ("a", "b", "c", "d")  # num_words counts the reserved ids
    ids = text.encode(vocab, ["a", "zzz", "d"])
    assert ids == [1, 4, 3, 7, 2]
    assert text.encode(vocab, ["a"], end=False) == [1, 4]  # a prompt to continue
    assert text.decode(vocab, [*ids, 0, 0]) == ["a", text.OOV_WORD, "d"]
    no_start = text.fit_vocabulary(CORPUS, None, oov=False, end=True)
    assert (no_start.start_id, no_start.end_id, no_start.oov_id, no_start.index_from) == (None, 1, None, 2)
    assert text.encode(no_start, ["e", "zzz"]) == [6, 1]
    with pytest.raises(ValueError, match="overlaps the reserved ids"):
        text.fit_vocabulary(CORPUS, start=True, end=True, index_from=3)


def test_vocabulary_files_round_trip_with_and_without_an_end_id(tmp_path):
    for name, vocab in (
        ("plain", text.fit_vocabulary(CORPUS, None, start=True)),
        ("ended", text.fit_vocabulary(CORPUS, None, start=True, end=True)),
    ):
        path = text.save_vocabulary(vocab, tmp_path / name)
        assert text.load_vocabulary(tmp_path / name) == vocab
        assert ("end_id" in json.loads(path.read_text())) == (vocab.end_id is not None)  # old layout kept
    old = tmp_path / "old"  # a file written before end ids existed
    old.mkdir()
    (old / text.VOCABULARY_FILE).write_text('{"words": ["a"], "index_from": 3, "oov_id": 2, "start_id": 1}')
    assert text.load_vocabulary(old) == text.Vocabulary(("a",), 3, 2, 1, None)
    (old / text.VOCABULARY_FILE).write_text(
        '{"words": ["a"], "index_from": 3, "oov_id": 2, "start_id": 1, "end_id": "x"}'
    )
    with pytest.raises(text.DataError, match="end_id"):
        text.load_vocabulary(old)


def _synthetic(config):
    config.data.name = "synthetic"
    config.data.synthetic_examples = 40
    config.data.synthetic_length = 20
    config.data.synthetic_distance = 2
    config.data.maxlen = 8
    config.data.num_words = 30
    config.data.max_reviews = 0
    config.data.validation_split = 0.25
    return config


def test_review_rows_of_an_old_config_are_as_before():
    """The rows of a config without data.unit/end_token equal the review pipeline's as it always was."""
    config = _synthetic(lm_gru.get_config())
    del config.data["unit"], config.data["end_token"]  # as a config written before the fields existed
    data_cfg = config.data
    splits = lm_rows.load_lm_splits(data_cfg, seed=3)
    texts = lm_rows._read_texts(data_cfg, seed=3)[1]
    words = text.tokenize(texts, method=data_cfg.tokenizer, strip_html=data_cfg.strip_html)
    order = np.random.default_rng([3, lm_rows._VALIDATION_STREAM]).permutation(len(words))
    kept = int(len(words) * (1 - data_cfg.validation_split))
    train = [words[i] for i in np.sort(order[:kept])]
    vocab = text.fit_vocabulary(train, data_cfg.num_words, oov=True, start=True)
    assert splits["vocabulary"] == vocab
    rows = lm_rows.make_rows([text.encode(vocab, ws) for ws in train], data_cfg.maxlen)
    for field in ("tokens", "lengths"):
        np.testing.assert_array_equal(splits["train"][field], rows[field])


def test_sentence_rows_end_with_the_end_id(tmp_path):
    data_cfg = _synthetic(theano_gru_lm.get_config()).data
    data_cfg.maxlen = 40  # whole sentences in one row
    splits = lm_rows.load_lm_splits(data_cfg, seed=0)
    vocab, rows = splits["vocabulary"], splits["train"]
    assert (vocab.start_id, vocab.end_id) == (1, 2)
    lengths = rows["lengths"]
    np.testing.assert_array_equal(rows["tokens"][:, 0], 1)
    np.testing.assert_array_equal(rows["tokens"][np.arange(len(lengths)), lengths - 1], 2)
    assert splits["sequences"]["train"] == len(lengths)  # one sentence per synthetic review
    text.save_vocabulary(text.fit_vocabulary(CORPUS, None, start=True), tmp_path)
    with pytest.raises(ValueError, match="end_token=True"):
        lm_rows.load_lm_splits(data_cfg, seed=0, workdir=tmp_path)
    data_cfg.unit = "paragraph"
    with pytest.raises(ValueError, match="data.unit"):
        lm_rows.load_lm_splits(data_cfg, seed=0)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _tutorial_gru(U, W, x, s):
    """The tutorial's GRU without biases: U input weights, W recurrent weights, each as (z, r, h) blocks.

    z = σ(x U_z + s W_z),  r = σ(x U_r + s W_r),  h = tanh(x U_h + (s ∘ r) W_h),  s' = (1 − z) ∘ h + z ∘ s.
    """
    H = s.shape[-1]
    (Uz, Ur, Uh), (Wz, Wr, Wh) = ([M[:, k * H : (k + 1) * H] for k in range(3)] for M in (U, W))
    z = _sigmoid(x @ Uz + s @ Wz)
    r = _sigmoid(x @ Ur + s @ Wr)
    h = np.tanh(x @ Uh + (s * r) @ Wh)
    return (1 - z) * h + z * s


def test_gru_without_biases_is_the_tutorials_gru(key, x64):
    spec = lm.LMSpec(
        "gru", vocab_size=9, embed_dim=3, hidden_size=4, num_layers=2, reset_after=False, use_bias=False
    )
    params = jax.tree.map(lambda a: a.astype(jnp.float64), lm.init_lm(spec, key))
    assert set(params["gru"]) == set(params["gru_1"]) == {"kernel", "recurrent_kernel"}
    assert set(params["dense"]) == {"kernel", "bias"}  # the softmax keeps its bias (the tutorial's c)
    p = jax.device_get(params)
    x, s = jax.random.normal(key, (2, 3), jnp.float64), jax.random.normal(jax.random.fold_in(key, 1), (2, 4))
    (new,), _ = cells.get_cell("gru").step(params["gru"], (s.astype(jnp.float64),), x, reset_after=False)
    expected = _tutorial_gru(p["gru"]["kernel"], p["gru"]["recurrent_kernel"], np.asarray(x), np.asarray(s))
    np.testing.assert_allclose(new, expected, rtol=1e-13, atol=1e-13)

    # The whole model: embedding -> two tutorial GRUs -> softmax logits, step by step.
    tokens = jnp.asarray([[1, 4, 7, 2, 0], [1, 5, 2, 0, 0]], jnp.int32)
    lengths = jnp.asarray([4, 3], jnp.int32)
    logits = jax.device_get(lm.apply_lm(spec, params, tokens, lengths))
    for b in range(2):
        s1, s2 = np.zeros(4), np.zeros(4)
        for t in range(int(lengths[b])):
            x_e = p["embedding"]["embeddings"][int(tokens[b, t])]
            s1 = _tutorial_gru(p["gru"]["kernel"], p["gru"]["recurrent_kernel"], x_e, s1)
            s2 = _tutorial_gru(p["gru_1"]["kernel"], p["gru_1"]["recurrent_kernel"], s1, s2)
            expected = s2 @ p["dense"]["kernel"] + p["dense"]["bias"]
            np.testing.assert_allclose(logits[b, t], expected, rtol=1e-12, atol=1e-12)


def test_use_bias_defaults_to_true_for_old_specs_and_configs(monkeypatch):
    spec = lm.LMSpec("gru", vocab_size=9, embed_dim=3, hidden_size=4)
    old = {k: v for k, v in lm.spec_to_dict(spec).items() if k != "use_bias"}  # an lm.json of an older run
    assert lm.spec_from_dict(old) == spec and spec.use_bias
    old_config = lm_gru.get_config()
    del old_config.model["use_bias"]  # as a config written before the field existed
    assert language_model.make_lm_spec(old_config.model, vocab_size=9).use_bias
    assert language_model.make_lm_spec(lm_gru.get_config().model, vocab_size=9).use_bias
    assert not language_model.make_lm_spec(theano_gru_lm.get_config().model, vocab_size=9).use_bias
    fixed = cells.CELLS["gru"]._replace(
        init=lambda key, features, units: cells.init_gru(key, features, units)
    )
    monkeypatch.setitem(cells.CELLS, "gru_with_biases", fixed)  # a registered cell whose init has no use_bias
    with pytest.raises(ValueError, match="use_bias"):
        lm.LMSpec("gru_with_biases", vocab_size=9, embed_dim=3, hidden_size=4, use_bias=False)


def test_a_tiny_theano_gru_lm_trains_and_its_sentences_stop_at_the_end_id(tmp_path, key):
    config = _synthetic(theano_gru_lm.get_config())
    config.model.embed_dim, config.model.hidden_size = 5, 6
    config.train.batch_size, config.train.eval_batch_size = 8, 32
    config.train.max_steps, config.train.log_every_steps = 4, 2
    config.train.checkpoint_every_steps, config.train.progress_bar = 0, False
    state, results = language_model.train_lm(config, tmp_path / "run")
    assert int(state.step) == 4 and np.isfinite(results["validation"]["loss"])
    run = runs.load_run(tmp_path / "run", which="latest", kind="language_model")
    spec, params, vocab = run.spec, run.params, run.vocabulary
    assert (spec.use_bias, spec.reset_after, spec.num_layers, vocab.end_id) == (False, False, 2, 2)
    assert "bias" not in params["gru"] and "bias" not in params["gru_1"]

    params["dense"]["bias"] = params["dense"]["bias"].at[vocab.end_id].add(3.0)  # end sentences soon
    prompt = jnp.full((8, 1), vocab.start_id, jnp.int32)  # from the start id alone
    banned = (0, vocab.start_id, vocab.oov_id)
    out = lm.generate(spec, params, prompt, key, num_steps=30, banned=banned, end_id=vocab.end_id)
    tokens = np.asarray(out["tokens"])
    ended = (tokens == vocab.end_id).any(axis=1)
    assert ended.sum() >= 4, tokens
    for row, carry_h in zip(tokens[ended], np.asarray(out["carry"][-1][0])[ended]):
        stop = int(np.argmax(row == vocab.end_id))
        assert (row[stop + 1 :] == 0).all() and not np.isin(row[:stop], banned).any()
        # The held state is the one after reading the sentence up to its end id.
        sentence = jnp.asarray([[vocab.start_id, *row[: stop + 1]]], jnp.int32)
        _, carries = lm.apply_lm(spec, params, sentence, return_carry=True)
        np.testing.assert_allclose(carry_h, carries[-1][0][0], rtol=1e-5, atol=1e-6)
    assert not np.isin(tokens[~ended], banned).any()
