"""The API examples run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples" / "api"


@pytest.mark.slow
@pytest.mark.parametrize("script", ["plan_and_report.py", "mcp_client.py"])
def test_example_runs(script: str, catalog_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "QUANTPLAN_DB": catalog_url}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Serve Llama-3.1-8B" in done.stdout
