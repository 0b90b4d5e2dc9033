"""The README's code sections run verbatim, as a user pastes them, and it documents what a user must find."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("### Write your own cell", "### Train your own model")


def _python_blocks(section: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(section)
    ends = [i for i in (text.find(h, start + len(section)) for h in ("\n## ", "\n### ")) if i >= 0]
    end = min(ends, default=len(text))
    return "\n".join(re.findall(r"```python\n(.*?)```", text[start:end], re.S))


def test_the_own_cell_and_own_model_sections_run_verbatim(tmp_path):
    script = "\n".join(_python_blocks(section) for section in SECTIONS)
    assert "register_cell" in script and "model_fn=cifg_maxpool" in script
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, timeout=600,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = result.stdout.decode()
    assert "Bidirectional(cifg_lstm)" in out and "12,480" in out, out
    assert (tmp_path / "runs" / "cifg_lstm" / "results.json").exists()
    assert (tmp_path / "runs" / "cifg_maxpool" / "model.json").exists()
    assert "'label': 'positive'" in out or "'label': 'negative'" in out, out


def test_the_inside_a_model_section_runs_verbatim(tmp_path):
    script = _python_blocks("### Inside a model")
    assert "return_attention=True" in script
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = result.stdout.decode()
    assert "['embedding', 'gru', 'attention', 'dense'] (1, 6)" in out and "(1, 6, 16)" in out, out


def test_the_readme_names_where_imdb_comes_from_and_the_run_files():
    text = (REPO / "README.md").read_text()
    for needle in ("aclImdb_v1.tar.gz", "RNNJAX_IMDB_DIR", "data.data_dir", "83 MB", "--config.train.epochs=3",
                   "config.init", "tensorboard --logdir", "history.json"):
        assert needle in text, needle
