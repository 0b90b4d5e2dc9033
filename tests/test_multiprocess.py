"""A real two-process data-parallel run on this machine equals the single-process runs, and resumes exactly.

Each process is ``experiments.train --multihost`` with one CPU device; the mesh spans both processes and the
gradients are all-reduced across them by JAX's CPU collectives (Gloo). The references run in one process: the
same config data-parallel over 2 forced host devices, and on one device.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from rnnjax.analysis.evaluate import load_run

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240  # per command; a healthy tiny run takes well under a minute even on a busy machine
_COMMAND = [
    sys.executable,
    "-m",
    "experiments.train",
    "--config=experiments/configs/tiny.py",
    "--config.train.progress_bar=False",
]
_NO_COLLECTIVES = (
    "Multiprocess computations aren't implemented on the CPU backend",
    "collectives are not available",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return {**env, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _train_two_processes(workdir: Path, *overrides: str) -> list[str]:
    """Runs the tiny config data-parallel over two processes; kills both if either fails or time runs out.

    Returns:
        The two processes' output (stdout and stderr).
    """
    port, logs, procs = _free_port(), [], []
    try:
        for i in range(2):
            log = open(workdir.parent / f"{workdir.name}.process{i}.log", "w+")  # noqa: SIM115 - closed below
            logs.append(log)
            command = _COMMAND + [
                f"--workdir={workdir}",
                "--config.train.data_parallel=True",
                *overrides,
                "--multihost",
                f"--coordinator_address=localhost:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ]
            procs.append(
                subprocess.Popen(command, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + TIMEOUT_S
        # A process that fails leaves the other waiting at a collective: stop at the first failure.
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.returncode not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
    codes = [p.returncode for p in procs]
    if codes != [0, 0]:
        joined = "\n".join(
            f"--- process {i} (exit {c}) ---\n{out[-3000:]}" for i, (c, out) in enumerate(zip(codes, outputs))
        )
        if any(marker in joined for marker in _NO_COLLECTIVES):
            pytest.skip(f"this JAX build has no cross-process CPU collectives: {joined[-300:]}")
        pytest.fail(f"two-process training of {workdir} failed (exit codes {codes}):\n{joined}")
    return outputs


def _train_one_process(workdir: Path, *overrides: str, devices: int) -> None:
    env = _env(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    done = subprocess.run(
        _COMMAND + [f"--workdir={workdir}", *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"single-process training of {workdir} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )


def _max_abs_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.slow  # five tiny training commands, three of them as two processes: about a minute
def test_two_processes_match_one_process_and_resume_exactly(tmp_path):
    outputs = _train_two_processes(tmp_path / "two")
    _train_one_process(tmp_path / "mesh", "--config.train.data_parallel=True", devices=2)
    _train_one_process(tmp_path / "plain", devices=1)
    _train_two_processes(tmp_path / "resumed", "--config.train.epochs=1")
    resumed_outputs = _train_two_processes(tmp_path / "resumed", "--config.train.epochs=2")

    two, mesh, plain, resumed = (load_run(tmp_path / name) for name in ("two", "mesh", "plain", "resumed"))
    assert two.step == mesh.step == plain.step == resumed.step == 16  # 2 epochs of 200 * 0.8 / 16 examples
    for name, other in (("one process, 2 devices", mesh), ("one device", plain), ("resumed", resumed)):
        for got, want in zip(jax.tree.leaves(two.params), jax.tree.leaves(other.params), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"two processes vs {name}")
    print(
        f"max |two processes - one process on 2 devices| = {_max_abs_diff(two.params, mesh.params):.3g}; "
        f"- one device = {_max_abs_diff(two.params, plain.params):.3g}; - resumed = {_max_abs_diff(two.params, resumed.params):.3g}"
    )
    # Process 0 alone speaks and writes the run's files; the resumed run knew where it stopped.
    assert "Test: loss" in outputs[0] and "Test: loss" not in outputs[1] and "Run directory" not in outputs[1]
    assert "Resuming" in resumed_outputs[0] and "at step 8" in resumed_outputs[0]
    for name in ("results.json", "history.json", "vocabulary.json", "model.json", "run.json", "config.json"):
        assert (tmp_path / "two" / name).is_file(), name
    assert not list((tmp_path / "two").glob(".*.tmp")), "a half-written file was left behind"
