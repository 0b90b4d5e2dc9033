"""Trains (or resumes) one run and evaluates it on the test split.

    python -m experiments.train --config=experiments/configs/lstm.py --workdir=runs/lstm [--config.train.epochs=3]

With no flags it trains the chapter's LSTM on IMDB in runs/lstm: a prepared TFDS copy, else the local copy
(``RNNJAX_IMDB_DIR`` or ``../shared/data/imdb``), else the official download; only this no-flag command falls back
to the embedded synthetic set, saying why, when IMDB cannot be had. Rerunning a command resumes its run; ``--workdir`` alone resumes from the run
directory's own config.json.
"""

from pathlib import Path

from absl import flags

from experiments import _cli

_CONFIG = _cli.define_config(_cli.CONFIGS / "lstm.py", "experiment config file")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (default: runs/<config name>)")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "call jax.distributed.initialize first (one process per host; see rnnjax.training.sharding)"
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "multihost: host:port of process 0 (default: from the cluster)"
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "multihost: number of processes (default: from the cluster)"
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "multihost: this process's index (default: from the cluster)"
)


def main(argv: list[str]) -> None:
    import jax

    from rnnjax.training import classifier, sharding

    _cli.no_positional(argv)
    if _MULTIHOST.value:
        sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    workdir = Path(_WORKDIR.value or Path("runs") / _cli.config_name(_CONFIG))
    # Only the no-flag main job may train on the embedded synthetic set when IMDB cannot be had.
    fallback = not flags.FLAGS[_CONFIG.name].present and not (workdir / "config.json").exists()
    config = _cli.with_data_location(_cli.resolve_config(_CONFIG, workdir), fallback=fallback)
    if jax.process_index() == 0:
        print(f"Run directory: {workdir}", flush=True)
    _, results = classifier.train_and_evaluate(config, workdir)
    if jax.process_index() == 0:
        if results["history"]:
            from rnnjax.analysis import plots  # after training: matplotlib takes a second to import

            plots.plot_history(results["history"], workdir / "curves.png", title=plots.run_title(workdir))
        _cli.say_where(workdir, "experiments.evaluate")


if __name__ == "__main__":
    _cli.run(main)
