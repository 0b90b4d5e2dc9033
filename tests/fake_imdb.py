"""Fake IMDB copies for the data tests: the local layouts a user may have (JSON-lines folder, extracted aclImdb/,
the archive), and copies prepared by stand-in TFDS builders with only (text, neg/pos label): TFDS' own
imdb_reviews, or an earlier version of rnnjax's builder."""

import gzip
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import tensorflow_datasets as tfds


def write_jsonl(path: Path, rows, *, compress: bool) -> Path:
    lines = "".join(json.dumps(row) + "\n" for row in rows).encode()
    path.write_bytes(gzip.compress(lines, mtime=0) if compress else lines)
    return path


def imdb_layouts(root: Path, splits: dict) -> dict[str, Path]:
    """``splits`` ({split: rows with id and text}) as a jsonl folder, an aclImdb/ folder and a tarball of it."""
    (root / "jsonl").mkdir(parents=True)
    for split, rows in splits.items():
        write_jsonl(root / "jsonl" / f"{split}.jsonl.gz", rows, compress=True)
        for row in rows:
            member = root / "folder" / "aclImdb" / f"{row['id']}.txt"
            member.parent.mkdir(parents=True, exist_ok=True)
            member.write_text(row["text"], encoding="utf-8")
    with tarfile.open(root / "aclImdb_v1.tar.gz", "w:gz") as archive:
        archive.add(root / "folder" / "aclImdb", arcname="aclImdb")
    return {"jsonl": root / "jsonl", "folder": root / "folder", "tar": root / "aclImdb_v1.tar.gz"}


def prepare_neg_pos_imdb(data_dir: Path, *, name: str, text: Callable[[str, int], str], config: str = "") -> None:
    """Prepares 4 reviews per split (train, test, unsupervised) as array_record under ``data_dir``."""

    def _info(self):
        features = {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["neg", "pos"])}
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {s: self._generate_examples(s) for s in ("train", "test", "unsupervised")}

    def _generate_examples(self, split):
        for i in range(4):
            yield i, {"text": text(split, i), "label": -1 if split == "unsupervised" else i % 2}

    attributes = {"name": name, "VERSION": tfds.core.Version("1.0.0"), "_info": _info,
                  "_split_generators": _split_generators, "_generate_examples": _generate_examples}
    if config:
        attributes["BUILDER_CONFIGS"] = (tfds.core.BuilderConfig(name=config),)
    builder = type("StandIn", (tfds.core.GeneratorBasedBuilder,), attributes, skip_registration=True)
    builder(data_dir=data_dir, file_format="array_record").download_and_prepare()
