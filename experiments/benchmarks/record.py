"""The benchmark record: one session's tables for shapes A and B, every target marked met or not, and floors.

    python -m experiments.benchmarks.benchmark --shapes=A --out=runs/bench_A ...
    python -m experiments.benchmarks.benchmark --shapes=B --out=runs/bench_B ...
    python -m experiments.benchmarks.record --results=runs/bench_A/benchmark.json,runs/bench_B/benchmark.json

Targets (ratios are rnnjax / the fastest peer of the same run): training >= 1.5x at A and >= 1.3x at B,
inference >= 1.2x everywhere, peak training memory at B no more than PyTorch's, compilation under 1 s.

Floors: the machine's float32 matmul peak is the best of a few timed ``jnp.dot`` calls on large square
matrices (one compiled program, all cores). A row's rate is its model's matmul FLOPs per token times its
tokens/s: forward ``2 * G * H * (F + H)`` per recurrent layer and direction (G = 1 SimpleRNN, 3 GRU, 4 LSTM;
F the layer's input width), training three times the forward (the backward pass is two matmuls per forward
one). Gate arithmetic, the embedding and the dense head are left out, so the fractions are floors of the work.
"""

import json
import time
from pathlib import Path

from absl import app, flags

from experiments.benchmarks import bench_peers

_RESULTS = flags.DEFINE_list(
    "results", ["runs/bench_A/benchmark.json", "runs/bench_B/benchmark.json"], "benchmark.json files of one session."
)
_SIZE = flags.DEFINE_integer("size", 4096, "Side of the square matrices timed for the peak.")
_OUT = flags.DEFINE_string("out", "", "Also write the Markdown here.")
_GATES = {"simple_rnn": 1, "gru": 3, "lstm": 4, "bilstm": 4, "stacked_lstm": 4}
TRAIN_TARGET = {"A": 1.5, "B": 1.3}
INFER_TARGET = 1.2
COMPILE_TARGET_S = 1.0


def forward_flops_per_token(model: str, embed: int, hidden: int) -> float:
    """Matmul FLOPs of one token through the model's recurrent layers (forward only)."""
    layer = lambda width: 2 * _GATES[model] * hidden * (width + hidden)
    if model == "bilstm":
        return 2 * layer(embed)
    if model == "stacked_lstm":
        return layer(embed) + layer(hidden)
    return layer(embed)


def matmul_peak(size: int, repeats: int = 7) -> float:
    """float32 FLOP/s of the best of ``repeats`` ``size x size`` matrix products."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _mark(value: float, target: float, unit: str = "×", higher: bool = True) -> str:
    met = value >= target if higher else value <= target
    return f"{value:.2f}{unit} {'met' if met else '**not met**'}"


def targets_table(rows: dict[tuple[str, str], dict]) -> str:
    """One line per model: every target of the issue, measured and marked."""
    head = ["model", "A train ≥ 1.5×", "A infer ≥ 1.2×", "B train ≥ 1.3×", "B infer ≥ 1.2×",
            "B train memory ≤ PyTorch (MB)", "compile < 1 s (A / B)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in bench_peers.MODELS:
        a, b = rows.get((model, "A")), rows.get((model, "B"))
        cells = [model]
        for row, shape in ((a, "A"), (b, "B")):
            ok = row is not None and row["train"] is not None
            cells += [_mark(row["train_ratio"], TRAIN_TARGET[shape]) if ok else "—",
                      _mark(row["infer_ratio"], INFER_TARGET) if ok else "—"]
        if b is not None and b["train"] is not None and b["torch_memory_mb"] is not None:
            met = b["memory_mb"] <= b["torch_memory_mb"]
            cells.append(f"{b['memory_mb']:.0f} / {b['torch_memory_mb']:.0f} {'met' if met else '**not met**'}")
        else:
            cells.append("—")
        compiles = [r["compile_s"] for r in (a, b) if r is not None and r["train"] is not None]
        met = all(c < COMPILE_TARGET_S for c in compiles)
        cells.append(" / ".join(f"{c:.2f}" for c in compiles) + (" met" if met else " **not met**"))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def floors_table(rows: dict[tuple[str, str], dict], peak: float) -> str:
    """rnnjax's matmul GFLOP/s and fraction of the peak per row."""
    out = ["| model | shape | train GFLOP/s | % of peak | infer GFLOP/s | % of peak |", "|---|---|---|---|---|---|"]
    for (model, shape), row in sorted(rows.items(), key=lambda kv: (kv[0][1], bench_peers.MODELS.index(kv[0][0]))):
        if row["train"] is None:
            continue
        _, _, embed, hidden = bench_peers.SHAPES[shape]
        flops = forward_flops_per_token(model, embed, hidden)
        train, infer = 3 * flops * row["train"], flops * row["infer"]
        out.append(f"| {model} | {shape} | {train / 1e9:.1f} | {100 * train / peak:.1f} | {infer / 1e9:.1f} | "
                   f"{100 * infer / peak:.1f} |")
    return "\n".join(out)


def main(argv: list[str]) -> None:
    del argv
    rows = {}
    for path in _RESULTS.value:
        for row in json.loads(Path(path).read_text())["rows"]:
            rows[row["model"], row["shape"]] = row
    peak = matmul_peak(_SIZE.value)
    text = "\n\n".join([
        targets_table(rows),
        f"float32 matmul peak ({_SIZE.value}×{_SIZE.value} `jnp.dot`, best of 7): {peak / 1e9:.0f} GFLOP/s",
        floors_table(rows, peak),
    ])
    print(text)
    if _OUT.value:
        Path(_OUT.value).write_text(text + "\n")


if __name__ == "__main__":
    app.run(main)
