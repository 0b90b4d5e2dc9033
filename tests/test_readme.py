"""The README's "Write your own cell" and "Train your own model" sections run verbatim, as a user pastes them."""

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
    end = text.find("\n#", start + len(section))
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
