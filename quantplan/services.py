"""The services layer: every operation quantplan offers other tools, in one place.

The dashboard, the Python API, the MCP server and the HTTP API all call these classes; each
is a thin adapter over the packages' own public functions (catalog reading, the planner, the
cluster agent) and holds no planning logic. Errors are QuantplanErrors; front ends turn them
into :class:`~quantplan.service_models.ErrorInfo` with :func:`error_info`.

Heavy imports (the planner's numpy/scipy, Ray) happen inside the methods that need them.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantplan.errors import QuantplanError, UnknownNameError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from quantplan.agent.cluster.events import EventSource
    from quantplan.catalog.snapshot import CatalogSnapshot
    from quantplan.planner.plan import Deployment, Plan
    from quantplan.planner.targets import Targets
    from quantplan.service_models import (
        CatalogRows,
        ChangeOutcome,
        Comparison,
        FleetCost,
        FleetReport,
        RejectionExplanation,
        ReportDocument,
        StoredPlan,
    )

ImportResult = list[tuple[str, dict[str, int]]]
# Catalog kinds whose rows have a name `catalog show` looks up.
NAMED_KINDS = ("hardware", "instances", "models", "schemes")


def targets_from(data: Targets | Mapping[str, Any]) -> Targets:
    """Targets from a model or a plain mapping; a bad field is one RequestError naming it."""
    from pydantic import ValidationError

    from quantplan.catalog.records import first_problem
    from quantplan.planner.targets import Targets
    from quantplan.service_models import RequestError

    if isinstance(data, Targets):
        return data
    if not isinstance(data, Mapping):
        raise RequestError(
            f"targets must be a mapping, not {type(data).__name__}",
            code="invalid_targets",
            hint='e.g. {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}',
        )
    try:
        return Targets.model_validate(dict(data))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"] if not str(part).startswith("function"))
        raise RequestError(
            f"invalid targets: {first_problem(error)}",
            code="invalid_targets",
            field=where or None,
            hint="unknown fields are refused; numbers must be finite and within physical bounds "
            "(the Targets schema lists every field)",
        ) from None


@dataclass
class CatalogService:
    """Reads and imports through the catalog package; never writes SQL itself.

    ``max_age_s`` lets a long-running server reuse a loaded snapshot for that long (loading
    one takes tens of milliseconds, as long as a plan); 0, the dashboard's choice, reads the
    catalog afresh each time.
    """

    database_url: str | None = None
    max_age_s: float = 0.0
    _cached: tuple[float, CatalogSnapshot, str | None] | None = field(
        default=None, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def engine(self) -> Engine:
        from quantplan.catalog.db import open_catalog

        return open_catalog(self.database_url)

    def snapshot_and_revision(self) -> tuple[CatalogSnapshot, str | None]:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.max_age_s:
                return self._cached[1], self._cached[2]
            from quantplan.catalog.db import current_revision
            from quantplan.catalog.snapshot import load_snapshot

            engine = self.engine()
            snapshot, revision = load_snapshot(engine), current_revision(engine)
            if self._cached is not None and (snapshot, revision) == self._cached[1:]:
                # Unchanged (comparing takes well under a millisecond): keep the object, and
                # with it what is kept per snapshot (the planner's contexts and fingerprint).
                snapshot = self._cached[1]
            self._cached = (now, snapshot, revision)
            return snapshot, revision

    def load(self) -> CatalogSnapshot:
        return self.snapshot_and_revision()[0]

    def revision(self) -> str | None:
        """The catalog database's schema revision, recorded in plans as the CLI does."""
        return self.snapshot_and_revision()[1]

    def import_files(self, paths: list[Path]) -> ImportResult:
        from quantplan.catalog.transfer import import_files

        return import_files(self.engine(), paths)

    def list_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        from quantplan.catalog.reports import list_runs

        return list_runs(self.engine(), limit=limit)

    def rows(self, kind: str, where: Mapping[str, str] | None = None) -> CatalogRows:
        """Rows of ``kind`` whose fields equal ``where``'s values (case-insensitive), as
        ``quantplan catalog list --kind KIND --json`` lists them."""
        from sqlmodel import Session

        from quantplan.catalog.reading import read_catalog
        from quantplan.catalog.records import RECORD_TYPES
        from quantplan.catalog.retractions import RETRACTABLE_TABLES
        from quantplan.service_models import CatalogRows, RequestError

        if kind not in RECORD_TYPES:
            raise UnknownNameError("kind", kind, RECORD_TYPES)
        measured = kind in RETRACTABLE_TABLES
        fields = [*(["id"] if measured else []), *RECORD_TYPES[kind].model_fields]
        for name in where or {}:
            if name not in fields:
                error = UnknownNameError(f"{kind} field", name, fields)
                raise RequestError(error.message, code="unknown_name", hint=error.hint, field=name)
        with Session(self.engine()) as session:
            read = read_catalog(session, (kind,))
        rows = []
        for stored in read.rows[kind]:
            row = stored.record.model_dump(mode="json")
            if measured:
                row = {"id": stored.row_id, **row}
            if all(str(row.get(k, "")).lower() == v.lower() for k, v in (where or {}).items()):
                rows.append(row)
        return CatalogRows(
            kind=kind,
            rows=tuple(rows),
            retracted_not_shown=read.retracted.get(kind, 0),
            skipped=tuple(read.skipped_of(kind)),
        )

    def show(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Every row named ``name`` (an instance type in all its regions), each with its kind."""
        if kind is not None and kind not in NAMED_KINDS:
            raise UnknownNameError("kind", kind, NAMED_KINDS)
        found: list[dict[str, Any]] = []
        known: set[str] = set()
        for each in (kind,) if kind else NAMED_KINDS:
            for row in self.rows(each).rows:
                known.add(row["name"])
                if row["name"].lower() == name.lower():
                    found.append({"kind": each, **row})
        if not found:
            raise UnknownNameError("catalog row", name, known)
        return found


@dataclass
class PlannerService:
    """Calls the planner's own functions; holds no planning logic beyond reusing the maps of
    recent questions about the same model and snapshot (planner.decide.ContextCache)."""

    _contexts: Any = field(default=None, init=False, repr=False)

    def make_plan(
        self, targets: Targets, snapshot: CatalogSnapshot, *, catalog_revision: str | None = None
    ) -> Plan:
        from quantplan.planner.decide import ContextCache, plan_from_context

        if self._contexts is None:  # made on first use: the planner loads numpy; a race
            # between two first requests only costs one of them its cache entry
            self._contexts = ContextCache()
        context = self._contexts.context(targets, snapshot)
        return plan_from_context(context, catalog_revision=catalog_revision)

    def render_report(self, targets: Targets, snapshot: CatalogSnapshot) -> tuple[str, str]:
        """The capacity report for ``targets``: (HTML, Markdown)."""
        from datetime import UTC, datetime

        from quantplan.planner.capacity import capacity_report
        from quantplan.planner.decide import prepare
        from quantplan.planner.report import render_html, render_markdown

        report = capacity_report(prepare(targets, snapshot))
        today = datetime.now(UTC).date()  # the report judges price ages against today
        return render_html(report, today=today), render_markdown(report, today=today)

    def write_report(self, plan: Plan, snapshot: CatalogSnapshot, path: Path) -> list[Path]:
        """The capacity report for the plan's targets, as HTML at ``path`` plus Markdown."""
        html_text, markdown_text = self.render_report(plan.targets, snapshot)
        html = path if path.suffix else path.with_suffix(".html")
        markdown = html.with_suffix(".md")
        html.write_text(html_text, encoding="utf-8")
        markdown.write_text(markdown_text, encoding="utf-8")
        return [html, markdown]


@dataclass
class ApplyService:
    """Hands a plan to the cluster agent's ``apply_plan``, on the cluster the user named.

    Without an explicit address nothing is applied: ``auto`` would attach to whatever Ray
    cluster this machine happens to run, which is not a choice to make for the user.
    """

    address: str | None = None
    started_as: str = "the server"
    save_hint: str = "save the plan"

    def _require_address(self, what: str) -> str:
        if self.address is None:
            raise QuantplanError(
                f"no cluster to {what}: {self.started_as} was started without --address",
                hint=f"{self.save_hint} and run `quantplan apply plan.yaml`, or restart with "
                "--address auto after `quantplan cluster up`",
            )
        return self.address

    def apply(self, plan: Plan) -> str:
        address = self._require_address("apply to")
        from quantplan.agent.cluster.apply import apply_plan  # imports Ray: only when applying

        try:
            outcome = apply_plan(plan, address=address)
        except QuantplanError:
            raise
        except Exception as error:  # Ray and engines fail in many ways; callers show them all
            raise QuantplanError(
                f"applying the plan failed: {type(error).__name__}: {error}",
                hint="`quantplan status` shows what runs; the collector's event log says more",
            ) from error
        return str(outcome)

    def destroy(self, name: str | None) -> list[str]:
        address = self._require_address("destroy on")
        from quantplan.agent.cluster.fleet_ops import destroy

        return destroy(name, address)


def fleet_costs(source: EventSource, *, limit: int = 1_000) -> tuple[FleetCost, ...]:
    """Measured cost per token of each plan and replica, folded from the fleet's event log
    (the collector's on a cluster, an in-process bus in tests) as the dashboard folds it."""
    from quantplan.agent.cluster.fleet_view import FleetView, apply_event
    from quantplan.service_models import FleetCost

    view, cursor = FleetView(), 0
    while True:
        batch = source.events_since(cursor, timeout_s=0.0, limit=limit)
        for event in batch.events:
            view = apply_event(view, event)
        if not batch.events or batch.next_seq == cursor:
            break
        cursor = batch.next_seq
    costs = [
        FleetCost(
            scope="plan",
            key=plan.plan_id,
            usd_per_million_tokens=plan.usd_per_million_tokens,
            predicted_usd_per_million_tokens=plan.predicted_usd_per_million_tokens,
        )
        for plan in view.plans.values()
        if plan.usd_per_million_tokens is not None
    ]
    costs += [
        FleetCost(
            scope="replica",
            key=replica.replica_id,
            usd_per_million_tokens=replica.usd_per_million_tokens,
            output_tokens_per_s=replica.output_tokens_per_s,
        )
        for replica in view.replicas.values()
        if replica.usd_per_million_tokens is not None
    ]
    return tuple(costs)


@dataclass
class FleetService:
    """Reads a live fleet: ``quantplan status`` plus cost per token from the collector."""

    address: str | None = None

    def report(self) -> FleetReport:
        from quantplan.service_models import FleetReport, RequestError

        if self.address is None:
            raise RequestError(
                "no live fleet to read: started without --address",
                code="no_cluster",
                hint="restart with --address auto (or ray://HOST:PORT) after "
                "`quantplan cluster up`",
            )
        from quantplan.agent.cluster.collector_actor import NoCollectorError, RayEventSource
        from quantplan.agent.cluster.fleet_ops import fleet_status

        status = fleet_status(self.address)
        try:
            return FleetReport(status=status, costs=fleet_costs(RayEventSource()))
        except NoCollectorError as error:
            return FleetReport(status=status, costs_note=error.message)


class PlanStore:
    """The plans this server made, by id (a hash of the plan), newest kept, bounded.

    In memory by default. With ``directory`` the plans are files there (``<id>.json``), so
    that the worker processes of one ``quantplan api --workers N`` share them: a plan made by
    one worker can be fetched through another.
    """

    def __init__(self, capacity: int = 256, directory: Path | None = None) -> None:
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._capacity = capacity
        self._directory = directory
        self._lock = threading.Lock()

    def add(self, plan: Plan, text: str | None = None) -> str:
        """Keep ``plan`` (whose JSON is ``text``, when the caller has it already); its id."""
        text = plan.model_dump_json() if text is None else text
        plan_id = hashlib.sha256(text.encode()).hexdigest()[:12]
        if self._directory is not None:
            self._write(plan_id, text)
            return plan_id
        with self._lock:
            self._plans[plan_id] = plan
            self._plans.move_to_end(plan_id)
            while len(self._plans) > self._capacity:
                self._plans.popitem(last=False)
        return plan_id

    def get(self, plan_id: str) -> Plan:
        if self._directory is not None:
            return self._read(plan_id)
        with self._lock:
            plan = self._plans.get(plan_id)
            known = list(self._plans)
        if plan is None:
            raise UnknownNameError("plan", plan_id, known)
        return plan

    def list(self) -> list[StoredPlan]:
        from quantplan.service_models import StoredPlan

        if self._directory is not None:
            items = []
            for plan_id in self._ids_newest_first():
                try:
                    items.append((plan_id, self._read(plan_id)))
                except UnknownNameError:  # pruned by another worker meanwhile
                    continue
        else:
            with self._lock:
                items = [*reversed(self._plans.items())]
        return [
            StoredPlan(plan_id=k, model=p.model, feasible=p.feasible, summary=p.summary)
            for k, p in items
        ]

    # ---------------------------------------------------------------- shared directory

    # Files are named <time made, ns>-<id>.json: the name orders them (file times are too
    # coarse: two plans written within one clock tick would tie).

    # builtins.list: inside this class `list` names the method above.
    def _files_newest_first(self) -> builtins.list[Path]:
        assert self._directory is not None
        return sorted(self._directory.glob("*-*.json"), reverse=True)

    def _ids_newest_first(self) -> builtins.list[str]:
        return [path.stem.split("-", 1)[1] for path in self._files_newest_first()]

    def _write(self, plan_id: str, text: str) -> None:
        assert self._directory is not None
        for older in self._directory.glob(f"*-{plan_id}.json"):  # the same plan asked again
            older.unlink(missing_ok=True)
        path = self._directory / f"{time.time_ns():020d}-{plan_id}.json"
        # Written aside and renamed: a reader in another worker never sees half a plan.
        staging = path.with_name(f".{plan_id}.{os.getpid()}.{threading.get_ident()}.tmp")
        staging.write_text(text, encoding="utf-8")
        staging.replace(path)
        for stale in self._files_newest_first()[self._capacity :]:
            stale.unlink(missing_ok=True)

    def _read(self, plan_id: str) -> Plan:
        from quantplan.planner.plan import Plan

        assert self._directory is not None
        # Ids are 12 hex digits (a sha256 prefix); anything else names no file here.
        if len(plan_id) == 12 and all(c in "0123456789abcdef" for c in plan_id):
            for path in self._directory.glob(f"*-{plan_id}.json"):
                try:
                    return Plan.model_validate_json(path.read_text(encoding="utf-8"))
                except FileNotFoundError:  # replaced or pruned by another worker meanwhile
                    continue
        raise UnknownNameError("plan", plan_id, self._ids_newest_first())


def _option_row(role: str, d: Deployment, reference: float | None) -> dict[str, Any]:
    ppl = d.metrics.perplexity_increase_pct
    return {
        "role": role,
        "label": d.label,
        "method": d.method,
        "scheme": d.scheme,
        "engine": d.engine,
        "instance": str(d.instance),
        "pricing": d.pricing,
        "replicas": d.replicas,
        "usd_per_month": d.usd_per_month,
        "usd_per_million_tokens": d.usd_per_million_tokens,
        "ttft_p95_ms": d.metrics.ttft_p95_ms.value,
        "itl_p95_ms": d.metrics.itl_p95_ms.value,
        "perplexity_increase_pct": ppl.value if ppl else None,
        "basis": d.metrics.ttft_p95_ms.basis,
        "cost_ratio": round(d.usd_per_month / reference, 4) if reference else None,
    }


@dataclass
class Services:
    """The operations every front end offers, over one catalog and (optionally) one cluster."""

    catalog: CatalogService = field(default_factory=CatalogService)
    planner: PlannerService = field(default_factory=PlannerService)
    apply_service: ApplyService = field(default_factory=ApplyService)
    fleet: FleetService = field(default_factory=FleetService)
    plans: PlanStore = field(default_factory=PlanStore)

    def plan(self, targets: Targets | Mapping[str, Any]) -> Plan:
        """The plan ``quantplan plan`` makes for these targets, kept for the plan resources."""
        return self.plan_document(targets)[0]

    def plan_document(self, targets: Targets | Mapping[str, Any]) -> tuple[Plan, str]:
        """:meth:`plan`, and the plan's JSON (``Plan.model_dump_json``), serialized once: the
        store keeps it under the plan's id and the HTTP API sends it as it is."""
        wanted = targets_from(targets)
        snapshot, revision = self.catalog.snapshot_and_revision()
        plan = self.planner.make_plan(wanted, snapshot, catalog_revision=revision)
        text = plan.model_dump_json()
        self.plans.add(plan, text)
        return plan, text

    def compare(self, targets: Targets | Mapping[str, Any]) -> Comparison:
        """The fleet, the alternatives and the Pareto front side by side, and why others lost."""
        from quantplan.service_models import Comparison, OptionRow

        plan = self.plan(targets)
        reference = plan.fleet_usd_per_month
        rows = [_option_row("fleet", d, reference) for d in plan.fleet]
        rows += [_option_row("alternative", d, reference) for d in plan.alternatives]
        rows += [_option_row("pareto", d, reference) for d in plan.pareto_front]
        return Comparison(
            model=plan.model,
            feasible=plan.feasible,
            summary=plan.summary,
            options=tuple(OptionRow.model_validate(r) for r in rows),
            rejected=plan.rejected,
        )

    def explain_rejection(
        self, targets: Targets | Mapping[str, Any], option: str
    ) -> RejectionExplanation:
        """Why ``option`` (a family, scheme or engine) was not chosen -- or that it was."""
        from quantplan.service_models import RejectionExplanation

        plan = self.plan(targets)
        snapshot = self.catalog.load()
        schemes = {s.name.lower(): s for s in snapshot.schemes}
        engines = {s.engine for s in snapshot.support}
        from quantplan.catalog.registry import METHODS

        asked = option.strip().lower()
        families = METHODS.names()
        if asked in families:
            family = asked
        elif asked in schemes:
            family = schemes[asked].family
        elif asked in {e.lower() for e in engines}:
            family = None
        else:
            known = [*families, *(s.name for s in snapshot.schemes), *engines]
            raise UnknownNameError("option", option, known)
        deployed = [
            d for d in plan.fleet if asked in (d.method.lower(), d.scheme.lower(), d.engine.lower())
        ]
        matching = tuple(
            r
            for r in plan.rejected
            if (family is not None and r.family == family)
            or (r.engine or "").lower() == asked
            or (r.scheme or "").lower() == asked
        )
        if deployed:
            text = f"{option} is in the plan: {deployed[0].label}. {plan.summary}"
        elif matching:
            text = " ".join(f"{r.family} lost at the {r.stage} stage: {r.reason}" for r in matching)
        elif not plan.feasible:
            text = f"no option meets every target, {option} included. {plan.summary}"
        else:
            text = (
                f"{option} has no option under these targets' constraints (filtered out before "
                f"comparison, e.g. by device, engines or families). {plan.summary}"
            )
        return RejectionExplanation(
            option=option,
            chosen=bool(deployed),
            explanation=text,
            rejections=matching,
            binding_constraints=plan.binding_constraints,
            relaxations=plan.relaxations,
        )

    def report(
        self, targets: Targets | Mapping[str, Any] | None = None, *, plan_id: str | None = None
    ) -> ReportDocument:
        """The capacity report for targets, or for a stored plan's targets."""
        from quantplan.service_models import ReportDocument, RequestError

        if (targets is None) == (plan_id is None):
            raise RequestError("give targets or a plan id, not both or neither", code="bad_request")
        wanted = self.plans.get(plan_id).targets if plan_id else targets_from(targets or {})
        html, markdown = self.planner.render_report(wanted, self.catalog.load())
        return ReportDocument(plan_id=plan_id, markdown=markdown, html=html)

    def fleet_report(self) -> FleetReport:
        return self.fleet.report()

    def apply(self, plan_id: str, confirm: str) -> ChangeOutcome:
        """Apply a stored plan; ``confirm`` must repeat its model name."""
        from quantplan.service_models import ChangeOutcome

        plan = self.plans.get(plan_id)
        _confirmed(confirm, plan.model, "apply")
        return ChangeOutcome(action="apply", outcome=self.apply_service.apply(plan))

    def destroy(self, name: str | None, confirm: str) -> ChangeOutcome:
        """Stop a deployment's replicas (``name`` None: all); ``confirm`` repeats the name
        (``all`` for every deployment)."""
        from quantplan.service_models import ChangeOutcome

        _confirmed(confirm, name or "all", "destroy")
        stopped = self.apply_service.destroy(name)
        return ChangeOutcome(
            action="destroy", outcome=f"stopped {len(stopped)} replica(s)", replicas=tuple(stopped)
        )


def _confirmed(confirm: str, expected: str, action: str) -> None:
    from quantplan.service_models import RequestError

    if confirm != expected:
        raise RequestError(
            f"{action} not confirmed: confirm must be {expected!r}",
            code="confirmation_required",
            field="confirm",
            hint=f"repeat {expected!r} as confirm to {action}; nothing was changed",
        )
