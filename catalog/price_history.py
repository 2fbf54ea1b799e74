"""Appending prices: a refresh or a seed upgrade adds rows and supersedes, never overwrites.

At most one row per (cloud, name, region) is current (``superseded_at`` is None). A new price
is a new row; the row it replaces is stamped with the time it was superseded and stays, so a
plan made with it can still be explained and profiles measured on it keep their reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from quantplan.catalog.models import Hardware, InstanceType
from quantplan.catalog.prices import PriceFormat, PriceQuote, gcp_machine_price, price_flags

PRICE_FIELDS = (
    "price_per_hour",
    "spot_price_per_hour",
    "price_date",
    "price_source",
    "spot_statistic",
    "spot_flag",
    "price_flag",
)


@dataclass
class RefreshReport:
    """What a refresh did, for the one-line answer and for tests."""

    appended: list[str] = field(default_factory=list)
    unchanged: int = 0
    new_regions: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    not_in_file: int = 0
    unknown_types: int = 0


def current_instances(session: Session) -> list[InstanceType]:
    query = select(InstanceType).where(col(InstanceType.superseded_at).is_(None))
    return list(session.exec(query.order_by(col(InstanceType.id))).all())


def supersede(
    session: Session, row: InstanceType, values: dict[str, object], now: datetime
) -> InstanceType:
    """Stamp ``row`` superseded and append a copy with ``values``; returns the new row."""
    data = row.model_dump(exclude={"id", "superseded_at"})
    data.update(values)
    row.superseded_at = now
    session.add(row)
    session.flush()  # the old row leaves the current set before the new one joins it
    new = InstanceType.model_validate(data)
    session.add(new)
    session.flush()
    return new


def _same_price(row: InstanceType, values: dict[str, object]) -> bool:
    return all(getattr(row, name) == values[name] for name in PRICE_FIELDS if name in values)


def apply_quotes(
    session: Session,
    fmt: PriceFormat,
    quotes: list[PriceQuote],
    *,
    source: str,
    price_date: str,
    add_regions: bool = False,
    now: datetime | None = None,
) -> RefreshReport:
    """Append a price row for every current instance the file prices differently."""
    now = now or datetime.now(UTC)
    report = RefreshReport()
    cloud = None if fmt == "quantplan" else fmt.removeprefix("skypilot-")
    by_key = {(q.cloud, q.name, q.region): q for q in quotes}
    hardware = {h.id: h.name for h in session.exec(select(Hardware)).all()}
    accelerators = by_key_accel(quotes)
    rows = [r for r in current_instances(session) if cloud is None or r.cloud == cloud]
    known_types = {(r.cloud, r.name): r for r in rows}
    if add_regions:
        have = {(r.cloud, r.name, r.region) for r in rows}
        regions = sorted({(q.cloud, q.name, q.region) for q in quotes} - have)
        for region_key in regions:
            template = known_types.get(region_key[:2])
            if template is None:
                continue
            data = template.model_dump(exclude={"id", "superseded_at"})
            data.update(region=region_key[2], seed_version=None)
            rows.append(InstanceType.model_validate(data))
            report.new_regions.append("/".join(region_key))
    report.unknown_types = len(
        {(q.cloud, q.name) for q in quotes if not q.name.startswith("accelerator:")}
        - set(known_types)
    )
    for row in rows:
        quote = by_key.get((row.cloud, row.name, row.region))
        how = fmt if fmt == "quantplan" else f"SkyPilot {row.cloud}/vms.csv"
        if fmt == "skypilot-gcp" and row.accelerator_count and quote is not None:
            summed = gcp_machine_price(
                quote, accelerators, hardware[row.hardware_id], row.accelerator_count
            )
            quote, how = (None, how) if summed is None else (summed[0], f"{how}, {summed[1]}")
        if quote is None:
            report.not_in_file += row.id is not None
            continue
        spot_flag, price_flag = price_flags(
            quote.price_per_hour,
            quote.spot_price_per_hour,
            file_accelerators=quote.accelerator_count if fmt != "skypilot-gcp" else None,
            catalog_accelerators=row.accelerator_count if quote.accelerator_count else None,
        )
        statistic = quote.spot_statistic
        values: dict[str, object] = {
            "price_per_hour": round(quote.price_per_hour, 6),
            "spot_price_per_hour": None
            if quote.spot_price_per_hour is None
            else round(quote.spot_price_per_hour, 6),
            "spot_statistic": statistic,
            "spot_flag": spot_flag,
            "price_flag": price_flag,
            "price_date": quote.price_date or price_date,
            "price_source": quote.price_source or f"{source} ({how}; spot = {statistic or 'none'})",
            "seed_version": None,
        }
        key = f"{row.cloud}/{row.name}/{row.region}"
        if row.id is None:
            session.add(InstanceType.model_validate({**row.model_dump(exclude={"id"}), **values}))
            session.flush()
        elif _same_price(row, {**values, "price_source": row.price_source}) and (
            row.price_date == values["price_date"]
        ):
            report.unchanged += 1
            continue
        else:
            supersede(session, row, values, now)
        report.appended.append(key)
        if spot_flag or price_flag:
            report.flagged.append(f"{key}: {price_flag or spot_flag}")
    return report


def by_key_accel(quotes: list[PriceQuote]) -> dict[tuple[str, str], PriceQuote]:
    """GCP accelerator rows keyed by (accelerator:NAMExCOUNT, region)."""
    return {(q.name, q.region): q for q in quotes if q.name.startswith("accelerator:")}
