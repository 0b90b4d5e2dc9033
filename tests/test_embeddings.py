"""Word vectors: reading GloVe and word2vec text files, coverage, random rows, and a frozen embedding staying frozen."""

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnjax import models
from rnnjax.data import embeddings, text
from rnnjax.training import classifier, loop, transfer


@pytest.fixture
def vocab() -> text.Vocabulary:
    words = [["good", "movie", "bad", "plot", "zzz"], ["good", "movie", "bad"], ["good", "movie"], ["good"]]
    return text.fit_vocabulary(
        words, None, oov=True
    )  # ids: 0 pad, 1 OOV, 2 good, 3 movie, 4 bad, 5 plot, 6 zzz


def _vectors(words, dim, seed=0):
    return np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32)


def test_glove_file_gives_the_vocabulary_its_vectors(tmp_path, vocab, key):
    file_words = ["movie", "good", "unrelated", "plot"]
    vectors = _vectors(file_words, 3)
    path = embeddings.save_word_vectors(tmp_path / "vectors.txt", file_words, vectors)
    read = embeddings.read_word_vectors(path)
    assert list(read) == file_words
    np.testing.assert_allclose(read["good"], vectors[1], rtol=1e-5)
    table, coverage = embeddings.embedding_matrix(vocab, read, embed_dim=3, key=key)
    assert table.shape == (vocab.size, 3) and table.dtype == np.float32
    assert coverage["found"] == 3 and coverage["words"] == 5
    assert coverage["fraction"] == pytest.approx(0.6)
    assert coverage["missing"] == ["bad", "zzz"]
    for word in ("movie", "good", "plot"):
        np.testing.assert_allclose(table[vocab.index[word]], vectors[file_words.index(word)], rtol=1e-5)
    unknown = table[[0, 1, vocab.index["bad"], vocab.index["zzz"]]]
    assert np.all(np.abs(unknown) <= 0.05) and np.unique(unknown).size == unknown.size  # random, not zeros


def test_word2vec_header_gzip_and_a_filter(tmp_path, vocab):
    path = tmp_path / "vectors.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("3 2\nbad 1 2\ngood 3 4\nother 5 6\n")
    read = embeddings.read_word_vectors(path, words={"bad", "good", "nope"})
    assert sorted(read) == ["bad", "good"]
    np.testing.assert_array_equal(read["good"], [3.0, 4.0])


def test_bad_files_and_sizes_are_clear_errors(tmp_path, vocab, key):
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("good 1 2 3\nbad 1 2\n")
    with pytest.raises(text.DataError, match="line 2"):
        embeddings.read_word_vectors(ragged)
    words = tmp_path / "words.txt"
    words.write_text("good 1 x\n")
    with pytest.raises(text.DataError, match="not numbers"):
        embeddings.read_word_vectors(words)
    with pytest.raises(text.DataError, match="cannot read"):
        embeddings.read_word_vectors(tmp_path / "missing.txt")
    path = embeddings.save_word_vectors(tmp_path / "v.txt", ["good"], np.ones((1, 4)))
    params = {"embedding": {"embeddings": jnp.zeros((vocab.size, 3))}}
    with pytest.raises(ValueError, match="embed_dim=3"):
        embeddings.init_embedding(params, vocab, path, key=key)
    with pytest.raises(ValueError, match="vocab_size"):
        embeddings.init_embedding({"embedding": {"embeddings": jnp.zeros((4, 4))}}, vocab, path, key=key)


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_embedding_stays_bit_identical(tmp_path, vocab, key, frozen):
    file_words = list(vocab.words)
    path = embeddings.save_word_vectors(tmp_path / "v.txt", file_words, _vectors(file_words, 4))
    spec = models.make_classifier(
        cell="gru", vocab_size=vocab.size, embed_dim=4, hidden_size=5, spatial_dropout=0.2
    )
    params, coverage = embeddings.init_embedding(models.init_model(spec, key), vocab, path, key=key)
    assert coverage["found"] == 5
    tx = transfer.finetune_optimizer(
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)),
        trainable_from={"embedding": None} if frozen else {},
    )
    state = loop.TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), jax.random.key(0))
    task = classifier.classifier_task(classifier.ModelConfig(spec))
    step = jax.jit(loop.train_step_fn(task, tx), donate_argnums=0)
    batch = {
        "tokens": np.array([[2, 3, 4, 0], [5, 6, 2, 3]], np.int32),
        "lengths": np.array([3, 4], np.int32),
        "label": np.array([1, 0], np.int32),
    }
    before = jax.tree.map(np.array, params)
    for _ in range(3):
        state, _ = step(state, batch)
    after = jax.device_get(state.params)
    table_kept = np.array_equal(after["embedding"]["embeddings"], before["embedding"]["embeddings"])
    assert table_kept == frozen
    assert not np.array_equal(after["gru"]["kernel"], before["gru"]["kernel"])
    assert not np.array_equal(after["dense"]["kernel"], before["dense"]["kernel"])
