"""Evaluates a finished run on its test split, or on a labelled file: accuracy, loss, confusion matrix, F1.

python -m experiments.evaluate --workdir=runs/lstm [--checkpoint=best] [--split=validation] [--json]
python -m experiments.evaluate --workdir=runs/lstm --data_file=reviews.jsonl.gz [--label_column=rating]

--data_file reads a JSON-lines (.jsonl, .json, .ndjson) or CSV/TSV file, optionally gzip'd, in batches of
--batch_size rows, so a file of any size is evaluated in the memory of one batch. Its labels must be the
run's classes (classes.json); the text and label columns default to the run's data.text_column and
data.label_column.
"""

import json
from pathlib import Path

from absl import flags

from experiments import _cli

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory written by experiments.train", required=True)
_CHECKPOINT = flags.DEFINE_enum(
    "checkpoint", "final", _cli.CHECKPOINT_CHOICES, "which parameters to evaluate"
)
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "validation"], "which split to evaluate on")
_DATA_FILE = flags.DEFINE_string(
    "data_file", None, "a labelled JSON-lines or CSV/TSV file to evaluate on instead of a split"
)
_TEXT_COLUMN = flags.DEFINE_string("text_column", None, "--data_file's text field (default: the run's)")
_LABEL_COLUMN = flags.DEFINE_string("label_column", None, "--data_file's label field (default: the run's)")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "examples per model call (default: the run's train.eval_batch_size)", lower_bound=1
)
_JSON = flags.DEFINE_bool("json", False, "print the metrics as JSON")


def _check_flags() -> None:
    if _DATA_FILE.value is None:
        given = [f"--{f.name}" for f in (_TEXT_COLUMN, _LABEL_COLUMN) if f.value is not None]
        if given:
            raise _cli.UsageError(f"{' and '.join(given)}: only with --data_file=PATH, the file of those columns")
    elif flags.FLAGS["split"].present:
        raise _cli.UsageError("--split and --data_file exclude each other: evaluate on a split or on a file")


def _evaluate_split(run, batch_size: int) -> tuple[dict, str]:
    from rnnjax.analysis import evaluate
    from rnnjax.data import datasets

    config = _cli.with_data_location(_cli.as_config(run.config))
    splits = datasets.load_splits(config.data, seed=config.seed, workdir=run.workdir)
    arrays = splits[_SPLIT.value]
    if not len(arrays["label"]):
        raise _cli.UsageError(f"the run's data has no {_SPLIT.value} split")
    metrics = evaluate.evaluate_split(run, arrays, batch_size=batch_size)
    metrics["split"] = _SPLIT.value
    return metrics, f"{_SPLIT.value} split"


def _evaluate_file(run, batch_size: int) -> tuple[dict, str]:
    from rnnjax.analysis import evaluate, labelled_file

    evaluate.check_vocabulary(run)
    path = Path(_DATA_FILE.value)
    metrics = labelled_file.evaluate(
        run, path, batch_size=batch_size, text_column=_TEXT_COLUMN.value, label_column=_LABEL_COLUMN.value
    )
    metrics["data_file"] = str(path)
    skipped = metrics["n_skipped_empty"]
    plural = "s" * (skipped != 1)
    left_out = f" ({skipped:,} row{plural} with no word left out, as in training)" if skipped else ""
    return metrics, f"{path}{left_out}"


def main(argv: list[str]) -> None:
    from rnnjax.analysis import evaluate

    _cli.no_positional(argv)
    _check_flags()
    run = evaluate.load_run(Path(_WORKDIR.value), which=_CHECKPOINT.value)
    batch_size = _BATCH_SIZE.value or int(run.config["train"]["eval_batch_size"])
    metrics, what = (_evaluate_file if _DATA_FILE.value else _evaluate_split)(run, batch_size)
    metrics.update(workdir=str(run.workdir), checkpoint=run.checkpoint, step=run.step)
    if _JSON.value:
        print(json.dumps(metrics, indent=2))
    else:
        print(
            evaluate.format_report(
                metrics, title=f"{run.workdir} ({run.checkpoint} checkpoint, step {run.step}), {what}"
            )
        )


if __name__ == "__main__":
    _cli.run(main)
