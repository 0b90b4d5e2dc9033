"""Start-up time of ``experiments.train``: from the command's start to the end of its first training step.

    python -m experiments.benchmarks.startup --runs=2 -- --config=experiments/configs/lstm.py
    python -m experiments.benchmarks.startup --runs=2 -- --config.data.cache=false

Each run is a fresh process training in a fresh run directory on the same data (so the first run may build
the encoded-splits cache and the second reads it). The clock starts before the process is launched, so the
interpreter's start and every import count. Printed per run: the seconds to the end of the first training
step (its compilation included) and where they went: imports and set-up before the data, ``load_splits``,
and from the data to the first step (model initialisation, checkpoint set-up, compiling and running the step).
Arguments after ``--`` go to ``experiments.train``; ``--config.train.max_steps=1`` is added.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_RUNS = flags.DEFINE_integer("runs", 2, "Runs, one after the other, each in a fresh process and run directory.")
_WORKER = "from experiments.benchmarks import startup; startup.worker({t0!r}, {argv!r})"


def worker(t0: float, argv: list[str]) -> None:
    """Runs ``experiments.train`` with ``argv`` in this process; prints the phase times at the first step, exits."""
    import runpy

    from experiments._allocator import use_fast_allocator

    use_fast_allocator()  # as ``python -m experiments.train`` does, before JAX is imported

    import jax

    from rnnjax.data import datasets
    from rnnjax.training import loop

    marks = {"imported_s": time.time() - t0}
    load_splits, make_steps = datasets.load_splits, loop.make_steps

    def timed_load_splits(*args, **kwargs):
        marks["data_start_s"] = time.time() - t0
        out = load_splits(*args, **kwargs)
        marks["data_end_s"] = time.time() - t0
        return out

    def timed_make_steps(*args, **kwargs):
        train_step, *rest = make_steps(*args, **kwargs)

        def first_step(state, batch):
            out = jax.block_until_ready(train_step(state, batch))
            marks["first_step_s"] = time.time() - t0
            print(json.dumps(marks), flush=True)
            os._exit(0)  # the first step is what is timed: no validation, no checkpoint
            return out

        return (first_step, *rest)

    datasets.load_splits, loop.make_steps = timed_load_splits, timed_make_steps
    sys.argv = ["experiments.train", *argv]
    runpy.run_module("experiments.train", run_name="__main__")


def _run(argv: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        # An override of a config field must come after --config, so the step limit goes last.
        args = [f"--workdir={workdir}/run", *argv, "--config.train.max_steps=1"]
        t0 = time.time()
        code = _WORKER.format(t0=t0, argv=args)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        wall = time.time() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"experiments.train failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(lines[-1]) | {"wall_s": wall}


def main(argv: list[str]) -> None:
    for i in range(_RUNS.value):
        m = _run(argv[1:])
        print(
            f"run {i + 1}: first step at {m['first_step_s']:.2f} s: imports and set-up {m['data_start_s']:.2f} s, "
            f"load_splits {m['data_end_s'] - m['data_start_s']:.2f} s, data to first step "
            f"{m['first_step_s'] - m['data_end_s']:.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
