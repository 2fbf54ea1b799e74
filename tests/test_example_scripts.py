"""The planning example runs as a user runs it and writes what it says it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_capacity_planning_for_three_models(tmp_path: Path) -> None:
    env = {**os.environ, "QUANTPLAN_DB": f"sqlite:///{tmp_path / 'catalog.db'}"}
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "cluster" / "capacity_planning_three_models.py"),
            "--rps", "5", "--out", str(tmp_path / "reports"),
        ],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for model in ("SmolLM2-135M-Instruct", "Llama-3.2-1B", "Llama-3.1-8B"):
        line = next(line for line in done.stdout.splitlines() if line.startswith(model))
        assert "infeasible" not in line
        monthly, per_million = (float(v) for v in line.split()[-2:])
        assert monthly > 0 and per_million > 0
        html = (tmp_path / "reports" / f"{model}.html").read_text()
        assert "<svg" in html and model in html
        assert (tmp_path / "reports" / f"{model}.md").read_text().strip()
