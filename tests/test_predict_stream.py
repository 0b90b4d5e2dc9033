"""Predicting and evaluating at scale: fixed-shape batches compiled once, one row per input line whatever the
line holds, labelled files evaluated batch by batch, and predict's memory bounded on 100,000 texts."""

import gzip
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import jax
import numpy as np
import pytest

from rnnjax import model_api, models
from rnnjax.analysis import evaluate, labelled_file
from rnnjax.data import synthetic
from rnnjax.data.text import DataError
from rnnjax.training import classifier

REPO = Path(__file__).resolve().parent.parent
WORDS = "honestly i did agree with the critics overall"  # words of the tiny run's vocabulary


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from experiments.configs import tiny

    workdir = tmp_path_factory.mktemp("stream") / "tiny"
    classifier.train_and_evaluate(tiny.get_config(), workdir)
    return workdir


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        check=False,
        timeout=600,
    )


def test_batches_are_padded_to_one_shape_and_compile_once(run_dir):
    run = evaluate.load_run(run_dir)
    texts = [" ".join(WORDS.split()[i:]) for i in range(7)]
    predict = evaluate.make_predict_fn(run, batch_size=3)
    predict(texts[:3])  # compiles
    events = []

    def listener(name, *_, **__):
        events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        batched = [p for chunk in evaluate.batched(texts, 3) for p in predict(chunk)]  # 3, 3 and 1 texts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert not [e for e in events if "compile" in e], events
    whole = evaluate.predict_texts(run, texts, batch_size=len(texts))
    assert [p["text"] for p in batched] == texts
    probabilities = [[p["probability"] for p in predictions] for predictions in (batched, whole)]
    np.testing.assert_allclose(*probabilities, rtol=1e-6)
    with pytest.raises(ValueError, match="batch_size=3"):
        predict(texts[:4])


def test_texts_without_known_words_get_finite_marked_rows(run_dir):
    run = evaluate.load_run(run_dir)
    texts = ["", "   ", "?!... -- ;;", "zzyzx qwxvb", "😀 🎬", WORDS, f"zzyzx {WORDS}"]
    predictions = evaluate.predict_texts(run, texts)
    assert [p["text"] for p in predictions] == texts
    assert [p["known_words"] for p in predictions] == [0, 0, 0, 0, 0, 8, 8]
    assert all(np.isfinite(p["probability"]) and 0 <= p["probability"] <= 1 for p in predictions)
    assert all(p["probability_of"] == "positive" for p in predictions)


def test_multi_class_predictions_name_every_class(run_dir):
    binary = evaluate.load_run(run_dir)
    spec = models.make_classifier(
        cell="simple_rnn", vocab_size=binary.vocabulary.size, embed_dim=3, hidden_size=5, num_classes=3
    )
    model = model_api.spec_model(spec)
    classes = ("bad", "fair", "good")
    run = binary._replace(spec=spec, model=model, params=model.init(jax.random.key(1)), classes=classes)
    predictions = evaluate.predict_texts(run, [WORDS, ""], batch_size=4)
    for p in predictions:
        assert list(p["probabilities"]) == list(classes)
        assert sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert p["label"] == p["probability_of"] == max(p["probabilities"], key=p["probabilities"].get)
        assert p["probability"] == max(p["probabilities"].values())
    assert [p["known_words"] for p in predictions] == [8, 0]


def _labelled_jsonl(path: Path, n: int = 60) -> tuple[list[str], np.ndarray]:
    texts, labels = synthetic.generate_reviews(n, seed=3, length=24, distance=4)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for t, y in zip(texts, labels):
            f.write(json.dumps({"text": t, "label": int(y)}) + "\n")
        f.write(json.dumps({"text": "?!", "label": 1}) + "\n")  # no word: left out, as training does
    return texts, labels


def test_a_labelled_file_gives_the_metrics_of_the_same_rows_in_memory(run_dir, tmp_path):
    run = evaluate.load_run(run_dir)
    texts, labels = _labelled_jsonl(tmp_path / "reviews.jsonl.gz")
    metrics = labelled_file.evaluate(run, tmp_path / "reviews.jsonl.gz", batch_size=7)
    tokens, lengths = evaluate.encode_texts(texts, run.data_cfg, run.vocabulary)
    arrays = {"tokens": tokens, "lengths": lengths, "label": labels.astype(np.int32)}
    expected = evaluate.evaluate_split(run, arrays, batch_size=32)
    assert metrics["n_skipped_empty"] == 1 and metrics["n_examples"] == expected["n_examples"] == len(texts)
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert metrics["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_labels_are_matched_to_the_run_classes(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\ngood film,pos\nbad film,0\nfine,1\nodd,3\n")
    rows = labelled_file.read_rows(path, text_column="review", label_column="stars", classes=("neg", "pos"))
    assert [next(rows) for _ in range(3)] == [("good film", 1), ("bad film", 0), ("fine", 1)]  # IMDB's ids
    with pytest.raises(DataError, match=rf"{path}:5: label 3 .*not one of the run's classes \(neg, pos\)"):
        next(rows)
    named = labelled_file.read_rows(path, text_column="review", label_column="stars", classes=("0", "1"))
    with pytest.raises(DataError, match=rf"{path}:2: label 'pos'"):
        next(named)


LINES = [
    b"honestly i did agree",
    b"",
    b"   ",
    b"zzyzx qwxvb",
    b"the critics\r",  # CRLF: the \r is dropped
    b"good \xff\xfe movie",  # not UTF-8
    "form\x0cfeed\x85nel\u2028ls\u2029ps \x1c\x1d\x1e\x0b critics".encode(),  # separators inside a line
    b"a\rb with",
    b"overall",
]


def test_predict_gives_one_json_row_per_line_in_order(run_dir, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    args = (f"--workdir={run_dir}", f"--input_file={path}", "--json", "--batch_size=2")
    result = _run("experiments.predict", *args)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    rows = [json.loads(line) for line in out.splitlines()]  # every separator is escaped in the JSON
    assert len(rows) == len(LINES) == out.count("\n")
    expected = [raw.removesuffix(b"\r").decode(errors="replace") for raw in LINES]
    assert [r["text"] for r in rows] == expected
    assert [i for i, r in enumerate(rows) if r["known_words"] == 0] == [1, 2, 3]
    assert [r["invalid_utf8"] for r in rows] == [i == 5 for i in range(len(LINES))]
    assert all(r["probability_of"] == "positive" and 0 <= r["probability"] <= 1 for r in rows)
    stderr = result.stderr.decode()
    assert f"3 of {len(LINES)} texts had no word of the run's vocabulary" in stderr
    assert f"1 of {len(LINES)} texts were not UTF-8" in stderr


@pytest.mark.slow
def test_predict_text_output_marks_rows_and_names_its_columns(run_dir):
    stdin = b"\n".join(LINES)  # no final newline: the last line still counts
    result = _run("experiments.predict", f"--workdir={run_dir}", "--input_file=-", stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode().splitlines()
    assert len(out) == len(LINES)
    assert out[1].split()[2:] == ["[no", "known", "word]"] and "[invalid UTF-8] good" in out[5]
    assert "form\\x0cfeed\\x85nel\\u2028ls" in out[6]
    assert result.stderr.decode().startswith("columns: predicted label, probability of positive, text")


@pytest.mark.slow
def test_predict_prints_each_batch_before_the_input_ends(run_dir):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "experiments.predict", f"--workdir={run_dir}", "--batch_size=2"]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    proc = subprocess.Popen([*command, "--json"], cwd=REPO, env=env, **pipes)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        proc.stdin.write(f"{WORDS}\nthe critics\n".encode())
        proc.stdin.flush()
        first = json.loads(lines.get(timeout=120))  # stdin is still open
        assert first["text"] == WORDS
        proc.stdin.write(b"overall\n")
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert lines.get(timeout=5) and json.loads(lines.get(timeout=5))["text"] == "overall"


def test_predict_without_texts_exits_2_with_one_line():
    result = _run("experiments.predict", "--workdir=/nonexistent", "--input_file=-", stdin=b"")
    assert result.returncode == 2 and b"no texts" in result.stderr, result.stderr
    assert len(result.stderr.decode().strip().splitlines()) == 1


@pytest.mark.slow
def test_evaluate_a_labelled_csv_file_and_refuse_a_foreign_label(run_dir, tmp_path):
    texts, labels = synthetic.generate_reviews(50, seed=4, length=24, distance=4)
    path = tmp_path / "reviews.csv"
    path.write_text("body,y\n" + "".join(f'"{t}",{y}\n' for t, y in zip(texts, labels)))
    base = ("experiments.evaluate", f"--workdir={run_dir}", f"--data_file={path}", "--text_column=body")
    result = _run(*base, "--label_column=y", "--json", "--batch_size=16")
    assert result.returncode == 0, result.stderr.decode()
    metrics = json.loads(result.stdout)
    assert metrics["n_examples"] == 50 and metrics["data_file"] == str(path) and "split" not in metrics
    with open(path, "a") as f:
        f.write('"the end",positive\n')
    result = _run(*base, "--label_column=y")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and f"{path}:52: label 'positive'" in lines[0], lines


@pytest.mark.slow
def test_predict_memory_stays_bounded_on_100000_texts(run_dir):
    """The benchmark's measurement of a predict subprocess: before predict streamed, these texts took 1.27 GB
    (its start-up 0.48 GB); streamed, they take about the start-up."""
    args = (f"--workdir={run_dir}", "--num_texts=100000", "--words=100", "--json")
    result = _run("experiments.benchmarks.predict_memory", *args)
    assert result.returncode == 0, result.stderr.decode()
    start_up, many = json.loads(result.stdout)["rows"]
    assert many["texts"] == many["output_lines"] == 100_000 and start_up["output_lines"] == 1
    assert many["peak_rss_mb"] < min(1024, start_up["peak_rss_mb"] + 300), (start_up, many)
