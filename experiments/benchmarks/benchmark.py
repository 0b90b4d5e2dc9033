"""Training and inference speed of rnnjax against PyTorch, Keras 3 (JAX) and Flax, measured in one run.

    python -m experiments.benchmarks.benchmark                        # all models, shapes A and B, every installed peer
    python -m experiments.benchmarks.benchmark --models=lstm,gru --shapes=A --peers=torch,flax --repeats=7

Each (framework, model, shape, allocator) runs in a fresh subprocess on identical shapes and random data, so
timings and peak memory do not leak between runs. Every framework is measured with glibc's malloc and with
tcmalloc (when installed) and quoted at its best, as the README's table is. Prints a table with the ratio
rnnjax / fastest peer per row and writes it as Markdown and JSON to --out.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from absl import app, flags

from experiments import _cli
from experiments._allocator import TCMALLOC_PATHS
from experiments.benchmarks import bench_peers

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(bench_peers.MODELS), "Models to measure.")
flags.DEFINE_list("shapes", ["A", "B"], f"Shapes: {sorted(bench_peers.SHAPES)} (batch, time, embedding, units).")
flags.DEFINE_list("peers", ["torch", "torch_compile", "keras", "flax"], "Peer frameworks (skipped when missing).")
flags.DEFINE_list("allocators", ["glibc", "tcmalloc"], "Allocators to try; each framework is quoted at its best.")
flags.DEFINE_string("dtype", "float32", "rnnjax compute dtype (float32 or bfloat16).")
flags.DEFINE_integer("repeats", 5, "Timed windows per measurement (the median is reported).")
flags.DEFINE_integer("steps", 5, "Steps per timed window.")
flags.DEFINE_integer("timeout", 900, "Seconds before one measurement is abandoned.")
flags.DEFINE_string("out", "runs/benchmark", "Directory for benchmark.md and benchmark.json.")
flags.DEFINE_string("worker", None, "Internal: run one measurement given as JSON and print the result.")


def _measure(framework: str, model: str, shape: str, allocator: str) -> dict:
    """Runs one measurement in a subprocess; returns its result or {'error': why}."""
    env = dict(os.environ, RNNJAX_FAST_MALLOC="0", GLIBC_TUNABLES="", LD_PRELOAD="")
    if allocator == "tcmalloc":
        found = [p for p in TCMALLOC_PATHS if Path(p).exists()]
        if not found:
            return {"error": "tcmalloc not installed"}
        env["LD_PRELOAD"] = found[0]
    job = dict(framework=framework, model=model, shape=shape, repeats=FLAGS.repeats, steps=FLAGS.steps,
               dtype=FLAGS.dtype)
    try:
        proc = subprocess.run([sys.executable, "-m", "experiments.benchmarks.benchmark", f"--worker={json.dumps(job)}"],
                              capture_output=True, text=True, env=env, timeout=FLAGS.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {FLAGS.timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:200]}
    return json.loads(lines[-1])


def _best(results: list[dict]) -> dict | None:
    ok = [r for r in results if "error" not in r]
    if not ok:
        return None
    best = dict(max(ok, key=lambda r: r["train_tokens_per_s"]))
    best["infer_tokens_per_s"] = max(r["infer_tokens_per_s"] for r in ok)
    return best


def _fmt(rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate / 1e6:.2f} M" if rate >= 1e6 else f"{rate / 1e3:.0f} k"


def _table(rows: list[dict]) -> str:
    head = ["model", "shape", "rnnjax train", "fastest peer (train)", "peer train", "ratio", "rnnjax infer",
            "fastest peer (infer)", "peer infer", "ratio", "rnnjax compile s", "rnnjax MB", "torch MB"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["train"] is None:
            cells = [r["model"], r["shape"], r["error"]] + [""] * (len(head) - 3)
        else:
            torch_mb = "—" if r["torch_memory_mb"] is None else f"{r['torch_memory_mb']:.0f}"
            cells = [r["model"], r["shape"], _fmt(r["train"]), r["train_peer"] or "—", _fmt(r["peer_train"]),
                     f"{r['train_ratio']:.2f}×", _fmt(r["infer"]), r["infer_peer"] or "—", _fmt(r["peer_infer"]),
                     f"{r['infer_ratio']:.2f}×", f"{r['compile_s']:.2f}", f"{r['memory_mb']:.0f}", torch_mb]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv):
    del argv
    if FLAGS.worker:
        _cli.configure_native()  # RNNJAX_NATIVE=0 measures the XLA path
        job = json.loads(FLAGS.worker)
        runner = bench_peers.RUNNERS[job.pop("framework")]
        print(json.dumps(runner(job.pop("model"), job.pop("shape"), **job)), flush=True)
        return
    unknown = set(FLAGS.peers) - set(bench_peers.RUNNERS)
    if unknown or not set(FLAGS.shapes) <= set(bench_peers.SHAPES) or not set(FLAGS.models) <= set(bench_peers.MODELS):
        raise app.UsageError(f"unknown peers, shapes or models in {FLAGS.peers}, {FLAGS.shapes}, {FLAGS.models}")
    rows, raw = [], []
    for shape in FLAGS.shapes:
        for model in FLAGS.models:
            best = {}
            for framework in ["rnnjax"] + FLAGS.peers:
                results = [_measure(framework, model, shape, alloc) | {"allocator": alloc} for alloc in FLAGS.allocators]
                raw.append(dict(framework=framework, model=model, shape=shape, results=results))
                best[framework] = _best(results)
                status = "skipped: " + results[0]["error"] if best[framework] is None else (
                    f"train {_fmt(best[framework]['train_tokens_per_s'])} tok/s")
                print(f"{shape} {model:12s} {framework:14s} {status}", flush=True)
            ours = best.pop("rnnjax")
            peers = {k: v for k, v in best.items() if v is not None}
            train_peer = max(peers, key=lambda k: peers[k]["train_tokens_per_s"], default=None)
            infer_peer = max(peers, key=lambda k: peers[k]["infer_tokens_per_s"], default=None)
            row = dict(model=model, shape=shape, train=None, error="rnnjax failed")
            if ours is not None:
                peer_train = peers[train_peer]["train_tokens_per_s"] if train_peer else None
                peer_infer = peers[infer_peer]["infer_tokens_per_s"] if infer_peer else None
                torch_best = best.get("torch")
                row.update(
                    train=ours["train_tokens_per_s"], infer=ours["infer_tokens_per_s"], compile_s=ours["compile_s"],
                    memory_mb=ours["peak_memory_mb"], train_peer=train_peer, infer_peer=infer_peer,
                    peer_train=peer_train, peer_infer=peer_infer,
                    train_ratio=ours["train_tokens_per_s"] / peer_train if peer_train else float("nan"),
                    infer_ratio=ours["infer_tokens_per_s"] / peer_infer if peer_infer else float("nan"),
                    torch_memory_mb=None if torch_best is None else torch_best["peak_memory_mb"],
                )
            rows.append(row)
    table = _table(rows)
    print(table)
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.md").write_text(table + "\n")
    (out / "benchmark.json").write_text(json.dumps({"rows": rows, "raw": raw}, indent=1))
    print(f"wrote {out / 'benchmark.md'} and {out / 'benchmark.json'}")


if __name__ == "__main__":
    app.run(main)
