#!/usr/bin/env python3
"""Regenerate the prices of catalog/seed/instances.yaml from SkyPilot catalog files.

Input of the shipped seed (seed version 2): skypilot-org/skypilot-catalog
  catalogs/v7/aws/vms.csv   at commit 001367d22a0033fac286a8c71aeac7109e431bcb
  catalogs/v7/gcp/vms.csv   at commit 017e2502fb63c7a28757acd94002b2d6099d3e3d
  catalogs/v6/azure/vms.csv at commit 098741e70562f65d7af1cceb81e33b284f742604
read on 2026-11-28. The files carry no date; their content (p5en H200 rows, GCP B200 rows)
dates them to 2025 or later, so the seed's price_date is empty (unknown) and plans say so.
Those prices were transcribed per region with the *minimum* spot price over zones, which is
what ``spot_statistic`` states for them; a run of this script on the vms.csv files writes the
median over zones instead (catalog/prices.py).

The instance types, regions and specs to keep are the ones already in the seed file; this
script changes only prices, their statistic, source and flags, and always re-applies the
flags (catalog/prices.py ``price_flags`` plus ``SOURCE_DOUBTS`` below). Usage:

    python scripts/generate_seed_prices.py [--aws vms.csv] [--gcp vms.csv] [--azure vms.csv]
        [--date YYYY-MM-DD] [--label "SkyPilot catalog v7 aws/vms.csv @ COMMIT"]

then bump SEED_VERSION in catalog/seeding.py so existing catalogs receive the new rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from quantplan.catalog.price_history import by_key_accel
from quantplan.catalog.prices import gcp_machine_price, parse_price_csv, price_flags
from quantplan.inputs import read_text

SEED = Path(__file__).resolve().parents[1] / "catalog" / "seed" / "instances.yaml"

# Rows whose source itself is questionable, found by reading the source (published-figures §4).
SOURCE_DOUBTS: dict[tuple[str, str], str] = {
    ("gcp", "H100-SXM"): "the source's GCP H100 price differs more than 2x between regions",
    ("gcp", "A100-80GB-SXM"): "the source prices GCP's A100-80GB below its A100-40GB "
    "(on-demand 1.85 vs 2.93 per GPU)",
}
HEADER = """\
# Instance types and prices, written by scripts/generate_seed_prices.py (its docstring names
# the SkyPilot catalog files and commits it read). GCP GPU machines are priced as VM +
# accelerators, as SkyPilot does. spot_statistic says how each region's spot price came from
# its zones; spot_flag / price_flag say why a price is doubtful (the planner skips those
# unless --allow-flagged-prices).
"""


def reprice(
    rows: list[dict[str, Any]], cloud: str, path: Path, date: str | None, label: str
) -> int:
    """Replace the prices of ``cloud``'s rows with the file's; the number of rows repriced."""
    fmt, quotes = parse_price_csv(
        read_text(path, "price file", max_bytes=64 * 2**20), where=str(path)
    )
    if fmt != f"skypilot-{cloud}":
        sys.exit(f"{path} is a {fmt} file, not SkyPilot's {cloud} vms.csv")
    by_key = {(q.name, q.region): q for q in quotes}
    accelerators = by_key_accel(quotes)
    done = 0
    for row in rows:
        if row["cloud"] != cloud:
            continue
        quote = by_key.get((row["name"], row["region"]))
        how = ""
        if quote is not None and cloud == "gcp" and row.get("accelerator_count"):
            summed = gcp_machine_price(
                quote, accelerators, row["hardware"], row["accelerator_count"]
            )
            quote, how = (None, "") if summed is None else (summed[0], f"; {summed[1]}")
        if quote is None:
            continue
        row["price_per_hour"] = round(quote.price_per_hour, 6)
        row["spot_price_per_hour"] = (
            None if quote.spot_price_per_hour is None else round(quote.spot_price_per_hour, 6)
        )
        row["spot_statistic"] = quote.spot_statistic
        row["price_date"] = date
        row["price_source"] = f"{label}{how}"
        done += 1
    return done


def reflag(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        for key in ("spot_flag", "price_flag"):
            row.pop(key, None)
        spot_flag, price_flag = price_flags(row["price_per_hour"], row.get("spot_price_per_hour"))
        price_flag = SOURCE_DOUBTS.get((row["cloud"], row["hardware"]), price_flag)
        if spot_flag:
            row["spot_flag"] = spot_flag
        if price_flag:
            row["price_flag"] = price_flag
        for key in ("spot_price_per_hour", "spot_statistic", "price_date"):
            if row.get(key) is None:
                row.pop(key, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for cloud in ("aws", "gcp", "azure"):
        parser.add_argument(f"--{cloud}", type=Path, help=f"SkyPilot {cloud} vms.csv")
    parser.add_argument("--date", help="Date the files' prices were true (YYYY-MM-DD)")
    parser.add_argument("--label", default="SkyPilot catalog {cloud}/vms.csv")
    parser.add_argument("--output", type=Path, default=SEED)
    args = parser.parse_args(argv)
    document = yaml.safe_load(read_text(SEED, "seed file", max_bytes=16 * 2**20))
    rows = document["rows"]
    for cloud in ("aws", "gcp", "azure"):
        path = getattr(args, cloud)
        if path is not None:
            count = reprice(rows, cloud, path, args.date, args.label.format(cloud=cloud))
            print(f"{cloud}: {count} rows repriced from {path}")
    reflag(rows)
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    args.output.write_text(HEADER + body, encoding="utf-8")
    flagged = sum(1 for r in rows if "spot_flag" in r or "price_flag" in r)
    print(f"wrote {len(rows)} rows ({flagged} flagged) to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
