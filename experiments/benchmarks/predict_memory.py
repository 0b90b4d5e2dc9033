"""Peak memory and time of ``experiments.predict`` on many texts: streamed, it should stay near its start-up.

    python -m experiments.benchmarks.predict_memory                          # 100,000 texts, a tiny run
    python -m experiments.benchmarks.predict_memory --num_texts=1000000 --workdir=runs/tiny

Trains the tiny config (experiments/configs/tiny.py) into a temporary directory unless --workdir names a run,
writes --num_texts texts of --words words drawn from the run's vocabulary to a temporary file, and runs
``python -m experiments.predict --workdir=... --input_file=... --json`` in a subprocess: once on one text (the
start-up cost) and once on the file. Prints a Markdown table (or JSON with --json): texts, wall seconds, the
child's peak resident memory (``ru_maxrss`` of its rusage, as ``getrusage(RUSAGE_CHILDREN)`` reports it for a
process whose only child it is) and the number of output lines, which must equal the number of texts.

Result (the tiny run, 100 words a text, --batch_size 32 (the run's eval batch), CPU only, 2 shared cores):

| texts     | wall s | peak RSS MB | output lines |
|-----------|--------|-------------|--------------|
| 1         | 4.4    | 482         | 1            |
| 100,000   | 8.3    | 485         | 100,000      |
| 1,000,000 | 62.0   | 480         | 1,000,000    |

Before predict streamed (every text read, encoded and scored at once, printed at the end), the same 100,000
texts took 1,267 MB and 14.0 s.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import flags

from experiments import _cli

_WORKDIR = flags.DEFINE_string("workdir", None, "a classifier run to use (default: train the tiny config)")
_NUM_TEXTS = flags.DEFINE_integer("num_texts", 100_000, "texts to classify", lower_bound=1)
_WORDS = flags.DEFINE_integer("words", 100, "words per text", lower_bound=0)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "predict's --batch_size (default: its own)", lower_bound=1
)
_JSON = flags.DEFINE_bool("json", False, "print the measurements as JSON instead of a table")

_CHUNK = 10_000  # texts generated and written at a time, so that this process stays small too


def write_texts(path: Path, words: tuple[str, ...], num_texts: int, words_per_text: int) -> None:
    """Writes ``num_texts`` lines of ``words_per_text`` words drawn uniformly from ``words`` (seed 0)."""
    rng = np.random.default_rng(0)
    vocabulary = np.asarray(words)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, num_texts, _CHUNK):
            shape = (min(_CHUNK, num_texts - start), words_per_text)
            drawn = vocabulary[rng.integers(len(words), size=shape)]
            f.write("".join(" ".join(row) + "\n" for row in drawn))


def measure(args: list[str]) -> dict:
    """Runs ``python -m experiments.predict ARGS`` and returns its wall seconds, peak RSS and output lines.

    Raises:
        RuntimeError: if predict fails; the message ends with its stderr.
    """
    env = {**os.environ, "PYTHONPATH": str(_cli.REPO)}
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "experiments.predict", *args],
            cwd=_cli.REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        lines = sum(1 for _ in proc.stdout)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, whatever ran before it
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if proc.returncode:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"experiments.predict {' '.join(args)} exited {proc.returncode}: {tail}")
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb, 1), "output_lines": lines}


def _tiny_run(folder: Path) -> Path:
    workdir = folder / "tiny"
    config = _cli.CONFIGS / "tiny.py"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.train", f"--config={config}", f"--workdir={workdir}"],
        cwd=_cli.REPO,
        env={**os.environ, "PYTHONPATH": str(_cli.REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"training the tiny run failed: {result.stderr[-2000:]}")
    return workdir


def main(argv: list[str]) -> None:
    from rnnjax.data import text

    _cli.no_positional(argv)
    with tempfile.TemporaryDirectory(prefix="predict_memory_") as tmp:
        workdir = Path(_WORKDIR.value) if _WORKDIR.value else _tiny_run(Path(tmp))
        words = text.load_vocabulary(workdir).words
        path = Path(tmp) / "texts.txt"
        write_texts(path, words, _NUM_TEXTS.value, _WORDS.value)
        args = [f"--workdir={workdir}", "--json"]
        if _BATCH_SIZE.value:
            args.append(f"--batch_size={_BATCH_SIZE.value}")
        rows = [
            {"texts": 1, **measure([*args, " ".join(words[: _WORDS.value])])},
            {"texts": _NUM_TEXTS.value, **measure([*args, f"--input_file={path}"])},
        ]
    if _JSON.value:
        print(json.dumps({"words_per_text": _WORDS.value, "rows": rows}, indent=2))
        return
    print(f"experiments.predict --json, {_WORDS.value} words a text, run {_WORKDIR.value or 'tiny'}")
    print("| texts | wall s | peak RSS MB | output lines |\n|---|---|---|---|")
    for row in rows:
        cells = (row["texts"], f"{row['seconds']:.1f}", f"{row['peak_rss_mb']:.0f}", row["output_lines"])
        print("| " + " | ".join(f"{c:,}" if isinstance(c, int) else c for c in cells) + " |")


if __name__ == "__main__":
    _cli.run(main)
