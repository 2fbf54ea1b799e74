"""The snapshot cache: `plan` skips opening an unchanged catalog, and never plans from a stale one.

Run through the installed script: the cache's correctness rests on what happens between
processes (SQLite checkpoints and deletes its log when the last connection closes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

QUANTPLAN = str(Path(sys.executable).with_name("quantplan"))
PLAN = ["plan", "--model", "Llama-3.2-1B", "--rps", "2", "--json"]
NEW_INSTANCE = """kind: instances
rows:
- cloud: aws
  name: c7a.snapshot-test
  region: us-east-1
  vcpus: 4
  memory_gib: 8.0
  hardware: EPYC-Genoa
  accelerator_count: 0
  price_per_hour: 0.01
  price_source: a test of the snapshot cache
"""


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [QUANTPLAN, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def _fingerprint(result: subprocess.CompletedProcess[str]) -> str:
    return json.loads(result.stdout)["provenance"]["catalog_fingerprint"]


def _age(directory: Path, seconds: float = 30) -> None:
    """Make the catalog look untouched for ``seconds`` (the cache only keeps quiet catalogs)."""
    past = time.time() - seconds
    for path in directory.glob("catalog.db*"):
        os.utime(path, (past, past))


def _stored(env: dict[str, str], data: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """Run plans on a catalog made to look quiet until one keeps its snapshot: after a write,
    the first run may find SQLite folding its log into the file, which is itself a change."""
    for _ in range(3):
        _age(data)
        before = {p: p.stat().st_mtime_ns for p in (cache / "snapshots").glob("*.pickle")}
        result = _run(env, *PLAN)
        after = {p: p.stat().st_mtime_ns for p in (cache / "snapshots").glob("*.pickle")}
        if after and after != before:
            return result
    raise AssertionError("three plans on a quiet catalog kept no snapshot")


def _opened_the_database(result: subprocess.CompletedProcess[str]) -> bool:
    """Whether the plan read the database file: with the standard library (an up-to-date
    catalog, catalog/sqlite_read.py) or through SQLAlchemy (anything else)."""
    # PYTHONPROFILEIMPORTTIME lists every module imported, on stderr.
    return "quantplan.catalog.sqlite_read" in result.stderr or "sqlalchemy" in result.stderr


@pytest.mark.slow
def test_an_unchanged_catalog_is_not_opened_and_a_changed_one_is_read_afresh(
    tmp_path: Path,
) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    env = {**os.environ, "QUANTPLAN_DATA_DIR": str(data), "QUANTPLAN_CACHE_DIR": str(cache)}
    env.pop("QUANTPLAN_DB", None)
    traced = {**env, "PYTHONPROFILEIMPORTTIME": "1"}

    seeded = _run(env, *PLAN)  # seeds: just written, so nothing is cached
    assert not (cache / "snapshots").exists() or not any((cache / "snapshots").iterdir())
    stored = _stored(env, data, cache)
    cached = _run(traced, *PLAN)
    assert not _opened_the_database(cached)
    assert cached.stdout == stored.stdout == seeded.stdout

    # A write is seen at once, with no waiting: the log (or the file) carries it.
    source = tmp_path / "instance.yaml"
    source.write_text(NEW_INSTANCE)
    _run(env, "catalog", "import", str(source))
    after_import = _run(traced, *PLAN)
    assert _opened_the_database(after_import)
    assert _fingerprint(after_import) != _fingerprint(cached)

    # A damaged cache file is ignored, not trusted and not fatal.
    _stored(env, data, cache)
    for pickled in (cache / "snapshots").glob("*.pickle"):
        pickled.write_bytes(b"not a pickle")
    damaged = _run(traced, *PLAN)
    assert _opened_the_database(damaged)
    assert _fingerprint(damaged) == _fingerprint(after_import)


def test_only_plain_sqlite_files_are_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantplan.catalog.snapshot_cache import sqlite_path

    monkeypatch.delenv("QUANTPLAN_DB", raising=False)
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(tmp_path))
    assert sqlite_path(None) == tmp_path / "catalog.db"
    assert sqlite_path(f"sqlite:///{tmp_path}/c.db") == tmp_path / "c.db"
    for url in (
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///c.db?mode=ro",
        "sqlite:///a%40b/c.db",
        "postgresql://u:p@localhost/quantplan",
    ):
        assert sqlite_path(url) is None, url
