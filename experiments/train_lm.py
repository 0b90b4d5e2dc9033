"""Trains (or resumes) a word-level language model and reports its validation perplexity.

    python -m experiments.train_lm --config=experiments/configs/lm_gru.py --workdir=runs/lm_gru [--config.train.epochs=3]

Rerunning a command resumes its run; ``--workdir`` alone resumes from the run directory's own config.json.
``--config.data.reverse=True`` trains a backward model, ``--config.model.num_sampled=1024`` with sampled
softmax. IMDB is read as for experiments.train (a prepared copy, the local copy, the download); when it
cannot be had the command stops with one line (``--config.data.name=synthetic`` trains on the embedded
synthetic reviews).
"""

from pathlib import Path

from absl import flags

from experiments import _cli

_CONFIG = _cli.define_config(_cli.CONFIGS / "lm_gru.py", "language-model config file")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (default: runs/<config name>)")


def main(argv: list[str]) -> None:
    from rnnjax.training import language_model

    _cli.no_positional(argv)
    workdir = Path(_WORKDIR.value or Path("runs") / _cli.config_name(_CONFIG))
    config = _cli.with_data_location(_cli.resolve_config(_CONFIG, workdir))
    print(f"Run directory: {workdir}", flush=True)
    _, results = language_model.train_lm(config, workdir)
    if results["history"]:
        from rnnjax.analysis import plots  # after training: matplotlib takes a second to import

        plots.plot_history(results["history"], workdir / "curves.png", title=plots.run_title(workdir))
    _cli.say_where(workdir, "experiments.generate")


if __name__ == "__main__":
    _cli.run(main)
