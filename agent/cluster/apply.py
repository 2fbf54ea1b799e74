"""``quantplan apply``: make a Ray cluster run a plan, measure it, and close the loop.

1. check the plan before anything moves: first against the catalog and this agent (pure, no
   Ray), then with a read-only look at the cluster's alive nodes; refuse with every reason.
   ``--dry-run`` stops here with the diff: no collector, no agents, no events;
2. quantize each new artifact once, on a matching node, into the shared artifact store; only
   then stop the replicas a changed plan no longer wants;
3. start the replicas on distinct matching nodes (each node stands for one instance) and wait for
   health; the node agents own the engine servers. A replica that cannot start (its node lost,
   its engine failing) is recorded as failed -- in the deployment state, which ``status`` and
   ``destroy`` read, and as a failed run in the catalog -- beside the ones that did start;
4. benchmark every replica with the shared protocol; reports go through the collector;
5. cost per token per replica, node and plan; compare with the plan's predictions and, when off
   by more than the threshold, re-plan with the new measurements and propose (or apply) it.
Applying the same plan again changes nothing; a changed plan is reconciled after its diff.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from quantplan import __version__
from quantplan.agent.cluster import deployment_state as states
from quantplan.agent.cluster.events import CostEvent, PlanEvent, ReplicaEvent
from quantplan.agent.cluster.measure import (
    CostLine,
    MetricComparison,
    PointEstimate,
    ReplicaMeasurement,
    compare,
    cost_by_node,
    cost_line,
    estimate_measured_point,
)
from quantplan.agent.cluster.replan import ReplanProposal, misses, propose_replan
from quantplan.agent.cluster.replicas import healthy_replicas, stop_replica
from quantplan.agent.cluster.validation import (
    PlanDoesNotMatchCatalogError,
    PlanRefusedError,
    alive_node_offers,
    built_toolchains,
    catalog_refusals,
    cluster_refusals,
    toolchain_refusals,
)
from quantplan.errors import QuantplanError
from quantplan.planner.plan import Deployment, Plan, load_plan

if TYPE_CHECKING:
    from quantplan.agent.cluster.node_agent import AgentRef


CPU_BENCH_CONCURRENCY = 4
"""A CPU replica's benchmark concurrency unless told otherwise: a local cluster's nodes share
this machine's cores, so a CPU replica planned for 32 requests would be measured on cores it
does not own. A GPU replica owns its GPUs and is measured at the plan's own operating point."""


def bench_concurrency(deployment: Deployment, cap: int | None = None) -> int:
    """Requests in flight while benchmarking a replica of ``deployment``: the plan's operating
    concurrency, at most ``cap`` (default: :data:`CPU_BENCH_CONCURRENCY` on CPU replicas)."""
    planned = deployment.metrics.concurrency
    if cap is None:
        cap = planned if deployment.accelerator_count else CPU_BENCH_CONCURRENCY
    return max(1, min(planned, cap))


class ApplyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="Deployment name (default: the model)")
    database_url: str | None = None
    store_url: str | None = Field(default=None, description="Shared artifact store")
    model_dir: str | None = Field(default=None, description="Checkpoint of a non-default model")
    benchmark: bool = True
    max_bench_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Requests in flight per replica benchmark, at most; None: bench_concurrency",
    )
    bench_requests: int = Field(default=8, ge=1)
    max_bench_input_tokens: int = Field(default=128, ge=1)
    max_bench_output_tokens: int = Field(default=64, ge=1)
    replan_threshold_pct: float = Field(default=25.0, gt=0)
    auto_replan: bool = False
    dry_run: bool = False
    startup_timeout_s: float = Field(default=300.0, gt=0)


class ApplyOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    status: str = Field(description="applied, unchanged or dry_run")
    cluster: str = Field(default="", description="The Ray cluster applied to, in words")
    diff: list[str] = Field(default_factory=list)
    endpoints: dict[str, str] = Field(default_factory=dict, description="replica id -> base URL")
    measurements: list[ReplicaMeasurement] = Field(default_factory=list)
    node_costs: list[CostLine] = Field(default_factory=list)
    plan_cost: CostLine | None = None
    comparisons: list[MetricComparison] = Field(default_factory=list)
    replan: ReplanProposal | None = None
    timings: dict[str, float] = Field(default_factory=dict)

    def __str__(self) -> str:
        cost = self.plan_cost.usd_per_million_tokens if self.plan_cost else None
        tail = f", ${cost:.4f}/M tokens" if cost is not None else ""
        return f"{self.name}: {self.status}, {len(self.endpoints)} replica(s){tail}"


class _Applier:
    """Applies a plan that passed both checks of :func:`apply_plan` (never call it first)."""

    def __init__(
        self,
        plan: Plan,
        options: ApplyOptions,
        database_url: str,
        started: float | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        from quantplan.agent.cluster.collector_actor import CollectorClient, start_collector

        # Timings count from the user's call: connecting and starting the collector are ours too.
        self.started = started if started is not None else time.perf_counter()
        self.plan = plan
        self.options = options
        self.name = options.name or plan.model
        self.database_url = database_url
        self.client = CollectorClient(start_collector(self.database_url))
        _check_collector_database(self.client, self.database_url)
        self.plan_id = states.plan_hash(plan)
        self.timings: dict[str, float] = {}
        self.on_progress = on_progress

    def event(self, state: str, reasons: tuple[str, ...] = (), detail: str = "") -> None:
        self.client.publish(
            PlanEvent(plan_id=self.name, state=state, reasons=reasons, detail=detail)
        )
        self.progress(state.replace("_", " ") + (f": {detail}" if detail else ""))

    def progress(self, line: str) -> None:
        if self.on_progress is not None:
            self.on_progress(line)

    def run(self) -> ApplyOutcome:
        from quantplan.agent.cluster.node_agent import start_node_agents

        agents = start_node_agents()
        # A node may have gone between the read-only look and now: its agent does not answer.
        reasons = cluster_refusals(self.plan, [agent.offer for agent in agents])
        if reasons:
            self.event("refused", tuple(reasons))
            raise PlanRefusedError(reasons)
        state = states.load_state(self.name)
        wanted = states.replica_specs(self.plan, self.name)
        plan_diff = states.diff(wanted, state, healthy_replicas(state))
        outcome = ApplyOutcome(name=self.name, status="applied", diff=plan_diff.describe())
        if plan_diff.unchanged and state is not None and state.plan_hash == self.plan_id:
            outcome.status = "unchanged"
            outcome.endpoints = {rid: r.base_url for rid, r in state.replicas.items()}
            self.event("running", detail="unchanged")
            return outcome
        state = state or states.DeploymentState(name=self.name, plan_hash=self.plan_id)
        self._forget_failed(state, {spec.replica_id for spec in wanted})
        # Quantizing can fail or take an hour: the replicas a changed plan drops keep serving
        # until the new artifacts exist.
        self.event("quantizing")
        artifacts = self._artifacts(plan_diff.add, agents)
        self._stop(state, plan_diff.remove)
        self.event("deploying")
        self._start(state, plan_diff.add, artifacts, agents)
        state.plan_hash = self.plan_id
        states.save_state(state)
        outcome.endpoints = {rid: r.base_url for rid, r in state.replicas.items()}
        if self.options.benchmark:
            self.event("benchmarking")
            self._measure(state, outcome)
        self.timings["total_s"] = time.perf_counter() - self.started
        outcome.timings = self.timings
        self.event("running")
        return outcome

    # -- steps -----------------------------------------------------------------------------

    def _stop(self, state: states.DeploymentState, replica_ids: tuple[str, ...]) -> None:
        for replica_id in replica_ids:
            record = state.replicas.pop(replica_id)
            stop_replica(record)
            states.save_state(state)
            self.client.publish(
                ReplicaEvent(
                    plan_id=self.name,
                    replica_id=replica_id,
                    engine=record.spec.engine,
                    scheme=record.spec.scheme,
                    node_id=record.node_id,
                    instance_type=record.spec.instance_type,
                    state="stopped",
                )
            )

    def _forget_failed(self, state: states.DeploymentState, wanted: set[str]) -> None:
        """Replicas that failed under an earlier plan and this one no longer wants: stop any
        engine they left (noted by their agent) and drop them from the state."""
        from quantplan.agent.cluster.replicas import stop_noted_servers

        gone = [replica_id for replica_id in state.failed if replica_id not in wanted]
        if gone:
            stop_noted_servers(replica_ids=set(gone))
            for replica_id in gone:
                del state.failed[replica_id]
            states.save_state(state)

    def _artifacts(
        self, specs: tuple[states.ReplicaSpec, ...], agents: list[AgentRef]
    ) -> dict[str, tuple[str, str | None]]:
        """scheme -> (path as the quantizing node saw it, artifact id; None for the base
        checkpoint). Each artifact is made once, on a GPU node when the cluster has one and the
        method has a CUDA build; replicas pull it from the store by id."""
        from quantplan.agent.cluster.jobs import QuantizeJob, quantize_options_for_scheme
        from quantplan.agent.cluster.quantize_placement import place_quantize
        from quantplan.agent.cluster.scheduler import run_job

        paths: dict[str, tuple[str, str | None]] = {}
        started = time.perf_counter()
        for spec in specs:
            if spec.scheme in paths:
                continue  # quantize once, share the artifact
            if spec.method == "baseline":
                paths[spec.scheme] = (self._base_checkpoint(), None)
                continue
            request = quantize_options_for_scheme(spec.method, spec.scheme)
            types = {s.instance_type for s in specs if s.scheme == spec.scheme}
            placement = place_quantize(spec.method, types, [agent.offer for agent in agents])
            self.progress(f"quantizing: {placement.reason}")
            job = QuantizeJob(
                job_id=f"quantize-{self.name}-{spec.scheme}-{uuid.uuid4().hex[:8]}",
                model=self.options.model_dir or "default",
                method=spec.method,
                options=request,
                store_url=self.options.store_url,
                gpus=placement.gpus,
            )
            # Nodes of those types without the GPUs (none on a real cluster) never get the job.
            without = {a.node_id for a in agents if a.offer.gpus < placement.gpus}
            result = run_job(
                job,
                instance_types=placement.instance_types,
                exclude_nodes=without,
                collector=self.client,
                timeout_s=3600,
            )
            if result.status != "succeeded":
                self.event("failed", (result.detail,))
                raise QuantplanError(f"quantizing {spec.scheme} failed: {result.detail}")
            main = result.payload.get("main_file")
            path = Path(result.payload["path"])
            artifact_id = str(result.payload["artifact_id"])
            paths[spec.scheme] = (str(path / main) if main else str(path), artifact_id)
        self.timings["artifacts_s"] = time.perf_counter() - started
        return paths

    def _base_checkpoint(self) -> str:
        from quantplan.agent.model_source import resolve_model

        return str(resolve_model(self.options.model_dir or "default").path)

    def _start(
        self,
        state: states.DeploymentState,
        specs: tuple[states.ReplicaSpec, ...],
        artifacts: dict[str, tuple[str, str | None]],
        agents: list[AgentRef],
    ) -> None:
        """Start ``specs`` side by side; every outcome, started or failed, lands in ``state``
        (saved) before this returns or raises, so ``status`` and ``destroy`` see them all."""
        # A node holds replicas_per_instance replicas (GPU subsets of a multi-GPU instance; one
        # on a CPU instance); Ray gives each its own GPUs there.
        held = Counter(record.node_id for record in state.replicas.values())
        placements = []
        for spec in specs:
            state.failed.pop(spec.replica_id, None)  # tried again now
            free = [a for a in agents if a.instance_type == spec.instance_type]
            free = [a for a in free if held[a.node_id] < spec.replicas_per_instance]
            node = free[0].node_id if free else None
            if node is not None:
                held[node] += 1
            placements.append((spec, node))
        # Each replica may only move to a node no other replica of this apply was given.
        busy = set(held)
        given = {node for _, node in placements if node is not None} | busy
        with ThreadPoolExecutor(max_workers=max(1, len(placements))) as pool:
            futures = {
                spec.replica_id: pool.submit(
                    self._start_one, spec, node, artifacts[spec.scheme], given - {node}
                )
                for spec, node in placements
            }
            failures: list[str] = []
            for spec, node in placements:
                try:
                    record = futures[spec.replica_id].result()
                    state.replicas[record.spec.replica_id] = record
                except ReplicaStartError as error:
                    state.failed[spec.replica_id] = error.failure
                    failures.append(error.failure.reason)
                except Exception as error:  # anything else still must not lose the others
                    failure = states.ReplicaFailure(
                        spec=spec, node_id=node, reason=f"{spec.replica_id}: {_one_line(error)}"
                    )
                    state.failed[spec.replica_id] = failure
                    failures.append(failure.reason)
        states.save_state(state)
        if failures:
            self.event("failed", tuple(failures))
            raise QuantplanError(
                f"{len(failures)} of {len(specs)} replica(s) did not start: " + "; ".join(failures),
                hint="the others keep running (see `quantplan status`); apply again to retry, "
                "or `quantplan destroy` to stop them",
            )

    def _start_one(
        self,
        spec: states.ReplicaSpec,
        node: str | None,
        artifact: tuple[str, str | None],
        taken: set[str],
    ) -> states.ReplicaRecord:
        from quantplan.agent.cluster.jobs import ServeJob
        from quantplan.agent.cluster.scheduler import NodeLostError, run_job

        def replica_event(state: str, **fields: object) -> None:
            self.client.publish(
                ReplicaEvent(
                    plan_id=self.name,
                    replica_id=spec.replica_id,
                    engine=spec.engine,
                    scheme=spec.scheme,
                    instance_type=spec.instance_type,
                    state=state,
                    **fields,
                )
            )

        replica_event("starting", node_id=node)
        job = ServeJob(
            job_id=f"serve-{spec.replica_id}-{uuid.uuid4().hex[:8]}",
            replica_id=spec.replica_id,
            engine=spec.engine,
            artifact_path=artifact[0],
            artifact_id=artifact[1],
            store_url=self.options.store_url if artifact[1] else None,
            startup_timeout_s=self.options.startup_timeout_s,
            **states.serve_shape(spec),
        )
        started = datetime.now(UTC)
        try:
            result = run_job(
                job,
                instance_types={spec.instance_type},
                prefer_node=node,
                exclude_nodes=taken,
                collector=self.client,
            )
        except NodeLostError as error:
            lost = ", ".join(n[:12] for n in error.lost_nodes)
            reason = (
                f"{spec.replica_id}: node {lost} ({spec.instance_type}) was lost while it "
                "started, and no free node of that type is left"
            )
            self._failed_run(job.job_id, started, spec, "interrupted", reason)
            replica_event("failed", node_id=error.lost_nodes[-1], detail=reason[:300])
            failure = states.ReplicaFailure(spec=spec, node_id=error.lost_nodes[-1], reason=reason)
            raise ReplicaStartError(failure) from None
        except QuantplanError as error:
            reason = f"{spec.replica_id}: {_one_line(error)}"
            self._failed_run(job.job_id, started, spec, "internal", reason)
            replica_event("failed", node_id=node, detail=reason[:300])
            raise ReplicaStartError(
                states.ReplicaFailure(spec=spec, node_id=node, reason=reason)
            ) from None
        if result.status != "succeeded":
            reason = f"{spec.replica_id} on node {result.node_id[:12]}: {_one_line(result.detail)}"
            kind = str(result.payload.get("error_kind") or "engine_died")
            self._failed_run(job.job_id, started, spec, kind, result.detail or reason)
            replica_event("failed", node_id=result.node_id, detail=result.detail[:300])
            raise ReplicaStartError(
                states.ReplicaFailure(spec=spec, node_id=result.node_id, reason=reason)
            )
        payload = result.payload
        healthy_at = time.perf_counter() - self.started
        if "first_healthy_s" not in self.timings:
            self.timings["first_healthy_s"] = healthy_at
            self.timings["first_engine_start_s"] = float(payload.get("startup_s") or 0.0)
        replica_event("healthy", node_id=result.node_id, endpoint=payload["base_url"])
        self.progress(f"deploying: {spec.replica_id} healthy at {payload['base_url']}")
        return states.ReplicaRecord(
            spec=spec,
            node_id=result.node_id,
            base_url=payload["base_url"],
            served_model=payload["served_model"],
            pid=int(payload["pid"]),
            artifact_path=artifact[0],
            ignore_eos_body=payload.get("ignore_eos_body") or {},
        )

    def _failed_run(
        self,
        run_id: str,
        started: datetime,
        spec: states.ReplicaSpec,
        error_kind: str,
        message: str,
    ) -> None:
        """Record a replica that did not start as a failed serve run in the catalog."""
        from quantplan.catalog.reports import ErrorKind, MeasurementReport, RunInfo

        kinds = ErrorKind.__args__  # type: ignore[attr-defined]
        report = MeasurementReport(
            run=RunInfo(
                run_id=run_id,
                kind="serve",
                status="failed",
                started_at=started,
                hardware=f"{spec.instance_type} node (replica {spec.replica_id})"[:200],
                tool_versions={"quantplan": __version__},
                error_kind=error_kind if error_kind in kinds else "internal",
                error_message=message[:2000],
            )
        )
        try:
            self.client.submit([report], timeout_s=30)
        except Exception as error:  # the failure itself is already on its way to the user
            self.progress(f"could not record the failed run {run_id}: {_one_line(error)}")

    def _measure(self, state: states.DeploymentState, outcome: ApplyOutcome) -> None:
        from quantplan.agent.cluster.jobs import BenchmarkJob
        from quantplan.agent.cluster.scheduler import run_job

        workload = self.plan.targets.workload
        measurements: list[ReplicaMeasurement] = []
        # One replica at a time: benchmarks sharing this machine's cores would disturb each other.
        for record in state.replicas.values():
            deployment = self.plan.fleet[record.spec.deployment_index]
            concurrency = bench_concurrency(deployment, self.options.max_bench_concurrency)
            job = BenchmarkJob(
                job_id=f"bench-{record.spec.replica_id}-{uuid.uuid4().hex[:8]}",
                base_url=record.base_url,
                served_model=record.served_model,
                model=record.spec.model,
                scheme=record.spec.scheme,
                engine=record.spec.engine,
                hardware=deployment.hardware,
                instance=record.spec.instance,
                usd_per_hour=record.spec.usd_per_hour,
                concurrencies=(concurrency,),
                input_tokens=min(workload.input_tokens, self.options.max_bench_input_tokens),
                output_tokens=min(workload.output_tokens, self.options.max_bench_output_tokens),
                num_requests=max(self.options.bench_requests, concurrency * 2),
                replica_id=record.spec.replica_id,
                ignore_eos_body=record.ignore_eos_body,
                gpus=record.spec.accelerators,
            )
            result = run_job(
                job,
                instance_types={record.spec.instance_type},
                prefer_node=record.node_id,
                collector=self.client,
            )
            if result.status != "succeeded":
                raise QuantplanError(f"benchmark of {record.spec.replica_id}: {result.detail}")
            p = result.payload
            measurement = ReplicaMeasurement(
                replica_id=record.spec.replica_id,
                node_id=record.node_id,
                instance_type=record.spec.instance_type,
                scheme=record.spec.scheme,
                engine=record.spec.engine,
                usd_per_hour=record.spec.usd_per_hour,
                concurrency=int(p.get("concurrency") or concurrency),
                output_tokens_per_s=float(p["output_tokens_per_s"]),
                total_tokens_per_s=float(p["total_tokens_per_s"]),
                ttft_p95_ms=p.get("ttft_p95_ms"),
                itl_p95_ms=p.get("itl_p95_ms"),
                run_id=job.job_id,
            )
            measurements.append(measurement)
            self._cost_event(
                "replica",
                measurement.replica_id,
                cost_line("r", [measurement]),
                replica=measurement,
                predicted_ttft_p95_ms=deployment.metrics.ttft_p95_ms.value,
            )
        outcome.measurements = measurements
        outcome.node_costs = cost_by_node(measurements)
        outcome.plan_cost = cost_line(self.name, measurements)
        for line in outcome.node_costs:
            self._cost_event("node", line.key, line)
        predicted = self.plan.fleet_usd_per_month
        self._cost_event("plan", self.name, outcome.plan_cost, predicted_plan=predicted)
        estimates = self._estimates_at_measured_points(measurements)
        for index, deployment in enumerate(self.plan.fleet):
            mine = [
                m
                for m in measurements
                if state.replicas[m.replica_id].spec.deployment_index == index
            ]
            outcome.comparisons.extend(compare(deployment, mine, estimates))
        outcome.replan = self._maybe_replan(outcome.comparisons)

    def _wait_for_collector(self, timeout_s: float = 60) -> None:
        """The collector writes asynchronously: wait until this apply's reports are in."""
        deadline = time.monotonic() + timeout_s
        while self.client.stats().pending and time.monotonic() < deadline:
            time.sleep(0.2)

    def _estimates_at_measured_points(
        self, measurements: list[ReplicaMeasurement]
    ) -> dict[str, PointEstimate]:
        """The model's estimate for each benchmarked point, from the catalog without this
        apply's runs (measure.py says why); empty when the catalog cannot be read, and the
        comparison then falls back to the plan's own figures."""
        from quantplan.catalog.db import open_catalog
        from quantplan.catalog.snapshot import load_snapshot

        if not measurements:
            return {}
        self._wait_for_collector()
        try:
            snapshot = load_snapshot(open_catalog(self.database_url))
        except Exception as error:  # a comparison, not the apply: say so and go on
            self.progress(f"estimates at the benchmarked points unavailable: {_one_line(error)}")
            return {}
        runs = {m.run_id for m in measurements}
        found = {
            m.run_id: estimate_measured_point(m.run_id, m.concurrency, snapshot, runs)
            for m in measurements
        }
        return {run: estimate for run, estimate in found.items() if estimate is not None}

    def _cost_event(
        self,
        scope: str,
        key: str,
        line: CostLine,
        predicted_plan: float | None = None,
        *,
        replica: ReplicaMeasurement | None = None,
        predicted_ttft_p95_ms: float | None = None,
    ) -> None:
        """Publish one cost line; a replica's also carries its measured and planned latency.

        Latency percentiles are only published per replica: a p95 of a node or a plan is not
        derivable from the replicas' p95s, and a made-up aggregate would mislead.
        """
        predicted = None
        if scope == "plan" and self.plan.choice is not None:
            predicted = self.plan.choice.usd_per_million_tokens
        self.client.publish(
            CostEvent(
                scope=scope,
                key=key,
                plan_id=self.name,
                output_tokens_per_s=line.output_tokens_per_s,
                total_tokens_per_s=line.total_tokens_per_s,
                usd_per_hour=line.usd_per_hour,
                usd_per_million_output_tokens=line.usd_per_million_output_tokens,
                usd_per_million_tokens=line.usd_per_million_tokens,
                predicted_usd_per_million_tokens=predicted,
                ttft_p95_ms=replica.ttft_p95_ms if replica else None,
                itl_p95_ms=replica.itl_p95_ms if replica else None,
                predicted_ttft_p95_ms=predicted_ttft_p95_ms,
            )
        )

    def _maybe_replan(self, comparisons: list[MetricComparison]) -> ReplanProposal | None:
        missed = misses(comparisons, self.options.replan_threshold_pct)
        if not missed:
            return None
        self._wait_for_collector()
        proposal, new_plan = propose_replan(self.plan, missed, self.database_url, self.name)
        if new_plan is None:
            return proposal
        self.event("replan_proposed", (proposal.reason,), detail=" + ".join(proposal.proposed))
        if self.options.auto_replan:
            options = self.options.model_copy(update={"auto_replan": False})
            apply_plan(new_plan, options=options, on_progress=self.on_progress)
            proposal = proposal.model_copy(update={"applied": True})
        return proposal


def _check_collector_database(client: object, database_url: str) -> None:
    """The cluster's collector may have been started for another catalog: say so, do not mix."""
    from quantplan.agent.cluster.collector import _redact

    running = client.stats().database_url  # type: ignore[attr-defined]
    if running != _redact(database_url):
        raise QuantplanError(
            f"this cluster's collector writes to {running}, not to {_redact(database_url)}",
            hint="apply with the same --db as before, or restart the cluster "
            "(`quantplan cluster down` / `up`) to switch catalogs",
        )


def apply_plan(
    plan: Plan | str | Path,
    *,
    address: str = "auto",
    options: ApplyOptions | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ApplyOutcome:
    """Apply ``plan`` (a Plan or a plan file) to the cluster at ``address``; ``on_progress``
    hears each stage (validating, quantizing, deploying, benchmarking, ...) as it begins.

    Nothing moves before the plan passed both checks; a dry run moves nothing at all.
    """
    from quantplan.catalog.db import open_catalog, resolve_database_url
    from quantplan.catalog.snapshot import load_snapshot

    started = time.perf_counter()
    options = options or ApplyOptions()
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    if on_progress is not None:
        on_progress("validating")
    database_url = resolve_database_url(options.database_url)
    snapshot = load_snapshot(open_catalog(database_url))
    reasons = catalog_refusals(plan, snapshot, model_dir=options.model_dir)
    if reasons:  # refused before Ray is even imported
        raise PlanDoesNotMatchCatalogError(reasons)
    name = options.name or plan.model
    cluster = attach(address)
    reasons = cluster_refusals(plan, alive_node_offers())
    reasons += toolchain_refusals(plan, built_toolchains())
    if reasons:
        if not options.dry_run:
            _publish_if_collector(PlanEvent(plan_id=name, state="refused", reasons=tuple(reasons)))
        raise PlanRefusedError(reasons)
    if options.dry_run:
        state = states.load_state(name)
        wanted = states.replica_specs(plan, name)
        plan_diff = states.diff(wanted, state, healthy_replicas(state))
        return ApplyOutcome(name=name, status="dry_run", diff=plan_diff.describe(), cluster=cluster)
    outcome = _Applier(plan, options, database_url, started, on_progress).run()
    outcome.cluster = cluster
    return outcome


def attach(address: str) -> str:
    from quantplan.agent.cluster.local import attach as attach_to_cluster

    return attach_to_cluster(address)


def _publish_if_collector(event: PlanEvent) -> None:
    """Tell a dashboard about a refusal through the cluster's collector, if it has one; a
    refusal never starts one."""
    from quantplan.agent.cluster.collector_actor import CollectorClient, NoCollectorError

    with contextlib.suppress(NoCollectorError):
        CollectorClient().publish(event)


class ReplicaStartError(QuantplanError):
    """One replica did not start; ``failure`` is what the deployment state records."""

    def __init__(self, failure: states.ReplicaFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def _one_line(error: object) -> str:
    """An error's first line (engine failures carry their log's tail below it)."""
    text = error.message if isinstance(error, QuantplanError) else str(error)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    return first if len(first) <= 300 else first[:297] + "..."
