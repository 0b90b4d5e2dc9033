"""The run directory: the one module through which every script and the fit loop read and write a user's run.

A run directory holds everything needed to resume, evaluate, predict or generate without the original command:

    run.json           kind ("classifier" or "language_model"), run id, resumes with the fields they changed
    config.json        the resolved config, written only after a command has been accepted
    model.json/lm.json the model's description (written by the task's builder)
    vocabulary.json    the data pipeline's vocabulary
    checkpoints/<step> the newest training states: items ``params``, ``state`` (step, optimizer state, key) and
                       ``meta`` (history, partial epoch, input position, run id), plus ``sha256.json``
    best/<step>        the state with the best monitored metric so far
    .lock              the writer's advisory lock (pid, host); readers never take it

Guarantees, each kept here and nowhere else:

* **Check first, write after.** ``open_run`` takes the lock and compares the saved run (kind, config) with the
  new command before anything is written; a refused command leaves the directory byte-identical.
* **One writer.** ``fcntl.flock`` on ``.lock``: the kernel releases it when the process ends in any way, so a
  lock left by a dead process is never in the way; a second writer is refused with one line.
* **Identity.** Each checkpoint carries the run id of ``run.json``; one copied in from another run is refused.
* **Damage is moved aside, never deleted.** A checkpoint whose files fail their SHA-256 digests (or that Orbax
  cannot read) is moved to ``<folder>-damaged/`` and the next older one is used. A checkpoint that is intact
  but does not fit the run is refused, never moved.
* **Inference restores parameters only** (``load_run``), so it does not depend on how the optimizer was built.

Nothing here reads a ConfigDict: configs arrive and leave as plain dicts.
"""

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import orbax.checkpoint as ocp

from rnnjax import lm, models
from rnnjax.data import text

CHECKPOINTS = "checkpoints"
BEST = "best"
RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
DIGESTS = "sha256.json"
KINDS = {"classifier": "model.json", "language_model": "lm.json"}
SCRIPTS = {"classifier": "experiments.train", "language_model": "experiments.train_lm"}


class RunError(ValueError):
    """A run directory that cannot be used as asked; the message is one line saying why and what to do."""


# ------------------------------------------------------------------------------------------------- files


def write_json(path: str | Path, payload: Any) -> None:
    """Writes ``payload`` as indented JSON atomically (a temporary file renamed), so no reader sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_json(path: str | Path, *, expect: type = dict) -> Any:
    """Reads a JSON file of the run directory.

    Raises:
        RunError: naming the file when it is missing, not JSON, or not of type ``expect``.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path} not found; is {path.parent} a run directory?") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise RunError(f"{path} is not valid JSON ({error}); the file is damaged.") from None
    if not isinstance(payload, expect):
        raise RunError(f"{path} holds a {type(payload).__name__}, expected a JSON {expect.__name__}; the file is damaged.")
    return payload


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


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and tuples compare as lists."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def config_changes(saved: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every dotted field whose value differs between two configs: ``{field: (saved, new)}``."""
    old, now = flatten(saved), flatten(json.loads(json.dumps(new)))
    missing = object()
    return {
        key: (old.get(key, missing), now.get(key, missing))
        for key in sorted(set(old) | set(now))
        if old.get(key, missing) != now.get(key, missing)
    }


def _show(value: Any) -> str:
    return "(absent)" if not isinstance(value, (str, int, float, bool, list, type(None))) else json.dumps(value)


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

    ``flock`` belongs to the open file: the kernel drops it when the process ends in any way (a crash, SIGKILL),
    so a lock file left behind by a dead process is simply taken over.
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


def _check_config(workdir: Path, config: Mapping[str, Any], mutable: frozenset[str]) -> dict:
    """Compares the saved config with the new one; refuses any change to a field outside ``mutable``."""
    if not (workdir / CONFIG_FILE).exists():
        return {}
    changes = config_changes(read_json(workdir / CONFIG_FILE), config)
    missing = flatten(read_json(workdir / CONFIG_FILE)).keys()
    # A field the saved config lacks was added by a newer rnnjax; its default cannot contradict the run.
    fixed = {key: change for key, change in changes.items() if key not in mutable and key in missing}
    if fixed:
        listed = "; ".join(f"{key}: {_show(a)} -> {_show(b)}" for key, (a, b) in fixed.items())
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
    exists = _check_directory(workdir, kind)
    if exists:
        _check_config(workdir, config, mutable)
        _check_identity(workdir)
        if (workdir / LOCK_FILE).exists():
            fd = os.open(workdir / LOCK_FILE, os.O_RDONLY)
            try:
                with _lock_fd(workdir, fd):
                    pass
            finally:
                os.close(fd)
    return exists


def _check_identity(workdir: Path) -> None:
    """Refuses a run whose checkpoints include one recorded under another run's id (copied in from elsewhere)."""
    if not (workdir / RUN_FILE).exists():
        return
    run_id = read_json(workdir / RUN_FILE).get("run_id")
    for folder in (workdir / CHECKPOINTS, workdir / BEST):
        for step in steps(folder):
            path = folder / str(step) / DIGESTS
            try:
                recorded = json.loads(path.read_text()).get("run_id") if path.exists() else None
            except (ValueError, AttributeError):
                continue  # a damaged digests file: the restore moves that checkpoint aside
            if recorded not in (None, run_id):
                raise RunError(
                    f"checkpoint {folder / str(step)} belongs to another run (run id {recorded}, this run's is "
                    f"{run_id}); it was copied in from elsewhere. Move it out of {folder} to resume from this run's "
                    "own checkpoints, or train in the run it came from."
                )


@contextlib.contextmanager
def open_run(
    workdir: str | Path,
    *,
    kind: str,
    config: Mapping[str, Any],
    mutable: frozenset[str],
    keep_checkpoints: int,
) -> Iterator[Run]:
    """Opens ``workdir`` for one training command: lock, checks, then (only if accepted) run.json and config.json.

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
    exists = _check_directory(workdir, kind)
    if exists:
        _check_config(workdir, config, mutable)  # refused before the lock is even taken
    if jax.process_index() != 0:  # another process of a multi-process run: process 0 holds the lock and writes
        _sync("open_run")
        yield Run(workdir, kind, read_json(workdir / RUN_FILE)["run_id"], exists, {}, keep_checkpoints)
        return
    workdir.mkdir(parents=True, exist_ok=True)
    with _lock(workdir) as fd:
        exists = _check_directory(workdir, kind)  # again, now that no other writer can change it
        changes = _check_config(workdir, config, mutable) if exists else {}
        if exists:
            _check_identity(workdir)
        _claim(fd)
        record = read_json(workdir / RUN_FILE) if (workdir / RUN_FILE).exists() else {}
        record.setdefault("kind", kind)
        record.setdefault("run_id", uuid.uuid4().hex)
        if changes:
            record.setdefault("resumes", []).append(
                {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "changed": {k: list(v) for k, v in changes.items()}}
            )
        write_json(workdir / RUN_FILE, record)
        write_json(workdir / CONFIG_FILE, dict(config))
        _sync("open_run")
        for key, (old, new) in changes.items():
            print(f"{workdir}: {key} changed from {_show(old)} to {_show(new)}.", flush=True)
        yield Run(workdir, kind, record["run_id"], exists, changes, keep_checkpoints)


def _sync(name: str) -> None:
    """Waits for every process of a multi-process run (a no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# ------------------------------------------------------------------------------------------- checkpoints


def _manager(folder: Path, max_to_keep: int | None = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(folder.absolute(), options=options)


def _read(path: Path, args: ocp.args.Composite) -> Any:
    """Reads one checkpoint folder; creates, moves and deletes nothing (readers and restores)."""
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        return checkpointer.restore(path.absolute(), args=args)


def steps(folder: str | Path) -> list[int]:
    """The complete checkpoints in ``folder``, oldest first (Orbax's temporary folders are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != DIGESTS
    }


def save(run: Run, which: str, step: int, params: Any, state: Any, meta: dict[str, Any]) -> bool:
    """Saves checkpoint ``step`` of ``run`` in ``checkpoints/`` (``which="latest"``) or ``best/``.

    ``params`` and ``state`` (the rest of the training state) are pytrees of arrays; ``meta`` is JSON. The run id
    and the files' digests are recorded with it. The newest ``keep_checkpoints`` (best: 1) are kept.

    Returns:
        True if written, False if that step was already saved (the saved one is kept).
    """
    folder = run.workdir / (CHECKPOINTS if which == "latest" else BEST)
    if step in steps(folder):
        return False
    manager = _manager(folder, run.keep_checkpoints if which == "latest" else 1)
    meta = {**meta, "run_id": run.run_id}
    manager.save(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(meta),
        ),
    )
    manager.wait_until_finished()
    manager.close()
    if jax.process_index() == 0:
        write_json(folder / str(step) / DIGESTS, {"sha256": _digests(folder / str(step)), "run_id": run.run_id})
    return True


class Damaged(RunError):
    """A checkpoint whose files changed since they were saved, or that cannot be read."""


def _verify(folder: Path, run_id: str | None) -> None:
    path = folder / DIGESTS
    if not path.exists():
        return  # saved, then killed before the digests were written: Orbax's own read decides
    try:
        recorded = json.loads(path.read_text())
        expected = recorded["sha256"]
    except (ValueError, KeyError, TypeError):
        raise Damaged(f"checkpoint {folder}: {DIGESTS} is damaged") from None
    if run_id is not None and recorded.get("run_id") not in (None, run_id):
        raise RunError(
            f"checkpoint {folder} belongs to another run (run id {recorded.get('run_id')}, this run's is {run_id}); "
            f"it was copied in from elsewhere. Move it out of {folder.parent} to resume from this run's own "
            "checkpoints, or train in the run it came from."
        )
    found = _digests(folder)
    bad = sorted(name for name in expected if found.get(name) != expected[name])
    if bad:
        raise Damaged(f"checkpoint {folder}: {len(bad)} file(s) changed or missing since the save, e.g. {bad[0]}")


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def restore(folder: Path, step: int, params: Any, state: Any | None, run_id: str | None) -> tuple:
    """Restores checkpoint ``step`` of ``folder`` into the shapes of ``params`` (and ``state`` unless None).

    Returns:
        ``(params, state or None, meta)``.

    Raises:
        Damaged: the files fail their digests or cannot be read.
        RunError: an intact checkpoint of another run or of other shapes.
    """
    path = folder / str(step)
    _verify(path, run_id)
    meta = read_json(path / "meta" / "metadata") if (path / "meta" / "metadata").exists() else None
    if run_id is not None and isinstance(meta, dict) and meta.get("run_id") not in (None, run_id):
        raise RunError(f"checkpoint {path} belongs to another run; move it out of {folder} to resume.")
    items = {"params": ocp.args.StandardRestore(_abstract(params)), "meta": ocp.args.JsonRestore()}
    if state is not None:
        items["state"] = ocp.args.StandardRestore(_abstract(state))
    try:
        restored = _read(path, ocp.args.Composite(**items))
    except Exception as error:  # noqa: BLE001 - Orbax and TensorStore raise many types for a bad file
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        if "shape" in reason.lower() or "structure" in reason.lower() or "tree" in reason.lower():
            raise RunError(f"checkpoint {path} does not fit this model ({reason}).") from None
        raise Damaged(f"checkpoint {path} cannot be read ({reason})") from None
    for got, want in zip(jax.tree.leaves(restored.params), jax.tree.leaves(params), strict=True):
        if got.shape != want.shape:
            raise RunError(f"checkpoint {path} holds arrays of other shapes than this model's.")
    return restored.params, (restored.state if state is not None else None), dict(restored.meta)


def _move_aside(folder: Path, step: int, error: Exception) -> None:
    aside = Path(f"{folder}-damaged")
    aside.mkdir(parents=True, exist_ok=True)
    target = aside / str(step)
    suffix = 1
    while target.exists():
        target, suffix = aside / f"{step}-{suffix}", suffix + 1
    (folder / str(step)).replace(target)
    print(f"warning: {error}; moved it to {target} and trying an older checkpoint.", file=sys.stderr, flush=True)


def restore_latest(run: Run, params: Any, state: Any) -> tuple | None:
    """Restores the newest intact checkpoint of ``run`` (moving damaged ones aside), or None when there is none.

    Raises:
        RunError: a checkpoint of another run or model (nothing is moved), or only damaged checkpoints.
    """
    folder = run.workdir / CHECKPOINTS
    damaged = 0
    for step in reversed(steps(folder)):
        try:
            return restore(folder, step, params, state, run.run_id)
        except Damaged as error:
            damaged += 1
            _move_aside(folder, step, error)
    if damaged:
        raise RunError(
            f"every checkpoint in {folder} is damaged ({damaged} moved to {folder}-damaged); the run cannot "
            "resume. Train in a new --workdir."
        )
    return None


# ------------------------------------------------------------------------------------------------ readers


CHECKPOINT_CHOICES = ("final", "best", "latest")


def pick_checkpoint(workdir: str | Path, which: str = "final") -> tuple[Path, int, str]:
    """The checkpoint a reader should restore: ``(folder, step, "best" or "latest")``.

    ``final`` is the one training ended with (results.json's ``checkpoint``, else the latest); ``best`` falls
    back to the latest when no best exists yet. Damaged checkpoints are skipped, never moved (readers write
    nothing).

    Raises:
        RunError: an unknown choice, or no checkpoint.
    """
    workdir = Path(workdir)
    if which not in CHECKPOINT_CHOICES:
        raise RunError(f"--checkpoint must be one of {', '.join(CHECKPOINT_CHOICES)}, got {which!r}.")
    if which == "final":
        results = workdir / "results.json"
        which = read_json(results).get("checkpoint", "latest") if results.exists() else "latest"
        which = which if which in ("best", "latest") else "latest"
    if which == "best" and not steps(workdir / BEST):
        which = "latest"
    folder = workdir / (BEST if which == "best" else CHECKPOINTS)
    found = steps(folder)
    if not found:
        raise RunError(f"no complete checkpoint in {folder}; train (or resume) the run first.")
    return folder, found[-1], which


def restore_params(workdir: str | Path, params: Any, which: str = "final") -> tuple[Any, int, str]:
    """Restores only the parameters of a run's checkpoint (the optimizer plays no part), for inference.

    Falls back to older checkpoints of the same folder when the newest is damaged.

    Returns:
        ``(params, step, "best" or "latest")``.

    Raises:
        RunError: no checkpoint, none intact, or one of another model.
    """
    workdir = Path(workdir)
    folder, _, which = pick_checkpoint(workdir, which)
    run_id = read_json(workdir / RUN_FILE).get("run_id") if (workdir / RUN_FILE).exists() else None
    errors = []
    for step in reversed(steps(folder)):
        try:
            restored, _, _ = restore(folder, step, params, None, run_id)
            return restored, step, which
        except Damaged as error:
            errors.append(str(error))
    raise RunError(f"no checkpoint in {folder} can be read: {errors[0]}. Resume training to write a new one.")


# ------------------------------------------------------------------------------------------- load_run


def model_to_dict(spec: models.ModelSpec) -> dict[str, Any]:
    """A JSON-serialisable description of a classifier's ModelSpec: its layers with their type names and fields."""
    return {"layers": [{"type": type(layer).__name__, **dataclasses.asdict(layer)} for layer in spec.layers]}


def model_from_dict(payload: Mapping[str, Any], where: str = KINDS["classifier"]) -> models.ModelSpec:
    """Rebuilds the ModelSpec that ``model_to_dict`` described.

    Raises:
        RunError: for an unknown layer type or fields the layer does not have.
    """
    layer_types = (models.Embedding, models.SpatialDropout1D, models.Dropout, models.Recurrent, models.Attention, models.Dense)
    kinds = {cls.__name__: cls for cls in layer_types}
    layers = []
    try:
        for entry in payload["layers"]:
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
            kind = fields.pop("type")
            if kind not in kinds:
                raise RunError(f"{where}: unknown layer type {kind!r}; expected one of {sorted(kinds)}.")
            layers.append(kinds[kind](**fields))
    except (KeyError, TypeError, AttributeError) as error:
        raise RunError(f"{where} does not describe a model ({type(error).__name__}: {error}); the file is damaged.") from None
    return models.ModelSpec(tuple(layers))


class LoadedRun(NamedTuple):
    """A trained model as its run directory describes it: enough to evaluate, predict or generate."""

    workdir: Path
    kind: str  # "classifier" or "language_model"
    config: dict[str, Any]  # config.json as a plain dict
    spec: Any  # models.ModelSpec or lm.LMSpec
    use_lengths: bool  # classifier: batches masked by their lengths
    params: Any
    step: int  # the optimizer step of the restored checkpoint
    checkpoint: str  # "best" or "latest"
    vocabulary: text.Vocabulary


def load_run(workdir: str | Path, *, which: str = "final", kind: str | None = None) -> LoadedRun:
    """Restores the parameters of any run this project writes (classifier, fine-tuned classifier, language model).

    Only the parameters are read, into the shapes the saved model description gives, so the optimizer (plain or
    wrapped for fine-tuning) plays no part. Nothing is written.

    Args:
        workdir: the run directory.
        which: "final" (what training ended with), "best" or "latest".
        kind: the kind the caller needs, or None for any.

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
    config = read_json(workdir / CONFIG_FILE)
    description = read_json(workdir / KINDS[found])
    if found == "classifier":
        spec, use_lengths = model_from_dict(description, str(workdir / KINDS[found])), bool(description.get("use_lengths", True))
        template = jax.eval_shape(lambda: models.init_model(spec, jax.random.key(0)))
    else:
        try:
            spec = lm.spec_from_dict(description)
        except (KeyError, TypeError, ValueError) as error:
            raise RunError(f"{workdir / KINDS[found]} does not describe a language model ({error}); the file is damaged.") from None
        use_lengths, template = True, jax.eval_shape(lambda: lm.init_lm(spec, jax.random.key(0)))
    try:
        vocab = text.load_vocabulary(workdir)
    except (ValueError, OSError) as error:
        raise RunError(f"{workdir / text.VOCABULARY_FILE}: {error}") from None
    params, step, used = restore_params(workdir, template, which)
    return LoadedRun(workdir, found, config, spec, use_lengths, params, step, used, vocab)
