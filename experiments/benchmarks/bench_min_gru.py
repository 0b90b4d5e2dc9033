"""Training speed of parallel-in-time minGRU against the sequential LSTM and minGRU as sequences grow.

    python -m experiments.benchmarks.bench_min_gru                         # T = 200, 1000, 4000 on this machine
    python -m experiments.benchmarks.bench_min_gru --lengths=200,1000 --batch=32 --out=runs/bench_min_gru

Each row trains Embedding(8000, E) -> recurrent(H) -> Dense(1) with RMSprop on random tokens (forward + backward
+ update; tokens/s after compilation, median of timed windows), in this process, one after another:
minGRU with ``lax.associative_scan`` (log-space, ``parallel=True``), the same minGRU as a sequential scan, and
the LSTM (the fused scan of ``rnnjax.kernels.fused``). Prints a Markdown table with tokens/s and the ratio to the
LSTM, and writes it with a JSON copy to --out.
"""

import json
from pathlib import Path

from absl import flags

from experiments import _cli

_LENGTHS = flags.DEFINE_list("lengths", ["200", "1000", "4000"], "sequence lengths T")
_BATCH = flags.DEFINE_integer("batch", 64, "batch size B")
_EMBED = flags.DEFINE_integer("embed", 32, "embedding size E")
_HIDDEN = flags.DEFINE_integer("hidden", 32, "units H")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed windows per measurement (the median is reported)")
_STEPS = flags.DEFINE_integer("steps", 3, "train steps per timed window")
_OUT = flags.DEFINE_string("out", "runs/bench_min_gru", "directory for bench_min_gru.md and .json")

RUNS = (
    ("min_gru (parallel)", "min_gru", True),
    ("min_gru (sequential)", "min_gru", False),
    ("lstm", "lstm", False),
)


def measure(
    cell: str,
    parallel: bool,
    *,
    batch: int,
    time_steps: int,
    embed: int,
    hidden: int,
    repeats: int,
    steps: int,
) -> dict:
    """Training and inference tokens/s of one model (see ``bench_peers._run_jax``)."""
    import jax
    import jax.numpy as jnp
    import optax

    import rnnjax
    from experiments.benchmarks import bench_peers

    spec = rnnjax.make_classifier(
        cell=cell, vocab_size=8000, embed_dim=embed, hidden_size=hidden, parallel=parallel
    )
    tokens, labels = (jnp.asarray(a) for a in bench_peers._data(batch, time_steps, 8000))
    return bench_peers._run_jax(
        lambda p: optax.sigmoid_binary_cross_entropy(rnnjax.apply(spec, p, tokens), labels).mean(),
        lambda p: rnnjax.apply(spec, p, tokens),
        rnnjax.init_model(spec, jax.random.key(0)),
        repeats=repeats,
        steps=steps,
        base_rss=bench_peers._rss_bytes(),
        batch=batch,
        time_steps=time_steps,
    )


def table(rows: list[dict]) -> str:
    """Markdown: one row per (T, model), with the training ratio to the LSTM at the same T."""
    lstm = {r["T"]: r["train_tokens_per_s"] for r in rows if r["model"] == "lstm"}
    lines = [
        "| T | model | train tokens/s | vs LSTM | infer tokens/s | compile s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["train_tokens_per_s"] / lstm[r["T"]] if r["T"] in lstm else float("nan")
        lines.append(
            f"| {r['T']} | {r['model']} | {r['train_tokens_per_s'] / 1e3:.0f} k | {ratio:.2f}× "
            f"| {r['infer_tokens_per_s'] / 1e3:.0f} k | {r['compile_s']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    _cli.no_positional(argv)
    lengths = [int(t) for t in _LENGTHS.value]
    if (
        any(t < 1 for t in lengths)
        or min(_BATCH.value, _EMBED.value, _HIDDEN.value, _REPEATS.value, _STEPS.value) < 1
    ):
        raise _cli.UsageError("--lengths, --batch, --embed, --hidden, --repeats and --steps must be positive")
    rows = []
    for time_steps in lengths:
        for name, cell, parallel in RUNS:
            result = measure(
                cell,
                parallel,
                batch=_BATCH.value,
                time_steps=time_steps,
                embed=_EMBED.value,
                hidden=_HIDDEN.value,
                repeats=_REPEATS.value,
                steps=_STEPS.value,
            )
            rows.append({"T": time_steps, "model": name, **result})
            print(
                f"T={time_steps:5d} {name:22s} train {result['train_tokens_per_s'] / 1e3:8.0f} k tok/s",
                flush=True,
            )
    text = table(rows)
    print(text)
    out = Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_min_gru.md").write_text(
        f"B={_BATCH.value}, E={_EMBED.value}, H={_HIDDEN.value}, RMSprop, float32\n\n{text}\n"
    )
    (out / "bench_min_gru.json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {out / 'bench_min_gru.md'} and {out / 'bench_min_gru.json'}")


if __name__ == "__main__":
    _cli.run(main)
