"""The dashboard's seams: everything it calls outside itself, in one injectable object.

Screens never import the planner, the catalog database or the cluster directly; they call these
services, which are thin adapters over the packages' own functions. Tests and benchmarks build a
:class:`DashboardServices` with a temporary catalog or a simulated fleet instead of patching code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.plan import Plan
from quantplan.planner.targets import Targets
from quantplan.tui.fleet.sources import FleetSource, SourceUnavailable

from quantplan.errors import QuantplanError

ImportResult = list[tuple[str, dict[str, int]]]


@dataclass
class PlannerService:
    """Calls the planner's own functions; holds no planning logic."""

    def make_plan(self, targets: Targets, snapshot: CatalogSnapshot) -> Plan:
        from quantplan.planner.planning import make_plan

        return make_plan(targets, snapshot)

    def write_report(self, plan: Plan, snapshot: CatalogSnapshot, path: Path) -> list[Path]:
        """The capacity report for the plan's targets, as HTML at ``path`` plus Markdown."""
        from quantplan.planner.capacity import capacity_report
        from quantplan.planner.planning import prepare
        from quantplan.planner.report import render_html, render_markdown

        report = capacity_report(prepare(plan.targets, snapshot))
        html = path if path.suffix else path.with_suffix(".html")
        markdown = html.with_suffix(".md")
        html.write_text(render_html(report), encoding="utf-8")
        markdown.write_text(render_markdown(report), encoding="utf-8")
        return [html, markdown]


@dataclass
class ApplyService:
    """Hands a plan to the cluster agent's ``apply_plan``, on the cluster the user named.

    Without an explicit address nothing is applied: ``auto`` would attach to whatever Ray
    cluster this machine happens to run, which is not a choice to make for the user.
    """

    address: str | None = None

    def apply(self, plan: Plan) -> str:
        if self.address is None:
            raise QuantplanError(
                "no cluster to apply to: the dashboard was started without --address",
                hint="save the plan (ctrl+s) and run `quantplan apply plan.yaml`, or restart "
                "with `quantplan dashboard --address auto` after `quantplan cluster up`",
            )
        from quantplan.agent.cluster.apply import apply_plan  # imports Ray: only when applying

        try:
            outcome = apply_plan(plan, address=self.address)
        except QuantplanError:
            raise
        except Exception as error:  # Ray and engines fail in many ways; the UI shows them all
            raise QuantplanError(
                f"applying the plan failed: {type(error).__name__}: {error}",
                hint="`quantplan status` shows what runs; the collector's event log says more",
            ) from error
        return str(outcome)


@dataclass
class CatalogService:
    """Reads and imports through the catalog package; never writes SQL itself."""

    database_url: str | None = None

    def load(self) -> CatalogSnapshot:
        from quantplan.catalog.db import open_catalog
        from quantplan.catalog.snapshot import load_snapshot

        return load_snapshot(open_catalog(self.database_url))

    def import_files(self, paths: list[Path]) -> ImportResult:
        from quantplan.catalog.db import open_catalog
        from quantplan.catalog.transfer import import_files

        return import_files(open_catalog(self.database_url), paths)

    def list_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        from quantplan.catalog.db import open_catalog
        from quantplan.catalog.reports import list_runs

        return list_runs(open_catalog(self.database_url), limit=limit)


@dataclass
class DashboardServices:
    """Everything the dashboard talks to."""

    catalog: CatalogService = field(default_factory=CatalogService)
    planner: PlannerService = field(default_factory=PlannerService)
    apply: ApplyService = field(default_factory=ApplyService)
    fleet: FleetSource | SourceUnavailable = field(
        default_factory=lambda: SourceUnavailable("no cluster address given")
    )
