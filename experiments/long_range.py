"""Long-range memory sweep: gradient norms by distance, then test accuracy per cell as the cue moves away.

    python -m experiments.long_range --workdir=runs/long_range [--full] [--config=experiments/configs/long_range.py]
    python -m experiments.long_range --workdir=runs/long_range --precision   # float32 vs bfloat16 compute

Writes to the workdir: gradients.png/json (mean |dL/dx_t| against distance from the end, untrained and
trained, per cell and init), sweep.json, sweep.md (a Markdown table of test accuracy) and sweep.png; with
``--precision``, precision.json/md instead.
"""

import json
import math
from pathlib import Path

from absl import flags

from experiments import _cli

_CONFIG = _cli.define_config(_cli.CONFIGS / "long_range.py", "experiment config file")
_WORKDIR = flags.DEFINE_string("workdir", "runs/long_range", "output directory")
_FULL = flags.DEFINE_bool("full", False, "sweep config.long_range.full_distances instead of distances")
_PRECISION = flags.DEFINE_bool(
    "precision",
    False,
    "instead of the sweep: train each cell at gradient_distance in float32 and in bfloat16 compute",
)


_GATED = ("lstm", "gru", "min_gru", "min_lstm")  # cells with gate biases that chrono initialisation sets


def _run_config(base, cell: str, distance: int):
    """The config of one run: review length (and maxlen) long enough for the cue to fit at ``distance``."""
    config = base.copy_and_resolve_references()
    length = max(int(base.data.synthetic_length), math.ceil((distance + 11) * 4 / 3) + 1)
    config.data.synthetic_length = length
    config.data.synthetic_distance = distance
    config.data.maxlen = length
    config.model.cell = cell
    return config


def _train_one(config, workdir: Path, *, chrono: bool, gradient_batch: bool, compute_dtype: str = "float32"):
    """Trains one model with the fit loop in its own run directory (so a rerun resumes it); returns test accuracy,
    timings and (optionally) gradient curves before and after training."""
    import numpy as np

    from rnnjax.analysis import diagnostics
    from rnnjax.data import datasets
    from rnnjax.training import classifier

    config = config.copy_and_resolve_references()
    config.model.chrono = int(config.data.maxlen) if chrono else 0
    config.train.compute_dtype = compute_dtype
    config.train.progress_bar = False
    _, results = classifier.train_and_evaluate(config, workdir)
    curves = {}
    if gradient_batch:
        splits = datasets.load_splits(config.data, seed=config.seed, workdir=workdir)
        model_cfg = classifier.make_model_config(config.model, vocab_size=splits["vocabulary"].size, padding=config.data.padding)
        probe = {k: v[: int(config.train.eval_batch_size)] for k, v in splits["test"].items()}
        untrained = classifier.initial_params(config, model_cfg.spec, splits["vocabulary"])
        trained = classifier.load_params(workdir)
        curves["untrained"] = diagnostics.input_gradient_norms(model_cfg.spec, untrained, probe)
        curves["trained"] = diagnostics.input_gradient_norms(model_cfg.spec, trained, probe)
    history = results["history"]
    return {
        "test_accuracy": results["test"]["accuracy"],
        "fit_time_s": results["fit_time_s"],
        "steps": results["step"],
        "steps_per_s": history["steps_per_s"][-1],  # the last epoch: compilation excluded
    }, {k: np.asarray(v).tolist() for k, v in curves.items()}


def _table(results: list[dict], distances: list[int]) -> str:
    names = sorted({r["model"] for r in results}, key=lambda n: [r["model"] for r in results].index(n))
    lines = [
        "| model | " + " | ".join(f"d={d}" for d in distances) + " |",
        "|---" * (len(distances) + 1) + "|",
    ]
    for name in names:
        acc = {r["distance"]: r["test_accuracy"] for r in results if r["model"] == name}
        lines.append(
            f"| {name} | " + " | ".join(f"{acc[d]:.3f}" if d in acc else "-" for d in distances) + " |"
        )
    return "\n".join(lines) + "\n"


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["model"] for r in results):
        rows = sorted((r["distance"], r["test_accuracy"]) for r in results if r["model"] == name)
        ax.plot([d for d, _ in rows], [a for _, a in rows], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("cue distance from the end (words)")
    ax.set_ylabel("test accuracy")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _compare_precision(base, workdir: Path) -> None:
    """Test accuracy and steady-state steps/s of float32 and bfloat16-compute training, per cell."""
    distance = int(base.long_range.gradient_distance)
    rows = []
    for cell in base.long_range.cells:
        for dtype_name in ("float32", "bfloat16"):
            chrono = bool(base.long_range.chrono) and cell in _GATED
            run = workdir / "runs" / f"{cell}{'-chrono' if chrono else ''}-d{distance}-{dtype_name}"
            row, _ = _train_one(
                _run_config(base, cell, distance), run, chrono=chrono, gradient_batch=False, compute_dtype=dtype_name
            )
            row.update(cell=cell, compute=dtype_name, distance=distance, chrono=chrono)
            rows.append(row)
            print(
                f"{cell:10s} {dtype_name:8s} accuracy {row['test_accuracy']:.3f} {row['steps_per_s']:.1f} steps/s",
                flush=True,
            )
    lines = [f"| cell (d={distance}) | compute | test accuracy | steps/s |", "|---|---|---|---|"]
    lines += [
        f"| {r['cell']} | {r['compute']} | {r['test_accuracy']:.3f} | {r['steps_per_s']:.1f} |" for r in rows
    ]
    (workdir / "precision.json").write_text(json.dumps(rows, indent=1))
    (workdir / "precision.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def main(argv: list[str]) -> None:
    import jax

    from rnnjax.analysis import diagnostics

    _cli.no_positional(argv)
    base = _CONFIG.value
    workdir = Path(_WORKDIR.value)
    workdir.mkdir(parents=True, exist_ok=True)
    if _PRECISION.value:
        print(f"JAX devices: {jax.devices()}", flush=True)
        _compare_precision(base, workdir)
        return
    sweep = base.long_range
    distances = list(sweep.full_distances if _FULL.value else sweep.distances)
    print(f"JAX devices: {jax.devices()}; distances {distances}", flush=True)
    results, curves = [], {}
    for distance in distances:
        for cell in sweep.cells:
            for chrono in (False, True) if (sweep.chrono and cell in _GATED) else (False,):
                name = f"{cell}{' (chrono)' if chrono else ''}"
                wants_curves = distance == int(sweep.gradient_distance)
                run = workdir / "runs" / f"{cell}{'-chrono' if chrono else ''}-d{distance}"
                row, cell_curves = _train_one(
                    _run_config(base, cell, distance), run, chrono=chrono, gradient_batch=wants_curves
                )
                row.update(model=name, distance=distance)
                results.append(row)
                for stage, values in cell_curves.items():
                    curves[f"{name}, {stage}"] = values
                print(
                    f"d={distance:5d} {name:18s} test accuracy {row['test_accuracy']:.3f} ({row['fit_time_s']:.1f}s)",
                    flush=True,
                )
                (workdir / "sweep.json").write_text(json.dumps(results, indent=1))
    table = _table(results, distances)
    (workdir / "sweep.md").write_text(table)
    _plot(results, workdir / "sweep.png")
    if curves:
        (workdir / "gradients.json").write_text(json.dumps(curves))
        diagnostics.plot_gradient_norms(
            curves,
            workdir / "gradients.png",
            title=f"|dL/dx_t| on the synthetic set, cue at d={sweep.gradient_distance}",
        )
    print(table, flush=True)


if __name__ == "__main__":
    _cli.run(main)
