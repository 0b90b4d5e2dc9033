"""Evaluates a finished run on its test split: accuracy, loss, confusion matrix, precision, recall, F1.

python -m experiments.evaluate --workdir=runs/lstm [--checkpoint=best] [--json]
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
_JSON = flags.DEFINE_bool("json", False, "print the metrics as JSON")


def main(argv: list[str]) -> None:
    from rnnjax.analysis import evaluate
    from rnnjax.data import datasets

    _cli.no_positional(argv)
    run = evaluate.load_run(Path(_WORKDIR.value), which=_CHECKPOINT.value)
    config = _cli.with_data_location(_cli.as_config(run.config))
    splits = datasets.load_splits(config.data, seed=config.seed, workdir=run.workdir)
    arrays = splits[_SPLIT.value]
    if not len(arrays["label"]):
        raise _cli.UsageError(f"the run's data has no {_SPLIT.value} split")
    metrics = evaluate.evaluate_split(run, arrays, batch_size=int(config.train.eval_batch_size))
    metrics.update(workdir=str(run.workdir), checkpoint=run.checkpoint, step=run.step, split=_SPLIT.value)
    if _JSON.value:
        print(json.dumps(metrics, indent=2))
    else:
        print(
            evaluate.format_report(
                metrics,
                title=f"{run.workdir} ({run.checkpoint} checkpoint, step {run.step}), {_SPLIT.value} split",
            )
        )


if __name__ == "__main__":
    _cli.run(main)
