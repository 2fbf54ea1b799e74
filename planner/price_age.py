"""How old the prices are, and which regions the user means: pure helpers for the CLI,
the report and the dashboard. The caller passes today's date; nothing here reads a clock."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from quantplan.errors import UnknownNameError

if TYPE_CHECKING:  # kept out of the CLI's start-up imports
    from quantplan.catalog.snapshot import CatalogSnapshot
    from quantplan.planner.plan import Deployment, Plan
    from quantplan.planner.targets import Targets

DEFAULT_MAX_PRICE_AGE_DAYS = 90
REFRESH_HINT = "quantplan catalog prices refresh --from URL|PATH"


def price_age_days(price_date: str | None, today: date) -> int | None:
    """Days since ``price_date`` (YYYY-MM-DD), or None when unknown or unreadable."""
    if not price_date:
        return None
    try:
        return (today - date.fromisoformat(price_date[:10])).days
    except ValueError:
        return None


def describe_price(deployment: Deployment, max_age_days: int, today: date) -> str:
    """One line: the hourly price, its date (flagged when stale or unknown) and its source."""
    age = price_age_days(deployment.price_date, today)
    if age is None:
        when = "date unknown (STALE?)"
    else:
        when = f"of {deployment.price_date}" + (
            f" (STALE: {age} days old, over {max_age_days})" if age > max_age_days else ""
        )
    source = deployment.price_source or "source not recorded"
    where = deployment.instance.region
    price = f"${deployment.usd_per_hour:,.4g}/h {deployment.pricing}"
    if deployment.spot is not None:
        price += (
            f" expected (${deployment.spot.listed_usd_per_hour:,.4g}/h listed, its on-demand "
            "fallback counted)"
        )
    return f"{price} in {where}, {when}; {source}"


def excluded_price_notes(plan: Plan) -> tuple[str, ...]:
    """The plan's notes on flagged prices it left out (recorded among its assumptions by
    ``candidates.usable_prices``); empty when none were left out or flagged prices were allowed."""
    from quantplan.planner.candidates import EXCLUDED_PRICES_PHRASE

    return tuple(note for note in plan.assumptions if EXCLUDED_PRICES_PHRASE in note)


def stale_prices_warning(snapshot: CatalogSnapshot, max_age_days: int, today: date) -> str | None:
    """A warning when the catalog's newest price is older than ``max_age_days`` or undated."""
    if not snapshot.instances:
        return None
    ages = [price_age_days(i.price_date, today) for i in snapshot.instances]
    known = [a for a in ages if a is not None]
    undated = len(ages) - len(known)
    if not known:
        return (
            f"the catalog's {len(ages)} prices carry no date (the shipped snapshot's date is "
            f"unknown); refresh them: {REFRESH_HINT}"
        )
    stale = sum(1 for a in known if a > max_age_days)
    if stale == 0 and undated == 0:
        return None
    parts = []
    if stale:
        parts.append(f"{stale} older than {max_age_days} days (oldest {max(known)} days)")
    if undated:
        parts.append(f"{undated} without a date")
    return f"of the catalog's {len(ages)} prices, {' and '.join(parts)}; refresh: {REFRESH_HINT}"


def resolve_regions(targets: Targets, snapshot: CatalogSnapshot) -> Targets:
    """The targets with their regions spelled as the catalog spells them (any case accepted);
    an unknown region is an error with the nearest names."""
    wanted = targets.constraints.regions
    if not wanted:
        return targets
    known = sorted({i.region for i in snapshot.instances})
    by_lower = {name.lower(): name for name in known}
    resolved = []
    for name in wanted:
        match = by_lower.get(name.strip().lower())
        if match is None:
            raise UnknownNameError("region (--region)", name, known)
        resolved.append(match)
    constraints = targets.constraints.model_copy(update={"regions": tuple(resolved)})
    return targets.model_copy(update={"constraints": constraints})
