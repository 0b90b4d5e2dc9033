"""The chapter's comparison: trains (or reads) the five IMDB models, then tabulates and charts them.

    python -m experiments.compare --workdir=runs
    python -m experiments.compare --workdir=runs --notrain          # only tabulate finished runs
    python -m experiments.compare --workdir=runs --models=simple_rnn,lstm,gru,bilstm,bilstm_tuned,stacked_lstm

Each model runs in ``<workdir>/<name>`` with ``experiments/configs/<name>.py``; a finished run (one with a
``results.json``) is read, not retrained. ``<workdir>/comparison.md`` gets the Markdown table (parameters,
training time, test accuracy, next to the chapter's accuracy and, where ``experiments.benchmarks.keras_fit`` has been run
into the same run directory, Keras' fit time) and ``<workdir>/comparison.png`` the chart.
"""

import importlib
import json
from pathlib import Path

from absl import flags

from experiments import _cli

CHAPTER_ACCURACY = {"simple_rnn": 85.1, "lstm": 87.0, "gru": 87.2, "bilstm": 87.7, "stacked_lstm": 87.6}

_WORKDIR = flags.DEFINE_string("workdir", "runs", "folder holding one run directory per model")
_MODELS = flags.DEFINE_list("models", list(CHAPTER_ACCURACY), "experiment configs to compare")
_TRAIN = flags.DEFINE_bool("train", True, "train the models that have no finished run")
_SET = flags.DEFINE_list(
    "set", [], "config overrides for every model, e.g. train.epochs=1,data.name=synthetic"
)


def _config(name: str):
    if not (_cli.CONFIGS / f"{name}.py").exists():
        raise _cli.UsageError(f"--models: no config experiments/configs/{name}.py")
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    for item in _SET.value:
        key, sep, value = item.partition("=")
        if not sep:
            raise _cli.UsageError(f"--set: expected key=value, got {item!r}")
        config.update_from_flattened_dict({key: _cli.parse_value(value, config, key)})
    return _cli.with_data_location(config)


def _results(name: str, root: Path) -> dict:
    path = root / name / "results.json"
    if not path.exists():
        if not _TRAIN.value:
            raise _cli.UsageError(f"{path} not found; train it or drop --notrain")
        print(f"== {name}: training in {root / name}", flush=True)
        from rnnjax.training import classifier

        classifier.train_and_evaluate(_config(name), root / name)
    return json.loads(path.read_text())


def _keras(name: str, root: Path) -> dict | None:
    path = root / name / "keras_fit.json"
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: list[str]) -> None:
    _cli.no_positional(argv)
    root = Path(_WORKDIR.value)
    rows, names, accuracies, times, keras_times = [], [], [], [], []
    for name in _MODELS.value:
        results, keras = _results(name, root), _keras(name, root)
        if "test" not in results:
            raise _cli.UsageError(f"{root / name} has no test metrics; its data has no test split")
        accuracy = results["test"]["accuracy"]
        epochs = max(results["epochs_run"], 1)
        chapter = CHAPTER_ACCURACY.get(name.removesuffix("_tuned"))
        rows.append(
            f"| {name} | {results['params']:,} | {epochs} | {results['fit_time_s']:.0f} | "
            f"{results['fit_time_s'] / epochs:.1f} | {100 * accuracy:.2f} | {'' if chapter is None else f'{chapter:.1f}'} | "
            + (f"{keras['fit_time_s']:.0f} | {100 * keras['test_accuracy']:.2f} |" if keras else " | |")
        )
        names.append(name)
        accuracies.append(accuracy)
        times.append(results["fit_time_s"])
        keras_times.append(keras["fit_time_s"] if keras else None)
    table = "\n".join(
        [
            (
                "| model | parameters | epochs | training time (s) | s/epoch | test accuracy (%) | chapter (%) "
                "| Keras fit time (s) | Keras test accuracy (%) |"
            ),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    from rnnjax.analysis import plots

    (root / "comparison.md").write_text(table + "\n")
    plots.plot_comparison(names, accuracies, times, root / "comparison.png", keras_fit_times=keras_times)
    print(table)
    print(f"Wrote {root / 'comparison.md'} and {root / 'comparison.png'}")


if __name__ == "__main__":
    _cli.run(main)
