"""The capacity report names the date and source of every deployment's price, flags stale or
undated ones and the flagged prices the plan left out: through the installed CLI, as a user
runs it (`quantplan plan -o plan.yaml`, then `quantplan report plan.yaml`)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import pytest
import yaml


def run(*args: str, db: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTPLAN_DB": db, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "quantplan", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert "Traceback" not in result.stderr
    return result


def price_section(markdown: str) -> str:
    start = markdown.index("## Prices: date and source")
    return markdown[start : markdown.index("\n## ", start + 1)]


def report(db: str, tmp_path: Path, *extra: str) -> tuple[str, str]:
    result = run("report", "plan.yaml", "-o", "r.html", *extra, db=db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return (tmp_path / "r.html").read_text(), (tmp_path / "r.md").read_text()


def test_report_shows_undated_seed_prices_and_the_flagged_ones_left_out(
    tmp_path: Path, seeded_sqlite_url: str
) -> None:
    db = seeded_sqlite_url
    planned = run(
        "plan", "--model", "Llama-3.1-8B", "--rps", "5", "-o", "plan.yaml", db=db, cwd=tmp_path
    )
    assert planned.returncode == 0, planned.stderr
    html, markdown = report(db, tmp_path)
    section = price_section(markdown)
    # The shipped seed's prices carry no date: each row says so, and the note counts them.
    assert "date unknown (STALE?); SkyPilot catalog" in section
    assert "without a date" in section and "catalog prices refresh" in section
    # The seed flags some GCP prices; the plan left them out and the report names them.
    assert "Flagged prices: " in section and "doubtful price(s) left out" in section
    assert "gcp/" in section
    choice = yaml.safe_load((tmp_path / "plan.yaml").read_text())["choice"]
    assert f"{choice['scheme']} ({choice['engine']}) on {choice['instance']['name']}" in section
    assert "<h2>Prices: date and source</h2>" in html
    assert escape("date unknown (STALE?); SkyPilot catalog") in html


@pytest.mark.slow  # four runs of the script (plan, refresh, two reports): about 5 s
def test_report_shows_a_refreshed_price_date_and_flags_it_once_stale(
    tmp_path: Path, seeded_sqlite_url: str
) -> None:
    db = seeded_sqlite_url
    flags = ("--model", "Llama-3.1-8B", "--rps", "2", "--cloud", "aws", "--region", "us-east-1")
    planned = run("plan", *flags, "--gpu-only", "-o", "plan.yaml", db=db, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    choice = yaml.safe_load((tmp_path / "plan.yaml").read_text())["choice"]
    # A price of ten days ago: fresh under the default 90 days, stale under a 5-day limit.
    dated = (datetime.now(UTC).date() - timedelta(days=10)).isoformat()
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "cloud,instance_type,region,price_per_hour,spot_price_per_hour,price_date,price_source\n"
        f"aws,{choice['instance']['name']},us-east-1,{choice['usd_per_hour'] / 2},,"
        f"{dated},list price test fixture\n"
    )
    refreshed = run("catalog", "prices", "refresh", "--from", str(prices), db=db, cwd=tmp_path)
    assert refreshed.returncode == 0, refreshed.stderr

    html, markdown = report(db, tmp_path)
    line = f"in us-east-1, of {dated}; list price test fixture"
    assert line in price_section(markdown)
    assert escape(line) in html
    assert "STALE: 10 days" not in markdown

    html, markdown = report(db, tmp_path, "--max-price-age-days", "5")
    stale = f"of {dated} (STALE: 10 days old, over 5); list price test fixture"
    assert stale in price_section(markdown)
    assert escape(stale) in html
    assert "older than 5 days" in price_section(markdown)
