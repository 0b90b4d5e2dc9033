"""Orbax checkpoints of a run: save with digests and the run's id, verify, restore, move damaged ones aside.

Each step folder holds the items ``params``, ``state`` (step, optimizer state, key) and ``meta`` (JSON), and
``sha256.json`` with the digests of every file and the run id. Orbax writes into a temporary folder and
renames it when complete, so a step cut short is never listed. ``runs.py`` owns the directory around them
(lock, config, identity) and is the module the rest of the code goes through.
"""

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

CHECKPOINTS = "checkpoints"
BEST = "best"
DIGESTS = "sha256.json"


class RunError(ValueError):
    """A run directory that cannot be used as asked; the message is one line saying why and what to do."""


# ------------------------------------------------------------------------------------------------- files


def write_json(path: str | Path, payload: Any) -> None:
    """Writes ``payload`` as indented JSON atomically (a temporary file renamed), so no reader sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    except OSError as error:  # a full or read-only disk: the file keeps its previous content
        tmp.unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None


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
        raise RunError(
            f"{path} holds a {type(payload).__name__}, expected a JSON {expect.__name__}; the file is damaged."
        )
    return payload


# Fields every run's config.json has held since the first version (newer fields may be absent from old runs).
_CONFIG_FIELDS = ("seed", "data.name", "data.maxlen", "data.num_words", "model.cell", "train.batch_size")


def read_config(path: str | Path) -> dict:
    """Reads a run's config.json: a dict with the data, model, opt and train blocks and their oldest fields.

    Raises:
        RunError: naming the file and what is missing or damaged.
    """
    config = read_json(path)
    missing = [block for block in ("data", "model", "opt", "train") if not isinstance(config.get(block), dict)]
    if not missing:
        for field in _CONFIG_FIELDS:
            block, _, name = field.rpartition(".")
            if name not in (config[block] if block else config):
                missing.append(field)
    if missing:
        raise RunError(f"{path} has no {', '.join(missing)}; the file is damaged (a run's config.json is written "
                       "by experiments.train or train_lm).")
    return config


# ------------------------------------------------------------------------------------------- checkpoints


def _manager(folder: Path, max_to_keep: int | None = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
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


def save(run: Any, which: str, step: int, params: Any, state: Any, meta: dict[str, Any]) -> bool:
    """Saves checkpoint ``step`` of ``run`` in ``checkpoints/`` (``which="latest"``) or ``best/``.

    ``params`` and ``state`` (the rest of the training state) are pytrees of arrays; ``meta`` is JSON. The run
    id and the files' digests are recorded with it. The newest ``keep_checkpoints`` (best: 1) are kept.

    Returns:
        True if written, False if that step was already saved (the saved one is kept).
    """
    folder = run.workdir / (CHECKPOINTS if which == "latest" else BEST)
    if step in steps(folder):
        return False
    manager = _manager(folder, run.keep_checkpoints if which == "latest" else 1)
    meta = {**meta, "run_id": run.run_id}
    try:
        manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(params),
                state=ocp.args.StandardSave(state),
                meta=ocp.args.JsonSave(meta),
            ),
        )
        manager.wait_until_finished()
    except OSError as error:  # a full or read-only disk: the checkpoints already saved are untouched
        raise OSError(error.errno, error.strerror or str(error), str(folder / str(step))) from None
    finally:
        manager.close()
    if jax.process_index() == 0:
        write_json(
            folder / str(step) / DIGESTS, {"sha256": _digests(folder / str(step)), "run_id": run.run_id}
        )
    return True


class Damaged(RunError):
    """A checkpoint whose files changed since they were saved, or that cannot be read."""


def check_owner(folder: Path, run_id: str | None) -> None:
    """Refuses a checkpoint recorded under another run's id (copied in from elsewhere); None checks nothing.

    The id is read from ``sha256.json``, else from the ``meta`` item (a save cut short before its digests); a
    checkpoint that records none (an older run) belongs to any run.

    Raises:
        RunError: naming the checkpoint, both ids and what to do.
    """
    if run_id is None:
        return
    recorded = None
    for path in (folder / DIGESTS, folder / "meta" / "metadata"):
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # absent or damaged: the digest check decides about damage
        if isinstance(payload, dict) and payload.get("run_id"):
            recorded = payload["run_id"]
            break
    if recorded not in (None, run_id):
        raise RunError(
            f"checkpoint {folder} belongs to another run (run id {recorded}, this run's is {run_id}); it was "
            f"copied in from elsewhere. Move it out of {folder.parent} to resume from this run's own "
            "checkpoints, or train in the run it came from."
        )


def _verify(folder: Path) -> None:
    path = folder / DIGESTS
    if not path.exists():
        return  # saved, then killed before the digests were written: Orbax's own read decides
    try:
        expected = json.loads(path.read_text())["sha256"]
    except (ValueError, KeyError, TypeError):
        raise Damaged(f"checkpoint {folder}: {DIGESTS} is damaged") from None
    found = _digests(folder)
    bad = sorted(name for name in expected if found.get(name) != expected[name])
    if bad:
        raise Damaged(
            f"checkpoint {folder}: {len(bad)} file(s) changed or missing since the save, e.g. {bad[0]}"
        )


def _abstract(tree: Any) -> Any:
    """Shapes, dtypes and shardings to restore into; a leaf without a sharding (``jax.eval_shape``) goes to
    this process's first device, since the saved sharding may name devices that do not exist here (a
    checkpoint of a data-parallel or multi-process run read by one process)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def leaf(x: Any) -> jax.ShapeDtypeStruct:
        struct = ocp.utils.to_shape_dtype_struct(x)
        if getattr(struct, "sharding", None) is None:
            struct = jax.ShapeDtypeStruct(struct.shape, struct.dtype, sharding=device)
        return struct

    return jax.tree.map(leaf, tree)


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(key): tuple(leaf.shape) for key, leaf in leaves}


def _check_shapes(path: Path, params: Any) -> None:
    """Refuses a checkpoint whose saved parameter shapes (Orbax's metadata) are not the model's, before any
    array is read: a read into the wrong shapes fails inside Orbax's background tasks, which print tracebacks
    at exit. Metadata that cannot be read is left to the restore itself to judge."""
    try:
        metadata = ocp.StandardCheckpointHandler().metadata(path.absolute() / "params")
        saved = _shapes(getattr(metadata, "tree", metadata))
    except Exception:  # noqa: BLE001 - unreadable metadata: the restore reports the damage
        return
    wanted = _shapes(params)
    if saved != wanted:
        name = next((k for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k)), "")
        raise RunError(
            f"checkpoint {path} does not fit this model: params{name} is {saved.get(name, 'absent')} there and "
            f"{wanted.get(name, 'absent')} in the model; restore it with the model it was trained with."
        )


def restore(folder: Path, step: int, params: Any, state: Any | None, run_id: str | None) -> tuple:
    """Restores checkpoint ``step`` of ``folder`` into the shapes of ``params`` (and ``state`` unless None).

    Returns:
        ``(params, state or None, meta)``.

    Raises:
        Damaged: the files fail their digests or cannot be read.
        RunError: an intact checkpoint of another run or of other shapes.
    """
    path = folder / str(step)
    check_owner(path, run_id)
    _verify(path)
    _check_shapes(path, params)
    # Checkpoints written before the parameters were saved apart hold one "state" item {step, params,
    # opt_state, key}: still read, never moved aside for their layout.
    legacy = not (path / "params").exists() and (path / "state").exists()
    if legacy:
        whole = None if state is None else {**state, "params": params}
        items = {"state": ocp.args.StandardRestore(None if whole is None else _abstract(whole))}
    else:
        items = {"params": ocp.args.StandardRestore(_abstract(params))}
        if state is not None:
            items["state"] = ocp.args.StandardRestore(_abstract(state))
    try:
        restored = _read(path, ocp.args.Composite(**items, meta=ocp.args.JsonRestore()))
        if legacy:
            tree = dict(restored.state)
            got = jax.tree.map(lambda a, t: jnp.asarray(a, t.dtype), tree.pop("params"), params)
            rest = None if state is None else {key: tree[key] for key in state}
        else:
            got, rest = restored.params, (restored.state if state is not None else None)
    except Exception as error:  # noqa: BLE001 - Orbax and TensorStore raise many types for a bad file
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        if "shape" in reason.lower() or "structure" in reason.lower() or "tree" in reason.lower():
            raise RunError(f"checkpoint {path} does not fit this model ({reason}).") from None
        raise Damaged(f"checkpoint {path} cannot be read ({reason})") from None
    for have, want in zip(jax.tree.leaves(got), jax.tree.leaves(params), strict=True):
        if have.shape != want.shape:
            raise RunError(f"checkpoint {path} holds arrays of other shapes than this model's.")
    return got, rest, dict(restored.meta)


def _move_aside(folder: Path, step: int, error: Exception) -> None:
    aside = Path(f"{folder}-damaged")
    aside.mkdir(parents=True, exist_ok=True)
    target = aside / str(step)
    suffix = 1
    while target.exists():
        target, suffix = aside / f"{step}-{suffix}", suffix + 1
    (folder / str(step)).replace(target)
    print(
        f"warning: {error}; moved it to {target} and trying an older checkpoint.", file=sys.stderr, flush=True
    )


def restore_latest(run: Any, params: Any, state: Any) -> tuple | None:
    """Restores the newest intact checkpoint of ``run`` (damaged ones moved aside); None when there is none.

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
            if jax.process_index() == 0:  # every process finds the same damage; one moves it
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


def restore_params(
    workdir: str | Path, params: Any, which: str = "final", run_id: str | None = None
) -> tuple[Any, int, str]:
    """Restores only the parameters of a run's checkpoint (the optimizer plays no part), for inference.

    Falls back to older checkpoints of the same folder when the newest is damaged.

    Returns:
        ``(params, step, "best" or "latest")``.

    Raises:
        RunError: no checkpoint, none intact, or one of another model.
    """
    workdir = Path(workdir)
    folder, _, which = pick_checkpoint(workdir, which)
    errors = []
    for step in reversed(steps(folder)):
        try:
            restored, _, _ = restore(folder, step, params, None, run_id)
            return restored, step, which
        except Damaged as error:
            errors.append(str(error))
    raise RunError(f"no checkpoint in {folder} can be read: {errors[0]}. Resume training to write a new one.")
