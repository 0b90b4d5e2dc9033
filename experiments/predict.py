"""Classifies raw texts with a trained run, applying exactly its training preprocessing.

python -m experiments.predict --workdir=runs/lstm "An excellent movie!" "Don't watch this movie - poor acting."
python -m experiments.predict --workdir=runs/lstm --input_file=reviews.txt --json   # one text per line
cat reviews.txt | python -m experiments.predict --workdir=runs/lstm                  # texts from stdin

Texts stream through in batches of --batch_size (default: the run's train.eval_batch_size), each batch
printed as soon as it is scored, so a file of millions of lines runs in the memory of one batch. Every
argument or input line gets exactly one output line, in order; lines are split at "\\n" only (a "\\r" before
it is dropped), so other separators stay inside a text (and are shown escaped). A line that is blank or has
no word of the run's vocabulary still gets its row, marked ("known_words": 0 in JSON, [no known word] in
text), and so does a line that is not UTF-8 (its bad bytes read as U+FFFD; "invalid_utf8": true,
[invalid UTF-8]); stderr ends with their counts. Text output names its columns on stderr first.

Binary runs print the probability of positive ("probability_of": "positive"); runs with more classes print
the top class's probability and, in JSON, every class's ("probabilities": {class: p}).
"""

import itertools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from absl import flags

from experiments import _cli

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory written by experiments.train", required=True)
_INPUT = flags.DEFINE_string("input_file", None, "file with one text per line ('-' for standard input)")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "final", _cli.CHECKPOINT_CHOICES, "which parameters to use")
_JSON = flags.DEFINE_bool("json", False, "print one JSON object per text")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "texts per model call (default: the run's train.eval_batch_size)", lower_bound=1
)


# Characters other than "\n" that some readers take for a line break (Python's str.splitlines, terminals):
# escaped in the output, so that each text's row stays one line for every reader.
_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_SHOWN = str.maketrans({c: c.encode("unicode_escape").decode() for c in _BREAKS})
# json.dumps leaves these three as they are; in its output they occur only inside strings, so a JSON row's
# text can be escaped whole.
_JSON_SAFE = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


def _decode(raw: bytes) -> tuple[str, bool]:
    """A line's text and whether it was UTF-8 (bad bytes become U+FFFD, so one bad line spoils no other)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def _read_lines(stream) -> Iterator[tuple[str, bool]]:
    """(text, is UTF-8) per line of a binary stream, read lazily; split at b"\\n" only, a CRLF's "\\r"
    dropped."""
    for number, raw in enumerate(stream, 1):
        text, valid = _decode(raw.removesuffix(b"\n").removesuffix(b"\r"))
        yield (text.removeprefix("\ufeff") if number == 1 else text), valid


def _texts(argv: list[str]) -> Iterator[tuple[str, bool]]:
    """The texts to classify, each with its UTF-8 validity: --input_file's lines, the arguments or stdin's."""
    if _INPUT.value and _INPUT.value != "-":
        path = Path(_INPUT.value)
        if not path.is_file():
            raise _cli.UsageError(f"--input_file={path}: no such file")
        return _file_lines(path)
    if argv[1:]:
        return (_decode(os.fsencode(arg)) for arg in argv[1:])  # undecodable bytes arrive surrogate-escaped
    if _INPUT.value == "-" or not sys.stdin.isatty():
        return _read_lines(sys.stdin.buffer)
    return iter(())


def _file_lines(path: Path) -> Iterator[tuple[str, bool]]:
    with open(path, "rb") as f:
        yield from _read_lines(f)


def _markers(prediction: dict) -> str:
    marks = (["no known word"] if not prediction["known_words"] else []) + (
        ["invalid UTF-8"] if prediction["invalid_utf8"] else []
    )
    return f"[{', '.join(marks)}] " if marks else ""


def _line(prediction: dict) -> str:
    """``label probability  [markers] text``; with several classes, the runners-up's probabilities after it.
    Line breaks other than "\\n" inside the text are shown escaped (``\\x0c``, ``\\u2028``)."""
    line = f"{prediction['label']:<8} {prediction['probability']:.4f}"
    if "probabilities" in prediction:
        ranked = sorted(prediction["probabilities"].items(), key=lambda item: -item[1])[1:3]
        line += "  (" + ", ".join(f"{name} {p:.4f}" for name, p in ranked) + ")"
    return f"{line}  {_markers(prediction)}{prediction['text'].translate(_SHOWN)}"


def _header(prediction: dict) -> str:
    """What the columns of the text output are, for stderr."""
    if "probabilities" in prediction:
        return "columns: predicted class, its probability, (the next two classes' probabilities), text"
    return "columns: predicted label, probability of positive, text"


def _summary(total: int, unknown: int, invalid: int) -> list[str]:
    """The closing lines for stderr about rows whose prediction says nothing about their text."""
    lines = []
    if unknown:
        lines.append(
            f"{unknown} of {total} texts had no word of the run's vocabulary (marked \"known_words\": 0 or "
            "[no known word]); their rows are the model's output for a text it cannot read"
        )
    if invalid:
        lines.append(
            f"{invalid} of {total} texts were not UTF-8; their bad bytes were read as U+FFFD (marked "
            '"invalid_utf8": true or [invalid UTF-8])'
        )
    return lines


def _predict_all(run, texts: Iterator[tuple[str, bool]], batch_size: int, as_json: bool) -> list[str]:
    """Classifies and prints batch by batch, flushing each; returns the summary lines for stderr."""
    from rnnjax.analysis import evaluate

    predict = evaluate.make_predict_fn(run, batch_size=batch_size)
    total = unknown = invalid = 0
    for chunk in evaluate.batched(texts, batch_size):
        predictions = predict([text for text, _ in chunk])
        if not total and not as_json:
            print(_header(predictions[0]), file=sys.stderr, flush=True)
        rows = []
        for (_, valid), prediction in zip(chunk, predictions):
            prediction["invalid_utf8"] = not valid
            rows.append(json.dumps(prediction, ensure_ascii=False) if as_json else _line(prediction))
        total += len(chunk)
        unknown += sum(not p["known_words"] for p in predictions)
        invalid += sum(not valid for _, valid in chunk)
        block = "\n".join(rows) + "\n"
        sys.stdout.write(block.translate(_JSON_SAFE) if as_json else block)  # a batch at once: fewer calls
        sys.stdout.flush()
    return _summary(total, unknown, invalid)


def main(argv: list[str]) -> None:
    texts = _texts(argv)
    first = next(texts, None)  # before JAX loads, so that no input is reported at once
    if first is None:
        raise _cli.UsageError("no texts to classify; pass texts as arguments, --input_file or standard input")
    from rnnjax.analysis import evaluate

    run = evaluate.load_run(Path(_WORKDIR.value), which=_CHECKPOINT.value)
    evaluate.check_vocabulary(run)
    batch_size = _BATCH_SIZE.value or int(run.config["train"]["eval_batch_size"])
    try:
        summary = _predict_all(run, itertools.chain([first], texts), batch_size, _JSON.value)
    except BrokenPipeError:  # the reader stopped early (``| head``): the texts it wanted are printed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    for line in summary:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    _cli.run(main)
