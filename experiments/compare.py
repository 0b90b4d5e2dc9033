"""Trains (or reads) a list of experiment configs, then tabulates and charts them beside their sources' figures.

    python -m experiments.compare --workdir=runs
    python -m experiments.compare --workdir=runs --notrain          # only tabulate finished runs
    python -m experiments.compare --workdir=runs/dlwp --models=dlwp_simple_rnn,dlwp_lstm,bow_dense --seeds=0,1,2 --keras

Each model runs in ``<workdir>/<name>`` (with ``--seeds``, one run per seed in ``<workdir>/<name>-s<seed>``) with
``experiments/configs/<name>.py``; a finished run (one with a ``results.json``) is read, not retrained. ``--keras``
fits Keras 3's twin of each run right after it (``experiments.benchmarks.keras_fit``, into the same run
directory), so both fit times come from one session. ``<workdir>/comparison.md`` gets the Markdown table (the
source's figure — a config module's ``SOURCE = (text, accuracy %)``, or the Packt chapter's — parameters, fit
times, test accuracy as mean ± standard deviation over the seeds, Keras' where it was fitted) and
``<workdir>/comparison.png`` the chart.
"""

import importlib
import json
import statistics
import subprocess
import sys
from pathlib import Path

from absl import flags

from experiments import _cli

CHAPTER_ACCURACY = {"simple_rnn": 85.1, "lstm": 87.0, "gru": 87.2, "bilstm": 87.7, "stacked_lstm": 87.6}

_WORKDIR = flags.DEFINE_string("workdir", "runs", "folder holding one run directory per model (and seed)")
_MODELS = flags.DEFINE_list("models", list(CHAPTER_ACCURACY), "experiment configs to compare")
_SEEDS = flags.DEFINE_list("seeds", [], "seeds to train each model with (mean and standard deviation)")
_TRAIN = flags.DEFINE_bool("train", True, "train the models that have no finished run")
_KERAS = flags.DEFINE_bool("keras", False, "fit Keras 3's twin of each run that has none, right after it")
_SET = flags.DEFINE_list(
    "set", [], "config overrides for every model, e.g. train.epochs=1,data.name=synthetic"
)


def _module(name: str):
    if not (_cli.CONFIGS / f"{name}.py").exists():
        raise _cli.UsageError(f"--models: no config experiments/configs/{name}.py")
    return importlib.import_module(f"experiments.configs.{name}")


def _source(name: str) -> tuple[str, float] | None:
    """(text, accuracy %) a config's source reports, or None."""
    source = getattr(_module(name), "SOURCE", None)
    chapter = CHAPTER_ACCURACY.get(name.removesuffix("_tuned"))
    return source or (("Packt chapter", chapter) if chapter is not None else None)


def _overrides(seed: int | None) -> list[str]:
    return [*_SET.value, *([f"seed={seed}"] if seed is not None else [])]


def _config(name: str, seed: int | None):
    config = _module(name).get_config()
    for item in _overrides(seed):
        key, sep, value = item.partition("=")
        if not sep:
            raise _cli.UsageError(f"--set: expected key=value, got {item!r}")
        config.update_from_flattened_dict({key: _cli.parse_value(value, config, key)})
    return _cli.with_data_location(config)


def _results(name: str, run_dir: Path, seed: int | None) -> dict:
    path = run_dir / "results.json"
    if not path.exists():
        if not _TRAIN.value:
            raise _cli.UsageError(f"{path} not found; train it or drop --notrain")
        print(f"== {name}: training in {run_dir}", flush=True)
        from rnnjax.training import classifier

        classifier.train_and_evaluate(_config(name, seed), run_dir)
    results = json.loads(path.read_text())
    if "test" not in results:
        raise _cli.UsageError(f"{run_dir} has no test metrics; its data has no test split")
    return results


def _keras(name: str, run_dir: Path, seed: int | None) -> dict | None:
    path = run_dir / "keras_fit.json"
    if not path.exists() and _KERAS.value:
        print(f"== {name}: Keras fit in {run_dir}", flush=True)
        command = [sys.executable, "-m", "experiments.benchmarks.keras_fit", f"--config={_cli.CONFIGS / name}.py",
                   f"--workdir={run_dir}", *(f"--config.{item}" for item in _overrides(seed))]
        subprocess.run(command, check=True)
    return json.loads(path.read_text()) if path.exists() else None


def _spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values) * scale
    return f"{mean:.{digits}f}" + (f" ± {statistics.stdev(values) * scale:.{digits}f}" if len(values) > 1 else "")


def _row(name: str, root: Path) -> tuple[str, float, float, float | None]:
    """The table row of one model over its seeds, and its mean accuracy, fit time and Keras fit time."""
    seeds = [int(seed) for seed in _SEEDS.value] or [None]
    runs = [(root / (name if seed is None else f"{name}-s{seed}"), seed) for seed in seeds]
    results = [_results(name, run_dir, seed) for run_dir, seed in runs]
    keras = [k for k in (_keras(name, run_dir, seed) for run_dir, seed in runs) if k]
    accuracy = [r["test"]["accuracy"] for r in results]
    fit = [r["fit_time_s"] for r in results]
    source = _source(name)
    keras_fit = statistics.fmean(k["fit_time_s"] for k in keras) if keras else None
    row = (
        f"| {name} | {source[0] if source else ''} | {f'{source[1]:.2f}' if source else ''} | "
        f"{results[0]['params']:,} | {len(results)} | {_spread(accuracy, 100)} | {_spread(fit, digits=0)} | "
        f"{_spread([k['test_accuracy'] for k in keras], 100)} | {_spread([k['fit_time_s'] for k in keras], digits=0)} | "
        f"{f'{keras_fit / statistics.fmean(fit):.2f}x' if keras else ''} |"
    )
    return row, statistics.fmean(accuracy), statistics.fmean(fit), keras_fit


def main(argv: list[str]) -> None:
    _cli.no_positional(argv)
    root = Path(_WORKDIR.value)
    rows = [_row(name, root) for name in _MODELS.value]
    table = "\n".join(
        [
            "| model | source | source (%) | parameters | seeds | test accuracy (%) | fit time (s) "
            "| Keras test accuracy (%) | Keras fit time (s) | Keras / rnnjax fit time |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(row for row, *_ in rows),
        ]
    )
    from rnnjax.analysis import plots

    (root / "comparison.md").write_text(table + "\n")
    plots.plot_comparison(
        list(_MODELS.value), [r[1] for r in rows], [r[2] for r in rows], root / "comparison.png",
        keras_fit_times=[r[3] for r in rows],
    )
    print(table)
    print(f"Wrote {root / 'comparison.md'} and {root / 'comparison.png'}")


if __name__ == "__main__":
    _cli.run(main)
