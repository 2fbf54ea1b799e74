"""The dashboard's seams: everything it calls outside itself, in one injectable object.

Screens never import the planner, the catalog database or the cluster directly; they call these
services. The catalog, planner and apply services are the shared services layer
(:mod:`quantplan.services`) that the Python API, the MCP server and the HTTP API use too; only
the fleet source is the dashboard's own. Tests and benchmarks build a
:class:`DashboardServices` with a temporary catalog or a simulated fleet instead of patching code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from quantplan import services
from quantplan.services import CatalogService, ImportResult, PlannerService
from quantplan.tui.fleet.sources import FleetSource, SourceUnavailable

__all__ = [
    "ApplyService",
    "CatalogService",
    "DashboardServices",
    "ImportResult",
    "PlannerService",
]


@dataclass
class ApplyService(services.ApplyService):
    """The shared apply service, with the dashboard's words for "no cluster given"."""

    started_as: str = "the dashboard"
    save_hint: str = "save the plan (ctrl+s)"


def utc_today() -> date:
    """Today's date in UTC: what price ages are measured against."""
    return datetime.now(UTC).date()


@dataclass
class DashboardServices:
    """Everything the dashboard talks to."""

    catalog: CatalogService = field(default_factory=CatalogService)
    planner: PlannerService = field(default_factory=PlannerService)
    apply: ApplyService = field(default_factory=ApplyService)
    fleet: FleetSource | SourceUnavailable = field(
        default_factory=lambda: SourceUnavailable("no cluster address given")
    )
    today: Callable[[], date] = field(default=utc_today)
    """The dashboard's clock for price ages; tests pass a fixed date."""
