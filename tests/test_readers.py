"""Review-file readers: long fields, duplicated columns."""

import pytest

from rnnjax.data import readers
from rnnjax.data.text import DataError


def test_a_csv_review_longer_than_the_default_field_limit_is_valid(tmp_path):
    review = "a fine film " * 20_000  # 240,000 characters, beyond csv's default 131,072
    path = tmp_path / "long.csv"
    path.write_text(f'text,label\n"{review}",1\nshort,0\n')
    rows = list(readers.read_csv(path, "text", "label"))
    assert [(text, label) for _, text, label, _ in rows] == [(review, "1"), ("short", "0")]


def test_a_duplicated_header_column_is_named(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("text,label,text\na,1,b\n")
    with pytest.raises(DataError, match=r"dup.csv:1: duplicated column 'text' in the header line"):
        list(readers.read_csv(path, "text", "label"))


@pytest.mark.parametrize("name,content,message", [
    ("header.csv", "text,label\n", "a header line and no rows"),
    ("header_blank.csv", "text,label\n\n\n", "a header line and no rows"),
    ("empty.csv", "", "empty file, expected a header line"),
    ("empty.jsonl", "", "no rows; expected one JSON object per line"),
    ("blank.jsonl", "\n  \n", "no rows; expected one JSON object per line"),
])
def test_a_file_without_rows_is_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    read = readers.read_csv if name.endswith(".csv") else readers.read_jsonl
    with pytest.raises(DataError, match=message):
        list(read(path, "text", "label"))
