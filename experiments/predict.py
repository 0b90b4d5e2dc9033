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


def _texts(argv: list[str]) -> list[str]:
    if _INPUT.value and _INPUT.value != "-":
        path = Path(_INPUT.value)
        if not path.is_file():
            raise _cli.UsageError(f"--input_file={path}: no such file")
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if argv[1:]:
        return argv[1:]
    if _INPUT.value == "-" or not sys.stdin.isatty():
        return [line for line in sys.stdin.read().splitlines() if line.strip()]
    return []


def main(argv: list[str]) -> None:
    from rnnjax import evaluate

    texts = _texts(argv)
    run = evaluate.load_run(Path(_WORKDIR.value), which=_CHECKPOINT.value)
    for prediction in evaluate.predict_texts(run, texts):
        if _JSON.value:
            print(json.dumps(prediction, ensure_ascii=False))
        else:
            print(f"{prediction['label']:<8} {prediction['probability']:.4f}  {prediction['text']}")


if __name__ == "__main__":
    _cli.run(main)
