"""A bad row already in the database is skipped with a warning, never a crash.

The rows are written with SQL straight into a temporary SQLite catalog, the way an older
version or a hand edit would leave them: past every import check.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

QUANTPLAN = [sys.executable, "-m", "quantplan"]
PLAN = ("plan", "--model", "Llama-3.1-8B", "--rps", "5")

# A profile of the row the planner would pick, with everything right but what each test breaks.
PROFILE_SQL = """
INSERT INTO profile (model_id, scheme_id, engine, hardware_id, hardware_count, input_tokens,
    output_tokens, concurrency, output_tokens_per_s, error_rate, basis, source, notes, details,
    recorded_at)
SELECT m.id, s.id, 'vllm', h.id, 1, 512, 128, 8, {throughput}, 0, 'measured', 'hand-written',
    '', {details}, '2026-11-28 10:00:00.000000'
FROM model_card m, quant_scheme s, hardware h
WHERE m.name = 'Llama-3.1-8B' AND s.name = 'awq-w8a16-g128' AND h.name = 'L4'
"""


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTPLAN_DB": db, "COLUMNS": "200"}
    return subprocess.run([*QUANTPLAN, *args], capture_output=True, text=True, env=env, timeout=120)


def write_bad_rows(path: Path) -> dict[str, int]:
    """A NaN quality delta, an infinite profile, a profile of a model that does not exist, a
    profile whose details are not JSON and a run whose tool versions are not JSON; returns the
    measurements' ids."""
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE quality_result SET perplexity_delta_pct = 'NaN' WHERE id = 2")
        ids = {"quality_nan": 2}
        for name, throughput, details in (
            ("profile_inf", "9e999", "'{}'"),  # SQLite keeps 9e999 as Infinity
            ("profile_ok", "150.0", "'{}'"),
            ("profile_orphan", "150.0", "'{}'"),
            ("profile_garbled", "150.0", "'{not json'"),
        ):
            cursor = connection.execute(PROFILE_SQL.format(throughput=throughput, details=details))
            ids[name] = cursor.lastrowid or 0
        connection.execute(
            "UPDATE profile SET model_id = 99999 WHERE id = ?", (ids["profile_orphan"],)
        )
        connection.execute(
            "INSERT INTO run (id, kind, status, started_at, tool_versions) VALUES "
            "('run-ok', 'profile', 'succeeded', '2026-11-28 10:00:00.000000', '{}'), "
            "('run-garbled', 'profile', 'succeeded', '2026-11-28 11:00:00.000000', '{oops')"
        )
    return ids


@pytest.fixture
def bad_catalog(seeded_catalog_path: Path) -> tuple[str, Path, dict[str, int]]:
    path = seeded_catalog_path
    return f"sqlite:///{path}", path, write_bad_rows(path)


def assert_clean_run(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_plan_and_report_skip_bad_rows_and_name_each_once(
    bad_catalog: tuple[str, Path, dict[str, int]], tmp_path: Path
) -> None:
    url, _, ids = bad_catalog
    plan = run(*PLAN, db=url)
    assert_clean_run(plan)
    assert "feasible" in plan.stdout
    expected = (
        "quality_result id 2: perplexity_delta_pct: Input should be a finite number",
        f"profile id {ids['profile_inf']}: output_tokens_per_s: Input should be a finite number",
        f"profile id {ids['profile_orphan']}: model_id: refers to model_card id 99999",
        f"profile id {ids['profile_garbled']}: details: stored value cannot be decoded",
    )
    for line in expected:
        assert plan.stderr.count(line) == 1, plan.stderr
    assert f"profile id {ids['profile_ok']}" not in plan.stderr
    assert "quantplan catalog retract" in plan.stderr

    report = run("report", *PLAN[1:], "-o", str(tmp_path / "capacity.html"), db=url)
    assert_clean_run(report)
    assert "quality_result id 2: perplexity_delta_pct" in report.stderr
    assert (tmp_path / "capacity.html").is_file()


def test_export_and_runs_list_valid_rows_only_and_say_what_they_skipped(
    bad_catalog: tuple[str, Path, dict[str, int]],
) -> None:
    url, path, _ = bad_catalog
    with sqlite3.connect(path) as connection:
        stored = connection.execute("SELECT COUNT(*) FROM quality_result").fetchone()[0]
        stored_profiles = connection.execute("SELECT COUNT(*) FROM profile").fetchone()[0]
    quality = run("catalog", "export", "--kind", "quality", db=url)
    assert_clean_run(quality)
    rows = json.loads(quality.stdout, parse_constant=lambda c: pytest.fail(f"{c} exported"))
    assert len(rows["rows"]) == stored - 1
    assert f"exported {stored - 1} quality rows; skipped 1 that do not validate" in quality.stderr
    assert quality.stderr.count("quality_result id 2: perplexity_delta_pct") == 1

    profiles = run("catalog", "export", "--kind", "profiles", db=url)
    assert_clean_run(profiles)
    exported = json.loads(profiles.stdout)["rows"]
    # The seed's published profiles and the one good hand-written row; the three bad ones go.
    assert len(exported) == stored_profiles - 3
    assert [r["source"] for r in exported].count("hand-written") == 1
    assert "skipped 3 that do not validate" in profiles.stderr

    runs = run("catalog", "runs", "--json", db=url)
    assert_clean_run(runs)
    assert [r["id"] for r in json.loads(runs.stdout)] == ["run-ok"]
    assert "run id run-garbled: tool_versions: stored value cannot be decoded" in runs.stderr
