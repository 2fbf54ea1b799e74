"""The planner's llama.cpp prediction against measured llama-server points, and the seed rows.

Shared by bench/llamacpp_server.py (CPU) and bench/llamacpp_server_gpu.py (GPU). For every
measured point it asks ``planner.estimate.predict_profile`` twice:

* before: with the seed catalog's profiles as they were, without this run's rows;
* after: with this run's rows added except the point itself (leave-one-out): the planner
  pins the curve at the other measured concurrencies of the same setting and interpolates in
  log(concurrency) between them (clamped past the ends); settings without rows of their own
  are calibrated by those of the same engine, family and device kind. With the point itself
  in the catalog the planner reproduces it (basis "measured").

The measured points become seed profile rows (``basis: measured``) in their own YAML file
under catalog/seed/, written by the benchmark that measured them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.seeding import seed_records
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.estimate import predict_profile

SEED_DIR = Path(__file__).resolve().parent.parent / "catalog" / "seed"


def seed_snapshot(without_sources: set[str]) -> CatalogSnapshot:
    """The seed catalog, less the profiles of ``without_sources`` (this run's own file)."""
    kinds = {kind: tuple(records) for kind, records in seed_records()}
    kinds["profiles"] = tuple(
        p
        for p in kinds.get("profiles", ())
        if isinstance(p, ProfileRecord) and p.source not in without_sources
    )
    return CatalogSnapshot(**kinds)


def compare(rows: list[ProfileRecord]) -> list[dict[str, Any]]:
    """Measured vs predicted tok/s for each row, before and after the rows were known."""
    sources = {row.source for row in rows}
    snapshot = seed_snapshot(sources)
    before_evidence = tuple(snapshot.profiles)
    out = []
    for row in rows:
        after_evidence = before_evidence + tuple(other for other in rows if other is not row)
        before = predict_profile(row, snapshot, before_evidence)
        after = predict_profile(row, snapshot, after_evidence)
        measured = row.output_tokens_per_s
        out.append(
            {
                "model": row.model,
                "scheme": row.scheme,
                "hardware": row.hardware,
                "concurrency": row.concurrency,
                "measured_tokens_per_s": measured,
                "before_tokens_per_s": round(before.output_tokens_per_s, 1) if before else None,
                "before_error_pct": _error(before, measured),
                "before_basis": before.basis if before else None,
                "after_tokens_per_s": round(after.output_tokens_per_s, 1) if after else None,
                "after_error_pct": _error(after, measured),
                "after_basis": after.basis if after else None,
            }
        )
    return out


def _error(prediction: Any, measured: float) -> float | None:
    if prediction is None:
        return None
    return round(100 * (prediction.output_tokens_per_s - measured) / measured, 1)


def comparison_md(points: list[dict[str, Any]]) -> list[str]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.0f} %"

    lines = [
        "| model | scheme | hardware | concurrency | measured tok/s | planner before | error "
        "| planner after (point left out) | error |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p['model']} | {p['scheme']} | {p['hardware']} | {p['concurrency']} | "
            f"{p['measured_tokens_per_s']:,.1f} | {p['before_tokens_per_s'] or 0:,.1f} | "
            f"{pct(p['before_error_pct'])} | {p['after_tokens_per_s'] or 0:,.1f} | "
            f"{pct(p['after_error_pct'])} |"
        )
    within = [p for p in points if p["after_error_pct"] is not None]
    if within:
        inside = sum(abs(p["after_error_pct"]) <= 20 for p in within)
        before = sum(
            abs(p["before_error_pct"]) <= 20 for p in within if p["before_error_pct"] is not None
        )
        lines += [
            "",
            f"Within 20 %: {before} of {len(within)} points before, {inside} of {len(within)} "
            "after (each point predicted from the others of this run).",
        ]
    return lines


def write_seed(path: Path, header: str, rows: list[ProfileRecord]) -> None:
    """One YAML seed file of profile rows (flow style, one row a line, as the other seeds)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += ["kind: profiles", "rows:"]
    for row in rows:
        data = row.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        data.setdefault("hardware_count", row.hardware_count)
        lines.append("- " + json.dumps(data, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
