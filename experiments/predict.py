"""Classifies raw texts with a trained run, applying exactly its training preprocessing.

python -m experiments.predict --workdir=runs/lstm "An excellent movie!" "Don't watch this movie - poor acting."
python -m experiments.predict --workdir=runs/lstm --input_file=reviews.txt --json   # one text per line
cat reviews.txt | python -m experiments.predict --workdir=runs/lstm                  # texts from stdin
"""

import json
import sys
from pathlib import Path

from absl import flags

from experiments import _cli

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory written by experiments.train", required=True)
_INPUT = flags.DEFINE_string("input_file", None, "file with one text per line ('-' for standard input)")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "final", _cli.CHECKPOINT_CHOICES, "which parameters to use")
_JSON = flags.DEFINE_bool("json", False, "print one JSON object per text")


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _cli.UsageError(
            f"{source}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); save the texts as UTF-8"
        ) from None


def _texts(argv: list[str]) -> list[str]:
    if _INPUT.value and _INPUT.value != "-":
        path = Path(_INPUT.value)
        if not path.is_file():
            raise _cli.UsageError(f"--input_file={path}: no such file")
        content = _decode(path.read_bytes(), f"--input_file={path}")
        return [line for line in content.splitlines() if line.strip()]
    if argv[1:]:
        return argv[1:]
    if _INPUT.value == "-" or not sys.stdin.isatty():
        content = _decode(sys.stdin.buffer.read(), "standard input")
        return [line for line in content.splitlines() if line.strip()]
    return []


def _check_texts(run, texts: list[str]) -> None:
    """Rejects texts the model cannot read: no words at all, or none it has seen; and a foreign vocabulary."""
    from rnnjax.data import text

    vocab = run.vocabulary
    embedding = run.spec.layers[0] if run.spec is not None else None  # a researcher's model has no spec
    if embedding is not None and vocab.size != embedding.vocab_size:
        raise _cli.UsageError(
            f"{run.workdir}/{text.VOCABULARY_FILE} has {vocab.size} ids but the model embeds {embedding.vocab_size}: "
            "the vocabulary is from another run; restore the run's own vocabulary file or retrain"
        )
    data_cfg = run.data_cfg
    for number, words in enumerate(text.tokenize(texts, method=data_cfg.tokenizer, strip_html=data_cfg.strip_html), 1):
        shown = repr(texts[number - 1][:40])
        if not words:
            raise _cli.UsageError(f"text {number} ({shown}) has no words; give review texts with words")
        if not any(word in vocab.index for word in words):
            raise _cli.UsageError(
                f"text {number} ({shown}) has no word of the run's vocabulary, so its prediction would mean "
                "nothing; give an English review text"
            )


def _line(prediction: dict) -> str:
    """``label probability  text``; with several classes, the runners-up's probabilities after it."""
    line = f"{prediction['label']:<8} {prediction['probability']:.4f}"
    if "probabilities" in prediction:
        ranked = sorted(prediction["probabilities"].items(), key=lambda item: -item[1])[1:3]
        line += "  (" + ", ".join(f"{name} {p:.4f}" for name, p in ranked) + ")"
    return f"{line}  {prediction['text']}"


def main(argv: list[str]) -> None:
    from rnnjax.analysis import evaluate

    texts = _texts(argv)
    run = evaluate.load_run(Path(_WORKDIR.value), which=_CHECKPOINT.value)
    _check_texts(run, texts)
    for prediction in evaluate.predict_texts(run, texts):
        if _JSON.value:
            print(json.dumps(prediction, ensure_ascii=False))
        else:
            print(_line(prediction))


if __name__ == "__main__":
    _cli.run(main)
