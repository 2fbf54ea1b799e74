"""A targets file names methods from the registry: a typo is one line with the nearest name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _plan(targets: Path, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantplan", "plan", "--targets", str(targets), "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "500"},  # one rich line per message
        check=False,
    )


def test_unknown_family_in_a_targets_file_is_refused_with_a_suggestion(
    tmp_path: Path, seeded_sqlite_url: str
) -> None:
    db = seeded_sqlite_url
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "model: Llama-3.1-8B\nworkload: {requests_per_s: 1}\nconstraints: {families: [gtpq]}\n"
    )
    result = _plan(targets, db)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "unknown quantization method 'gtpq' (did you mean gptq?)" in errors[0]
    # Names are matched ignoring case, as --family always did.
    targets.write_text(targets.read_text().replace("gtpq", "GPTQ"))
    accepted = _plan(targets, db)
    assert accepted.returncode in (0, 3), accepted.stderr
    assert "gptq" in accepted.stdout.lower()
