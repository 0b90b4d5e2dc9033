"""The experiment scripts end to end (subprocesses on the tiny synthetic config) and their usage errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "experiments" / "configs" / "tiny.py")


def _run(*args: str, stdin: str | None = None, cwd: Path = REPO, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), **extra_env}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A run trained by ``experiments.train`` on the tiny config."""
    workdir = tmp_path_factory.mktemp("runs") / "tiny"
    result = _run("experiments.train", f"--config={TINY}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2" in result.stdout and "Test: loss" in result.stdout
    return workdir


def test_train_writes_a_complete_run_directory(workdir):
    for name in (
        "config.json",
        "model.json",
        "vocabulary.json",
        "history.json",
        "results.json",
        "curves.png",
    ):
        assert (workdir / name).exists(), name
    assert (workdir / "checkpoints").is_dir() and (workdir / "tensorboard" / "train").is_dir()


def test_compiled_programs_are_kept_on_disk_and_reused(workdir, tmp_path):
    """RNNJAX_XLA_CACHE: a first run writes its compiled programs, a second loads its training step from there
    and trains to the same numbers."""
    cache, tests, logs = tmp_path / "xla", [], []
    for name in ("cold", "warm"):
        result = _run("experiments.train", f"--config={TINY}", f"--workdir={tmp_path / name}",
                      RNNJAX_XLA_CACHE=str(cache), JAX_COMPILATION_CACHE_DIR="", JAX_LOG_COMPILES="1")
        assert result.returncode == 0, result.stderr
        tests.append(json.loads((tmp_path / name / "results.json").read_text())["test"])
        logs.append(result.stderr)
    assert any(path.name.startswith("jit_train_step-") for path in cache.iterdir())
    hit = "Persistent compilation cache hit for 'jit_train_step'"
    assert hit not in logs[0] and hit in logs[1]
    assert tests[0] == tests[1] == json.loads((workdir / "results.json").read_text())["test"]
    # A damaged entry (cut short): one line, set aside, compiled again; the next run finds a good entry.
    entry = next(cache.glob("jit_train_step-*-cache"))
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    for name in ("damaged", "again"):
        result = _run("experiments.train", f"--config={TINY}", f"--workdir={tmp_path / name}",
                      RNNJAX_XLA_CACHE=str(cache), JAX_COMPILATION_CACHE_DIR="")
        assert result.returncode == 0, result.stderr
        tests.append(json.loads((tmp_path / name / "results.json").read_text())["test"])
        logs.append(result.stderr)
    said = [line for line in logs[2].splitlines() if "cache" in line]
    assert len(said) == 1 and "could not be read; set aside" in said[0] and "Warning" not in logs[2]
    assert list(cache.glob(f"{entry.name}.damaged-*")) and entry.exists() and "cache" not in logs[3]
    assert tests[2] == tests[3] == tests[0]


@pytest.mark.slow  # rnnjax.analysis.evaluate itself is tested in-process in test_evaluate.py
def test_evaluate_reports_metrics(workdir):
    result = _run("experiments.evaluate", f"--workdir={workdir}", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) >= {"accuracy", "loss", "precision", "recall", "f1", "confusion_matrix"}
    assert metrics["n_examples"] == json.loads((workdir / "results.json").read_text())["test"]["n_examples"]


TEXTS = ["An excellent movie!", "Don't watch this movie - poor acting, poor script, bad direction."]


def test_predict_from_arguments(workdir):
    result = _run("experiments.predict", f"--workdir={workdir}", "--json", *TEXTS)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == TEXTS and all(0 <= r["probability"] <= 1 for r in rows)


@pytest.mark.slow
def test_predict_from_stdin(workdir):
    texts = TEXTS
    result = _run(
        "experiments.predict", f"--workdir={workdir}", "--input_file=-", stdin="\n".join(texts) + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


@pytest.mark.slow
def test_compare_tabulates_finished_runs(workdir):
    result = _run("experiments.compare", f"--workdir={workdir.parent}", "--models=tiny", "--notrain")
    assert result.returncode == 0, result.stderr
    table = (workdir.parent / "comparison.md").read_text()
    assert "| tiny |" in table and (workdir.parent / "comparison.png").exists()


@pytest.mark.slow
def test_a_script_restarts_with_the_fast_allocator_before_it_imports_anything_heavy():
    """``python -m experiments.<script>`` re-executes itself once (tcmalloc or glibc tunables) while the package
    is imported, so the first interpreter imports neither absl nor JAX."""
    result = _run("experiments.summary", f"--config={TINY}", PYTHONPROFILEIMPORTTIME="1", RNNJAX_FAST_MALLOC="1")
    assert result.returncode == 0, result.stderr
    names = [line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    starts = [i for i, name in enumerate(names) if name == "site"]  # each interpreter imports site first
    assert len(starts) == 2
    first = names[: starts[1]]
    assert "experiments._allocator" in first and "jax" in names[starts[1] :]
    assert not [name for name in first if name.split(".")[0] in ("absl", "jax", "ml_collections", "numpy")]


def test_summary_prints_the_parameter_table():
    result = _run("experiments.summary", f"--config={REPO / 'experiments/configs/stacked_lstm.py'}")
    assert result.returncode == 0, result.stderr
    assert "lstm_1 (LSTM)" in result.stdout and "Total params: 272,673" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("experiments.evaluate",),  # missing --workdir
        ("experiments.train", "--config=/nonexistent/config.py"),
        pytest.param(
            ("experiments.train", f"--config={TINY}", "--config.train.epochs=many"), marks=pytest.mark.slow
        ),
        ("experiments.predict", "--workdir=x", "--checkpoint=newest"),
        pytest.param(("experiments.evaluate", "--workdir=/nonexistent/run"), marks=pytest.mark.slow),
        pytest.param(("experiments.summary", "--config.model.cell=transformer"), marks=pytest.mark.slow),
    ],
)
def test_bad_usage_exits_2_with_one_line(args, tmp_path):
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in result.stderr, result.stderr


@pytest.mark.slow
def test_predict_without_checkpoint_exits_2(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = _run("experiments.predict", f"--workdir={tmp_path}", "text")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("reloads", [True, False])
def test_the_compilation_cache_is_used_only_where_xla_loads_back_its_programs(tmp_path, monkeypatch, reloads):
    """Some hosts' XLA refuses to load back the CPU programs it compiled there; the scripts try that once per
    machine, remember the answer beside the cache, and turn the cache on only where it works."""
    import jax
    from jax.experimental import serialize_executable

    from experiments import _compile_cache

    updates, probes, load = [], [], serialize_executable.deserialize_and_load

    def deserialize(*args):
        probes.append(1)
        if not reloads:
            raise RuntimeError("Target machine feature +prefer-no-gather is not supported on the host machine")
        return load(*args)

    monkeypatch.setattr(serialize_executable, "deserialize_and_load", deserialize)
    monkeypatch.setattr(jax.config, "update", lambda name, value: updates.append((name, value)))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("RNNJAX_XLA_CACHE", str(tmp_path / "xla"))
    for _ in range(2):
        _compile_cache.use_compilation_cache()
    assert len(probes) == 1  # the second command reads the remembered answer
    markers = [path.read_text() for path in (tmp_path / "xla").glob("reloads-*")]
    assert markers == ["yes\n" if reloads else "no\n"]
    expected = [("jax_compilation_cache_dir", str(tmp_path / "xla")), ("jax_compilation_cache_max_size", 1 << 30),
                ("jax_persistent_cache_min_compile_time_secs", 0.0)]
    ours = [update for update in updates if update[0] in dict(expected)]  # JAX sets others itself
    assert ours == (expected * 2 if reloads else [])
    monkeypatch.setenv("RNNJAX_XLA_CACHE", "0")
    _compile_cache.use_compilation_cache()
    assert len([update for update in updates if update[0] in dict(expected)]) == len(ours)


def test_without_filelock_the_compilation_cache_stays_off(tmp_path, monkeypatch):
    """JAX keeps its cache under a size limit only with filelock; without it every read would warn, so the
    scripts leave the cache off."""
    import sys

    import jax

    from experiments import _compile_cache

    updates = []
    monkeypatch.setitem(sys.modules, "filelock", None)  # import filelock raises ImportError
    monkeypatch.setattr(jax.config, "update", lambda name, value: updates.append(name))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("RNNJAX_XLA_CACHE", str(tmp_path / "xla"))
    _compile_cache.use_compilation_cache()
    assert "jax_compilation_cache_dir" not in updates


def test_the_compilation_caches_warnings_become_one_line_each(tmp_path, monkeypatch, capsys):
    """JAX warns on every cache entry it cannot read or write; the scripts say it once, in one line, and set an
    unreadable program's entries aside so that they are written again."""
    import warnings

    from experiments import _compile_cache

    for name in ("jit_step-abc-cache", "jit_step-abc-atime", "jit_other-def-cache"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    _compile_cache._report_cache_warnings(tmp_path)
    for lineno in (1, 3):  # two places, so that Python's once-per-place filter lets both through
        warnings.warn_explicit("Error writing persistent compilation cache entry for 'jit_a': OSError: [Errno 28] "
                               "No space left on device", UserWarning, "compiler.py", lineno)
    warnings.warn_explicit("Error reading persistent compilation cache entry for 'jit_step': error: Error -5 while "
                           "decompressing data", UserWarning, "compiler.py", 2)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "No space left on device" in lines[0] and "jit_step-abc-cache" in lines[1]
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names[:2] == ["jit_other-def-cache", "jit_step-abc-atime"] and names[2].startswith("jit_step-abc-cache.damaged-")
