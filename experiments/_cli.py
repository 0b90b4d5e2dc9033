"""What the experiment scripts share: one-line usage errors (exit 2), the config and the data location.

Library code raises ValueError for bad settings or data; ``run`` turns that, a flag that fails to parse and a
missing file into one line on stderr and exit status 2 (``--verbose`` shows the traceback instead). A training
run stopped on purpose (``rnnjax.training.loop.TrainingStopped``: SIGINT/SIGTERM, a non-finite loss) prints its one
line and exits with the status it carries (128 + signal number, or 1).
Environment variables are read here and passed into rnnjax as explicit config values. The scripts import
rnnjax inside ``main``, after the flags are parsed, so that a usage error is reported in well under a second.
"""

import difflib
import os
import runpy
import sys
from collections.abc import Callable
from pathlib import Path

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from experiments._allocator import use_fast_allocator
from experiments._compile_cache import use_compilation_cache

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "experiments" / "configs"
CHECKPOINT_CHOICES = (
    "final",
    "best",
    "latest",
)  # as rnnjax.analysis.evaluate.CHECKPOINT_CHOICES, without importing JAX
_VERBOSE = flags.DEFINE_bool("verbose", False, "show the traceback of an error instead of one line")


class UsageError(ValueError):
    """A mistake in how a script was called (missing flag, missing run directory, ...)."""


def fail(message: str) -> None:
    """Prints ``<script>: error: <message>`` as one line on stderr and exits with status 2."""
    print(f"{_script_name()}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def _script_name() -> str:
    name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "experiments"
    return "experiments" if name == "__main__" else name


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as error:
        fail(error)
    except AttributeError as error:  # an override naming a field the config does not have
        fail(_unknown_field(argv) or f"{type(error).__name__}: {error}")
    except (OSError, ValueError, SyntaxError) as error:  # a broken config file or override
        fail(f"{type(error).__name__}: {error}")
    for name in list(flags.FLAGS):
        try:
            filename = config_flags.get_config_filename(flags.FLAGS[name])
        except TypeError:
            continue  # not a config flag
        try:
            flags.FLAGS[name].value.to_dict()  # config_flags defers a load failure to the first access
        except Exception as error:  # noqa: BLE001 - any failure of the user's config file is a usage error
            reason = "no such file" if not Path(filename).exists() else f"{type(error).__name__}: {error}"
            fail(f"--{name}={filename}: cannot load the config ({reason})")
    return remaining


def _unknown_field(argv: list[str], defaults: dict[str, str] | None = None) -> str | None:
    """The first ``--<config flag>.<field>=...`` whose field the config file does not define, with the nearest
    field it does define; None when that cannot be told. ``defaults``: config flags being defined, with their
    default files."""
    defaults = defaults or {}
    for arg in argv[1:]:
        name, dot, rest = arg.removeprefix("--").partition(".")
        if not (arg.startswith("--") and dot and (name in flags.FLAGS or name in defaults)):
            continue
        field = rest.split("=", 1)[0]
        given = [a.split("=", 1)[1] for a in argv[1:] if a.startswith(f"--{name}=")]
        default = defaults.get(name) or str(flags.FLAGS[name].default_as_str).strip("'\"")
        filename = given[-1] if given else default
        try:
            fields = _dotted(runpy.run_path(filename)["get_config"]())
        except Exception:  # noqa: BLE001 - a config file that cannot load is reported by the caller
            return None
        if field not in fields:
            nearest = difflib.get_close_matches(field, sorted(fields), n=1, cutoff=0.5)
            hint = f"did you mean {nearest[0]}?" if nearest else f"its fields are in {filename}"
            return f"--{name}.{field}: the config has no field {field}; {hint}"
    return None


def define_config(default: Path, help_text: str = "experiment config file") -> flags.FlagHolder:
    """``--config``, a config file with ``--config.<field>=value`` overrides. config_flags applies overrides of the
    default file while defining the flag, so a mistyped field is reported here, in one line."""
    try:
        return config_flags.DEFINE_config_file("config", str(default), help_text)
    except AttributeError as error:
        fail(_unknown_field(sys.argv, {"config": str(default)}) or f"{type(error).__name__}: {error}")


def _dotted(config: ml_collections.ConfigDict, prefix: str = "") -> set[str]:
    """Every field of a config as a dotted path (blocks included)."""
    fields = set()
    for key, value in config.items():
        fields.add(prefix + key)
        if isinstance(value, ml_collections.ConfigDict):
            fields |= _dotted(value, f"{prefix}{key}.")
    return fields


def run(main: Callable[[list[str]], None]) -> None:
    """``absl.app.run(main)`` with user mistakes reported as one line and exit status 2, and the fast
    allocator of ``experiments._allocator`` (the command re-executes itself once to get it)."""
    use_fast_allocator()

    def guarded(argv: list[str]) -> None:
        if not _VERBOSE.value:
            logging.set_verbosity(logging.WARNING)  # Orbax and TFDS log every save and read at INFO
            # A failed checkpoint write is reported in one line below; Orbax's threads would log it again.
            logging.get_absl_handler().addFilter(
                lambda record: not ("orbax" in record.pathname and record.levelno >= 40)  # 40: std logging.ERROR
            )
        try:
            configure_native()
            use_compilation_cache()
            main(argv)
        except (ValueError, FileNotFoundError, NotADirectoryError) as error:
            if _VERBOSE.value:
                raise
            fail(error)
        except OSError as error:  # a full or read-only disk while writing the run's files
            if _VERBOSE.value:
                raise
            where = f"cannot write {error.filename}" if error.filename else "cannot write the run's files"
            fail(f"{where}: {error.strerror or error}; make room or use a writable --workdir (checkpoints already "
                 "saved stay usable: rerun the command to resume)")
        except BaseException as error:
            # A stop on purpose carries its own exit status: rnnjax.training.loop.TrainingStopped (a signal or a
            # non-finite loss), rnnjax.data.prepared.PreparationInterrupted (a signal while preparing data).
            status = getattr(error, "exit_status", None)
            if not isinstance(status, int) or not type(error).__module__.startswith("rnnjax.") or _VERBOSE.value:
                raise
            print(f"{_script_name()}: {' '.join(str(error).split())}", file=sys.stderr)
            sys.exit(status)

    app.run(guarded, flags_parser=_parse_flags)


_NATIVE_ENV = ("RNNJAX_NATIVE", "RNNJAX_NATIVE_THREADS", "RNNJAX_CACHE_DIR", "CXX")


def configure_native() -> None:
    """Maps the environment onto ``rnnjax.kernels.native.configure``: RNNJAX_NATIVE=0 turns the native CPU kernels off,
    RNNJAX_NATIVE_THREADS sets their threads per call, RNNJAX_CACHE_DIR where they are built, CXX the compiler.
    Imports rnnjax only when one of them is set."""
    if not any(os.environ.get(name) for name in _NATIVE_ENV):
        return
    from rnnjax.kernels import native

    threads = os.environ.get("RNNJAX_NATIVE_THREADS")
    if threads is not None and not threads.isdigit():
        raise UsageError(f"RNNJAX_NATIVE_THREADS must be a whole number (0: one per core), got {threads!r}")
    native.configure(
        enabled=os.environ.get("RNNJAX_NATIVE", "1") != "0",
        threads=int(threads) if threads else None,
        cache_dir=os.environ.get("RNNJAX_CACHE_DIR") or None,
        compiler=os.environ.get("CXX") or None,
    )


def no_positional(argv: list[str]) -> None:
    """Raises UsageError for unexpected positional arguments."""
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; settings are flags, e.g. --config.train.epochs=3")


def config_name(config_flag: flags.FlagHolder) -> str:
    """The experiment's name: its config file's stem (``lstm`` for experiments/configs/lstm.py)."""
    return Path(config_flags.get_config_filename(flags.FLAGS[config_flag.name])).stem


def resolve_config(config_flag: flags.FlagHolder, workdir: Path) -> ml_collections.ConfigDict:
    """The config of a run: from ``--config``, or from ``workdir/config.json`` when resuming without it.

    When ``--config`` is not given and the run directory already holds a config, that config is used, with
    any ``--config.x.y=`` overrides applied on top (e.g. more epochs), so a run directory alone can be resumed.
    """
    given = flags.FLAGS[config_flag.name].present
    if not given and (workdir / "config.json").exists():
        from rnnjax.training import runs  # imported late, so that usage errors are reported before JAX loads

        config = as_config(runs.read_config(workdir / runs.CONFIG_FILE))
        overrides = config_flags.get_override_values(flags.FLAGS[config_flag.name])
        if overrides:
            config.update_from_flattened_dict(overrides)
        return config
    return config_flag.value


def as_config(payload: dict) -> ml_collections.ConfigDict:
    """A config.json dict as a ConfigDict (JSON lists become tuples, as config files write them)."""

    def tuples(value):
        if isinstance(value, dict):
            return {k: tuples(v) for k, v in value.items()}
        if isinstance(value, list):
            return tuple(tuples(v) for v in value)
        return value

    return ml_collections.ConfigDict(tuples(payload))


def imdb_dir() -> Path | None:
    """The local IMDB copy: ``$RNNJAX_IMDB_DIR`` (which must exist), else ``../shared/data/imdb`` beside the repo."""
    if os.environ.get("RNNJAX_IMDB_DIR"):
        folder = Path(os.environ["RNNJAX_IMDB_DIR"]).expanduser()
        if not folder.exists():
            raise UsageError(f"RNNJAX_IMDB_DIR={folder}: not found; point it at aclImdb_v1.tar.gz, an aclImdb/ "
                             "folder or a folder of train/test.jsonl.gz, or unset it")
        return folder
    candidate = REPO.parent / "shared" / "data" / "imdb"
    return candidate if candidate.exists() else None


def amazon_dir() -> Path | None:
    """Where the Amazon JSON-lines sample is: ``$RNNJAX_AMAZON_DIR``, else ``../shared/data/amazon``."""
    if os.environ.get("RNNJAX_AMAZON_DIR"):
        return Path(os.environ["RNNJAX_AMAZON_DIR"])
    candidate = REPO.parent / "shared" / "data" / "amazon"
    return candidate if candidate.exists() else None


def with_data_location(config: ml_collections.ConfigDict, *, fallback: bool = False) -> ml_collections.ConfigDict:
    """Points the config at the local data copies. Returns a copy; the given config is not changed.

    IMDB's local copy is ``imdb_dir()`` unless ``data.source_dir`` is set (a prepared TFDS copy is still read
    first; without either, TFDS downloads it). ``fallback`` (the no-flag main job only) sets
    ``data.fallback_to_synthetic``: when IMDB cannot be had, the run uses the embedded synthetic set and says so
    (``rnnjax.data.availability``). The Amazon sample is ``amazon_dir()`` unless ``data.source_file`` is set.
    """
    config = ml_collections.ConfigDict(config.to_dict())
    data = config.data
    if data.name == "imdb_reviews" and not data.source_dir:
        folder = imdb_dir()
        data.source_dir = str(folder) if folder is not None else ""
    if fallback:
        data.fallback_to_synthetic = True
    if data.name == "amazon_reviews" and not data.source_file:
        folder = amazon_dir()
        files = sorted(folder.glob("*.jsonl.gz")) if folder is not None and folder.is_dir() else []
        if not files:
            raise UsageError("Amazon reviews not found: set RNNJAX_AMAZON_DIR or --config.data.source_file")
        data.source_file = str(files[0])
    return config


def say_where(workdir: Path, use: str) -> None:
    """The end of a training command: where the run's files are, how to use the run (``use``: a script that
    takes ``--workdir``) and how to look at its TensorBoard logs."""
    names = ("checkpoints", "best", "history.json", "curves.png", "results.json")
    present = [f"{name}/" if (workdir / name).is_dir() else name for name in names if (workdir / name).exists()]
    print(f"Saved in {workdir}: {', '.join(present)}. Next: python -m {use} --workdir={workdir}", flush=True)
    if (workdir / "tensorboard").is_dir():
        print(f"TensorBoard logs: tensorboard --logdir {workdir / 'tensorboard'}", flush=True)


def parse_value(text: str, config: ml_collections.ConfigDict, key: str):
    """Parses ``text`` as the type of the existing config field ``key`` (dotted path)."""
    current = config
    for part in key.split("."):
        if part not in current:
            raise UsageError(f"no config field {key!r}")
        current = current[part]
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"{key}={text!r}: expected true or false")
        return text.lower() in ("true", "1")
    if isinstance(current, (tuple, list)):
        return tuple(int(v) for v in text.strip("()[] ").replace(";", " ").split() if v)
    try:
        return type(current)(text) if current is not None else text
    except ValueError:
        raise UsageError(f"{key}={text!r}: expected a {type(current).__name__}") from None
