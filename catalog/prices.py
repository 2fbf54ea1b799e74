"""Price files: SkyPilot's public catalog (``vms.csv``) and quantplan's own price CSV.

Both are reduced to one :class:`PriceQuote` per (cloud, instance type, region):

* SkyPilot AWS files have a row per availability zone; on-demand prices are the same in every
  zone of a region, spot prices are not. A region's spot price is the **median** over its zones
  (the minimum rewards one zone's momentary dip, and the planner would promise it everywhere).
* SkyPilot GCP files price a GPU machine as its VM row plus an accelerator row (empty
  ``InstanceType``) of the same region, as SkyPilot itself does.
* Azure files have one row per region.

quantplan's own format (``PRICE_CSV_COLUMNS``) is one row per instance type and region:
``cloud,instance_type,region,price_per_hour,spot_price_per_hour,price_date,price_source``;
``spot_price_per_hour``, ``price_date`` and ``price_source`` may be empty.

Every quote is checked by :func:`price_flags`: a spot price below ``SUSPICIOUS_SPOT_RATIO`` of
on-demand is flagged, and so is a row whose accelerator count disagrees with the catalog.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from quantplan.errors import QuantplanError

PriceFormat = Literal["skypilot-aws", "skypilot-gcp", "skypilot-azure", "quantplan"]

SUSPICIOUS_SPOT_RATIO = 0.2
"""A spot price below this fraction of on-demand (a discount deeper than 80 %) is flagged.

Why 0.2: in the shipped snapshot the spot/on-demand ratios of AWS and GCP rows sit mostly
between 0.25 and 0.5 (median 0.33); the rows below 0.2 are the ones whose spot price is the
minimum of one zone (AWS p4de.24xlarge us-east-1: 0.14) or a whole catalog generation that
prices spot at 11-17 % of on-demand (Azure v6), 2-3x deeper than the same GPUs elsewhere.
A plan built on them promises a price the user is unlikely to get."""

PRICE_CSV_COLUMNS = (
    "cloud",
    "instance_type",
    "region",
    "price_per_hour",
    "spot_price_per_hour",
    "price_date",
    "price_source",
)

SKYPILOT_COLUMNS: dict[PriceFormat, tuple[str, ...]] = {
    "skypilot-aws": ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB",
                     "Price", "SpotPrice", "Region", "AvailabilityZone"),
    "skypilot-gcp": ("InstanceType", "vCPUs", "MemoryGiB", "AcceleratorName", "AcceleratorCount",
                     "Region", "AvailabilityZone", "Price", "SpotPrice"),
    "skypilot-azure": ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs",
                       "MemoryGiB", "Price", "SpotPrice", "Region", "Generation"),
}  # fmt: skip

# The catalog's hardware names as SkyPilot's GCP accelerator rows spell them.
GCP_ACCELERATOR_NAMES: dict[str, str] = {
    "A100-40GB": "A100",
    "A100-80GB-SXM": "A100-80GB",
    "H100-SXM": "H100",
    "H200": "H200",
    "L4": "L4",
    "T4": "T4",
    "V100-16GB": "V100",
}

MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class PriceQuote:
    """One instance type's prices in one region, reduced from a price file."""

    cloud: str
    name: str
    region: str
    price_per_hour: float
    spot_price_per_hour: float | None
    spot_statistic: str | None
    accelerator_name: str | None = None
    accelerator_count: int | None = None
    vcpus: int | None = None
    memory_gib: float | None = None
    price_date: str | None = None
    price_source: str | None = None


def detect_format(header: Iterable[str]) -> PriceFormat:
    """Which price format a CSV header is, or a one-line error naming the known ones."""
    columns = tuple(h.strip() for h in header)
    if set(PRICE_CSV_COLUMNS[:4]) <= set(columns):
        return "quantplan"
    for name, wanted in SKYPILOT_COLUMNS.items():
        if set(wanted) <= set(columns) and (name != "skypilot-aws" or "Generation" not in columns):
            # GCP and AWS share their columns; GCP puts vCPUs second.
            if name == "skypilot-aws" and columns[1:2] == ("vCPUs",):
                continue
            return name
    raise QuantplanError(
        f"the price file's header ({', '.join(columns[:10])}) is neither SkyPilot's vms.csv "
        "(AWS, GCP, Azure) nor quantplan's price CSV",
        hint=f"quantplan's own format has the columns {','.join(PRICE_CSV_COLUMNS)}",
    )


def _number(value: str | None, where: str, *, optional: bool) -> float | None:
    text = (value or "").strip()
    if not text:
        if optional:
            return None
        raise QuantplanError(f"{where}: the price is empty", hint="give a price in USD per hour")
    try:
        number = float(text)
    except ValueError:
        raise QuantplanError(
            f"{where}: {text[:40]!r} is not a number", hint="prices are USD per hour, e.g. 1.006"
        ) from None
    if not math.isfinite(number) or number < 0 or number > 10_000:
        raise QuantplanError(
            f"{where}: {text[:40]!r} is not a price between 0 and 10000 USD per hour",
            hint="fix or drop that row",
        )
    return number


def _count(value: str | None) -> int | None:
    text = (value or "").strip()
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _median(values: list[float]) -> tuple[float | None, str | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], "one zone"
    return statistics.median(values), f"median of {len(values)} zones"


def parse_price_csv(text: str, *, where: str) -> tuple[PriceFormat, list[PriceQuote]]:
    """Every quote of a price file, one per (cloud, instance type, region)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise QuantplanError(f"{where} is empty", hint="give a SkyPilot vms.csv or a price CSV")
    fmt = detect_format(reader.fieldnames)
    rows = []
    for number, row in enumerate(reader, start=2):
        if number > MAX_ROWS:
            raise QuantplanError(f"{where} has more than {MAX_ROWS} rows", hint="split the file")
        rows.append((f"{where} line {number}", row))
    if fmt == "quantplan":
        return fmt, _quantplan_quotes(rows)
    cloud = fmt.removeprefix("skypilot-")
    return fmt, _skypilot_quotes(cloud, rows)


def _quantplan_quotes(rows: list[tuple[str, dict[str, str]]]) -> list[PriceQuote]:
    quotes: dict[tuple[str, str, str], PriceQuote] = {}
    for where, row in rows:
        cloud, name, region = ((row.get(c) or "").strip() for c in PRICE_CSV_COLUMNS[:3])
        key = (cloud, name, region)
        if not all(key):
            raise QuantplanError(
                f"{where}: cloud, instance_type and region are all needed",
                hint="fill them in or drop the row",
            )
        if key in quotes:
            raise QuantplanError(f"{where}: {'/'.join(key)} appears twice", hint="keep one row")
        spot = _number(row.get("spot_price_per_hour"), where, optional=True)
        quotes[key] = PriceQuote(
            cloud=key[0],
            name=key[1],
            region=key[2],
            price_per_hour=_number(row.get("price_per_hour"), where, optional=False) or 0.0,
            spot_price_per_hour=spot,
            spot_statistic=None if spot is None else "as given",
            price_date=(row.get("price_date") or "").strip() or None,
            price_source=(row.get("price_source") or "").strip() or None,
        )
    return list(quotes.values())


def _skypilot_quotes(cloud: str, rows: list[tuple[str, dict[str, str]]]) -> list[PriceQuote]:
    """Zone rows grouped per (type, region); GCP accelerator rows kept apart for summing."""
    groups: dict[tuple[str, str], list[tuple[str, dict[str, str]]]] = defaultdict(list)
    for where, row in rows:
        name = (row.get("InstanceType") or "").strip()
        region = (row.get("Region") or "").strip()
        if not region:
            continue
        if not name:  # a GCP accelerator row: keyed by accelerator name and count
            name = f"accelerator:{(row.get('AcceleratorName') or '').strip()}"
            name += f"x{_count(row.get('AcceleratorCount')) or 0}"
        groups[(name, region)].append((where, row))
    quotes = []
    for (name, region), members in groups.items():
        prices = [
            p for w, r in members if (p := _number(r.get("Price"), w, optional=True)) is not None
        ]
        if not prices:
            continue  # SkyPilot leaves on-demand empty for types it cannot price (p5e)
        spots = [
            s
            for w, r in members
            if (s := _number(r.get("SpotPrice"), w, optional=True)) is not None
        ]
        spot, statistic = _median(spots)
        first = members[0][1]
        memory = (first.get("MemoryGiB") or "").strip()
        quotes.append(
            PriceQuote(
                cloud=cloud,
                name=name,
                region=region,
                price_per_hour=statistics.median(prices),
                spot_price_per_hour=spot,
                spot_statistic=statistic,
                accelerator_name=(first.get("AcceleratorName") or "").strip() or None,
                accelerator_count=_count(first.get("AcceleratorCount")),
                vcpus=_count(first.get("vCPUs")),
                memory_gib=float(memory) if memory.replace(".", "", 1).isdigit() else None,
            )
        )
    return quotes


def gcp_machine_price(
    vm: PriceQuote, accelerators: dict[tuple[str, str], PriceQuote], hardware: str, count: int
) -> tuple[PriceQuote, str] | None:
    """A GCP GPU machine's price: its VM row plus its accelerator row (SkyPilot's rule).

    When the file has no row for ``count`` accelerators, ``count`` times the 1-accelerator row
    is used and said so. None when neither exists."""
    sky_name = vm.accelerator_name or GCP_ACCELERATOR_NAMES.get(hardware, hardware)
    row = accelerators.get((f"accelerator:{sky_name}x{count}", vm.region))
    how = "VM row + accelerator row summed"
    scale = 1
    if row is None:
        row = accelerators.get((f"accelerator:{sky_name}x1", vm.region))
        scale, how = count, f"VM row + {count}x the 1-accelerator row (no {count}-GPU row)"
    if row is None:
        return None
    spot = None
    if vm.spot_price_per_hour is not None and row.spot_price_per_hour is not None:
        spot = vm.spot_price_per_hour + scale * row.spot_price_per_hour
    quote = PriceQuote(
        cloud=vm.cloud,
        name=vm.name,
        region=vm.region,
        price_per_hour=vm.price_per_hour + scale * row.price_per_hour,
        spot_price_per_hour=spot,
        spot_statistic=vm.spot_statistic if spot is not None else None,
        accelerator_name=sky_name,
        accelerator_count=count,
        vcpus=vm.vcpus,
        memory_gib=vm.memory_gib,
    )
    return quote, how


def price_flags(
    price_per_hour: float,
    spot_price_per_hour: float | None,
    *,
    file_accelerators: int | None = None,
    catalog_accelerators: int | None = None,
) -> tuple[str | None, str | None]:
    """(spot_flag, price_flag): why the spot price, or the whole row, is doubtful."""
    spot_flag = None
    if spot_price_per_hour is not None and price_per_hour > 0:
        ratio = spot_price_per_hour / price_per_hour
        if ratio < SUSPICIOUS_SPOT_RATIO:
            spot_flag = (
                f"spot {1 - ratio:.0%} below on-demand (more than "
                f"{1 - SUSPICIOUS_SPOT_RATIO:.0%} is suspicious)"
            )
    price_flag = None
    if price_per_hour <= 0:
        price_flag = "on-demand price is zero"
    elif (
        file_accelerators is not None
        and catalog_accelerators is not None
        and file_accelerators != catalog_accelerators
    ):
        price_flag = (
            f"the price file says {file_accelerators} accelerators, the catalog "
            f"{catalog_accelerators}: the row may price another machine"
        )
    return spot_flag, price_flag
