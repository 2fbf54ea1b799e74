"""The Python API: plan, report and read the catalog from a notebook, a script or CI.

    import quantplan

    plan = quantplan.plan({"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}})
    print(plan.summary)

    catalog = quantplan.catalog.open("sqlite:///catalog.db")
    plan = quantplan.plan(targets, catalog=catalog)
    report = quantplan.report(targets, catalog=catalog)   # .markdown, .html, .capacity

Answers are the same pydantic models the CLI writes (``quantplan plan --json`` is
``plan.model_dump(mode="json")``); errors are :class:`~quantplan.errors.QuantplanError` with a
message and a hint. Everything goes through :mod:`quantplan.services`, as the dashboard, the
MCP server and the HTTP API do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.capacity import CapacityReport
from quantplan.planner.plan import Plan
from quantplan.planner.targets import Targets
from quantplan.service_models import CatalogRows
from quantplan.services import CatalogService, PlannerService, targets_from

TargetsLike = Targets | Mapping[str, Any] | str | Path
"""Targets as a model, a mapping of the targets file's fields, or a targets (or plan) file."""


@dataclass(frozen=True)
class Catalog:
    """An opened catalog database: read its rows, or plan against it."""

    service: CatalogService

    @property
    def url(self) -> str:
        """The catalog's URL, password redacted."""
        from quantplan.catalog.urls import redact_url, resolve_database_url

        return redact_url(resolve_database_url(self.service.database_url))

    def snapshot(self) -> CatalogSnapshot:
        """Every valid row, frozen: what the planner reads."""
        return self.service.load()

    def rows(self, kind: str, **where: str) -> CatalogRows:
        """Rows of one kind (hardware, instances, models, schemes, support, engine_traits,
        method_traits, spot_interruptions, profiles, quality) whose fields equal ``where``'s
        values, e.g. ``rows("instances", cloud="aws")``."""
        return self.service.rows(kind, where)

    def show(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Every row named ``name`` (an instance type in all its regions), with its kind."""
        return self.service.show(name, kind)


class Report(BaseModel):
    """A capacity report: the data, and the HTML and Markdown `quantplan report` writes."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    capacity: CapacityReport
    html: str
    markdown: str


def open_catalog(url: str | None = None) -> Catalog:
    """Open (migrating and, when empty, seeding) the catalog at ``url``: a SQLAlchemy URL, or
    None for ``QUANTPLAN_DB`` or the SQLite file in the user data directory."""
    service = CatalogService(url)
    service.engine()  # fail here, with the catalog named, not at the first read
    return Catalog(service)


def _catalog(catalog: Catalog | CatalogSnapshot | str | None) -> tuple[CatalogSnapshot, str | None]:
    if isinstance(catalog, CatalogSnapshot):
        return catalog, None
    opened = catalog if isinstance(catalog, Catalog) else open_catalog(catalog)
    return opened.service.snapshot_and_revision()


def _targets(targets: TargetsLike) -> Targets:
    if isinstance(targets, str | Path):
        from quantplan.planner.targets import load_targets

        return load_targets(targets)
    return targets_from(targets)


def plan(targets: TargetsLike, *, catalog: Catalog | CatalogSnapshot | str | None = None) -> Plan:
    """The cheapest plan meeting every target, explained: what ``quantplan plan`` prints.

    ``catalog`` is an opened :class:`Catalog`, a URL, a :class:`CatalogSnapshot` (no
    database: the plan then records no catalog revision), or None for the default catalog.
    """
    snapshot, revision = _catalog(catalog)
    return PlannerService().make_plan(_targets(targets), snapshot, catalog_revision=revision)


def report(
    targets: TargetsLike | Plan, *, catalog: Catalog | CatalogSnapshot | str | None = None
) -> Report:
    """The capacity-planning report for targets (or a plan's targets): cost against traffic
    per family, crossovers, Pareto front, headroom and spot sensitivity."""
    from quantplan.planner.capacity import capacity_report
    from quantplan.planner.decide import prepare
    from quantplan.planner.report import render_html, render_markdown

    wanted = targets.targets if isinstance(targets, Plan) else _targets(targets)
    snapshot, _ = _catalog(catalog)
    from datetime import UTC, datetime

    capacity = capacity_report(prepare(wanted, snapshot))
    today = datetime.now(UTC).date()  # the report judges price ages against today
    return Report(
        capacity=capacity,
        html=render_html(capacity, today=today),
        markdown=render_markdown(capacity, today=today),
    )


__all__ = ["Catalog", "Report", "TargetsLike", "open_catalog", "plan", "report"]
