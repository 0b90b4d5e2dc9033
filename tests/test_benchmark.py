"""The benchmark runs end to end on a tiny shape and writes a well-formed table (no speed is asserted here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_writes_a_table(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmarks.benchmark", "--models=lstm,bilstm", "--shapes=tiny", "--peers=flax", "--allocators=glibc", "--repeats=2", "--steps=2", f"--out={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (tmp_path / "benchmark.md").read_text().splitlines()
    assert table[0].startswith("| model | shape | rnnjax train |") and len(table) == 4
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == "tiny" and cells[3] == "flax" and cells[5].endswith("×")
        assert float(cells[5].rstrip("×")) > 0 and float(cells[10]) > 0
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"lstm", "bilstm"}
    assert all(r["train"] > 0 and r["infer"] > 0 for r in rows)


def test_missing_peer_is_skipped_cleanly(tmp_path):
    hidden = tmp_path / "hide"  # a stand-in package that fails to import, as a missing PyTorch does
    (hidden / "torch").mkdir(parents=True)
    (hidden / "torch" / "__init__.py").write_text("raise ImportError('No module named torch')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmarks.benchmark", "--models=gru", "--shapes=tiny", "--peers=torch",
         "--allocators=glibc", "--repeats=1", "--steps=1", f"--out={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": f"{hidden}:{REPO}"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch          skipped" in proc.stdout


def test_min_gru_benchmark_measures_every_model_and_tabulates_ratios():
    from experiments.benchmarks import bench_min_gru

    rows = []
    for name, cell, parallel in bench_min_gru.RUNS:
        result = bench_min_gru.measure(cell, parallel, batch=2, time_steps=6, embed=4, hidden=4, repeats=1, steps=1)
        assert result["train_tokens_per_s"] > 0 and result["infer_tokens_per_s"] > 0
        rows.append({"T": 6, "model": name, **result})
    lines = bench_min_gru.table(rows).splitlines()
    assert len(lines) == 2 + len(bench_min_gru.RUNS)
    assert lines[-1].split("|")[4].strip() == "1.00×"  # the LSTM against itself
