"""``quantplan cluster endpoint``: serve a plan's fleet behind one OpenAI endpoint on Ray Serve.

The plan becomes one Serve application (:mod:`quantplan.agent.cluster.endpoint_app`): one
Serve deployment per plan line whose replicas each own an engine server, behind HAProxy
(Serve's proxy). A plan of several lines also has an ingress on the head node that spreads
requests over the lines; a plan of one line is answered by its engine replicas themselves,
one hop fewer (``--always-ingress`` keeps the ingress). This module turns the plan into that
application (checked as ``apply`` checks it, artifacts resolved), runs it, and takes it down
again.

Checks before anything starts, each refused in one line: the plan against the catalog; alive
nodes of every instance type (with the GPUs a GPU line needs, of its type) and the engines'
toolchains built; the port free. A GPU line's replica actors hold their GPUs from Ray, and
their engines are the CUDA builds ``apply`` starts on exactly those GPUs. Artifacts: the base
checkpoint, or a quantized artifact from the content-addressed store, made once on this machine
by the quantize API when the store lacks it (``apply`` makes the same artifact, so one made
there is reused here).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.cluster.naming import NodeOffer
from quantplan.errors import QuantplanError
from quantplan.planner.plan import Plan, load_plan

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def haproxy_dir(app: str) -> Path:
    """HAProxy's configuration, socket and state of ``app``'s endpoint. Short: Serve adds a
    56-character node id below it, and HAProxy refuses a socket path over 97 characters."""
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"qph-{digest}"


def router_env(app: str) -> dict[str, str]:
    """Serve's settings for a shorter request path, in every Serve process's environment.

    HAProxy in place of Serve's Python proxy, forwarding straight to the ingress replica's own
    HTTP port (Serve's "direct ingress"), and gRPC for the ingress's calls to the engine
    replicas. On this project's 2-core machine a bare two-deployment Serve app answered in
    2.6 ms instead of 9.4 through the proxy and ingress, and 6.8 instead of 17 ms with the
    handle call (bench/results/fleet.md). HAProxy's files live per application, so two
    endpoints on one host do not share them. A stopping ingress replica drains for 2 s, not
    Serve's 30 (meant for load balancers in front of many nodes): SIGTERM stops the endpoint
    in seconds.
    """
    state = haproxy_dir(app)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{state}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{state}/admin.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{state}/server-state",
    }


class EndpointOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="Serve application name (default: model)")
    host: str = Field(default="127.0.0.1", description="Where Serve's HTTP proxy listens")
    port: int = Field(default=8000, ge=1, le=65535)
    api_key: str | None = Field(default=None, repr=False, description="Bearer token to require")
    database_url: str | None = None
    store_url: str | None = Field(default=None, description="Artifact store (path or URL)")
    model_dir: str | None = Field(default=None, description="Checkpoint of a non-default model")
    startup_timeout_s: float = Field(default=300.0, gt=0)
    update_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="How long a changed plan's new replicas may take to run before the change "
        "counts as failed (replicas no node can take wait forever otherwise)",
    )
    traffic_window_s: float = Field(
        default=10.0, gt=0, description="Seconds of live traffic summed into one cost event"
    )
    scale_with_load: bool = Field(
        default=True,
        description="Lines scale between the plan's min_replicas and replicas on their load "
        "(False, or a plan without min_replicas: the plan's replicas throughout)",
    )
    scale_up_after_s: float = Field(default=10.0, gt=0, description="Load over target this long")
    scale_down_after_s: float = Field(
        default=300.0, gt=0, description="Load under target this long"
    )
    always_ingress: bool = Field(
        default=False,
        description="An ingress in front of a plan of one line too (by default its engine "
        "replicas answer the endpoint themselves, one hop fewer)",
    )
    surge_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="A changed line's new replicas that may start beside its old ones, in % of "
        "its replicas (None: as many as the spare nodes of its type hold; 0: an old replica "
        "stops before its new one starts)",
    )


class FleetEndpoint(BaseModel):
    """A running endpoint: where it answers and what it serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_name: str
    url: str
    model: str
    deployments: dict[str, str] = Field(
        description="Serve deployment -> what it runs: planned capacity, replicas (and the "
        "range it scales in)"
    )
    engines_answer: bool = Field(
        default=False,
        description="The plan line's replicas answer the endpoint themselves (no ingress)",
    )


def app_name_for(plan: Plan, options: EndpointOptions) -> str:
    return _slug(options.name or plan.model)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "fleet"


def engines_answer(plan: Plan, options: EndpointOptions) -> bool:
    """Whether the plan's engine replicas answer the endpoint themselves (one line, nothing to
    pick between) or an ingress picks a line per request (build_application)."""
    return len(plan.fleet) == 1 and not options.always_ingress


def line_names(plan: Plan, options: EndpointOptions) -> list[str]:
    """Each plan line's Serve deployment name: what it runs (scheme, engine, instance type),
    not its place in the plan, so a line that a changed plan keeps keeps its name, and with it
    its running replicas, when lines are added or dropped around it. A second line of the same
    kind (say spot beside on-demand) is numbered in plan order.

    A line that answers the endpoint itself is named apart (``-direct``): Serve cannot turn a
    deployment that takes the endpoint's requests from its proxy into one called only by the
    ingress in place (requests hung during such a change), so a change between one line and
    several replaces the kept line, its new replicas up before the old ones stop."""
    seen: Counter[str] = Counter()
    suffix = "-direct" if engines_answer(plan, options) else ""
    names = []
    for deployment in plan.fleet:
        base = _slug(f"{deployment.scheme}-{deployment.engine}-{deployment.instance.name}")
        seen[base] += 1
        names.append((base if seen[base] == 1 else f"{base}-{seen[base]}") + suffix)
    return names


def check_plan(plan: Plan, options: EndpointOptions) -> None:
    """Refuse, with every reason, a plan this endpoint cannot run on the joined cluster."""
    from quantplan.agent.cluster.validation import (
        PlanDoesNotMatchCatalogError,
        PlanRefusedError,
        alive_node_offers,
        built_toolchains,
        catalog_refusals,
        cluster_refusals,
        toolchain_refusals,
    )
    from quantplan.catalog.db import open_catalog, resolve_database_url
    from quantplan.catalog.snapshot import load_snapshot

    snapshot = load_snapshot(open_catalog(resolve_database_url(options.database_url)))
    reasons = catalog_refusals(plan, snapshot, model_dir=options.model_dir)
    if reasons:
        raise PlanDoesNotMatchCatalogError(reasons)
    reasons = cluster_refusals(plan, alive_node_offers())
    reasons += toolchain_refusals(plan, built_toolchains())
    if reasons:
        raise PlanRefusedError(reasons)


def resolve_artifacts(
    plan: Plan, options: EndpointOptions, on_progress: Callable[[str], None] | None = None
) -> dict[str, tuple[str, str | None]]:
    """scheme -> (path, artifact id or None for the base checkpoint)."""
    from quantplan.agent.artifacts import ArtifactStore
    from quantplan.agent.cluster.jobs import quantize_options_for_scheme
    from quantplan.agent.model_source import resolve_model
    from quantplan.agent.quantize.api import quantize

    store = ArtifactStore(options.store_url)
    model = options.model_dir or "default"
    artifacts: dict[str, tuple[str, str | None]] = {}
    for deployment in plan.fleet:
        if deployment.scheme in artifacts:
            continue
        if deployment.method == "baseline":
            artifacts[deployment.scheme] = (str(resolve_model(model).path), None)
            continue
        if on_progress is not None:
            on_progress(f"artifact {deployment.scheme} (made once if the store lacks it)")
        request = quantize_options_for_scheme(deployment.method, deployment.scheme)
        manifest = quantize(model, deployment.method, request, store=store)
        directory = store.local_dir(manifest)
        main = directory / manifest.main_file if manifest.main_file else directory
        artifacts[deployment.scheme] = (str(main), manifest.artifact_id)
    return artifacts


def surge_percents(plan: Plan, offers: list[NodeOffer]) -> list[int]:
    """Per plan line, Serve's ``max_surge_percent``: how many of a changed line's new replicas
    start (and become healthy) before its old ones stop. New replicas need nodes the old ones do
    not hold, so it is what the spare nodes of the line's type hold: alive nodes it may take
    (on-demand lines no spot ones) beyond what the plan needs, shared among the lines of that
    type. With none spare Serve replaces a line a fifth at a time, an old replica first."""
    need: Counter[str] = Counter(d.instance.name for d in plan.fleet for _ in range(d.instances))
    lines: Counter[str] = Counter(d.instance.name for d in plan.fleet)
    percents = []
    for d in plan.fleet:
        usable = sum(
            1
            for offer in offers
            if offer.instance_type == d.instance.name and (d.pricing == "spot" or not offer.spot)
        )
        spare_nodes = max(usable - need[d.instance.name], 0) // lines[d.instance.name]
        surge = min(spare_nodes * d.replicas_per_instance, d.replicas)
        # Serve rounds percent x replicas up: the floor of the share never asks for more.
        percents.append(min(100, 100 * surge // d.replicas) if surge else 0)
    return percents


class FleetLine(BaseModel):
    """One plan deployment as a Serve deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    config: Any = Field(description="EngineReplicaConfig of its replicas")
    route: Any = Field(description="Route: its name and planned capacity")
    replicas: int = Field(ge=1)
    replicas_per_instance: int = Field(ge=1)
    concurrency: int = Field(ge=1, description="Requests one replica takes at once (planned)")
    min_replicas: int | None = Field(default=None, ge=1, description="The plan's floor")
    surge_percent: int = Field(
        default=0, ge=0, le=100, description="New replicas started beside old ones (Serve's %)"
    )


def fleet_lines(
    plan: Plan, options: EndpointOptions, artifacts: dict[str, tuple[str, str | None]]
) -> list[FleetLine]:
    """Per plan deployment: its replicas' engine config (the shape ``apply`` starts them with)
    and its route, weighted by the deployment's planned capacity."""
    from quantplan.agent.cluster import deployment_state as states
    from quantplan.agent.cluster.endpoint_app import EngineReplicaConfig, Route
    from quantplan.agent.cluster.validation import alive_node_offers
    from quantplan.agent.serve.engine import ServeOptions

    app = app_name_for(plan, options)
    specs = states.replica_specs(plan, app)
    surges = (
        [options.surge_percent] * len(plan.fleet)
        if options.surge_percent is not None
        else surge_percents(plan, alive_node_offers())
    )
    names = line_names(plan, options)
    lines = []
    for index, (deployment, name) in enumerate(zip(plan.fleet, names, strict=True)):
        spec = next(s for s in specs if s.deployment_index == index)
        shape = states.serve_shape(spec)
        path, artifact_id = artifacts[deployment.scheme]
        context = {"max_model_len": int(shape["max_model_len"])} if "max_model_len" in shape else {}
        if "gpu_layers" in shape:
            context["gpu_layers"] = int(shape["gpu_layers"])
        gpu = (
            {
                "gpus": int(shape["gpus"]),
                "accelerator_type": shape.get("accelerator_type"),
                "gpu_memory_fraction": float(shape["gpu_memory_fraction"]),
            }
            if "gpus" in shape
            else {}
        )
        config = EngineReplicaConfig(
            deployment=name,
            engine=deployment.engine,
            instance_type=deployment.instance.name,
            artifact_path=path,
            artifact_id=artifact_id,
            store_url=options.store_url if artifact_id else None,
            options=ServeOptions(
                host="127.0.0.1",
                served_name=plan.model,
                startup_timeout_s=options.startup_timeout_s,
                parallel_slots=int(shape.get("parallel_slots") or 1),
                **context,
            ),
            note_prefix=f"{note_prefix(app)}{name}-",
            plan_id=app,
            scheme=deployment.scheme,
            pricing=deployment.pricing,
            **gpu,
        )
        # A plan line that carries nothing still gets a sliver, so its replicas are used.
        weight = max(deployment.capacity_requests_per_s, 1e-3)
        lines.append(
            FleetLine(
                config=config,
                route=Route(deployment=name, weight=weight),
                replicas=deployment.replicas,
                replicas_per_instance=deployment.replicas_per_instance,
                concurrency=spec.concurrency or 1,
                min_replicas=deployment.min_replicas,
                surge_percent=surges[index],
            )
        )
    return lines


def note_prefix(app: str) -> str:
    """The prefix of the replica notes of ``app``'s engines."""
    from quantplan.agent.cluster.endpoint_app import NOTE_PREFIX

    return f"{NOTE_PREFIX}{app}-"


def build_application(
    plan: Plan, options: EndpointOptions, artifacts: dict[str, tuple[str, str | None]]
) -> tuple[Any, dict[str, str]]:
    """The Serve application, and what each deployment runs (FleetEndpoint.deployments).

    A plan of several lines gets an ingress that picks a line per request in proportion to its
    planned capacity and meters the whole plan's traffic. A plan of one line has nothing to
    pick between: its engine replicas answer the endpoint themselves (HAProxy spreads requests
    over them, the fewest connections first) and each meters its own share, which the
    collector sums; one hop fewer per request (bench/results/fleet.md). What the ingress adds
    besides is one more try, on another replica, for a request whose replica failed before
    answering: ``always_ingress`` keeps it for a plan of one line too.
    """
    import ray

    from quantplan.agent.cluster.endpoint_app import (
        IngressSettings,
        Scaling,
        api_key_digest,
        engine_deployment,
        fleet_application,
    )
    from quantplan.agent.cluster.gpu_lease import ACCELERATOR_TYPE_SHARE
    from quantplan.agent.cluster.local_host import HEAD_RESOURCE, instance_resource
    from quantplan.agent.cluster.naming import ACCELERATOR_TYPE_PREFIX, market_placement
    from quantplan.agent.cluster.traffic import LinePrice, TrafficConfig

    app = app_name_for(plan, options)
    lines_of_fleet = fleet_lines(plan, options, artifacts)
    traffic = TrafficConfig(
        plan_id=app,
        usd_per_hour=sum(d.usd_per_hour * d.instances for d in plan.fleet),
        predicted_usd_per_million_tokens=(
            plan.choice.usd_per_million_tokens if plan.choice is not None else None
        ),
        window_s=options.traffic_window_s,
        lines={
            line.route.deployment: LinePrice(
                label=f"{deployment.scheme} {deployment.engine} {deployment.instance.name}",
                usd_per_hour=deployment.usd_per_hour * deployment.instances,
                predicted_usd_per_million_tokens=deployment.usd_per_million_tokens,
            )
            for line, deployment in zip(lines_of_fleet, plan.fleet, strict=True)
        },
    )
    # HAProxy reaches the replica that answers the endpoint on a port open on every interface:
    # a loopback endpoint's answers loopback callers only.
    local_only = options.host in LOOPBACK_HOSTS
    answers = engines_answer(plan, options)
    heads = [
        node
        for node in ray.nodes()
        if node.get("Alive") and HEAD_RESOURCE in node.get("Resources", {})
    ]
    engines = []
    for line in lines_of_fleet:
        # One node per replica, as apply places them: a replica takes its share of its node's
        # one unit of instance:<type>. No logical CPUs: the engine's threads are the node's,
        # and Serve's own actors must still fit beside it.
        share = 1 / line.replicas_per_instance
        resources = {instance_resource(line.config.instance_type): share}
        actor_options: dict[str, Any] = {
            "num_cpus": 0,
            "resources": resources,
            "runtime_env": {"env_vars": router_env(app)},
            # Spot lines on spot nodes first, else on-demand ones (the plan's fallback): Serve
            # replaces an interrupted spot node's replica wherever the label rules allow.
            **market_placement(line.config.pricing),
        }
        if line.config.gpus:
            # The replica's actor holds its GPUs, of the plan's type, for as long as it lives:
            # Ray picks free ones and sets its CUDA_VISIBLE_DEVICES, which its engine gets.
            actor_options["num_gpus"] = line.config.gpus
            if line.config.accelerator_type:
                accelerator = ACCELERATOR_TYPE_PREFIX + line.config.accelerator_type
                resources[accelerator] = ACCELERATOR_TYPE_SHARE
        scaling = (
            Scaling(
                min_replicas=line.min_replicas,
                target_ongoing_requests=line.concurrency,
                up_delay_s=options.scale_up_after_s,
                down_delay_s=options.scale_down_after_s,
            )
            if options.scale_with_load and line.min_replicas is not None
            else None
        )
        ingress = (
            IngressSettings(
                model=plan.model,
                api_key_sha256=api_key_digest(options.api_key),
                local_only=local_only,
                proxy_hosts=tuple(str(node["NodeManagerAddress"]) for node in heads),
                traffic=traffic,
            )
            if answers
            else None
        )
        bound = engine_deployment(
            line.config,
            line.replicas,
            actor_options,
            line.concurrency,
            scaling,
            line.surge_percent,
            ingress,
        )
        engines.append((line.route, bound))
    described = {
        line.route.deployment: f"planned {line.route.weight:.2f} req/s, "
        + (
            f"{line.min_replicas}-{line.replicas} replicas with its load "
            f"(target {line.concurrency} in flight per replica)"
            if options.scale_with_load
            and line.min_replicas is not None
            and line.min_replicas < line.replicas
            else f"{line.replicas} replica(s)"
        )
        + (", answering the endpoint itself" if answers else "")
        for line in lines_of_fleet
    }
    if answers:
        return engines[0][1], described
    # The ingress next to Serve's proxy, on the head node, when the head says which it is.
    ingress_options: dict[str, Any] = {
        "num_cpus": 0,
        "runtime_env": {"env_vars": router_env(app)},
    }
    if heads:
        ingress_options["resources"] = {HEAD_RESOURCE: 0.001}
    application = fleet_application(
        plan.model, engines, options.api_key, ingress_options, traffic, local_only=local_only
    )
    return application, described


def start_endpoint(
    plan: Plan | str | Path,
    options: EndpointOptions,
    *,
    address: str = "auto",
    on_progress: Callable[[str], None] | None = None,
) -> FleetEndpoint:
    """Check, build and run the plan's application; returns once every replica is healthy."""
    from ray import serve
    from ray.serve.config import ControllerOptions, HTTPOptions, ProxyLocation

    from quantplan.agent.cluster.local import attach
    from quantplan.agent.serve.manager import port_is_free

    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    progress = on_progress or (lambda line: None)
    progress("validating")
    cluster = attach(address)
    progress(f"joined {cluster}")
    check_plan(plan, options)
    app = app_name_for(plan, options)
    running = _serve_running()
    if not running and not port_is_free(options.host, options.port):
        raise QuantplanError(
            f"port {options.port} on {options.host} is already in use",
            hint="pick another --port, or stop the process that holds it",
        )
    artifacts = resolve_artifacts(plan, options, progress)
    application, described = build_application(plan, options, artifacts)
    # One proxy, on the head node: on a local cluster every node is 127.0.0.1, and a proxy per
    # node would contend for the one port.
    serve.start(
        http_options=HTTPOptions(host=options.host, port=options.port),
        proxy_location=ProxyLocation.HeadOnly,
        controller_options=ControllerOptions(runtime_env={"env_vars": router_env(app)}),
    )
    progress(f"starting {len(described)} deployment(s); engines load now")
    try:
        serve.run(application, name=app, route_prefix="/", blocking=False)
    except BaseException:
        stop_endpoint(app)
        raise
    host = "127.0.0.1" if options.host in ("0.0.0.0", "") else options.host
    return FleetEndpoint(
        app_name=app,
        url=f"http://{host}:{options.port}",
        model=plan.model,
        deployments=described,
        engines_answer=engines_answer(plan, options),
    )


def update_endpoint(
    endpoint: FleetEndpoint,
    plan: Plan | str | Path,
    options: EndpointOptions,
    *,
    on_progress: Callable[[str], None] | None = None,
) -> FleetEndpoint:
    """Roll a running endpoint over to a changed plan of the same model.

    The new plan is checked like a first one and refused whole (the running fleet untouched)
    if anything is wrong with it. Serve then updates the application in place under the same
    name: the replicas of changed lines (and the ingress, whose routes changed) start before
    the old ones stop, so requests keep being answered. Returns once the new fleet serves."""
    from ray import serve

    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    progress = on_progress or (lambda line: None)
    if plan.model != endpoint.model:
        raise QuantplanError(
            f"the changed plan serves {plan.model}, this endpoint {endpoint.model}",
            hint="an endpoint serves one model: start another endpoint (--name, --port) for it",
        )
    options = options.model_copy(update={"name": endpoint.app_name})
    if not endpoint.engines_answer and engines_answer(plan, options):
        # From several lines to one: the ingress stays. Moving the endpoint from the ingress
        # back to the engine replicas would drop the requests in flight at the move (Serve
        # swaps the application's entry), and the ingress costs a few milliseconds a request.
        options = options.model_copy(update={"always_ingress": True})
        progress("one line now: the ingress stays in front of it (no requests dropped)")
    progress("validating the changed plan")
    check_plan(plan, options)
    artifacts = resolve_artifacts(plan, options, progress)
    application, described = build_application(plan, options, artifacts)
    progress(f"rolling over to {len(described)} deployment(s)")
    failed: list[BaseException] = []

    def deploy() -> None:
        try:
            serve.run(application, name=endpoint.app_name, route_prefix="/", blocking=False)
        except BaseException as error:  # Serve reports DEPLOY_FAILED as a RuntimeError
            failed.append(error)

    # serve.run waits for the application to run, with no end if new replicas cannot be
    # placed; a waiter left behind returns once a rollback makes the application run again.
    waiter = threading.Thread(target=deploy, name=f"deploy-{endpoint.app_name}", daemon=True)
    waiter.start()
    waiter.join(options.update_timeout_s)
    if failed:
        raise failed[0]
    if waiter.is_alive():
        raise TimeoutError(
            f"the changed plan's replicas were not all running after {options.update_timeout_s:g} s"
        )
    return endpoint.model_copy(
        update={"deployments": described, "engines_answer": engines_answer(plan, options)}
    )


def plan_watch(path: Path) -> Callable[[], bool]:
    """A check that says whether ``path``'s content changed since the last check (or since
    this was made); an unreadable file is no change (an editor may be writing it)."""

    def digest() -> str | None:
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None

    last = digest()

    def changed() -> bool:
        nonlocal last
        now = digest()
        if now is None or now == last:
            return False
        last = now
        return True

    return changed


def _serve_running() -> bool:
    import ray

    try:
        ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
    except ValueError:
        return False
    return True


def stop_endpoint(app: str, *, shutdown_serve: bool = True) -> list[str]:
    """Delete the application (Serve stops its replicas, each its engine), then stop any engine
    a replica that died hard left behind. Serve itself stops too when nothing else runs on it.
    Returns the replica notes swept."""
    from ray import serve

    from quantplan.agent.cluster.replicas import replicas_dir, stop_noted_servers

    try:
        serve.delete(app)
        if shutdown_serve and not serve.status().applications:
            serve.shutdown()
            shutil.rmtree(haproxy_dir(app), ignore_errors=True)
    finally:
        directory = replicas_dir()
        notes = directory.glob(f"{note_prefix(app)}*.json") if directory.is_dir() else []
        left = {path.stem for path in notes}
        swept = stop_noted_servers(replica_ids=left) if left else []
    return swept


def run_until_signalled(
    app: str,
    on_stop: Callable[[str], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Wait for SIGINT or SIGTERM (what service managers and Ray send), then stop the app;
    ``on_tick`` runs every half second meanwhile (the plan file's watch)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            if on_tick is not None:
                on_tick()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if on_stop is not None:
            on_stop("stopping: deleting the application and its engines")
        started = time.monotonic()
        stop_endpoint(app)
        if on_stop is not None:
            on_stop(f"stopped in {time.monotonic() - started:.1f} s")
