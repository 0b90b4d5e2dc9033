"""Tests for rnnjax.data.text: Keras tokenization, the Amazon cleaning, the vocabulary, padding against Keras."""

import itertools
import json
import string

import hypothesis
import hypothesis.strategies as st
import keras
import numpy as np
import pytest

from rnnjax.data import text


def test_keras_filters_are_punctuation_but_apostrophe_plus_tab_newline():
    assert set(text.KERAS_FILTERS) == (set(string.punctuation) - {"'"}) | {"\t", "\n"}
    assert len(text.KERAS_FILTERS) == len(set(text.KERAS_FILTERS))


@pytest.mark.parametrize(
    "raw, kwargs, expected",
    [
        ("An excellent movie!", {}, ["an", "excellent", "movie"]),
        ("It's `great`,\tisn't it?\nYes", {}, ["it's", "great", "isn't", "it", "yes"]),
        ("Good.<br /><br />Bad", {}, ["good", "br", "br", "bad"]),  # Keras keeps the tag's letters
        ("Good.<br /><br />Bad", {"strip_html": True}, ["good", "bad"]),
        ("Good.<BR>Bad<br/>x", {"strip_html": True}, ["good", "bad", "x"]),
        ("An Excellent movie", {"lower": False}, ["An", "Excellent", "movie"]),
        ("a-b c", {"filters": "", "split": "-"}, ["a", "b c"]),
        ("  \u00e9t\u00e9   caf\u00e9 ", {}, ["\u00e9t\u00e9", "caf\u00e9"]),
        ("", {}, []),
    ],
)
def test_text_to_word_sequence(raw, kwargs, expected):
    assert text.text_to_word_sequence(raw, **kwargs) == expected


def test_clean_words_drops_stop_words_and_punctuation_and_stems():
    words = text.clean_words("Great CD: I love the voices. It isn't bad... (Really!)")
    assert words == ["great", "cd", "love", "voic", "n't", "bad", "realli"]
    assert text.clean_words("the and of , . !") == []
    assert text.clean_words("Loved it.<br /><br />Movies", strip_html=True) == ["love", "movi"]


def test_stop_words_are_nltk_english_list():
    assert len(text.ENGLISH_STOP_WORDS) == 179
    assert {"i", "the", "not", "wouldn't", "ain"} <= text.ENGLISH_STOP_WORDS


def test_tokenize_methods():
    texts = ["Loving it!<br />Really", ""]
    assert text.tokenize(texts) == [["loving", "it", "really"], []]
    assert text.tokenize(texts, strip_html=False) == [["loving", "it", "br", "really"], []]
    assert text.tokenize(texts, method="porter") == [["love", "realli"], []]
    with pytest.raises(ValueError, match="method='bpe'"):
        text.tokenize(texts, method="bpe")


CORPUS = [["b", "a", "c"], ["a", "d", "b"], ["c", "a", "e"]]  # counts: a 3, b 2, c 2, d 1, e 1


def test_fit_vocabulary_ranks_by_count_with_first_seen_ties():
    vocab = text.fit_vocabulary(CORPUS)
    assert vocab.words == ("a", "b", "c", "d", "e")  # b before c, d before e: first seen
    assert (vocab.index_from, vocab.oov_id, vocab.start_id, vocab.size) == (2, 1, None, 7)
    assert vocab.index == {"a": 2, "b": 3, "c": 4, "d": 5, "e": 6}


def test_fit_vocabulary_num_words_counts_reserved_ids():
    vocab = text.fit_vocabulary(CORPUS, num_words=4)
    assert vocab.words == ("a", "b") and vocab.size == 4
    assert text.encode(vocab, ["a", "c", "b", "zzz"]) == [2, 1, 3, 1]
    assert text.fit_vocabulary(CORPUS, num_words=100).size == 7  # fewer words than num_words


def test_fit_vocabulary_keras_imdb_and_tokenizer_layouts():
    imdb = text.fit_vocabulary(CORPUS, num_words=5, start=True, index_from=3)  # keras.datasets.imdb
    assert (imdb.start_id, imdb.oov_id, imdb.index_from, imdb.words) == (1, 2, 3, ("a", "b"))
    assert text.encode(imdb, ["b", "c", "a"]) == [1, 4, 2, 3]
    plain = text.fit_vocabulary(
        CORPUS, num_words=4, oov=False
    )  # Tokenizer(num_words=4): ids 1..3, unknowns dropped
    assert (plain.oov_id, plain.index_from, plain.words) == (None, 1, ("a", "b", "c"))
    assert text.encode(plain, ["d", "c", "zzz", "a"]) == [3, 1]
    gap = text.fit_vocabulary(CORPUS, index_from=10)
    assert text.encode(gap, ["a"]) == [10] and gap.size == 15


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_words": 2}, "num_words=2"),
        ({"index_from": 1}, "index_from=1"),
        ({"start": True, "index_from": 2}, "index_from=2"),
    ],
)
def test_fit_vocabulary_rejects_bad_layouts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        text.fit_vocabulary(CORPUS, **kwargs)


def test_encode_ids_stay_below_size_and_decode_round_trips():
    rng = np.random.default_rng(0)
    words = [[f"w{i}" for i in rng.zipf(1.5, size=30) % 500] for _ in range(50)]
    vocab = text.fit_vocabulary(words, num_words=60, start=True)
    ids = [text.encode(vocab, ws) for ws in words]
    assert max(map(max, ids)) < vocab.size == 60 and min(map(min, ids)) >= 1
    for ws, seq in zip(words, ids):
        assert text.decode(vocab, seq) == [w if w in vocab.index else text.OOV_WORD for w in ws]
    full = text.fit_vocabulary(words)
    assert all(text.decode(full, text.encode(full, ws)) == ws for ws in words)
    assert text.decode(vocab, [0, 0, 1, 3]) == [vocab.words[0]]  # padding and start skipped
    with pytest.raises(ValueError, match="60"):
        text.decode(vocab, [60])


def test_vocabulary_save_load_round_trip(tmp_path):
    vocab = text.fit_vocabulary([["caf\u00e9", "a", "a"], ['"q"']], num_words=10, start=True)
    path = text.save_vocabulary(vocab, tmp_path / "run")
    assert path == tmp_path / "run" / "vocabulary.json"
    assert json.loads(path.read_text(encoding="utf-8"))["words"] == ["a", "caf\u00e9", '"q"']
    assert text.load_vocabulary(tmp_path / "run") == vocab


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "cannot read"),
        ("{not json", "not a vocabulary file"),
        ('{"words": ["a"]}', "not a vocabulary file"),
        ('{"words": [1], "index_from": 2, "oov_id": 1, "start_id": null}', "words must be strings"),
    ],
)
def test_load_vocabulary_errors_name_the_file(tmp_path, content, match):
    if content is not None:
        (tmp_path / "vocabulary.json").write_text(content)
    with pytest.raises(text.DataError, match=match) as info:
        text.load_vocabulary(tmp_path)
    assert str(tmp_path / "vocabulary.json") in str(info.value) and "\n" not in str(info.value)


SEQUENCES = [[1, 2, 3], [], [4, 5, 6, 7, 8, 9], [7], np.array([3, 1]), [5, 5, 5, 5]]


@pytest.mark.parametrize("padding, truncating", itertools.product(["pre", "post"], repeat=2))
@pytest.mark.parametrize("maxlen", [None, 1, 3, 4, 10])
def test_pad_sequences_equals_keras(padding, truncating, maxlen):
    kwargs = {"maxlen": maxlen, "padding": padding, "truncating": truncating}
    expected = keras.utils.pad_sequences(SEQUENCES, **kwargs)
    got = text.pad_sequences(SEQUENCES, **kwargs)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        text.sequence_lengths(SEQUENCES, maxlen), np.minimum([3, 0, 6, 1, 2, 4], maxlen or 6)
    )


def test_pad_sequences_dtype_value_and_all_empty():
    kwargs = {"maxlen": 3, "dtype": "float32", "value": -1.5, "padding": "post"}
    np.testing.assert_array_equal(
        text.pad_sequences([[1, 2]], **kwargs), keras.utils.pad_sequences([[1, 2]], **kwargs)
    )
    np.testing.assert_array_equal(text.pad_sequences([[], []]), keras.utils.pad_sequences([[], []]))
    assert text.pad_sequences([[], []]).shape == (2, 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"maxlen": 0}, "maxlen=0"), ({"padding": "left"}, "padding"), ({"truncating": "x"}, "truncating")],
)
def test_pad_sequences_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        text.pad_sequences([[1]], **kwargs)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    sequences=st.lists(st.lists(st.integers(1, 50), max_size=12), min_size=1, max_size=8),
    maxlen=st.one_of(st.none(), st.integers(1, 15)),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
)
def test_pad_sequences_property_matches_keras_and_lengths(sequences, maxlen, padding, truncating):
    kwargs = {"maxlen": maxlen, "padding": padding, "truncating": truncating}
    tokens = text.pad_sequences(sequences, **kwargs)
    np.testing.assert_array_equal(tokens, keras.utils.pad_sequences(sequences, **kwargs))
    lengths = text.sequence_lengths(sequences, maxlen)
    np.testing.assert_array_equal((tokens != 0).sum(axis=1), lengths)  # ids are >= 1, so nonzero = real
    assert lengths.dtype == np.int32 and (lengths <= tokens.shape[1]).all()
