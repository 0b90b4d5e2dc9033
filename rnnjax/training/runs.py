"""Run persistence: Orbax checkpoints of the training state, and the JSON files that describe a run.

A run directory holds everything needed to evaluate, predict or resume without the original command:

    config.json        the resolved ConfigDict (``write_config`` / ``read_config``)
    model.json         the ModelSpec layers and whether batches are masked by lengths (``write_model``)
    checkpoints/<step> the last K training states, each with its JSON metadata (history, epoch sums)
    best/<step>        the state with the best monitored validation metric so far

Orbax writes each checkpoint into a temporary folder and renames it when complete, so a step that was cut
short is never listed or restored. Each step folder also holds ``sha256.json``, the digests of its files, so a
file damaged later is detected before a restore; ``restore_latest`` then falls back to an older checkpoint. The vocabulary file belongs to the data pipeline (``data.py``), the
history and curves to ``train.py`` and ``plots.py``.
"""

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from rnnjax import models

CHECKPOINTS = "checkpoints"
BEST = "best"
DIGESTS = "sha256.json"  # in each step folder: the SHA-256 of every file Orbax wrote, checked before a restore
_LAYER_TYPES = {
    cls.__name__: cls
    for cls in (
        models.Embedding,
        models.SpatialDropout1D,
        models.Dropout,
        models.Recurrent,
        models.Attention,
        models.Dense,
    )
}


def make_manager(directory: str | Path, *, max_to_keep: int) -> ocp.CheckpointManager:
    """An Orbax manager for ``directory`` that keeps the newest ``max_to_keep`` steps and saves synchronously.

    Synchronous saves keep the loop simple: the states are small, and a save has finished before the next
    step donates the arrays it reads.
    """
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any, meta: dict[str, Any]) -> bool:
    """Saves ``state`` (any pytree of arrays) and JSON-serialisable ``meta`` as checkpoint ``step``.

    Returns:
        True if written, False if that step was already saved (the saved content is then kept).
    """
    if step in manager.all_steps():
        return False
    manager.save(
        step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    )
    manager.wait_until_finished()
    folder = Path(manager.directory) / str(step)
    shapes = [list(leaf.shape) for leaf in jax.tree.leaves(state)]
    write_json(folder / DIGESTS, {"sha256": _digests(folder), "shapes": shapes})
    return True


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != DIGESTS
    }


def _verify(folder: Path, target: Any) -> None:
    """Raises ValueError if a file of the checkpoint changed since it was saved (truncated, overwritten), or
    if its arrays have other shapes than ``target``'s (a checkpoint of another model or vocabulary).

    Orbax's own reads do not detect every damaged byte, and a failed read inside Orbax leaves TensorStore
    callbacks that print tracebacks; checking first avoids both. A checkpoint saved without the digests file
    (a crash between Orbax's commit and writing it) is left to Orbax.
    """
    path = folder / DIGESTS
    if not path.exists():
        return
    try:
        recorded = json.loads(path.read_text())
        expected, shapes = recorded["sha256"], recorded["shapes"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is damaged") from None
    wanted = [list(leaf.shape) for leaf in jax.tree.leaves(target)]
    if shapes != wanted:
        raise ValueError("the saved arrays do not match the model's shapes")
    found = _digests(folder)
    bad = sorted(name for name in expected if found.get(name) != expected[name])
    if bad:
        raise ValueError(f"{len(bad)} file(s) changed or missing since the save, e.g. {bad[0]}")


def restore(manager: ocp.CheckpointManager, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
    """Restores checkpoint ``step`` into the structure, shapes and dtypes of ``target``.

    Returns:
        ``(state, meta)``.

    Raises:
        ValueError: if the checkpoint cannot be read (truncated or corrupted files) or does not match
            ``target`` (a checkpoint of another model or vocabulary).
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
        _verify(Path(manager.directory) / str(step), target)
        restored = manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        state, meta = restored.state, dict(restored.meta)
        # A shape mismatch can slip through a restore into the target's structure; check it explicitly.
        if any(a.shape != b.shape for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(target), strict=True)):
            raise ValueError("the saved arrays do not match the model's shapes")
    except Exception as error:  # noqa: BLE001 - Orbax and TensorStore raise many types for a bad file
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        raise ValueError(
            f"checkpoint {Path(manager.directory) / str(step)} cannot be restored ({reason}); it is corrupted "
            "or from another model or vocabulary: delete it to fall back to an older one, or use a new workdir."
        ) from None
    return state, meta


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> tuple[Any, dict[str, Any]] | None:
    """Restores the newest complete checkpoint that can be read, or returns None when there is none.

    A checkpoint that cannot be read (cut short by a crash outside Orbax, or damaged) is moved aside to
    ``<directory>-unreadable/<step>`` with a warning on stderr, and the next older one is tried, so a rerun
    resumes from the last good state and later saves that step afresh.

    Raises:
        ValueError: if checkpoints exist but none can be restored.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    errors = []
    for step in steps:
        try:
            return restore(manager, step, target)
        except ValueError as error:
            errors.append(str(error))
            aside = Path(str(manager.directory) + "-unreadable")
            aside.mkdir(parents=True, exist_ok=True)
            (Path(manager.directory) / str(step)).replace(aside / f"{step}-{len(list(aside.iterdir()))}")
            print(f"warning: {error} Moved it to {aside}; trying an older checkpoint.", file=sys.stderr, flush=True)
            manager.reload()
    if errors:
        raise ValueError(
            f"no checkpoint in {manager.directory} can be restored ({len(errors)} unreadable, moved to "
            f"{manager.directory}-unreadable); use a new workdir or restart the run by deleting its checkpoints."
        )
    return None


def spec_to_dict(spec: models.ModelSpec) -> dict[str, Any]:
    """A JSON-serialisable description of a ModelSpec: its layers, each with its type name and fields."""
    return {"layers": [{"type": type(layer).__name__, **dataclasses.asdict(layer)} for layer in spec.layers]}


def spec_from_dict(data: dict[str, Any]) -> models.ModelSpec:
    """Rebuilds the ModelSpec that ``spec_to_dict`` described.

    Raises:
        ValueError: for an unknown layer type.
    """
    layers = []
    for entry in data["layers"]:
        fields = dict(entry)
        kind = fields.pop("type")
        if kind not in _LAYER_TYPES:
            raise ValueError(
                f"model.json: unknown layer type {kind!r}; expected one of {sorted(_LAYER_TYPES)}."
            )
        layers.append(_LAYER_TYPES[kind](**fields))
    return models.ModelSpec(tuple(layers))


def write_model(workdir: str | Path, spec: models.ModelSpec, *, use_lengths: bool) -> None:
    """Writes ``workdir/model.json``: the spec and whether batches are masked by their lengths."""
    write_json(Path(workdir) / "model.json", {"use_lengths": use_lengths, **spec_to_dict(spec)})


def read_model(workdir: str | Path) -> tuple[models.ModelSpec, bool]:
    """Reads ``workdir/model.json``.

    Returns:
        ``(spec, use_lengths)``.

    Raises:
        ValueError: if the file is missing.
    """
    path = Path(workdir) / "model.json"
    if not path.exists():
        raise ValueError(f"{path} not found; is {workdir} a run directory written by experiments.train?")
    data = json.loads(path.read_text())
    return spec_from_dict(data), bool(data["use_lengths"])


def write_config(workdir: str | Path, config: ml_collections.ConfigDict) -> None:
    """Writes the resolved config as ``workdir/config.json``."""
    write_json(Path(workdir) / "config.json", config.to_dict())


def read_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """Reads ``workdir/config.json`` back into a ConfigDict (JSON lists become tuples, as configs write them).

    Raises:
        ValueError: if the file is missing.
    """
    path = Path(workdir) / "config.json"
    if not path.exists():
        raise ValueError(f"{path} not found; is {workdir} a run directory written by experiments.train?")

    def tuples(value):
        if isinstance(value, dict):
            return {k: tuples(v) for k, v in value.items()}
        if isinstance(value, list):
            return tuple(tuples(v) for v in value)
        return value

    return ml_collections.ConfigDict(tuples(json.loads(path.read_text())))


def write_json(path: str | Path, payload: Any) -> None:
    """Writes ``payload`` as indented JSON to ``path`` atomically (write to a temporary file, then rename), so a
    reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
