"""Property tests (hypothesis, few examples each): the text pipeline round-trips, pad_sequences keeps content,
the masked scan ignores padding, and the training data order is a pure function of (seed, epoch)."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnjax import cells, scan
from rnnjax.data import datasets as data
from rnnjax.data import text

FEW = settings(max_examples=25, deadline=None)
SCAN = settings(max_examples=6, deadline=None)  # each new shape compiles the scan once

# Words as text_to_word_sequence leaves them: lower-case, no filter character, no space.
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789'", min_size=1, max_size=8)
SEQUENCES = st.lists(st.lists(st.integers(1, 99), max_size=9), min_size=1, max_size=5)


@FEW
@given(st.lists(WORD, min_size=1, max_size=12), st.sampled_from([" ", "  ", " . ", "! ", ", "]))
def test_text_to_word_sequence_recovers_the_words(words, separator):
    sentence = separator.join(word.upper() for word in words)
    assert text.text_to_word_sequence(sentence) == words


@FEW
@given(st.lists(st.lists(WORD, max_size=8), min_size=1, max_size=5), st.booleans(), st.booleans())
def test_encode_then_decode_returns_in_vocabulary_words(texts_words, oov, start):
    vocab = text.fit_vocabulary(texts_words, oov=oov, start=start)
    for words in texts_words:
        ids = text.encode(vocab, words)
        assert all(0 < i < vocab.size for i in ids)
        assert text.decode(vocab, ids) == words
        assert text.decode(vocab, text.pad_sequences([ids], maxlen=len(ids) + 3, padding="post")[0]) == words


@FEW
@given(SEQUENCES, st.integers(1, 12), st.sampled_from(["pre", "post"]), st.sampled_from(["pre", "post"]))
def test_pad_sequences_shape_lengths_and_content(sequences, maxlen, padding, truncating):
    out = text.pad_sequences(sequences, maxlen=maxlen, padding=padding, truncating=truncating)
    lengths = text.sequence_lengths(sequences, maxlen)
    assert out.shape == (len(sequences), maxlen) and out.dtype == np.int32
    for row, seq, length in zip(out, sequences, lengths, strict=True):
        assert length == min(len(seq), maxlen)
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        real = row[maxlen - length :] if padding == "pre" else row[:length]
        pad = row[: maxlen - length] if padding == "pre" else row[length:]
        assert list(real) == list(kept) and not pad.any()


@FEW
@given(SEQUENCES)
def test_pad_sequences_without_maxlen_keeps_every_token(sequences):
    out = text.pad_sequences(sequences, padding="post")
    assert out.shape[1] == max(map(len, sequences))
    for row, seq in zip(out, sequences, strict=True):
        assert list(row[: len(seq)]) == seq


def _scan_inputs(seed: int, batch: int, steps: int):
    rng = np.random.default_rng(seed)
    params = cells.CELLS["gru"].init(jax.random.key(seed), 3, 4)
    lengths = rng.integers(1, steps + 1, batch)
    xs = rng.normal(size=(batch, steps, 3)).astype(np.float32)
    return params, xs, lengths


@SCAN
@given(st.integers(0, 2**16), st.integers(1, 3), st.integers(1, 5), st.integers(1, 4))
def test_extra_padding_changes_nothing(seed, batch, steps, extra):
    params, xs, lengths = _scan_inputs(seed, batch, steps)
    noise = np.random.default_rng(seed + 1).normal(size=(batch, extra, 3)).astype(np.float32)
    longer = np.concatenate([xs, noise], axis=1)  # padding need not be zero: the mask hides it
    carry, ys = scan.run("gru", params, jnp.asarray(xs), scan.sequence_mask(jnp.asarray(lengths), steps))
    carry2, ys2 = scan.run(
        "gru", params, jnp.asarray(longer), scan.sequence_mask(jnp.asarray(lengths), steps + extra)
    )
    np.testing.assert_allclose(carry2[0], carry[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ys2[:, :steps], ys, rtol=1e-6, atol=1e-6)
    assert not np.asarray(ys2[:, steps:]).any()


@SCAN
@given(st.integers(0, 2**16), st.integers(1, 3), st.integers(1, 6))
def test_left_and_right_padding_give_the_same_final_state(seed, batch, steps):
    params, xs, lengths = _scan_inputs(seed, batch, steps)
    right = np.zeros_like(xs)
    left = np.zeros_like(xs)
    mask_right = np.zeros((batch, steps), bool)
    mask_left = np.zeros((batch, steps), bool)
    for row, length in enumerate(lengths):
        right[row, :length] = xs[row, :length]
        left[row, steps - length :] = xs[row, :length]
        mask_right[row, :length] = True
        mask_left[row, steps - length :] = True
    carry_right, _ = scan.run("gru", params, jnp.asarray(right), jnp.asarray(mask_right))
    carry_left, _ = scan.run("gru", params, jnp.asarray(left), jnp.asarray(mask_left))
    np.testing.assert_allclose(carry_left[0], carry_right[0], rtol=1e-6, atol=1e-6)


def _arrays(n: int) -> dict[str, np.ndarray]:
    return {
        "tokens": np.arange(n * 2, dtype=np.int32).reshape(n, 2),
        "lengths": np.full(n, 2, np.int32),
        "label": (np.arange(n) % 2).astype(np.int32),
    }


@FEW
@given(st.integers(0, 2**31 - 1), st.integers(0, 50), st.integers(1, 30), st.integers(1, 7))
def test_data_order_is_a_pure_function_of_seed_and_epoch(seed, epoch, n, batch_size):
    arrays = _arrays(n)
    first = [b["tokens"].copy() for b in data.batches(arrays, batch_size, shuffle=True, seed=seed, epoch=epoch)]
    np.random.seed(seed % 1000 + 1)  # the global NumPy RNG must play no part
    again = [b["tokens"] for b in data.batches(arrays, batch_size, shuffle=True, seed=seed, epoch=epoch)]
    assert len(first) == len(again) and all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    rows = np.concatenate(first)[:n, 0] // 2
    assert sorted(rows.tolist()) == list(range(n))  # a permutation: every example once per epoch


def test_data_order_changes_with_seed_and_epoch():
    arrays = _arrays(40)

    def order(seed, epoch):
        return np.concatenate([b["tokens"][:, 0] for b in data.batches(arrays, 8, shuffle=True, seed=seed, epoch=epoch)])

    assert not np.array_equal(order(0, 0), order(0, 1))
    assert not np.array_equal(order(0, 0), order(1, 0))
    assert np.array_equal(order(3, 2), order(3, 2))
