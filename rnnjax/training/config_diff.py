"""Comparing a run's saved config with a new command's: what changed on resume, and what may not change.

Configs arrive as plain dicts (config.json, or ``ConfigDict.to_dict()``). A field the saved config lacks was
added by a newer rnnjax after the run was trained, so the run was trained as that field's default, the value in
the default config of its kind (``rnnjax/configs/default.py`` for a classifier, ``rnnjax/configs/lm.py`` for a
language model): it compares as that default. ``runs`` refuses the fixed changes and records the others.
"""

import json
from collections.abc import Mapping
from typing import Any

from rnnjax.configs import default
from rnnjax.configs import lm as lm_config

ABSENT = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()  # a field one config of a pair lacks
_DEFAULTS = {"classifier": default.get_config, "language_model": lm_config.get_config}


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
    """Every dotted field whose value differs between two configs: ``{field: (saved, new)}``, ``ABSENT`` for
    the side that lacks the field."""
    old, now = flatten(saved), flatten(json.loads(json.dumps(new)))
    return {
        key: (old.get(key, ABSENT), now.get(key, ABSENT))
        for key in sorted(set(old) | set(now))
        if old.get(key, ABSENT) != now.get(key, ABSENT)
    }


def show(value: Any) -> str:
    """A config value as a message shows it (JSON), or "(absent)"."""
    return "(absent)" if value is ABSENT else json.dumps(value)


def resume_changes(
    saved: Mapping[str, Any], new: Mapping[str, Any], kind: str, mutable: frozenset[str]
) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    """``(changes, refused)`` of resuming a run of ``kind`` saved with ``saved`` under the config ``new``.

    Args:
        saved: the run's config.json.
        new: the command's resolved config.
        kind: "classifier" or "language_model": whose defaults a field the saved config lacks takes.
        mutable: dotted fields that may change on resume.

    Returns:
        Every changed field as ``{field: (saved, new)}`` (a field the saved config lacks compares as its
        default, so an unchanged default is no change), and one line per change outside ``mutable``, e.g.
        ``"data.reverse: false (the default; the run predates the field) -> true"``.
    """
    known, defaults = flatten(saved).keys(), flatten(_DEFAULTS[kind]().to_dict())
    changes = {}
    for key, (old, new_value) in config_changes(saved, new).items():
        old = old if key in known else defaults.get(key, old)
        if old != new_value:
            changes[key] = (old, new_value)
    predates = " (the default; the run predates the field)"
    refused = [
        f"{key}: {show(old)}{'' if key in known else predates} -> {show(new_value)}"
        for key, (old, new_value) in changes.items()
        if key not in mutable and (key in known or key in defaults)
    ]
    return changes, refused
