"""Tests for rnnjax.data.cache through datasets.load_splits: the same splits with and without the cache, keys
that follow every setting, the source and the run's vocabulary, damaged entries set aside and rebuilt, and
writers that race."""

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from rnnjax.configs import default
from rnnjax.data import cache, text
from rnnjax.data import datasets as data
from rnnjax.training import runs, settings
from tests import fake_imdb

WORDS = ["good", "bad", "plot", "actor", "film", "scene", "music", "story", "ending", "script"]


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"label": int(label), "text": " ".join(rng.choice(WORDS, rng.integers(3, 12))) + (" great" * label)}
        for label in rng.integers(0, 2, n)
    ]


def _config(tmp_path: Path, **overrides):
    path = tmp_path / "reviews.jsonl"
    if not path.exists():
        fake_imdb.write_jsonl(path, _rows(60), compress=False)
    cfg = default.get_config().data
    cfg.update(name="amazon_reviews", source_file=str(path), data_dir=str(tmp_path / "tfds"), maxlen=8)
    cfg.update(overrides)
    return cfg


def _entries(tmp_path: Path) -> list[Path]:
    root = tmp_path / "tfds" / cache.CACHE_FOLDER
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def _assert_same(a: dict, b: dict) -> None:
    """Array for array, dtype for dtype, and the same vocabulary, classes and source."""
    for split in data.SPLITS:
        for name in data.BATCH_KEYS:
            x, y = a[split][name], b[split][name]
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), (split, name)
    assert (a["vocabulary"], a["classes"], a["name"], a["source"]) == (
        b["vocabulary"], b["classes"], b["name"], b["source"]
    )
    assert set(a) == set(b)


def _no_reading(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the source was read although the cache holds the splits")

    monkeypatch.setattr(data, "read_reviews_file", fail)


def test_second_load_reads_the_cache_and_is_bit_identical(tmp_path, monkeypatch):
    uncached = data.load_splits(_config(tmp_path, cache=False), seed=3)
    assert not _entries(tmp_path)  # cache=False writes nothing
    first = data.load_splits(_config(tmp_path), seed=3)
    assert len(_entries(tmp_path)) == 1
    _no_reading(monkeypatch)
    second = data.load_splits(_config(tmp_path), seed=3)
    _assert_same(uncached, first)
    _assert_same(uncached, second)


@pytest.mark.parametrize(
    "change",
    [{"maxlen": 5}, {"num_words": 12}, {"validation_split": 0.5}, {"padding": "pre"}, {"classes": ("0", "1", "2")},
     {"tokenizer": "porter"}, {"seed": 4}],
)
def test_every_setting_has_its_own_entry(tmp_path, change):
    change = dict(change)
    seed = change.pop("seed", 3)
    data.load_splits(_config(tmp_path), seed=3)
    changed = data.load_splits(_config(tmp_path, **change), seed=seed)
    _assert_same(changed, data.load_splits(_config(tmp_path, cache=False, **change), seed=seed))
    assert len(_entries(tmp_path)) == 2


def test_a_changed_source_file_is_read_again(tmp_path):
    before = data.load_splits(_config(tmp_path), seed=0)
    fake_imdb.write_jsonl(tmp_path / "reviews.jsonl", _rows(80, seed=1), compress=False)
    after = data.load_splits(_config(tmp_path), seed=0)
    assert sum(len(after[s]["label"]) for s in data.SPLITS) == 80 != sum(len(before[s]["label"]) for s in data.SPLITS)
    _assert_same(after, data.load_splits(_config(tmp_path, cache=False), seed=0))


def test_a_run_keeps_its_own_vocabulary(tmp_path, monkeypatch):
    fitted = data.load_splits(_config(tmp_path), seed=0, workdir=tmp_path / "run1")
    assert text.load_vocabulary(tmp_path / "run1") == fitted["vocabulary"]  # written from the cache path too
    small = text.fit_vocabulary([["good", "plot"]])
    text.save_vocabulary(small, tmp_path / "run2")
    own = data.load_splits(_config(tmp_path), seed=0, workdir=tmp_path / "run2")
    assert own["vocabulary"] == small and own["train"]["tokens"].max() < small.size
    _assert_same(own, data.load_splits(_config(tmp_path, cache=False), seed=0, workdir=tmp_path / "run2"))
    _no_reading(monkeypatch)
    _assert_same(own, data.load_splits(_config(tmp_path), seed=0, workdir=tmp_path / "run2"))
    again = data.load_splits(_config(tmp_path), seed=0, workdir=tmp_path / "run1")  # vocabulary.json now exists
    _assert_same(fitted, again)


def test_fixed_classes_of_a_run_key_the_cache(tmp_path):
    inferred = data.load_splits(_config(tmp_path), seed=0)
    data.save_classes(("1", "0"), tmp_path / "run")  # a run that saw the classes in another order
    fixed = data.load_splits(_config(tmp_path), seed=0, workdir=tmp_path / "run")
    assert inferred["classes"] == ("0", "1") and fixed["classes"] == ("1", "0")
    assert np.array_equal(fixed["train"]["label"], 1 - inferred["train"]["label"])


def _damage_npy(entry: Path) -> None:
    path = entry / "train.tokens.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))


DAMAGE = {
    "flipped bit": _damage_npy,
    "truncated array": lambda e: (e / "test.label.npy").write_bytes((e / "test.label.npy").read_bytes()[:50]),
    "missing array": lambda e: (e / "validation.lengths.npy").unlink(),
    "no manifest": lambda e: (e / cache.MANIFEST).unlink(),
    "manifest not json": lambda e: (e / cache.MANIFEST).write_text("{\"key\": "),
    "manifest of other settings": lambda e: (e / cache.MANIFEST).write_text(
        json.dumps(json.loads((e / cache.MANIFEST).read_text()) | {"key": {"data": {}}})
    ),
    "vocabulary": lambda e: (e / text.VOCABULARY_FILE).write_text("[]"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_entry_is_set_aside_and_rebuilt(tmp_path, damage, caplog):
    built = data.load_splits(_config(tmp_path), seed=0)
    (entry,) = _entries(tmp_path)
    DAMAGE[damage](entry)
    with caplog.at_level(logging.WARNING):
        rebuilt = data.load_splits(_config(tmp_path), seed=0)
    _assert_same(built, rebuilt)
    assert "damaged cache entry" in caplog.text
    aside = [p for p in entry.parent.iterdir() if p.name.startswith(entry.name + ".damaged-")]
    assert len(aside) == 1  # kept for a look, never deleted
    assert (entry / cache.MANIFEST).exists()  # the rebuilt entry
    _assert_same(built, data.load_splits(_config(tmp_path), seed=0))


def test_a_half_written_entry_is_never_read(tmp_path):
    cfg = _config(tmp_path)
    key = cache.splits_key(cfg, seed=0, classes=None, vocabulary=None)
    entry = cache._entry(cfg.data_dir, key)
    tmp = entry.with_name(f".tmp-{entry.name}-1-deadbeef")
    tmp.mkdir(parents=True)
    (tmp / "train.tokens.npy").write_bytes(b"half")  # a writer killed before its manifest and rename
    assert cache.load(cfg.data_dir, key) is None
    _assert_same(data.load_splits(cfg, seed=0), data.load_splits(_config(tmp_path, cache=False), seed=0))


def test_a_failed_write_is_said_and_changes_nothing(tmp_path, monkeypatch, caplog):
    def full(path, array):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "_write_npy", full)
    with caplog.at_level(logging.WARNING):
        splits = data.load_splits(_config(tmp_path), seed=0)
    assert "could not cache" in caplog.text and not _entries(tmp_path)
    assert not list((tmp_path / "tfds" / cache.CACHE_FOLDER).glob(".tmp-*"))
    _assert_same(splits, data.load_splits(_config(tmp_path, cache=False), seed=0))


def test_racing_writers_leave_one_good_entry(tmp_path):
    cfg = _config(tmp_path, cache=False)
    splits = data.load_splits(cfg, seed=0)
    key = cache.splits_key(cfg, seed=0, classes=None, vocabulary=None)
    read, errors = [], []

    def write_then_read():
        try:
            for _ in range(5):
                cache.save(cfg.data_dir, key, splits, [])
                read.append(cache.load(cfg.data_dir, key))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write_then_read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(read) == 20
    for got in read:
        assert got.pop("notes") == []
        _assert_same(splits, got)
    root = tmp_path / "tfds" / cache.CACHE_FOLDER
    assert [p.name for p in root.iterdir()] == [cache._entry(cfg.data_dir, key).name]  # no temporary left


def test_imdb_key_follows_the_prepared_copy(tmp_path):
    cfg = default.get_config().data
    cfg.data_dir = str(tmp_path)
    assert cache.splits_key(cfg, seed=0, classes=None, vocabulary=None) is None  # not prepared yet: not cached
    fake_imdb.prepare_neg_pos_imdb(tmp_path, name="imdb_reviews", text=lambda split, i: f"{split} {i}",
                                   config="plain_text")
    key = cache.splits_key(cfg, seed=0, classes=None, vocabulary=None)
    assert key is not None and key["source"]["copy"].endswith("1.0.0")
    record = next(Path(key["source"]["copy"]).glob("*.array_record-*"))
    record.write_bytes(record.read_bytes() + b"\0")  # a copy changed in place
    assert cache.splits_key(cfg, seed=0, classes=None, vocabulary=None) != key


def test_an_old_run_without_the_cache_field_resumes(tmp_path):
    saved = default.get_config().to_dict()
    del saved["data"]["cache"]  # a run directory from before the field
    (tmp_path / runs.CONFIG_FILE).write_text(json.dumps(saved))
    for cache_on in (True, False):
        config = default.get_config()
        config.data.cache = cache_on
        assert runs.check_run(tmp_path, kind="classifier", config=config.to_dict(), mutable=settings.MUTABLE)
    saved["data"]["cache"] = True  # a run with the field may switch it on resume
    (tmp_path / runs.CONFIG_FILE).write_text(json.dumps(saved))
    config.data.cache = False
    assert runs.check_run(tmp_path, kind="classifier", config=config.to_dict(), mutable=settings.MUTABLE)


def test_training_is_bit_identical_with_and_without_the_cache(tmp_path):
    import jax

    from experiments.configs import tiny
    from rnnjax.training import classifier

    def train(workdir: str, cache_on: bool):
        config = tiny.get_config()
        config.data = _config(tmp_path, cache=cache_on, num_words=20, validation_split=0.25)
        config.train.update(epochs=1, batch_size=8, eval_batch_size=8, max_steps=3, progress_bar=False)
        state, results = classifier.train_and_evaluate(config, tmp_path / workdir)
        return jax.device_get(state.params), {k: v for k, v in results["test"].items() if "time" not in k}

    uncached, built, read = train("a", False), train("b", True), train("c", True)
    assert len(_entries(tmp_path)) == 1
    for params, metrics in (built, read):
        assert jax.tree.all(jax.tree.map(lambda x, y: np.array_equal(x, y), uncached[0], params))
        assert metrics == uncached[1]


def test_backward_reading_shares_the_forward_entry(tmp_path, monkeypatch):
    forward = data.load_splits(_config(tmp_path), seed=0)
    uncached = data.load_splits(_config(tmp_path, cache=False, reverse=True), seed=0)
    _no_reading(monkeypatch)
    backward = data.load_splits(_config(tmp_path, reverse=True), seed=0)
    _assert_same(uncached, backward)
    assert len(_entries(tmp_path)) == 1 and not np.array_equal(forward["train"]["tokens"], backward["train"]["tokens"])
