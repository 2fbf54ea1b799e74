"""Price refresh, price history, doubtful prices and seed upgrades, through the installed CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from quantplan.catalog.prices import parse_price_csv
from quantplan.catalog.prices_cli import fetch_price_text
from quantplan.catalog.seeding import SEED_VERSION
from quantplan.errors import QuantplanError

FIXTURES = Path(__file__).parent / "fixtures" / "prices"


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTPLAN_DB": db, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "quantplan", *args], capture_output=True, text=True, env=env
    )


def plan_json(db: str, *extra: str) -> dict:
    result = run(
        "plan", "--model", "Llama-3.1-8B", "--rps", "2", "--cloud", "aws", "--region",
        "US-EAST-1", "--gpu-only", "--json", *extra, db=db,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_skypilot_aws_spot_is_the_median_of_zones() -> None:
    fmt, quotes = parse_price_csv((FIXTURES / "aws-vms.csv").read_text(), where="aws")
    g5 = {q.region: q for q in quotes if q.name == "g5.xlarge"}
    assert fmt == "skypilot-aws"
    assert g5["us-east-1"].spot_price_per_hour == 0.30  # zones 0.40, 0.30, 0.10 (one empty)
    assert g5["us-east-1"].spot_statistic == "median of 3 zones"


def test_gcp_gpu_machine_is_vm_plus_accelerator(seeded_catalog_path: Path) -> None:
    db = f"sqlite:///{seeded_catalog_path}"
    result = run("catalog", "prices", "refresh", "--from", str(FIXTURES / "gcp-vms.csv"),
                 "--date", "2026-12-01", db=db)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = (
        sqlite3.connect(seeded_catalog_path)
        .execute(
            "SELECT price_per_hour, spot_price_per_hour FROM instance_type WHERE name = "
            "'g2-standard-4' AND region = 'us-central1' AND superseded_at IS NULL"
        )
        .fetchall()
    )
    assert rows == [(0.7, 0.285)]  # 0.15 + 0.55; median spots 0.055 + 0.23


def test_refresh_changes_the_plan_and_the_plan_says_why(
    tmp_path: Path, seeded_catalog_path: Path
) -> None:
    db = f"sqlite:///{seeded_catalog_path}"
    before = plan_json(db)["choice"]
    assert before["instance"]["region"] == "us-east-1"  # --region in any case
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "cloud,instance_type,region,price_per_hour,spot_price_per_hour,price_date,price_source\n"
        f"aws,{before['instance']['name']},us-east-1,{before['usd_per_hour'] / 2},,"
        "2026-12-01,list price test fixture\n"
    )
    result = run("catalog", "prices", "refresh", "--from", str(prices), db=db)
    assert result.returncode == 0, result.stderr
    assert "1 price rows appended" in result.stdout
    after = plan_json(db)["choice"]
    assert after["usd_per_month"] < before["usd_per_month"]
    assert after["usd_per_hour"] == pytest.approx(before["usd_per_hour"] / 2)
    assert (after["price_date"], after["price_source"]) == ("2026-12-01", "list price test fixture")
    assert before["price_date"] is None and "SkyPilot" in before["price_source"]
    # History: the seeded row is kept, superseded, not overwritten.
    rows = (
        sqlite3.connect(seeded_catalog_path)
        .execute(
            "SELECT superseded_at IS NOT NULL, seed_version FROM instance_type WHERE name = ? AND "
            "region = 'us-east-1' ORDER BY id",
            (before["instance"]["name"],),
        )
        .fetchall()
    )
    assert rows == [(1, SEED_VERSION), (0, None)]  # the seeded row, then the refreshed one
    text = run("plan", "--model", "Llama-3.1-8B", "--rps", "2", "--cloud", "aws", db=db)
    assert "of 2026-12-01; list price test fixture" in text.stdout


def test_unknown_region_gets_a_suggestion(seeded_sqlite_url: str) -> None:
    result = run("plan", "--model", "Llama-3.1-8B", "--rps", "1", "--region", "us-east1x",
                 db=seeded_sqlite_url)  # fmt: skip
    assert result.returncode == 2 and "did you mean" in result.stderr
    assert "Traceback" not in result.stderr


def test_flagged_spot_prices_are_left_out_unless_allowed(seeded_sqlite_url: str) -> None:
    db = seeded_sqlite_url
    args = ("plan", "--model", "Llama-3.1-8B", "--rps", "2", "--cloud", "azure", "--spot", "--json")
    default = json.loads(run(*args, db=db).stdout)
    assert any("doubtful price(s) left out" in a for a in default["assumptions"])
    allowed = json.loads(run(*args, "--allow-flagged-prices", db=db).stdout)
    assert not any("doubtful" in a for a in allowed["assumptions"])
    assert allowed["choice"]["usd_per_month"] < default["choice"]["usd_per_month"]


def test_plan_warns_that_undated_prices_may_be_stale(seeded_sqlite_url: str) -> None:
    result = run("plan", "--model", "Llama-3.1-8B", "--rps", "1", db=seeded_sqlite_url)
    assert result.returncode == 0
    assert "warning: the catalog's 142 prices carry no date" in result.stderr


def test_an_old_catalog_gets_the_new_seed_rows_and_keeps_the_users(tmp_path: Path) -> None:
    from quantplan.catalog import db as catalog_db
    from quantplan.catalog.seeding import SEED_VERSION

    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    engine = catalog_db.make_engine(url)
    catalog_db.upgrade(engine, "0004")
    # Seed version 1 as an older quantplan wrote it: no statistic, no flags, no seed marks.
    from sqlmodel import Session

    from quantplan.catalog.seeding import seed_records
    from quantplan.catalog.store import write_record

    with Session(engine) as session:
        for kind, records in seed_records():
            for record in records:
                if kind == "instances":
                    record = record.model_copy(
                        update={"spot_statistic": None, "spot_flag": None, "price_flag": None}
                    )
                    columns = record.model_dump(
                        exclude={"spot_statistic", "spot_flag", "price_flag"}
                    )
                    hw = (
                        session.connection()
                        .exec_driver_sql(
                            "SELECT id FROM hardware WHERE name = ?", (columns.pop("hardware"),)
                        )
                        .scalar_one()
                    )
                    keys = ", ".join([*columns, "hardware_id"])
                    marks = ", ".join("?" * (len(columns) + 1))
                    session.connection().exec_driver_sql(
                        f"INSERT INTO instance_type ({keys}) VALUES ({marks})",
                        (*columns.values(), hw),
                    )
                elif kind in {"models", "hardware"}:  # schema 0004: no experts, memory type, MLP
                    table = {"models": "model_card", "hardware": "hardware"}[kind]
                    exclude = {"experts", "experts_per_token", "memory_type", "intermediate_size"}
                    columns = record.model_dump(exclude=exclude)
                    keys, marks = ", ".join(columns), ", ".join("?" * len(columns))
                    session.connection().exec_driver_sql(
                        f"INSERT INTO {table} ({keys}) VALUES ({marks})", tuple(columns.values())
                    )
                elif kind not in {
                    "profiles",
                    "quality",
                    "engine_traits",
                    "method_traits",
                    "spot_interruptions",
                }:
                    write_record(session, kind, record)  # the kinds schema 0004 had
        session.commit()
        # The user's own row: an imported price for a seeded type.
        session.connection().exec_driver_sql(
            "UPDATE instance_type SET price_per_hour = 0.5, price_source = 'my contract' "
            "WHERE name = 'g5.xlarge' AND region = 'us-east-1'"
        )
        session.commit()
    engine.dispose()
    result = run("catalog", "list", "-k", "quality", "--json", db=url)  # opens: 0005 + seed v2
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"], "seed quality rows were appended"
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT max(version) FROM seed_state").fetchone() == (SEED_VERSION,)
    assert connection.execute(  # migration 0009's table, filled by seed version 18
        "SELECT count(*) FROM spot_interruption WHERE cloud = 'aws'"
    ).fetchone() == (4,)
    assert connection.execute(  # migration 0008 completed the seed's one MoE card
        "SELECT experts, experts_per_token FROM model_card WHERE name = 'Mixtral-8x7B'"
    ).fetchall() == [(8, 2)]
    assert connection.execute(  # migration 0010 named the seed's memory technologies
        "SELECT memory_type FROM hardware WHERE name IN ('A100-80GB-SXM', 'RTX-4090') ORDER BY name"
    ).fetchall() == [("hbm",), ("gddr",)]
    assert connection.execute(
        "SELECT price_per_hour, price_source, superseded_at FROM instance_type "
        "WHERE name = 'g5.xlarge' AND region = 'us-east-1'"
    ).fetchall() == [(0.5, "my contract", None)]
    flagged = connection.execute(
        "SELECT count(*) FROM instance_type WHERE spot_flag IS NOT NULL AND superseded_at IS NULL"
    ).fetchone()[0]
    assert flagged > 0, "the new seed's flags reached the old catalog"
    assert connection.execute("SELECT count(*) FROM profile").fetchone()[0] > 0
    reseed = run("catalog", "reseed", db=url)
    assert reseed.returncode == 0, reseed.stderr
    assert connection.execute(
        "SELECT price_per_hour FROM instance_type WHERE name = 'g5.xlarge' AND "
        "region = 'us-east-1' AND superseded_at IS NULL"
    ).fetchall() == [(1.006,)]


def test_fetch_is_bounded_and_errors_are_one_line() -> None:
    big = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 2048))
    with pytest.raises(QuantplanError, match="larger than"):
        fetch_price_text("https://example.test/vms.csv", transport=big, max_bytes=1024)
    missing = httpx.MockTransport(lambda request: httpx.Response(404))
    with pytest.raises(QuantplanError, match="HTTP 404"):
        fetch_price_text("https://example.test/vms.csv", transport=missing)
    ok = httpx.MockTransport(
        lambda request: httpx.Response(200, content=(FIXTURES / "azure-vms.csv").read_bytes())
    )
    fmt, quotes = parse_price_csv(fetch_price_text("https://x.test/a", transport=ok), where="a")
    assert fmt == "skypilot-azure" and len(quotes) == 2
