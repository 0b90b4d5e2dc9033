"""The run directory: the one module through which every script and the fit loop read and write a user's run.

A run directory holds everything needed to resume, evaluate, predict or generate without the original command:

    run.json           kind ("classifier" or "language_model"), run id, resumes with the fields they changed
    config.json        the resolved config, written only after a command has been accepted
    model.json/lm.json the model's description (written by the task's builder)
    vocabulary.json    the data pipeline's vocabulary
    checkpoints/<step> the newest training states: items ``params``, ``state`` (step, optimizer state,
                       key) and ``meta`` (history, partial epoch, input position, run id); ``sha256.json``
    best/<step>        the state with the best monitored metric so far
    .lock              the writer's advisory lock (pid, host); readers never take it

Guarantees, each kept here and nowhere else:

* **Check first, write after.** ``open_run`` takes the lock and compares the saved run (kind, config) with the
  new command before anything is written; a refused command leaves the directory byte-identical.
* **One writer.** ``fcntl.flock`` on ``.lock`` (released by the kernel however the process ends); a second
  writer is refused with one line.
* **Identity.** Each checkpoint carries the run id of ``run.json``; one copied in from another run is refused.
* **Damage is moved aside, never deleted** (to ``<folder>-damaged/``; the next older checkpoint is used). An
  intact checkpoint that does not fit the run is refused, never moved.
* **Inference restores parameters only** (``load_run``), so it does not depend on how the optimizer was built.

Nothing here reads a ConfigDict: configs arrive and leave as plain dicts (``config_diff`` compares them).
"""

import contextlib
import dataclasses
import errno
import fcntl
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
from jax.experimental import multihost_utils

from rnnjax import lm, model_api, models
from rnnjax.data import datasets, text
from rnnjax.training.checkpoints import (  # noqa: F401 - the run directory's checkpoint functions, re-exported
    BEST,
    CHECKPOINT_CHOICES,
    CHECKPOINTS,
    DIGESTS,
    Damaged,
    RunError,
    check_owner,
    pick_checkpoint,
    read_config,
    read_json,
    restore,
    restore_latest,
    restore_params,
    save,
    steps,
    write_json,
)
from rnnjax.training.config_diff import ABSENT, resume_changes, show

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
KINDS = {"classifier": "model.json", "language_model": "lm.json"}
SCRIPTS = {"classifier": "experiments.train", "language_model": "experiments.train_lm"}


def run_kind(workdir: str | Path) -> str | None:
    """The kind of run in ``workdir`` (from run.json, or from its model file), None if it holds none."""
    workdir = Path(workdir)
    if (workdir / RUN_FILE).exists():
        kind = read_json(workdir / RUN_FILE).get("kind")
        if kind not in KINDS:
            raise RunError(f"{workdir / RUN_FILE}: unknown run kind {kind!r}; the file is damaged.")
        return kind
    for kind, name in KINDS.items():
        if (workdir / name).exists():
            return kind
    return None


# -------------------------------------------------------------------------------------------------- lock


@contextlib.contextmanager
def _lock_fd(workdir: Path, fd: int) -> Iterator[int]:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
            raise
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
        raise RunError(
            f"{workdir} is being written by {holder}; wait for it to finish (or stop it), or use another "
            "--workdir. Evaluating and predicting from the run need no lock."
        ) from None
    try:
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def _lock(workdir: Path) -> Iterator[int]:
    """Holds the run's advisory lock; refuses with RunError when another process holds it.

    ``flock`` belongs to the open file: the kernel drops it when the process ends in any way (a crash,
    SIGKILL), so a lock file left behind by a dead process is simply taken over.
    """
    fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with _lock_fd(workdir, fd):
            yield fd
    finally:
        os.close(fd)


def _claim(fd: int) -> None:
    """Records this process as the lock's holder (after the command was accepted: check first, write after)."""
    stamp = f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, stamp.encode(), 0)


# --------------------------------------------------------------------------------------------- open a run


@dataclasses.dataclass
class Run:
    """An accepted, locked run directory open for writing (see ``open_run``)."""

    workdir: Path
    kind: str
    run_id: str
    resumed: bool  # the directory already held this run
    changes: dict[str, tuple[Any, Any]]  # accepted config changes on resume: field -> (saved, new)
    keep_checkpoints: int


def _check_directory(workdir: Path, kind: str) -> bool:
    """Refuses a file, a foreign non-empty directory and a run of another kind; True if a run is there."""
    if workdir.exists() and not workdir.is_dir():
        raise RunError(f"--workdir={workdir} is a file; give a new or empty directory.")
    if not workdir.is_dir():
        return False
    found = run_kind(workdir)
    if found is None:
        if (workdir / CONFIG_FILE).exists():  # an older run directory without a model file yet
            return True
        if any(p.name != LOCK_FILE for p in workdir.iterdir()):
            raise RunError(
                f"--workdir={workdir} is not empty and is not a run directory; give a new or empty directory."
            )
        return False
    if found != kind:
        raise RunError(
            f"{workdir} holds a {found.replace('_', ' ')} run, not a {kind.replace('_', ' ')} run; use "
            f"{SCRIPTS[found]} for it, or another --workdir for this one."
        )
    return True


def _check_config(workdir: Path, kind: str, config: Mapping[str, Any], mutable: frozenset[str]) -> dict:
    """Compares the saved config with the new one (``config_diff.resume_changes``); refuses any change to a
    field outside ``mutable``, including a field the saved config lacks set to other than its default."""
    if not (workdir / CONFIG_FILE).exists():
        return {}
    changes, refused = resume_changes(read_config(workdir / CONFIG_FILE), config, kind, mutable)
    listed = "; ".join(refused)
    if listed:
        raise RunError(
            f"{workdir} was trained with another config and these fields cannot change on resume: {listed}. "
            "Resume with the run's own settings (--workdir alone reuses its config.json), or start a new run "
            "with another --workdir."
        )
    return changes


def check_run(workdir: str | Path, *, kind: str, config: Mapping[str, Any], mutable: frozenset[str]) -> bool:
    """The checks of ``open_run`` without writing anything (a fast refusal before slow data loading).

    Returns:
        True if ``workdir`` already holds this run.

    Raises:
        RunError: as ``open_run``.
    """
    workdir = Path(workdir)
    exists, _ = _checks(workdir, kind, config, mutable)
    if exists:
        # Process 0 of a multi-process run may already hold the lock for all of them; it alone probes it.
        if (workdir / LOCK_FILE).exists() and jax.process_index() == 0:
            fd = os.open(workdir / LOCK_FILE, os.O_RDONLY)
            try:
                with _lock_fd(workdir, fd):
                    pass
            finally:
                os.close(fd)
    return exists


def _checks(
    workdir: Path, kind: str, config: Mapping[str, Any], mutable: frozenset[str]
) -> tuple[bool, dict]:
    """Every read-only check of a training command on ``workdir``: ``(a run is there, accepted changes)``."""
    if not _check_directory(workdir, kind):
        return False, {}
    changes = _check_config(workdir, kind, config, mutable)
    _check_identity(workdir)
    return True, changes


def _check_identity(workdir: Path) -> None:
    """Refuses a run whose checkpoints include one recorded under another run's id (copied in from elsewhere)."""
    if not (workdir / RUN_FILE).exists():
        return
    run_id = read_json(workdir / RUN_FILE).get("run_id")
    for folder in (workdir / CHECKPOINTS, workdir / BEST):
        for step in steps(folder):
            check_owner(folder / str(step), run_id)


@contextlib.contextmanager
def open_run(
    workdir: str | Path, *, kind: str, config: Mapping[str, Any], mutable: frozenset[str], keep_checkpoints: int
) -> Iterator[Run]:
    """Opens ``workdir`` for one training command: lock, checks, then (if accepted) run.json, config.json.

    Args:
        workdir: the run directory; created when new.
        kind: the task kind, one of ``KINDS``.
        config: the command's resolved config as a plain dict.
        mutable: dotted config fields that may differ from the saved config on resume (epochs, logging, ...).
        keep_checkpoints: newest checkpoints kept, >= 1.

    Yields:
        The Run; the lock is held until the block exits (however it exits).

    Raises:
        RunError: a foreign or other-kind directory, a locked run, changed fixed fields, keep_checkpoints < 1.
    """
    if keep_checkpoints < 1:
        raise RunError(
            f"train.keep_checkpoints={keep_checkpoints} must be at least 1: a run needs its newest checkpoint to "
            "resume."
        )
    workdir = Path(workdir)
    exists, _ = _checks(workdir, kind, config, mutable)  # refused before the lock is even taken
    # Every process has looked before process 0 writes, so all agree on ``exists`` (a new run or a resume).
    _sync("open_run: checked")
    if jax.process_index() != 0:  # another process of a multi-process run: process 0 locks and writes
        _sync("open_run")
        yield Run(workdir, kind, read_json(workdir / RUN_FILE)["run_id"], exists, {}, keep_checkpoints)
        return
    workdir.mkdir(parents=True, exist_ok=True)
    with _lock(workdir) as fd:
        exists, changes = _checks(workdir, kind, config, mutable)  # again, now no other writer can change it
        _claim(fd)
        record = read_json(workdir / RUN_FILE) if (workdir / RUN_FILE).exists() else {}
        record.setdefault("kind", kind)
        record.setdefault("run_id", uuid.uuid4().hex)
        if changes:
            record.setdefault("resumes", []).append(
                {
                    "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "changed": {k: [None if a is ABSENT else a for a in v] for k, v in changes.items()},
                }
            )
        write_json(workdir / RUN_FILE, record)
        write_json(workdir / CONFIG_FILE, dict(config))
        _sync("open_run")
        for key, (old, new) in changes.items():
            print(f"{workdir}: {key} changed from {show(old)} to {show(new)}.", flush=True)
        yield Run(workdir, kind, record["run_id"], exists, changes, keep_checkpoints)


def _sync(name: str) -> None:
    """Waits for every process of a multi-process run (a no-op with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


class LoadedRun(NamedTuple):
    """A trained model as its run directory describes it: enough to evaluate, predict or generate."""

    workdir: Path
    kind: str  # "classifier" or "language_model"
    config: dict[str, Any]  # config.json as a plain dict
    spec: Any  # models.ModelSpec or lm.LMSpec; None for a researcher's own model
    use_lengths: bool  # classifier: batches masked by their lengths
    params: Any
    step: int  # the optimizer step of the restored checkpoint
    checkpoint: str  # "best" or "latest"
    vocabulary: text.Vocabulary
    model: Any = None  # classifier: the model_api.Model; classes: its class names by id
    classes: tuple[str, ...] = ("0", "1")


def load_run(
    workdir: str | Path, *, which: str = "final", kind: str | None = None, model_fn=None
) -> LoadedRun:
    """Restores the parameters of any run kind (classifier, fine-tuned classifier, language model).

    Only the parameters are read, into the shapes the saved model description gives (the optimizer plays no
    part); nothing is written. A researcher's model is rebuilt by the factory model.json names, imported, or
    by ``model_fn`` (e.g. one defined in a notebook); a registered cell's module is imported first.

    Args:
        workdir: the run directory.
        which: "final" (what training ended with), "best" or "latest".
        kind: the kind the caller needs, or None for any.
        model_fn: the factory ``(vocab_size=, num_classes=) -> Model`` of a researcher's model.

    Raises:
        RunError: not a run directory, another kind, no (intact) checkpoint, or damaged run files.
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise RunError(f"run directory {workdir} does not exist; train first with experiments.train --workdir={workdir}")
    found = run_kind(workdir)
    if found is None:
        raise RunError(f"{workdir} is not a run directory (no {RUN_FILE} or model file); give the --workdir of a run.")
    if kind is not None and found != kind:
        raise RunError(f"{workdir} holds a {found.replace('_', ' ')} run, not a {kind.replace('_', ' ')} run.")
    config = read_config(workdir / CONFIG_FILE)
    description = read_json(workdir / KINDS[found])
    model, classes = None, ("0", "1")
    if found == "classifier":
        spec, model, use_lengths, classes = _classifier_model(workdir, description, model_fn)
        template = jax.eval_shape(lambda: model.init(jax.random.key(0)))
    else:
        try:
            spec = lm.spec_from_dict(description)
        except (KeyError, TypeError, ValueError) as error:
            raise RunError(f"{workdir / KINDS[found]} does not describe a language model ({error}); damaged.") from None
        use_lengths, template = True, jax.eval_shape(lambda: lm.init_lm(spec, jax.random.key(0)))
    try:
        vocab = text.load_vocabulary(workdir)
    except (ValueError, OSError) as error:
        raise RunError(f"{workdir / text.VOCABULARY_FILE}: {error}") from None
    run_id = read_json(workdir / RUN_FILE).get("run_id") if (workdir / RUN_FILE).exists() else None
    params, step, used = restore_params(workdir, template, which, run_id)
    return LoadedRun(workdir, found, config, spec, use_lengths, params, step, used, vocab, model, classes)


def _classifier_model(workdir: Path, description: dict, model_fn) -> tuple[Any, Any, bool, tuple[str, ...]]:
    """``(spec or None, Model, use_lengths, class names)`` of model.json and classes.json (absent: binary)."""
    try:
        classes = datasets.load_classes(workdir) or ("0", "1")
        if "factory" in description:
            factory = model_fn or model_api.load_object(description["factory"])
            model = factory(vocab_size=int(description["vocab_size"]), num_classes=int(description["num_classes"]))
            return None, model, True, classes
        model_api.import_modules(description.get("modules", ()))
        spec = models.spec_from_dict(description)
    except datasets.DataError as error:  # classes.json: the message names the file
        raise RunError(str(error)) from None
    except (KeyError, TypeError, ValueError) as error:
        raise RunError(
            f"{workdir / KINDS['classifier']}: {error}; the file is damaged, or the code it names is not importable."
        ) from None
    use_lengths = bool(description.get("use_lengths", True))
    return spec, model_api.spec_model(spec, use_lengths=use_lengths), use_lengths, classes
