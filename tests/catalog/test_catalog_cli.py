"""The `quantplan catalog` commands, through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

QUANTPLAN = [sys.executable, "-m", "quantplan"]


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTPLAN_DB": db, "COLUMNS": "120"}
    return subprocess.run([*QUANTPLAN, *args], capture_output=True, text=True, env=env, timeout=120)


def test_list_instances_json_returns_seed_rows(seeded_sqlite_url: str) -> None:
    result = run("catalog", "list", "--kind", "instances", "--json", db=seeded_sqlite_url)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert len(rows) >= 40
    assert any(r["name"] == "g5.xlarge" and r["hardware"] == "A10G" for r in rows)


def test_table_and_filters(seeded_sqlite_url: str) -> None:
    result = run(
        "catalog", "list", "--kind", "instances", "--where", "cloud=azure", db=seeded_sqlite_url
    )
    assert result.returncode == 0, result.stderr
    assert "Standard_NC4as_T4_v3" in result.stdout and "p5.48xlarge" not in result.stdout
    bad = run("catalog", "list", "--where", "clod=aws", db=seeded_sqlite_url)
    assert bad.returncode == 2 and "did you mean cloud" in bad.stderr


def test_unknown_name_gets_a_suggestion_without_traceback(seeded_sqlite_url: str) -> None:
    result = run("catalog", "show", "g5.xlarg", db=seeded_sqlite_url)
    assert result.returncode == 2
    assert "did you mean g5.xlarge" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_import_via_cli(seeded_sqlite_url: str, tmp_path: Path) -> None:
    out = tmp_path / "schemes.csv"
    assert (
        run(
            "catalog", "export", "--kind", "schemes", "-o", str(out), db=seeded_sqlite_url
        ).returncode
        == 0
    )
    target = f"sqlite:///{tmp_path / 'other.db'}"
    result = run("catalog", "import", str(out), db=target)
    assert result.returncode == 0, result.stderr
    assert "already present" in result.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "schemes", "rows": [{"name": "x"}]}))
    refused = run("catalog", "import", str(bad), db=target)
    assert refused.returncode == 2 and "bad.json: row 1" in refused.stderr


def test_help_is_fast_and_light() -> None:
    code = (
        "import sys, quantplan.cli as c; c.register_commands(); "
        "heavy = {'torch', 'vllm', 'llama_cpp', 'transformers', 'ray'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
