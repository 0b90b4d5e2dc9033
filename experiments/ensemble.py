"""Averages classifier runs (e.g. a forward and a backward one, ULMFiT's ensemble) and reports each run's
accuracy and the accuracy of their mean probability.

python -m experiments.ensemble --workdirs=runs/forward,runs/backward [--split=test] [--checkpoint=best]
python -m experiments.ensemble --workdirs=runs/forward,runs/backward --data_file=reviews.jsonl.gz

Each run reads the examples with its own vocabulary and data settings, backwards when its config.json has
data.reverse = True. --json prints the report as one JSON line. --data_file is read whole; its columns default
to the first run's data.text_column and data.label_column.
"""

import json
from pathlib import Path

from absl import flags

from experiments import _cli

_WORKDIRS = flags.DEFINE_list("workdirs", None, "classifier run directories, comma-separated", required=True)
_CHECKPOINT = flags.DEFINE_enum(
    "checkpoint", "final", _cli.CHECKPOINT_CHOICES, "which parameters of each run"
)
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "validation"], "which split to average on")
_DATA_FILE = flags.DEFINE_string(
    "data_file", None, "a labelled JSON-lines or CSV/TSV file instead of a split"
)
_TEXT_COLUMN = flags.DEFINE_string("text_column", None, "--data_file's text field (default: the first run's)")
_LABEL_COLUMN = flags.DEFINE_string(
    "label_column", None, "--data_file's label field (default: the first run's)"
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size",
    None,
    "examples per model call (default: the first run's train.eval_batch_size)",
    lower_bound=1,
)
_JSON = flags.DEFINE_bool("json", False, "print the report as one JSON line instead of a table")


def _check_flags() -> None:
    if len(_WORKDIRS.value) < 2 or len(set(_WORKDIRS.value)) != len(_WORKDIRS.value):
        raise _cli.UsageError(
            f"--workdirs={','.join(_WORKDIRS.value)}: give two or more different run directories"
        )
    if _DATA_FILE.value is None:
        given = [f"--{f.name}" for f in (_TEXT_COLUMN, _LABEL_COLUMN) if f.value is not None]
        if given:
            raise _cli.UsageError(
                f"{' and '.join(given)}: only with --data_file=PATH, the file of those columns"
            )
    elif flags.FLAGS["split"].present:
        raise _cli.UsageError("--split and --data_file exclude each other: average on a split or on a file")


def _on_file(runs, batch_size: int) -> dict:
    import numpy as np

    from rnnjax.analysis import ensemble, labelled_file

    data_cfg = runs[0].data_cfg
    rows = list(
        labelled_file.read_rows(
            Path(_DATA_FILE.value),
            text_column=_TEXT_COLUMN.value or data_cfg.get("text_column", "text"),
            label_column=_LABEL_COLUMN.value or data_cfg.get("label_column", "label"),
            classes=runs[0].classes,
        )
    )
    if not rows:
        raise _cli.UsageError(f"--data_file={_DATA_FILE.value}: no rows")
    texts, labels = zip(*rows)
    report = ensemble.ensemble_texts(runs, texts, np.asarray(labels, np.int32), batch_size=batch_size)
    return {**report, "data_file": _DATA_FILE.value}


def main(argv: list[str]) -> None:
    from rnnjax.analysis import ensemble, evaluate

    _cli.no_positional(argv)
    _check_flags()
    runs = [evaluate.load_run(Path(workdir), which=_CHECKPOINT.value) for workdir in _WORKDIRS.value]
    for run in runs:
        evaluate.check_vocabulary(run)
    batch_size = _BATCH_SIZE.value or int(runs[0].config["train"]["eval_batch_size"])
    if _DATA_FILE.value:
        report = _on_file(runs, batch_size)
    else:
        data_cfgs = [_cli.with_data_location(_cli.as_config(run.config)).data for run in runs]
        report = {
            **ensemble.ensemble_split(runs, data_cfgs, split=_SPLIT.value, batch_size=batch_size),
            "split": _SPLIT.value,
        }
    print(json.dumps(report) if _JSON.value else ensemble.format_table(report))


if __name__ == "__main__":
    _cli.run(main)
