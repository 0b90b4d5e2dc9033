"""Tests for rnnjax.data.datasets and .sources: TFDS builders from every source, splits, batches, bad input, the
stats script."""

import gzip
import io
import json
import logging
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rnnjax.data import availability
from rnnjax.data import datasets as data
from rnnjax.data import sources
from rnnjax.data import text
from rnnjax.configs import default
from tests import fake_imdb

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
IMDB_DIR, AMAZON_FILE = SHARED / "imdb", SHARED / "amazon" / "amazon_polarity_test_first6459.jsonl.gz"

tfds.disable_progress_bar()


def _tiny_imdb() -> dict[str, list[dict]]:
    """A tiny IMDB in the jsonl layout: 3 neg + 3 pos reviews per split and 2 unlabelled ones."""
    layout = {
        "train": ("train", ("neg", "pos")),
        "test": ("test", ("neg", "pos")),
        "unsup": ("train", ("unsup",)),
    }
    splits = {}
    for split, (folder, classes) in layout.items():
        splits[split] = [
            {
                "id": f"{folder}/{cls}/{i}_{ {'neg': 2, 'pos': 9, 'unsup': 0}[cls] }",
                "label": {"neg": 0, "pos": 1, "unsup": -1}[cls],
                # The first text has outer whitespace (stripped like TFDS) and a line break (not a word).
                "text": f" {split} {cls} review {i}: <br />a {cls} film. "
                if i == 0
                else f"{split} {cls} review {i} caf\u00e9",
            }
            for cls in classes
            for i in range(2 if cls == "unsup" else 3)
        ]
    return splits


TINY_IMDB = _tiny_imdb()


def _write_jsonl(path: Path, rows, *, compress: bool = True) -> Path:
    return fake_imdb.write_jsonl(path, rows, compress=compress)


@pytest.fixture(scope="module")
def imdb_sources(tmp_path_factory) -> dict[str, Path]:
    """The tiny IMDB as a jsonl folder, an extracted aclImdb/ folder and an aclImdb-layout tarball."""
    return fake_imdb.imdb_layouts(tmp_path_factory.mktemp("imdb_sources"), TINY_IMDB)


def _records(source) -> list[tuple[str, int]]:
    return [(r["text"].decode(), int(r["label"])) for r in source.__getitems__(range(len(source)))]


@pytest.mark.parametrize("layout", ["jsonl", "folder", "tar"])
def test_prepare_imdb_from_each_local_layout(imdb_sources, tmp_path, layout):
    prepared = data.prepare_imdb(data_dir=tmp_path, source_dir=imdb_sources[layout])
    assert set(prepared) == {"train", "test", "unsupervised"}
    for split, name in (("train", "train"), ("test", "test"), ("unsupervised", "unsup")):
        expected = sorted((r["text"].strip(), r["label"]) for r in TINY_IMDB[name])
        assert sorted(_records(prepared[split])) == expected
    reference = data.prepare_imdb(data_dir=tmp_path / "ref", source_dir=imdb_sources["jsonl"])
    assert _records(prepared["train"]) == _records(reference["train"])  # same order from every source


def test_prepare_imdb_accepts_the_aclimdb_folder_a_folder_holding_the_tarball_and_a_jsonl_file(
    imdb_sources, tmp_path
):
    assert (
        len(data.prepare_imdb(data_dir=tmp_path / "a", source_dir=imdb_sources["folder"] / "aclImdb")["test"])
        == 6
    )
    assert (
        len(data.prepare_imdb(data_dir=tmp_path / "b", source_dir=imdb_sources["tar"].parent)["train"]) == 6
    )
    assert (
        len(
            data.prepare_imdb(data_dir=tmp_path / "c", source_dir=imdb_sources["jsonl"] / "train.jsonl.gz")[
                "test"
            ]
        )
        == 6
    )


def test_prepared_imdb_is_reused_without_the_source(imdb_sources, tmp_path, monkeypatch):
    first = _records(data.prepare_imdb(data_dir=tmp_path, source_dir=imdb_sources["jsonl"])["test"])
    monkeypatch.setattr(sources, "_download_imdb", _no_download)
    assert _records(data.prepare_imdb(data_dir=tmp_path)["test"]) == first
    with pytest.raises(data.DataError, match="gone: not found"):  # a location given must exist
        data.prepare_imdb(data_dir=tmp_path, source_dir=tmp_path / "gone")


def _no_download(dl_manager):
    raise data.DataError("test: no download")


def test_stock_imdb_reviews_prepared_as_array_record_is_read(tmp_path, monkeypatch):
    # stands in for TFDS' own builder
    fake_imdb.prepare_neg_pos_imdb(tmp_path, name="imdb_reviews", config="plain_text", text=lambda split, i: f"stock {split} {i}")
    monkeypatch.setattr(sources, "_download_imdb", _no_download)
    assert min(_records(data.prepare_imdb(data_dir=tmp_path)["test"])) == ("stock test 0", 0)


def test_imdb_download_is_checksum_registered_and_fails_fast_offline(tmp_path, monkeypatch):
    info = sources.ImdbReviews.url_infos[sources.IMDB_URL]
    assert (info.checksum, info.size) == (
        "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
        84125825,
    )

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(sources.socket, "create_connection", offline)
    with pytest.raises(data.DataError, match="aclImdb_v1.tar.gz: cannot connect"):
        data.prepare_imdb(data_dir=tmp_path)


def test_imdb_download_uses_the_tfds_cache_and_reports_a_failed_download(tmp_path, monkeypatch):
    class Downloads:  # the two DownloadManager members that _download_imdb uses
        download_dir = tmp_path

        def __init__(self):
            self.results = [tmp_path / "archive", RuntimeError("wrong checksum")]

        def download(self, url):
            assert url == sources.IMDB_URL
            result = self.results.pop(0)
            if isinstance(result, Exception):
                raise result
            return result

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(sources.socket, "create_connection", offline)
    (tmp_path / tfds.core.download.resource.get_dl_fname(sources.IMDB_URL, sources.IMDB_SHA256)).touch()
    downloads = Downloads()
    assert (
        sources._download_imdb(downloads) == tmp_path / "archive"
    )  # cached under its checksum: no network needed
    with pytest.raises(data.DataError, match=r"download failed \(RuntimeError: wrong checksum\)"):
        sources._download_imdb(downloads)


def _config(tmp_path, **overrides):
    cfg = default.get_config().data
    cfg.data_dir = str(tmp_path / "tfds")
    cfg.update(overrides)
    return cfg


def test_imdb_falls_back_to_synthetic_only_when_allowed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sources, "_download_imdb", _no_download)
    config = default.get_config()
    config.data = _config(tmp_path, synthetic_examples=200, fallback_to_synthetic=True)
    resolved = availability.with_available_data(config)
    assert resolved.data.name == "synthetic" and config.data.name == "imdb_reviews"  # a copy; the given is kept
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "using the embedded synthetic dataset" in said[0] and "no download" in said[0]
    splits = data.load_splits(resolved.data, seed=0)
    assert splits["name"] == "synthetic" and len(splits["test"]["label"]) == 40
    with pytest.raises(data.DataError, match="no download"):  # load_splits itself never falls back
        data.load_splits(config.data, seed=0)
    for data_cfg in (_config(tmp_path), _config(tmp_path, fallback_to_synthetic=True, source_dir=str(tmp_path / "x"))):
        config.data = data_cfg  # no fallback asked, or a local copy named: the config is kept (then an error)
        assert availability.with_available_data(config).data.name == "imdb_reviews"
    with pytest.raises(data.DataError, match="not found"):  # an explicit source never falls back
        data.load_splits(_config(tmp_path, source_dir=str(tmp_path / "missing")), seed=0)


def test_load_splits_imdb_shapes_and_vocabulary_from_training_part_only(imdb_sources, tmp_path):
    cfg = _config(
        tmp_path, source_dir=str(imdb_sources["tar"]), maxlen=5, validation_split=0.34, num_words=None
    )
    splits = data.load_splits(cfg, seed=1, workdir=tmp_path / "run")  # a seed whose 3/3 split has both labels
    sizes = {s: len(splits[s]["label"]) for s in data.SPLITS}
    assert sizes == {"train": 3, "validation": 3, "test": 6}
    for s in data.SPLITS:
        arrays = splits[s]
        assert arrays["tokens"].shape == (sizes[s], 5) and all(a.dtype == np.int32 for a in arrays.values())
        assert ((arrays["lengths"] >= 1) & (arrays["lengths"] <= 5)).all()
    vocab = splits["vocabulary"]
    assert "test" not in vocab.index and "train" in vocab.index and "br" not in vocab.index
    train_words = {w for row in splits["train"]["tokens"] for w in text.decode(vocab, row)}
    assert train_words <= set(vocab.words)
    assert text.load_vocabulary(tmp_path / "run") == vocab
    assert (splits["test"]["tokens"] == vocab.oov_id).any()


DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _amazon_rows(n: int, seed: int = 0) -> list[dict]:
    """Rows whose text spells the row number in words, so a decoded row tells where it came from."""
    rng = np.random.default_rng(seed)
    spell = lambda i: " ".join(DIGITS[int(c)] for c in f"{i:03d}")
    return [
        {"id": f"a/{i}", "label": int(rng.integers(2)), "text": f"Title: review {spell(i)}, good!"}
        for i in range(n)
    ]


def _row_numbers(splits: dict, split: str) -> list[int]:
    vocab = splits["vocabulary"]
    return [
        int("".join(str(DIGITS.index(w)) for w in text.decode(vocab, row)[2:5]))
        for row in splits[split]["tokens"]
    ]


def test_amazon_jsonl_seeded_split_and_keras_last_validation(tmp_path):
    rows = _amazon_rows(100)
    path = _write_jsonl(tmp_path / "amazon.jsonl.gz", rows)
    cfg = _config(
        tmp_path, name="amazon_reviews", source_file=str(path), validation_mode="last", num_words=None
    )
    a, b = data.load_splits(cfg, seed=0), data.load_splits(cfg, seed=0)
    c = data.load_splits(cfg, seed=1)
    assert [len(a[s]["label"]) for s in data.SPLITS] == [64, 16, 20]
    assert all(np.array_equal(a[s]["tokens"], b[s]["tokens"]) for s in data.SPLITS)
    assert not np.array_equal(a["test"]["tokens"], c["test"]["tokens"])
    assert sorted(n for s in data.SPLITS for n in _row_numbers(a, s)) == list(range(100))
    assert min(_row_numbers(a, "validation")) > max(
        _row_numbers(a, "train")
    )  # Keras: the last rows, file order
    cfg.validation_mode = "random"
    r = data.load_splits(cfg, seed=0)
    assert _row_numbers(r, "test") == _row_numbers(a, "test")  # the test split does not depend on the mode
    assert min(_row_numbers(r, "validation")) < max(_row_numbers(r, "train"))


def test_csv_and_tsv_with_configured_columns(tmp_path):
    rows = _amazon_rows(30)
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text(
        "review_text,label,extra\n" + "".join(f'"{r["text"]}, quoted",{r["label"]},x\n' for r in rows)
    )
    tsv_path = tmp_path / "reviews.tsv"
    tsv_path.write_text("stars\tbody\n" + "".join(f"{r['label']}\t{r['text']}\n" for r in rows))
    for path, text_column, label_column in ((csv_path, "review_text", "label"), (tsv_path, "body", "stars")):
        source = data.prepare_reviews_file(
            path, data_dir=tmp_path / "tfds", text_column=text_column, label_column=label_column
        )
        got = _records(source)
        assert [label for _, label in got] == [r["label"] for r in rows]  # file order kept
        assert got[0][0].startswith("Title: review zero zero zero, good!")
        cfg = _config(
            tmp_path, name="csv", source_file=str(path), text_column=text_column, label_column=label_column
        )
        assert len(data.load_splits(cfg, seed=0)["test"]["label"]) == 6


def test_changed_file_is_prepared_again(tmp_path):
    path = _write_jsonl(tmp_path / "r.jsonl", _amazon_rows(10), compress=False)
    assert len(data.prepare_reviews_file(path, data_dir=tmp_path / "tfds")) == 10
    _write_jsonl(path, _amazon_rows(12), compress=False)
    assert len(data.prepare_reviews_file(path, data_dir=tmp_path / "tfds")) == 12


def test_synthetic_through_load_splits_is_deterministic(tmp_path):
    cfg = _config(tmp_path, name="synthetic", synthetic_examples=300, synthetic_distance=10)
    a, b = data.load_splits(cfg, seed=5), data.load_splits(cfg, seed=5)
    assert all(np.array_equal(a[s]["tokens"], b[s]["tokens"]) for s in data.SPLITS)
    assert [len(a[s]["label"]) for s in data.SPLITS] == [192, 48, 60]
    assert a["vocabulary"].size < 100 and abs(a["train"]["label"].mean() - 0.5) < 0.1


def test_workdir_vocabulary_is_written_then_reused(tmp_path):
    cfg = _config(tmp_path, name="synthetic", synthetic_examples=100, synthetic_distance=10)
    first = data.load_splits(cfg, seed=0, workdir=tmp_path / "run")
    assert text.load_vocabulary(tmp_path / "run") == first["vocabulary"]
    small = text.fit_vocabulary([["the", "overall"]])
    text.save_vocabulary(small, tmp_path / "run")  # a resumed run keeps the vocabulary it was trained with
    resumed = data.load_splits(cfg, seed=0, workdir=tmp_path / "run")
    assert resumed["vocabulary"] == small and resumed["train"]["tokens"].max() < small.size


def test_describe_splits(tmp_path):
    path = _write_jsonl(tmp_path / "r.jsonl", _amazon_rows(100), compress=False)
    cfg = _config(tmp_path, name="amazon_reviews", source_file=str(path), maxlen=5, num_words=20)
    stats = data.describe_splits(cfg, seed=0)
    assert (stats["name"], stats["vocab_size"], stats["maxlen"]) == (
        "amazon_reviews",
        15,
        5,
    )  # 13 words + 2 ids
    train = stats["splits"]["train"]
    assert train["examples"] == 64 and sum(train["label_counts"]) == 64
    assert (train["lengths"] == 6).all() and train["length_percentiles"][50] == 6  # title review d d d good
    assert train["maxlen_coverage"] == 0 and train["token_coverage"] == pytest.approx(5 / 6)
    assert train["oov_rate"] == 0 and stats["splits"]["test"]["oov_rate"] == 0
    cfg.num_words = 12  # keeps 10 words: 3 of the 13 are now out of vocabulary
    assert 0 < data.describe_splits(cfg, seed=0)["splits"]["train"]["oov_rate"] < 0.5


def _arrays(n: int, t: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Right-padded rows whose first token is the row number + 1."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, t + 1, size=n).astype(np.int32)
    tokens = text.pad_sequences(
        [[i + 1, *rng.integers(1, 50, size=k - 1)] for i, k in enumerate(lengths)], t, padding="post"
    )
    return {"tokens": tokens, "lengths": lengths, "label": (np.arange(n) % 2).astype(np.int32)}


def test_batches_fixed_shape_with_padded_masked_final_batch():
    arrays = _arrays(10)
    got = list(data.batches(arrays, 4, shuffle=False))
    assert len(got) == 3
    for batch in got:
        assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
            "tokens": ((4, 6), np.int32),
            "lengths": ((4,), np.int32),
            "label": ((4,), np.int32),
        }
        positions = np.arange(6)[None, :]
        assert (
            batch["tokens"][positions >= batch["lengths"][:, None]] == 0
        ).all()  # pad id beyond each length
        assert (batch["lengths"] <= 6).all()
    last = got[-1]
    np.testing.assert_array_equal(last["label"][2:], [-1, -1])
    np.testing.assert_array_equal(last["lengths"][2:], [0, 0])
    assert (last["tokens"][2:] == 0).all()
    np.testing.assert_array_equal(np.concatenate([b["tokens"] for b in got])[:10], arrays["tokens"])


def test_batches_shuffle_is_a_pure_function_of_seed_and_epoch():
    arrays = _arrays(50)

    def order(**kwargs):
        rows = [b["tokens"][b["label"] >= 0, 0] - 1 for b in data.batches(arrays, 8, shuffle=True, **kwargs)]
        return np.concatenate(rows)

    np.random.seed(123)  # the global RNG must not matter
    a = order(seed=1, epoch=2)
    np.random.seed(456)
    assert np.array_equal(a, order(seed=1, epoch=2))
    assert sorted(a) == list(range(50)) and not np.array_equal(a, np.arange(50))  # each row once, shuffled
    assert not np.array_equal(a, order(seed=1, epoch=3)) and not np.array_equal(a, order(seed=2, epoch=2))
    dropped = list(data.batches(arrays, 8, shuffle=True, seed=1, epoch=2, drop_remainder=True))
    assert len(dropped) == 6 and all((b["label"] >= 0).all() for b in dropped)
    np.testing.assert_array_equal(np.concatenate([b["tokens"][:, 0] - 1 for b in dropped]), a[:48])


def test_batches_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size=0"):
        next(data.batches(_arrays(3), 0, shuffle=False))
    arrays = {**_arrays(3), "lengths": np.ones(2, np.int32)}
    with pytest.raises(ValueError, match="lengths"):
        next(data.batches(arrays, 2, shuffle=False))


# Bad input: each is a DataError whose one-line message names the file, the line and the problem.


def _write_bytes(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


GOOD = b'{"text": "fine", "label": 1}\n{"text": "bad", "label": 0}\n'
BAD_INPUTS = {
    "malformed": ("r.jsonl", GOOD + b'{"text": "x", "label": 1\n', r"r.jsonl:3: truncated or malformed JSON"),
    "not_an_object": ("r.jsonl", GOOD + b"[1, 2]\n", r"r.jsonl:3: expected a JSON object, found list"),
    "missing_both": ("r.jsonl", GOOD + b"{}\n", r"r.jsonl:3: missing field 'text' and 'label'"),
    "missing_field": ("r.jsonl", GOOD + b'{"body": "x", "label": 1}\n', r"r.jsonl:3: missing field 'text'"),
    "label_fraction": (
        "r.jsonl",
        GOOD + b'{"text": "x", "label": 2.5}\n',
        r"r.jsonl:3: label 2.5 is not an integer or a class name",
    ),
    "label_null": (
        "r.jsonl",
        GOOD + b'{"text": "x", "label": null}\n',
        r"r.jsonl:3: label None is not an integer or a class name",
    ),
    "text_not_string": ("r.jsonl", b'{"text": 5, "label": 1}\n', r"r.jsonl:1: field 'text' is int"),
    "non_utf8": (
        "r.jsonl",
        GOOD + b'{"text": "caf\xe9", "label": 1}\n',
        r"r.jsonl:3: not UTF-8 \(byte 0xe9 at column 14\)",
    ),
    "corrupt_gzip": ("r.jsonl.gz", b"\x1f\x8b\x08\x00garbage-not-deflate", r"r.jsonl.gz:1: cannot read"),
    "truncated_gzip": (
        "r.jsonl.gz",
        gzip.compress(GOOD * 50)[:-30],
        r"r.jsonl.gz:\d+: cannot read \(EOFError",
    ),
    "not_gzip": ("r.jsonl.gz", GOOD, r"r.jsonl.gz:1: cannot read \(BadGzipFile"),
    "csv_missing_column": (
        "r.csv",
        b"body,label\nx,1\n",
        r"r.csv:1: no column 'text' \(columns: body, label\)",
    ),
    "csv_short_row": ("r.csv", b"text,label\nfine,1\ncut short\n", r"r.csv:3: 1 fields, expected 2"),
    "csv_label": (
        "r.csv",
        b"text,label\nfine,1\nok, \n",
        r"r.csv:3: label ' ' is not an integer or a class name",
    ),
    "csv_open_quote": ("r.csv", b'text,label\n"unterminated,1\n', r"r.csv:\d+: malformed CSV"),
    "csv_empty": ("r.csv", b"", r"r.csv: empty file"),
    "csv_non_utf8": ("r.csv", b"text,label\n\xff\xfe,1\n", r"r.csv:2: not UTF-8 \(byte 0xff at column 1\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_reviews_file_is_a_one_line_data_error(tmp_path, case):
    name, content, match = BAD_INPUTS[case]
    path = _write_bytes(tmp_path, name, content)
    with pytest.raises(data.DataError, match=match) as info:
        data.prepare_reviews_file(path, data_dir=tmp_path / "tfds")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not list(tmp_path.glob("tfds/**/incomplete*"))  # nothing half-prepared is left behind


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_missing_or_unreadable_file(tmp_path, make):
    path = tmp_path / "reviews.jsonl"
    if make == "directory":
        path.mkdir()
    with pytest.raises(data.DataError, match=r"reviews.jsonl: cannot read \((No such file|Is a directory)"):
        data.prepare_reviews_file(path, data_dir=tmp_path / "tfds")


def test_bad_imdb_sources(imdb_sources, tmp_path):
    with pytest.raises(data.DataError, match="no IMDB copy here"):
        data.prepare_imdb(data_dir=tmp_path / "a", source_dir=tmp_path)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(imdb_sources["tar"].read_bytes()[:200])
    with pytest.raises(data.DataError, match="broken.tar.gz: not a readable tar archive"):
        data.prepare_imdb(data_dir=tmp_path / "b", source_dir=broken)
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as archive:
        info = tarfile.TarInfo("notes/readme.txt")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(data.DataError, match=r"other.tar.gz: no aclImdb/train/neg/\*.txt members"):
        data.prepare_imdb(data_dir=tmp_path / "c", source_dir=other)
    folder = tmp_path / "bad_folder" / "aclImdb"
    for cls in ("neg", "pos", "unsup"):
        (folder / "train" / cls).mkdir(parents=True)
        (folder / "train" / cls / "0_1.txt").write_bytes(b"ok" if cls != "pos" else b"\xff bad")
    (folder / "test").mkdir()
    with pytest.raises(data.DataError, match=r"pos/0_1.txt: not UTF-8"):
        data.prepare_imdb(data_dir=tmp_path / "d", source_dir=folder.parent)
    jsonl = tmp_path / "bad_jsonl"
    jsonl.mkdir()
    for split, rows in TINY_IMDB.items():
        _write_jsonl(jsonl / f"{split}.jsonl.gz", [{**r, "label": 5} if split == "test" else r for r in rows])
    with pytest.raises(data.DataError, match=r"test.jsonl.gz:1: label 5 is not 0 or 1"):
        data.prepare_imdb(data_dir=tmp_path / "e", source_dir=jsonl)


def test_empty_texts_are_dropped_and_counted(tmp_path, caplog):
    rows = _amazon_rows(40) + [
        {"text": t, "label": i % 2} for i, t in enumerate(["", "   ", "!!! ...", "<br />"])
    ]
    path = _write_jsonl(tmp_path / "r.jsonl", rows, compress=False)
    cfg = _config(
        tmp_path, name="amazon_reviews", source_file=str(path), test_split=0.5, validation_split=0.0
    )
    with caplog.at_level(logging.WARNING):
        splits = data.load_splits(cfg, seed=0)
    assert sum(len(splits[s]["label"]) for s in data.SPLITS) == 40
    dropped = [int(n) for m in caplog.messages for n in re.findall(r"dropped (\d+) reviews", m)]
    assert sum(dropped) == 4 and len(splits["validation"]["label"]) == 0


def test_split_with_one_class_is_a_data_error(tmp_path):
    rows = [{"text": f"review {i}", "label": 1} for i in range(20)]
    path = _write_jsonl(tmp_path / "pos_only.jsonl", rows, compress=False)
    cfg = _config(tmp_path, name="amazon_reviews", source_file=str(path))
    with pytest.raises(data.DataError, match=r"pos_only.jsonl train: all its 12 reviews have label 1"):
        data.load_splits(cfg, seed=0)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"name": "mnist"}, "config.data.name='mnist'"),
        ({"maxlen": 0}, "maxlen=0"),
        ({"validation_split": 1.0}, "validation_split=1.0"),
        ({"validation_mode": "first"}, "validation_mode"),
        ({"name": "csv"}, "source_file is empty"),
        ({"padding": "left"}, "config.data.padding='left'"),
        ({"tokenizer": "bpe"}, "config.data.tokenizer='bpe'"),
        ({"test_split": -0.1}, "test_split=-0.1"),
    ],
)
def test_bad_config_values(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        data.load_splits(
            _config(tmp_path, **{"name": "synthetic", "synthetic_examples": 50, **overrides}), seed=0
        )


# The statistics script.


def _run_stats(tmp_path, *flags):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.data_stats",
            "--config=rnnjax/configs/default.py",
            f"--out={tmp_path}",
            f"--config.data.data_dir={tmp_path / 'tfds'}",
            *flags,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_data_stats_script_prints_and_plots(tmp_path):
    result = _run_stats(tmp_path, "--config.data.name=synthetic", "--config.data.synthetic_examples=400")
    assert result.returncode == 0, result.stderr
    assert "label balance" in result.stdout and "oov rate" in result.stdout and "maxlen 200" in result.stdout
    assert (tmp_path / "lengths.png").stat().st_size > 1000


def test_data_stats_script_reports_bad_input_in_one_line(tmp_path):
    bad = _write_bytes(tmp_path, "bad.jsonl", GOOD + b"{oops\n")
    result = _run_stats(tmp_path, "--config.data.name=amazon_reviews", f"--config.data.source_file={bad}")
    assert result.returncode == 2
    assert (
        "data_stats: error: " in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    )
    assert "bad.jsonl:3: truncated or malformed JSON" in result.stderr


# Real data from ../shared/data, when present.


@pytest.fixture(scope="module")
def real_imdb(tmp_path_factory) -> tuple[Path, dict]:
    """Real IMDB prepared once into a temporary data dir, and its train and test (texts, labels)."""
    if not (IMDB_DIR / "train.jsonl.gz").exists():
        pytest.skip(f"real IMDB not found at {IMDB_DIR}")
    data_dir = tmp_path_factory.mktemp("tfds_imdb")
    prepared = data.prepare_imdb(data_dir=data_dir, source_dir=IMDB_DIR)
    assert len(prepared["unsupervised"]) == 50000
    return data_dir, {split: sources.read_source(prepared[split]) for split in ("train", "test")}


def test_real_imdb_counts_and_texts(real_imdb):
    _, records = real_imdb
    for split in ("train", "test"):
        assert np.bincount(records[split][1]).tolist() == [12500, 12500]
    with gzip.open(IMDB_DIR / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    expected = sorted(
        (r["text"].encode().strip().decode(), r["label"]) for r in rows
    )  # TFDS strips, bytes-wise
    assert sorted(zip(*records["test"])) == expected


def test_real_imdb_vocabulary_from_train_and_round_trip(real_imdb):
    _, records = real_imdb
    train_words = text.tokenize(records["train"][0])
    vocab = text.fit_vocabulary(train_words, 8000)
    assert vocab.size == 8000 and vocab.words[:3] == ("the", "and", "a") and "br" not in vocab.index
    for words in text.tokenize(records["test"][0][:300]):
        ids = text.encode(vocab, words)
        assert max(ids) < 8000 and len(ids) == len(words)
        assert text.decode(vocab, ids) == [w if w in vocab.index else text.OOV_WORD for w in words]
    full = text.fit_vocabulary(train_words[:300])
    assert all(text.decode(full, text.encode(full, ws)) == ws for ws in train_words[:300])


@pytest.mark.slow
def test_real_imdb_load_splits_fits_vocabulary_on_training_part_only(real_imdb):
    data_dir, records = real_imdb
    cfg = default.get_config().data
    cfg.update(data_dir=str(data_dir), validation_split=0.0)
    splits = data.load_splits(cfg, seed=0)
    assert [len(splits[s]["label"]) for s in data.SPLITS] == [25000, 0, 25000]
    assert splits["vocabulary"] == text.fit_vocabulary(text.tokenize(records["train"][0]), 8000)
    assert splits["train"]["tokens"].max() == 7999 and splits["test"]["tokens"].shape == (25000, 200)


def _amazon_or_skip() -> Path:
    if not AMAZON_FILE.exists():
        pytest.skip(f"real Amazon sample not found at {AMAZON_FILE}")
    return AMAZON_FILE


def test_real_amazon_counts_and_split(tmp_path):
    source = data.prepare_reviews_file(_amazon_or_skip(), data_dir=tmp_path)
    assert np.bincount(sources.read_source(source)[1]).tolist() == [3137, 3322]
    cfg = _config(tmp_path, name="amazon_reviews", source_file=str(AMAZON_FILE))
    cfg.data_dir = str(tmp_path)
    splits = data.load_splits(cfg, seed=0)
    assert [len(splits[s]["label"]) for s in data.SPLITS] == [4133, 1034, 1292]


@pytest.mark.slow
def test_real_amazon_with_the_chapter_cleaning(tmp_path):
    cfg = _config(tmp_path, name="amazon_reviews", source_file=str(_amazon_or_skip()), tokenizer="porter")
    vocab = data.load_splits(cfg, seed=0)["vocabulary"]
    assert {"great", "cd", "voic"} <= set(vocab.words) and not {"the", ",", "voices"} & set(vocab.words)
