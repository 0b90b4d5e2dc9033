"""Tests for multi-class labels: rnnjax.data.labels, class names and ids in datasets.load_splits, IMDB's star
ratings from sources.prepare_imdb, and binary data loading exactly as before."""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rnnjax.configs import default
from rnnjax.data import datasets as data
from rnnjax.data import labels, sources, text
from tests import fake_imdb as fake_imdb_module

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
IMDB_DIR = SHARED / "imdb"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MOODS = ("bad", "neutral", "good", "great")  # sorted: bad, good, great, neutral

tfds.disable_progress_bar()


def _spell(i: int) -> str:
    return " ".join(DIGITS[int(c)] for c in f"{i:03d}")


def _rows(n: int, classes, seed: int = 0) -> list[dict]:
    """Rows whose text holds the row's class (a word) and its number spelled out, so a row can be traced."""
    rng = np.random.default_rng(seed)
    picks = [classes[i % len(classes)] for i in range(n)]  # every class in every split of a large enough n
    rng.shuffle(picks)
    return [{"text": f"a {label} review {_spell(i)}", "label": label} for i, label in enumerate(picks)]


def _write_jsonl(path: Path, rows, *, compress: bool = False) -> Path:
    return fake_imdb_module.write_jsonl(path, rows, compress=compress)


def _write_csv(path: Path, rows, label_column: str = "label") -> Path:
    path.write_text(f"text,{label_column}\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in rows))
    return path


def _config(tmp_path: Path, **overrides):
    cfg = default.get_config().data
    cfg.update(data_dir=str(tmp_path / "tfds"), num_words=None, **overrides)
    return cfg


def _traced(splits: dict, split: str) -> list[tuple[int, str]]:
    """(row number, class name of its label id) of each row of a split."""
    vocab, arrays = splits["vocabulary"], splits[split]
    out = []
    for tokens, label in zip(arrays["tokens"], arrays["label"]):
        words = text.decode(vocab, tokens)
        out.append((int("".join(str(DIGITS.index(w)) for w in words[3:6])), splits["classes"][label]))
    return out


def _check_labels(splits: dict, rows: list[dict]) -> None:
    """Every row of every split has the id of its own class, and every row is somewhere."""
    seen = [pair for split in data.SPLITS for pair in _traced(splits, split)]
    assert sorted(seen) == [(i, str(r["label"])) for i, r in enumerate(rows)]
    for split in data.SPLITS:
        assert splits[split]["label"].dtype == np.int32


# Label values and class ids.


@pytest.mark.parametrize(
    "value, expected",
    [(1, 1), (-1, -1), (True, 1), (False, 0), (7.0, 7), ("3", 3), (" +4 ", 4), ("2.0", 2), ("1e1", 10)]
    + [(" pos ", "pos"), ("4.5 stars", "4.5 stars"), ("caf\u00e9", "caf\u00e9")],
)
def test_parse_label_integers_and_names(value, expected):
    parsed = labels.parse_label(value, "f:1")
    assert parsed == expected and type(parsed) is type(expected)
    assert labels.label_from_text(labels.label_text(parsed)) == parsed


@pytest.mark.parametrize("value", [2.5, "2.5", float("nan"), None, "", "  ", [1], {"a": 1}])
def test_parse_label_rejects_other_values(value):
    with pytest.raises(data.DataError, match=r"^f:7: label .* is not an integer or a class name$"):
        labels.parse_label(value, "f:7")


def test_assign_ids_infers_numeric_or_string_order():
    assert labels.assign_ids(np.array([1, 0, 1]), classes=None, origin="", where="w")[0] == ("0", "1")
    classes, ids = labels.assign_ids([10, 2, 7, 2], classes=None, origin="", where="w")
    assert classes == ("2", "7", "10") and ids.tolist() == [2, 0, 1, 0] and ids.dtype == np.int32
    classes, ids = labels.assign_ids(["b", 10, "a", 9], classes=None, origin="", where="w")
    assert classes == ("10", "9", "a", "b") and ids.tolist() == [3, 0, 2, 1]  # mixed: all as strings
    classes, ids = labels.assign_ids([5, "x"], classes=("x", "5", "y"), origin="o", where="w")
    assert classes == ("x", "5", "y") and ids.tolist() == [1, 0]
    with pytest.raises(
        data.DataError, match=r"^w: label 'z' is not one of the classes of o \(x, y\); 2 rows"
    ):
        labels.assign_ids(["x", "z", "z"], classes=("x", "y"), origin="o", where="w")
    with pytest.raises(data.DataError, match=r"label 'a' \(also 'b', 'c', 'd', ...\) .* 6 rows have such"):
        labels.assign_ids([*"xabcdef"], classes=("x", "y"), origin="o", where="w")


# Files with string and integer labels.


def test_string_labels_from_jsonl_and_csv_give_the_same_splits(tmp_path):
    rows = _rows(120, MOODS[:3])
    jsonl = data.load_splits(
        _config(
            tmp_path,
            name="amazon_reviews",
            source_file=str(_write_jsonl(tmp_path / "r.jsonl.gz", rows, compress=True)),
        ),
        seed=0,
    )
    csv = data.load_splits(
        _config(tmp_path, name="csv", source_file=str(_write_csv(tmp_path / "r.csv", rows))), seed=0
    )
    assert jsonl["classes"] == csv["classes"] == ("bad", "good", "neutral")
    _check_labels(jsonl, rows)
    for split in data.SPLITS:
        assert all(np.array_equal(jsonl[split][k], csv[split][k]) for k in data.BATCH_KEYS)
        assert set(jsonl[split]["label"].tolist()) == {0, 1, 2}


def test_integer_labels_not_from_zero_get_their_rank(tmp_path):
    values = (1, 3, 10)
    rows = _rows(90, values)
    written = [
        {**r, "label": {1: True, 3: " 3 ", 10: 10.0}[r["label"]] if i % 2 else r["label"]}
        for i, r in enumerate(rows)
    ]
    splits = data.load_splits(
        _config(
            tmp_path, name="amazon_reviews", source_file=str(_write_jsonl(tmp_path / "r.jsonl", written))
        ),
        seed=0,
    )
    assert splits["classes"] == ("1", "3", "10")  # numeric order, not "1", "10", "3"
    _check_labels(splits, rows)
    stats = data.describe_splits(
        _config(tmp_path, name="amazon_reviews", source_file=str(tmp_path / "r.jsonl")), seed=0
    )
    assert stats["classes"] == ("1", "3", "10")
    assert [stats["splits"][s]["label_counts"].tolist() for s in data.SPLITS] == [
        np.bincount(splits[s]["label"], minlength=3).tolist() for s in data.SPLITS
    ]
    assert sum(sum(stats["splits"][s]["label_counts"]) for s in data.SPLITS) == 90


def test_configured_classes_fix_names_and_order(tmp_path):
    rows = _rows(120, MOODS[:3])
    path = _write_jsonl(tmp_path / "r.jsonl", rows)
    inferred = data.load_splits(_config(tmp_path, name="amazon_reviews", source_file=str(path)), seed=0)
    order = ("neutral", "good", "great", "bad")  # a class the data lacks is allowed
    fixed = data.load_splits(
        _config(tmp_path, name="amazon_reviews", source_file=str(path), classes=order), seed=0
    )
    assert fixed["classes"] == order
    _check_labels(fixed, rows)
    remap = np.array([order.index(name) for name in inferred["classes"]])
    for split in data.SPLITS:
        np.testing.assert_array_equal(fixed[split]["label"], remap[inferred[split]["label"]])
        np.testing.assert_array_equal(fixed[split]["tokens"], inferred[split]["tokens"])


def test_label_outside_configured_classes_is_a_data_error(tmp_path):
    path = _write_jsonl(tmp_path / "r.jsonl", _rows(60, MOODS[:3]))
    cfg = _config(tmp_path, name="amazon_reviews", source_file=str(path), classes=("bad", "good"))
    with pytest.raises(
        data.DataError, match=r"r.jsonl: label 'neutral' .* config.data.classes \(bad, good\)"
    ):
        data.load_splits(cfg, seed=0)


@pytest.mark.parametrize(
    "classes, match",
    [
        (("only",), "1 classes; a classifier needs at least 2"),
        (("a", "b", "a"), "'a' is listed more than once"),
        (("a", " b"), "class name ' b'"),
        (("a", 2), "class name 2"),
    ],
)
def test_bad_configured_classes(tmp_path, classes, match):
    with pytest.raises(ValueError, match=match):
        data.load_splits(_config(tmp_path, name="synthetic", synthetic_examples=50, classes=classes), seed=0)


def test_same_file_with_another_label_column_is_prepared_apart(tmp_path):
    rows = [{**r, "stars": 1 + i % 5} for i, r in enumerate(_rows(100, (0, 1)))]
    path = _write_jsonl(tmp_path / "r.jsonl", rows)
    by_label = data.load_splits(_config(tmp_path, name="amazon_reviews", source_file=str(path)), seed=0)
    by_stars = data.load_splits(
        _config(tmp_path, name="amazon_reviews", source_file=str(path), label_column="stars"), seed=0
    )
    again = data.load_splits(_config(tmp_path, name="amazon_reviews", source_file=str(path)), seed=0)
    assert (by_label["classes"], by_stars["classes"]) == (("0", "1"), ("1", "2", "3", "4", "5"))
    assert all(np.array_equal(by_label[s]["label"], again[s]["label"]) for s in data.SPLITS)
    stars = {i: str(r["stars"]) for i, r in enumerate(rows)}
    assert all(stars[i] == name for s in data.SPLITS for i, name in _traced(by_stars, s))
    assert len(list((tmp_path / "tfds" / "rnnjax_reviews_file").iterdir())) == 2


def test_each_split_needs_two_classes(tmp_path):
    rows = [{"text": f"review {_spell(i)}", "label": "same"} for i in range(30)]
    path = _write_jsonl(tmp_path / "one.jsonl", rows)
    with pytest.raises(
        data.DataError,
        match=r"one.jsonl train: all its \d+ reviews have label same; a split needs at least 2",
    ):
        data.load_splits(_config(tmp_path, name="amazon_reviews", source_file=str(path)), seed=0)


# The run directory's classes.json.


def test_classes_file_round_trip_and_reuse(tmp_path):
    run = tmp_path / "run"
    assert data.load_classes(run) is None
    path = data.save_classes(("neutral", "bad", "good"), run)
    assert path == run / data.CLASSES_FILE and json.loads(path.read_text()) == {
        "classes": ["neutral", "bad", "good"]
    }
    assert data.load_classes(run) == ("neutral", "bad", "good")
    rows = _rows(120, MOODS[:3])
    cfg = _config(tmp_path, name="amazon_reviews", source_file=str(_write_jsonl(tmp_path / "r.jsonl", rows)))
    splits = data.load_splits(cfg, seed=0, workdir=run)
    assert splits["classes"] == ("neutral", "bad", "good")
    _check_labels(splits, rows)
    fresh = tmp_path / "fresh"
    assert data.load_splits(cfg, seed=0, workdir=fresh)["classes"] == ("bad", "good", "neutral")
    assert not (fresh / data.CLASSES_FILE).exists()  # load_splits never writes the classes


def test_classes_file_refuses_labels_it_lacks_and_a_conflicting_config(tmp_path):
    run = tmp_path / "run"
    data.save_classes(("bad", "good"), run)
    cfg = _config(
        tmp_path,
        name="amazon_reviews",
        source_file=str(_write_jsonl(tmp_path / "r.jsonl", _rows(60, MOODS[:3]))),
    )
    with pytest.raises(
        data.DataError,
        match=r"r.jsonl: label 'neutral' is not one of the classes of .*/run/classes.json \(bad, good\); 20 rows",
    ):
        data.load_splits(cfg, seed=0, workdir=run)
    cfg.classes = ("good", "bad", "neutral")
    with pytest.raises(
        data.DataError, match=r"classes.json: the run's classes \(bad, good\) differ from config"
    ):
        data.load_splits(cfg, seed=0, workdir=run)


@pytest.mark.parametrize(
    "content, match",
    [
        (b'{"classes": ["a", "b"]', r"not a classes file \(JSONDecodeError"),
        (b"\xff\xfe", r"not a classes file \(UnicodeDecodeError"),
        (b'["a", "b"]', r'not a classes file \(expected \{"classes": \[...\]\}\)'),
        (b'{"names": ["a", "b"]}', r"not a classes file \(expected"),
        (b'{"classes": "ab"}', r"expected a list of class names, found str"),
        (b'{"classes": ["a"]}', r"1 classes; a classifier needs at least 2"),
        (b'{"classes": ["a", "b", "a"]}', r"class 'a' is listed more than once"),
        (b'{"classes": ["a", 1]}', r"class name 1 is not a non-empty string"),
    ],
)
def test_damaged_classes_file_is_a_data_error(tmp_path, content, match):
    (tmp_path / data.CLASSES_FILE).write_bytes(content)
    with pytest.raises(data.DataError, match=match) as info:
        data.load_classes(tmp_path)
    assert str(tmp_path / data.CLASSES_FILE) in str(info.value) and "\n" not in str(info.value)
    cfg = _config(tmp_path, name="synthetic", synthetic_examples=50)
    with pytest.raises(data.DataError, match=match):
        data.load_splits(cfg, seed=0, workdir=tmp_path)


def test_save_classes_rejects_bad_names(tmp_path):
    with pytest.raises(ValueError, match="listed more than once"):
        data.save_classes(("a", "a"), tmp_path)
    assert not (tmp_path / data.CLASSES_FILE).exists()


# Binary data: the same arrays as before classes existed.

# sha256 of every split's tokens, lengths and labels and of the vocabulary, as load_splits gave them before
# class names existed (binary labels were read as 0/1 and used as they were). Update only for an intended change.
GOLDEN = {
    "synthetic": "951056518b1869f2d41c24cd416b391e25e4dd1eb93c39d510b37cdf42954e59",
    "csv": "152a7d9481ab2ed4acc6db7158103f17e86e4516d73e4e86c6d459e81220a2b7",
}


def _binary_configs(tmp_path: Path) -> dict:
    rng = np.random.default_rng(7)
    rows = [
        {
            "text": f"review {_spell(i)} " + " ".join(rng.choice(list(DIGITS), 5)),
            "label": int(rng.integers(2)),
        }
        for i in range(200)
    ]
    path = _write_csv(tmp_path / "binary.csv", rows)
    return {
        "synthetic": {"name": "synthetic", "synthetic_examples": 400},
        "csv": {"name": "csv", "source_file": str(path), "padding": "pre", "validation_mode": "last"},
    }


def _digest(splits: dict) -> str:
    digest = hashlib.sha256(json.dumps(list(splits["vocabulary"].words)).encode())
    for split in ("train", "validation", "test"):
        for key in ("tokens", "lengths", "label"):
            array = splits[split][key]
            digest.update(f"{split} {key} {array.dtype} {array.shape}".encode() + array.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_binary_loading_is_unchanged(tmp_path, name):
    cfg = default.get_config().data
    cfg.update(data_dir=str(tmp_path / "tfds"), **_binary_configs(tmp_path)[name])
    splits = data.load_splits(cfg, seed=0)
    assert splits["classes"] == ("0", "1")
    assert _digest(splits) == GOLDEN[name], "binary arrays changed; update GOLDEN only for an intended change"
    cfg.classes = ("0", "1")
    assert _digest(data.load_splits(cfg, seed=0)) == GOLDEN[name]
    data.save_classes(("0", "1"), tmp_path / "run")
    assert _digest(data.load_splits(cfg, seed=0, workdir=tmp_path / "run")) == GOLDEN[name]


# IMDB's star ratings.

RATINGS = {"neg": (1, 2, 3, 4), "pos": (7, 8, 9, 10)}


def _fake_imdb(drop_train_rating: int | None = None) -> dict[str, list[dict]]:
    """A tiny IMDB in the jsonl layout: each rating twice per labelled split, and 2 unlabelled reviews."""
    splits = {}
    for split in ("train", "test"):
        splits[split] = [
            {
                "id": f"{split}/{cls}/{n}_{rating}",
                "label": int(cls == "pos"),
                "rating": rating,
                "text": f"{split} {cls} review {_spell(n)} <br />stars {DIGITS[rating % 10]}",
            }
            for cls, ratings in RATINGS.items()
            for n, rating in enumerate(
                r for r in ratings for _ in range(2) if not (split == "train" and r == drop_train_rating)
            )
        ]
    splits["unsup"] = [
        {"id": f"train/unsup/{n}_0", "label": -1, "rating": None, "text": f"unsup {_spell(n)}"}
        for n in range(2)
    ]
    return splits


@pytest.fixture(scope="module")
def fake_imdb(tmp_path_factory) -> dict[str, Path]:
    return fake_imdb_module.imdb_layouts(tmp_path_factory.mktemp("fake_imdb"), _fake_imdb())


def _imdb_records(source) -> list[tuple[str, int, int]]:
    return [
        (r["text"].decode(), int(r["label"]), int(r["rating"]))
        for r in source.__getitems__(range(len(source)))
    ]


@pytest.mark.parametrize("layout", ["jsonl", "folder", "tar"])
def test_imdb_ratings_from_each_layout(fake_imdb, tmp_path, layout):
    prepared = data.prepare_imdb(data_dir=tmp_path / "tfds", source_dir=fake_imdb[layout], with_rating=True)
    expected = {
        s: sorted((r["text"], r["label"], r["rating"] or -1) for r in rows)
        for s, rows in _fake_imdb().items()
    }
    for split, name in (("train", "train"), ("test", "test"), ("unsupervised", "unsup")):
        assert sorted(_imdb_records(prepared[split])) == expected[name]
    splits = data.load_splits(
        _config(tmp_path, source_dir=str(fake_imdb[layout]), label_column="rating", validation_split=0.0),
        seed=0,
    )
    assert splits["classes"] == ("1", "2", "3", "4", "7", "8", "9", "10")
    for split in ("train", "test"):
        assert splits[split]["label"].tolist() == [  # the prepared order, each rating as its class id
            splits["classes"].index(str(rating)) for _, _, rating in _imdb_records(prepared[split])
        ]
        assert np.bincount(splits[split]["label"], minlength=8).tolist() == [2] * 8
    binary = data.load_splits(
        _config(tmp_path, source_dir=str(fake_imdb[layout]), validation_split=0.0), seed=0
    )
    assert binary["classes"] == ("neg", "pos")
    for split in ("train", "test"):
        np.testing.assert_array_equal(binary[split]["tokens"], splits[split]["tokens"])
        np.testing.assert_array_equal(binary[split]["label"], splits[split]["label"] >= 4)  # 7..10 are pos


def test_imdb_ratings_missing_in_train_warn_and_bad_ones_fail(tmp_path, caplog):
    layouts = fake_imdb_module.imdb_layouts(tmp_path / "src", _fake_imdb(drop_train_rating=2))
    cfg = _config(tmp_path, source_dir=str(layouts["folder"]), label_column="rating", validation_split=0.0)
    with caplog.at_level(logging.WARNING):
        splits = data.load_splits(cfg, seed=0)
    assert np.bincount(splits["train"]["label"], minlength=8).tolist() == [2, 0, 2, 2, 2, 2, 2, 2]
    copy = tmp_path / "tfds" / "rnnjax_imdb_reviews" / "1.1.0"  # the message names the prepared copy read
    assert any(f"imdb_reviews ({copy}) train: no review of class 2 (of 8 classes)" in m for m in caplog.messages)
    unnamed = tmp_path / "unnamed" / "aclImdb"
    for directory, cls in (
        ("train", "neg"),
        ("train", "pos"),
        ("train", "unsup"),
        ("test", "neg"),
        ("test", "pos"),
    ):
        (unnamed / directory / cls).mkdir(parents=True)
        for n in range(2):
            (unnamed / directory / cls / f"review{n}.txt").write_text(
                f"{cls} words {_spell(n)}"
            )  # no _<rating>
    cfg.update(source_dir=str(unnamed), data_dir=str(tmp_path / "unnamed_tfds"))
    with pytest.raises(data.DataError, match="imdb_reviews: 8 train and test reviews have no rating"):
        data.load_splits(cfg, seed=0)
    bad = tmp_path / "bad"
    bad.mkdir()
    for split, rows in _fake_imdb().items():
        _write_jsonl(
            bad / f"{split}.jsonl.gz",
            [{**r, "rating": 12} if split == "test" else r for r in rows],
            compress=True,
        )
    with pytest.raises(data.DataError, match=r"test.jsonl.gz:1: rating 12 is not an integer from 1 to 10"):
        data.prepare_imdb(data_dir=tmp_path / "bad_tfds", source_dir=bad, with_rating=True)


def test_imdb_rating_needs_a_copy_with_ratings(fake_imdb, tmp_path, monkeypatch):
    # this builder's 1.0.0 records: text and neg/pos only
    fake_imdb_module.prepare_neg_pos_imdb(tmp_path, name="rnnjax_imdb_reviews", text=lambda split, i: f"older {split} {_spell(i)}")
    monkeypatch.setattr(sources, "_download_imdb", _no_download)
    assert len(data.prepare_imdb(data_dir=tmp_path)["test"]) == 4  # read as it is for neg/pos
    cfg = _config(tmp_path, label_column="rating")
    cfg.data_dir = str(tmp_path)
    with pytest.raises(
        data.DataError, match="no download"
    ):  # never the older copy, and no synthetic stand-in
        data.load_splits(cfg, seed=0)
    cfg.source_dir = str(fake_imdb["jsonl"])
    assert data.load_splits(cfg, seed=0)["classes"] == data.IMDB_RATINGS
    assert (tmp_path / "rnnjax_imdb_reviews" / "1.1.0").is_dir() and (
        tmp_path / "rnnjax_imdb_reviews" / "1.0.0"
    ).is_dir()
    assert _imdb_records(data.prepare_imdb(data_dir=tmp_path)["test"])[0][2] > 0  # now the copy with ratings


def _no_download(dl_manager):
    raise data.DataError("test: no download")


def test_imdb_label_column_is_label_or_rating(tmp_path):
    with pytest.raises(ValueError, match="config.data.label_column='stars': imdb_reviews has label"):
        data.load_splits(_config(tmp_path, label_column="stars"), seed=0)


# Real data from ../shared/data, when present.


def _real_imdb_or_skip() -> Path:
    if not (IMDB_DIR / "test.jsonl.gz").exists():
        pytest.skip(f"real IMDB not found at {IMDB_DIR}")
    return IMDB_DIR


README_RATINGS = {  # ../shared/data/imdb/README.md: reviews per rating 1, 2, 3, 4, 7, 8, 9, 10
    "train": [5100, 2284, 2420, 2696, 2496, 3009, 2263, 4732],
    "test": [5022, 2302, 2541, 2635, 2307, 2850, 2344, 4999],
}


def test_real_imdb_ratings_as_read(tmp_path):
    folder = _real_imdb_or_skip()
    rows = list(sources._read_imdb_jsonl(folder, "test"))
    _, ids = labels.assign_ids(
        [rating for *_, rating in rows], classes=data.IMDB_RATINGS, origin="", where=""
    )
    assert np.bincount(ids, minlength=8).tolist() == README_RATINGS["test"]
    assert all(key.endswith(f"_{rating}") and label == int(rating >= 7) for key, _, label, rating in rows)


@pytest.mark.slow
def test_real_imdb_ratings_through_load_splits(tmp_path):
    cfg = _config(tmp_path, source_dir=str(_real_imdb_or_skip()), label_column="rating", validation_split=0.0)
    cfg.num_words = 8000
    splits = data.load_splits(cfg, seed=0)
    assert splits["classes"] == ("1", "2", "3", "4", "7", "8", "9", "10")
    for split in ("train", "test"):
        assert np.bincount(splits[split]["label"], minlength=8).tolist() == README_RATINGS[split]
    cfg.label_column = "label"
    binary = data.load_splits(cfg, seed=0)
    for split in ("train", "test"):
        np.testing.assert_array_equal(binary[split]["label"], splits[split]["label"] >= 4)
