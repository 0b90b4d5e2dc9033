"""The run directory survives ordinary mistakes: refused commands change nothing, one writer at a time,
foreign and damaged checkpoints, keep_checkpoints, and every run kind loads for inference
(``rnnjax/training/runs.py``)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments.configs import tiny
from rnnjax.analysis import evaluate
from rnnjax.training import classifier, language_model, loop, optim, runs

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}


def _snapshot(workdir: Path) -> dict[str, str]:
    """Every file and folder of the directory with its content digest (folders: "dir")."""
    return {
        str(path.relative_to(workdir)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "dir"
        for path in sorted(workdir.rglob("*"))
    }


def _lm_config():
    config = tiny.get_config()
    from experiments.configs import lm_gru

    lm_config = lm_gru.get_config()
    lm_config.data.name = "synthetic"
    lm_config.data.synthetic_examples, lm_config.data.synthetic_length = 60, 24
    lm_config.data.maxlen, lm_config.data.num_words = 12, config.data.num_words
    lm_config.model.embed_dim, lm_config.model.hidden_size, lm_config.model.num_layers = 4, 4, 1
    lm_config.train.batch_size, lm_config.train.epochs, lm_config.train.eval_batch_size = 8, 2, 16
    return lm_config


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("runs") / "classifier"
    classifier.train_and_evaluate(tiny.get_config(), workdir)
    return workdir


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("runs") / "lm"
    language_model.train_lm(_lm_config(), workdir)
    return workdir


def _copy(run: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir)
    return workdir


@pytest.mark.parametrize(
    "changes, fields",
    [
        ({"opt.name": "adam"}, ["opt.name"]),
        ({"train.batch_size": 8}, ["train.batch_size"]),
        (
            {"data.synthetic_examples": 300, "data.num_words": 50},
            ["data.num_words", "data.synthetic_examples"],
        ),
        ({"seed": 3}, ["seed"]),
        ({"data.validation_split": 0.5}, ["data.validation_split"]),
        ({"model.hidden_size": 5}, ["model.hidden_size"]),
    ],
)
def test_a_changed_fixed_field_is_refused_and_nothing_changes_on_disk(
    classifier_run, tmp_path, changes, fields
):
    workdir = _copy(classifier_run, tmp_path)
    before = _snapshot(workdir)
    config = tiny.get_config()
    config.update_from_flattened_dict(changes)
    with pytest.raises(runs.RunError) as error:
        classifier.train_and_evaluate(config, workdir)
    message = str(error.value)
    assert all(field in message for field in fields) and "another --workdir" in message
    assert "delete" not in message.lower()
    assert _snapshot(workdir) == before


def test_accepted_changes_are_recorded_and_the_run_continues(classifier_run, tmp_path):
    workdir = _copy(classifier_run, tmp_path)
    config = tiny.get_config()
    config.train.epochs = 3
    _, results = classifier.train_and_evaluate(config, workdir)
    assert results["history"]["epoch"] == [1, 2, 3]
    record = json.loads((workdir / "run.json").read_text())
    assert record["resumes"][-1]["changed"] == {"train.epochs": [2, 3]}
    assert json.loads((workdir / "config.json").read_text())["train"]["epochs"] == 3


def _predates(workdir: Path, *fields: str) -> None:
    """Rewrites the run's config.json as a run from before ``fields`` (dotted) existed."""
    saved = json.loads((workdir / "config.json").read_text())
    for field in fields:
        block, name = field.split(".")
        del saved[block][name]
    (workdir / "config.json").write_text(json.dumps(saved, indent=2))


def test_a_field_newer_than_the_run_may_only_take_the_default_the_run_was_trained_as(
    classifier_run, lm_run, tmp_path
):
    workdir = _copy(classifier_run, tmp_path / "a")
    _predates(workdir, "data.reverse", "model.pooling")
    before = _snapshot(workdir)
    config = tiny.get_config()
    config.data.reverse = True
    with pytest.raises(runs.RunError, match=r"data\.reverse: false \(the default; the run predates the field\) -> true"):
        classifier.train_and_evaluate(config, workdir)
    assert _snapshot(workdir) == before and "model.pooling" not in before
    config.data.reverse, config.train.epochs = False, 3  # the defaults: the run goes on
    assert classifier.train_and_evaluate(config, workdir)[1]["history"]["epoch"] == [1, 2, 3]
    record = json.loads((workdir / "run.json").read_text())
    assert record["resumes"][-1]["changed"] == {"train.epochs": [2, 3]}  # a default is no change
    lm_dir = _copy(lm_run, tmp_path / "b")
    _predates(lm_dir, "model.num_sampled")
    before = _snapshot(lm_dir)
    lm_config = _lm_config()
    lm_config.model.num_sampled = 4
    with pytest.raises(runs.RunError, match=r"model\.num_sampled: 0 \(the default; the run predates the field\) -> 4"):
        language_model.train_lm(lm_config, lm_dir)
    assert _snapshot(lm_dir) == before


def test_a_command_of_another_kind_is_refused(classifier_run, lm_run, tmp_path):
    lm_copy, classifier_copy = _copy(lm_run, tmp_path / "a"), _copy(classifier_run, tmp_path / "b")
    before_lm, before_classifier = _snapshot(lm_copy), _snapshot(classifier_copy)
    with pytest.raises(runs.RunError, match="language model run.*experiments.train_lm"):
        classifier.train_and_evaluate(tiny.get_config(), lm_copy)
    with pytest.raises(runs.RunError, match="classifier run.*experiments.train"):
        language_model.train_lm(_lm_config(), classifier_copy)
    assert _snapshot(lm_copy) == before_lm and _snapshot(classifier_copy) == before_classifier
    assert runs.load_run(lm_copy).kind == "language_model"


def test_a_second_writer_is_refused_while_readers_go_on(classifier_run, tmp_path):
    workdir = _copy(classifier_run, tmp_path)
    config = tiny.get_config()
    config.train.epochs = 3
    with runs._lock(workdir) as fd:
        runs._claim(fd)
        before = _snapshot(workdir)
        with pytest.raises(runs.RunError, match=f"being written by process {os.getpid()}"):
            classifier.train_and_evaluate(config, workdir)
        assert _snapshot(workdir) == before
        assert evaluate.load_run(workdir).step == 16  # a reader needs no lock
    _, results = classifier.train_and_evaluate(config, workdir)  # released: the writer goes on
    assert results["history"]["epoch"] == [1, 2, 3]


def test_a_lock_left_by_a_killed_process_is_taken_over(classifier_run, tmp_path):
    workdir = _copy(classifier_run, tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'process 1 on elsewhere'); print('locked', flush=True); "
            "time.sleep(60)",
            str(workdir / runs.LOCK_FILE),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"locked"
    with pytest.raises(runs.RunError, match="being written by process 1 on elsewhere"):
        runs.check_run(workdir, kind="classifier", config=tiny.get_config().to_dict(), mutable=frozenset())
    holder.kill()
    holder.wait()
    config = tiny.get_config()
    config.train.epochs = 3
    classifier.train_and_evaluate(config, workdir)
    assert str(os.getpid()) in (workdir / runs.LOCK_FILE).read_text()


def test_keep_checkpoints_below_one_is_a_usage_error(tmp_path):
    config = tiny.get_config()
    config.train.keep_checkpoints = 0
    with pytest.raises(ValueError, match="keep_checkpoints=0 must be at least 1"):
        classifier.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_copied_from_another_run_is_refused_not_adopted(classifier_run, tmp_path):
    other = tmp_path / "other"
    config = tiny.get_config()
    config.train.epochs = 3
    classifier.train_and_evaluate(config, other)  # same shapes, another run
    workdir = _copy(classifier_run, tmp_path)
    shutil.copytree(other / "checkpoints" / "24", workdir / "checkpoints" / "24")
    before = _snapshot(workdir)
    with pytest.raises(runs.RunError, match="belongs to another run"):
        classifier.train_and_evaluate(config, workdir)
    assert _snapshot(workdir) == before


def test_a_damaged_checkpoint_is_moved_aside_never_deleted(classifier_run, tmp_path, capsys):
    workdir = _copy(classifier_run, tmp_path)
    (workdir / "results.json").unlink()
    damaged = next(
        p
        for p in (workdir / "checkpoints" / "16" / "params").rglob("*")
        if p.is_file() and p.stat().st_size > 8
    )
    damaged.write_bytes(damaged.read_bytes()[:-4])
    content = _snapshot(workdir / "checkpoints" / "16")
    classifier.train_and_evaluate(tiny.get_config(), workdir)
    assert _snapshot(workdir / "checkpoints-damaged" / "16") == content
    assert "moved it to" in capsys.readouterr().err and (workdir / "checkpoints" / "16").exists()


def test_every_run_kind_loads_for_inference(classifier_run, lm_run):
    run = evaluate.load_run(classifier_run)
    assert run.kind == "classifier" and run.checkpoint == "latest" and run.step == 16
    assert len(evaluate.predict_texts(run, ["good film"])) == 1
    lm = runs.load_run(lm_run, which="best")
    assert lm.kind == "language_model" and lm.checkpoint == "best"
    with pytest.raises(runs.RunError, match="language model run, not a classifier"):
        evaluate.load_run(lm_run)


@pytest.mark.parametrize(
    "init",
    [
        {"freeze_embeddings": True},
        {"pretrained_lr_multiplier": 0.3},
        {"gradual_unfreezing": True},
    ],
)
def test_runs_with_word_vectors_evaluate_and_predict(tmp_path, init):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text(
        "".join(f"w{i} " + " ".join(str(0.1 * i + j) for j in range(4)) + "\n" for i in range(30))
    )
    config = tiny.get_config()
    config.init = {"embeddings_file": str(vectors), **init}
    classifier.train_and_evaluate(config, tmp_path / "run")
    run = evaluate.load_run(tmp_path / "run")
    assert run.step == 16 and evaluate.predict_texts(run, ["a film"])[0]["label"] in ("positive", "negative")
    if init.get("freeze_embeddings"):
        loaded = np.asarray(run.params["embedding"]["embeddings"])
        again = evaluate.load_run(tmp_path / "run", which="best").params["embedding"]["embeddings"]
        np.testing.assert_array_equal(loaded, np.asarray(again))


def test_a_run_started_from_a_language_model_evaluates(lm_run, tmp_path):
    config = tiny.get_config()
    config.model.cell, config.model.embed_dim, config.model.hidden_size = "gru", 4, 4
    config.model.reset_after = True
    config.init = {
        "from_lm_workdir": str(lm_run),
        "gradual_unfreezing": True,
        "pretrained_lr_multiplier": 0.5,
    }
    classifier.train_and_evaluate(config, tmp_path / "run")
    run = evaluate.load_run(tmp_path / "run")
    assert run.vocabulary == runs.load_run(lm_run).vocabulary
    assert len(evaluate.predict_texts(run, ["good"])) == 1


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, timeout=300)


def test_two_trainers_at_once_through_the_command_line(tmp_path):
    workdir = tmp_path / "run"
    args = [
        "experiments.train",
        f"--config={REPO / 'experiments/configs/tiny.py'}",
        f"--workdir={workdir}",
        "--config.data.synthetic_examples=2000",
        "--config.train.batch_size=4",
        "--config.train.epochs=200",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while (
        not ((workdir / runs.LOCK_FILE).exists() and (workdir / runs.LOCK_FILE).read_text())
        and time.time() < deadline
    ):
        time.sleep(0.1)
    second = _cli(*args)
    stderr = second.stderr.decode()
    assert (
        second.returncode == 2
        and len(stderr.strip().splitlines()) == 1
        and "being written by process" in stderr
    ), stderr
    first.send_signal(2)
    first.communicate(timeout=120)
    assert first.returncode in (0, 130)
    assert runs.steps(workdir / "checkpoints")  # the first trainer's checkpoints are all there


def test_generate_reads_a_language_model_run(lm_run):
    result = _cli("experiments.generate", f"--workdir={lm_run}", "--prompt=good", "--num_words=3")
    assert result.returncode == 0, result.stderr.decode()
    result = _cli("experiments.evaluate", f"--workdir={lm_run}")
    assert result.returncode == 2 and "not a classifier" in result.stderr.decode()


_LM_CONFIG = """from experiments.configs import lm_gru


def get_config():
    config = lm_gru.get_config()
    config.data.name = "synthetic"
    config.data.synthetic_examples, config.data.synthetic_length = 200, 24
    config.data.maxlen, config.data.num_words = 12, 60
    config.model.embed_dim, config.model.hidden_size, config.model.num_layers = 4, 4, 1
    config.train.batch_size, config.train.epochs, config.train.eval_batch_size = 4, 2, 16
    config.train.checkpoint_every_steps = 7
    return config
"""


def _lm_params(workdir: Path) -> list:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(runs.load_run(workdir, which="latest").params)]


@pytest.fixture(scope="module")
def lm_reference(tmp_path_factory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("lm_reference")
    (folder / "lm_small.py").write_text(_LM_CONFIG)
    result = _cli("experiments.train_lm", f"--config={folder / 'lm_small.py'}", f"--workdir={folder / 'run'}")
    assert result.returncode == 0, result.stderr.decode()
    return folder / "lm_small.py", _lm_params(folder / "run")


@pytest.mark.parametrize("signum", [15, 9])
def test_language_model_training_resumes_bit_exact_after_a_signal(lm_reference, tmp_path, signum):
    config, reference = lm_reference
    args = ["experiments.train_lm", f"--config={config}", f"--workdir={tmp_path / 'run'}"]
    process = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    for line in process.stdout:
        if line.startswith(b"Epoch 1/"):
            break
    time.sleep(0.2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (128 + signum, -signum), stderr.decode()  # stopped during the second epoch
    if process.returncode == 128 + signum:
        assert "saved checkpoint" in stderr.decode() and "Traceback" not in stderr.decode()
    resumed = _cli(*args)
    assert resumed.returncode == 0, resumed.stderr.decode()
    for got, want in zip(_lm_params(tmp_path / "run"), reference, strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want), "resumed language model differs"


def test_a_run_of_the_previous_checkpoint_layout_loads_and_resumes(classifier_run, tmp_path, capsys):
    workdir = _copy(classifier_run, tmp_path)
    before = evaluate.load_run(workdir)
    config = tiny.get_config()
    # What rnnjax wrote before the parameters were a separate item: one "state" item (a whole TrainState), no
    # run.json.
    tx = optim.make_optimizer(config.opt, 16)
    state = loop.create_state(classifier.classifier_task(before.model_cfg), tx, 0)
    template = {"step": state.step, "opt_state": state.opt_state, "key": state.key}
    for folder in (workdir / "checkpoints", workdir / "best"):
        for step in runs.steps(folder):
            path = folder / str(step)
            params, rest, meta = runs.restore(folder, step, state.params, template, None)
            meta.pop("run_id")
            shutil.rmtree(path)
            whole = loop.TrainState(rest["step"], params, rest["opt_state"], rest["key"])
            with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
                checkpointer.save(
                    path.absolute(),
                    args=ocp.args.Composite(state=ocp.args.StandardSave(whole), meta=ocp.args.JsonSave(meta)),
                )
    (workdir / "run.json").unlink()
    loaded = evaluate.load_run(workdir)  # inference reads the single-item layout
    for got, want in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(before.params), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    config.train.epochs = 3
    _, results = classifier.train_and_evaluate(
        config, workdir
    )  # and training resumes from it, moving nothing
    assert results["history"]["epoch"] == [1, 2, 3] and results["step"] == 24
    assert "at step 16 (epoch 2)" in capsys.readouterr().out
    assert not (workdir / "checkpoints-damaged").exists() and 16 in runs.steps(workdir / "checkpoints")


DAMAGED_FILES = [
    ("config.json", "", "config.json is not valid JSON"),
    ("config.json", '{"seed": 0, "data":', "config.json is not valid JSON"),
    ("config.json", "[]", "config.json holds a list, expected a JSON dict"),
    ("config.json", "{}", "config.json has no data, model, opt, train"),
    ("config.json", '{"seed": 0, "data": {}, "model": {}, "opt": {}, "train": {}}', "config.json has no data.name"),
    ("model.json", "[]", "model.json holds a list"),
    ("model.json", "{}", "model.json: not a model description"),
    ("run.json", "{}", "run.json: unknown run kind"),
    ("classes.json", "{}", "classes.json: not a classes file"),
    ("classes.json", '{"classes": ["a"]}', "classes.json"),
]


@pytest.mark.parametrize("name,content,message", DAMAGED_FILES, ids=[f"{n}:{c[:12]}" for n, c, _ in DAMAGED_FILES])
def test_a_damaged_run_file_is_named_and_nothing_changes(classifier_run, tmp_path, name, content, message):
    workdir = tmp_path / "run"
    shutil.copytree(classifier_run, workdir)
    (workdir / name).write_text(content)
    before = _tree_digest(workdir)
    with pytest.raises(ValueError, match=message):
        evaluate.load_run(workdir)
    with pytest.raises(ValueError, match=message):
        config = tiny.get_config()
        classifier.train_and_evaluate(config, workdir)
    assert _tree_digest(workdir) == before


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".lock"):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_a_damaged_config_json_is_one_line_from_each_script(classifier_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(classifier_run, workdir)
    (workdir / "config.json").write_text("{}")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for args in (("experiments.evaluate",), ("experiments.predict", "a good film"), ("experiments.train",)):
        result = subprocess.run([sys.executable, "-m", args[0], f"--workdir={workdir}", *args[1:]], env=env,
                                capture_output=True, timeout=300, cwd=env["PYTHONPATH"])
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "config.json has no data" in lines[0], lines


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays_usable(tmp_path):
    """A write that fails (here: a file-size limit of a few KB, as a full disk) names the path and the cause."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(repo)}
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "experiments.train", f"--config={repo / 'experiments/configs/tiny.py'}",
               f"--workdir={workdir}", "--config.train.progress_bar=False"]
    first = subprocess.run([*command, "--config.train.epochs=1"], env=env, cwd=repo, capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr.decode()

    limited = ["sh", "-c", 'ulimit -f 2 && exec "$@"', "sh", *command]  # files of at most 1-2 KB
    full = subprocess.run([*limited, "--config.train.epochs=2"], env=env, cwd=repo, capture_output=True, timeout=300)
    lines = full.stderr.decode().strip().splitlines()
    assert full.returncode == 2 and len(lines) == 1, full.stderr.decode()
    assert "cannot write" in lines[0] and "File too large" in lines[0] and str(workdir) in lines[0], lines[0]
    assert evaluate.load_run(workdir, which="latest").step == 8  # the checkpoint before the failure
    again = subprocess.run([*command, "--config.train.epochs=2"], env=env, cwd=repo, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    assert evaluate.load_run(workdir, which="latest").step == 16
