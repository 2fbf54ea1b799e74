"""The Ray Serve application of a plan's fleet: one OpenAI endpoint, one deployment per plan line.

``EngineReplica`` is a Serve replica that owns one engine server process, started by the serve
manager (``agent.serve.manager.start_server``: the same engines, options, health wait and
process group as ``quantplan serve`` and the node agents), and proxies requests to it with
aiohttp (``EngineClient``). Its ``check_health`` fails once the engine is gone, so Serve
replaces the replica (and with it the engine). ``FleetIngress`` answers ``/v1/models``, checks
the API key, and forwards ``/v1/chat/completions`` and ``/v1/completions`` to one plan
deployment, chosen in proportion to its planned capacity; inside a deployment Serve's router
picks the replica with the fewest requests in flight (of two sampled). A request whose replica
fails before the first byte of its answer (the engine refused the connection, the replica died)
is sent once more, to another deployment where the plan has one.

Bodies pass through as bytes. A request without ``"stream": true`` is one call to a replica
and one reply (its answer exists whole before the client sees any of it); a streamed one
passes its server-sent events chunk by chunk.

The ingress also meters what it serves (:mod:`quantplan.agent.cluster.traffic`): each window
of requests becomes a cost event of the plan, published to the cluster's collector, so the
dashboard shows the cost per token of live traffic beside the benchmark's.

A plan of one line has no line to pick: there the engine replicas are the application's
ingress (HAProxy spreads requests over them, the fewest connections first), check each request
as ``FleetIngress`` does and send it straight to their own engine, one Serve hop fewer. Each
meters its own requests over the wall clock's slots and sends the collector its share of each
slot; the collector sums the shares into the same cost events (``TrafficSums``). What such a
plan loses is the ingress's second try on another replica for a request whose replica died
before answering: HAProxy retries only connections that failed before the request was sent.

This module imports Ray Serve: only the endpoint command and Ray's workers import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from quantplan.agent.cluster.events import CostEvent, FleetEvent, ReplicaEvent
from quantplan.agent.cluster.traffic import (
    StreamTally,
    TrafficConfig,
    TrafficMeter,
    TrafficShare,
    cost_event,
    line_cost_events,
    usage_of_body,
)
from quantplan.agent.serve.engine import ServeOptions

logger = logging.getLogger(__name__)

FORWARDED_PATHS = ("/v1/chat/completions", "/v1/completions")
DEPLOYMENT_HEADER = "x-quantplan-deployment"
"""Response header naming the plan deployment that answered (for operators and tests)."""
NOTE_PREFIX = "endpoint-"
"""Replica notes (agent/cluster/replicas.py) of engines that Serve replicas own start with this:
``cluster down`` and the endpoint's own shutdown stop whatever a killed replica left behind."""


class IngressSettings(BaseModel):
    """What the replica answering the endpoint's requests checks, and how it meters them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The one model the endpoint serves")
    api_key_sha256: str | None = Field(
        default=None, description="Digest of the required bearer token (the key never is kept)"
    )
    local_only: bool = Field(
        default=False, description="Answer loopback callers only (an endpoint bound to loopback)"
    )
    proxy_hosts: tuple[str, ...] = Field(
        default=(),
        description="Where HAProxy runs (the head node's address): a local-only endpoint's "
        "replicas on other nodes answer it too",
    )
    traffic: TrafficConfig | None = None


class EngineReplicaConfig(BaseModel):
    """What one Serve replica of a plan deployment starts (JSON into the replica)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: str = Field(description="Serve deployment name, unique in the application")
    engine: str = Field(description="Engine name (agent/serve/registry.py)")
    instance_type: str
    artifact_path: str = Field(description="Model directory or GGUF file (the base checkpoint)")
    artifact_id: str | None = Field(
        default=None, description="A quantized artifact the replica pulls from store_url"
    )
    store_url: str | None = None
    options: ServeOptions
    note_prefix: str = Field(description="Prefix of this replica's server note")
    plan_id: str = Field(description="The Serve application: key of the replica's events")
    scheme: str = Field(description="The plan line's scheme (named in the replica's events)")
    pricing: Literal["on_demand", "spot"] = Field(
        default="on_demand", description="The plan line's market: spot lines fall back to on-demand"
    )
    gpus: int = Field(
        default=0, ge=0, description="GPUs per replica (0: a CPU replica), held by its actor"
    )
    accelerator_type: str | None = Field(default=None, description="Ray accelerator type, e.g. L4")
    gpu_memory_fraction: float = Field(
        default=0.9, gt=0, le=1, description="Share of each GPU's memory the engine may take"
    )
    engine_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Requests sent to the engine at once (the plan's concurrency per replica, "
        "set by engine_deployment); more wait in the replica. None: as many as Serve lets in",
    )


def placement_detail(config: EngineReplicaConfig, labels: Mapping[str, object]) -> str:
    """Where a replica landed, in words its events carry: a spot line's replica on a spot node,
    or on on-demand capacity as the plan's fallback."""
    from quantplan.agent.cluster.naming import is_spot

    if config.pricing != "spot":
        return ""
    if is_spot(labels):
        return f"on a spot {config.instance_type} node"
    return f"spot fallback: on an on-demand {config.instance_type} node (no spot node free)"


class CollectorLink:
    """Fire-and-forget publishing to the cluster's collector, found on first use. Without one
    (a cluster that ``cluster up`` did not start) events are dropped, with one warning, and the
    collector is looked for again a little later."""

    RETRY_S = 30.0

    def __init__(self) -> None:
        self._handle: Any = None
        self._missing_since: float | None = None

    def _collector(self) -> Any:
        if self._handle is None:
            from quantplan.agent.cluster.collector_actor import NoCollectorError, get_collector

            now = time.monotonic()
            if self._missing_since is not None and now - self._missing_since < self.RETRY_S:
                return None
            try:
                self._handle = get_collector()
            except NoCollectorError:
                if self._missing_since is None:
                    logger.warning("no quantplan collector on this cluster: events not reported")
                self._missing_since = now
                return None
        return self._handle

    def publish(self, event: FleetEvent) -> None:
        if (handle := self._collector()) is not None:
            handle.publish.remote(event.model_dump_json())

    def add_traffic(self, share: TrafficShare) -> None:
        """A replica's share of a traffic slot, for the collector to sum with its peers'."""
        if (handle := self._collector()) is not None:
            handle.add_traffic.remote(share.model_dump_json())


KEEPALIVE_S = 2.0
"""Seconds a replica keeps an idle connection to its engine (the engines keep theirs 5 s)."""


class EngineUnavailableError(RuntimeError):
    """The engine refused or dropped the connection before answering: safe to send elsewhere."""


class EngineClient:
    """A replica's HTTP client to its own engine server (aiohttp: about 1.5 ms less a request
    than httpx's async client on this project's 2-core machine, where the endpoint's whole
    overhead is a few ms). Its session is made on first use, in the loop that uses it.

    No read timeout: a long generation streams for as long as it takes; the connect timeout
    bounds how long a dead engine holds a request. At most ``concurrency`` requests reach the
    engine at once, the rest wait for a connection here (as Serve's router holds them where
    the plan has an ingress). An idle connection is dropped before the engines' servers drop
    theirs (5 s, llama-server's and uvicorn's), so a request never goes out on one the engine
    is just closing.
    """

    def __init__(self, base_url: str, concurrency: int | None = None) -> None:
        self.base_url = base_url
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._loop = asyncio.get_running_loop()
            self._session = aiohttp.ClientSession(
                self.base_url,
                connector=aiohttp.TCPConnector(
                    limit=self.concurrency or 0, keepalive_timeout=KEEPALIVE_S
                ),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                auto_decompress=False,  # bodies pass through as the engine sent them
            )
        return self._session

    async def complete(self, path: str, body: bytes) -> dict[str, Any]:
        """A request answered in one piece: the engine's status, content type and body."""
        try:
            async with self._open().post(path, data=body, headers=JSON) as response:
                return {
                    "status": response.status,
                    "content_type": response.headers.get("content-type", "application/json"),
                    "body": await response.read(),
                }
        except aiohttp.ClientError as error:
            # Nothing went to the client yet (the whole answer is read first): safe to resend.
            raise EngineUnavailableError(f"{type(error).__name__}: {error}") from None

    async def forward(self, path: str, body: bytes) -> AsyncIterator[Any]:
        """Yield the engine's status and content type first, then its body's chunks."""
        # A streamed answer's connection is not kept: llama-server may close it once the
        # stream ends, and a request waiting for a connection that took it at once was dropped
        # ("Server disconnected without sending a response", 4 of 143 streams in a row at the
        # benchmark's ramp, two connections kept; none with each stream on its own).
        headers = {**JSON, "connection": "close"}
        try:
            response = await self._open().post(path, data=body, headers=headers)
        except aiohttp.ClientError as error:
            raise EngineUnavailableError(f"{type(error).__name__}: {error}") from None
        try:
            yield {
                "status": response.status,
                "content_type": response.headers.get("content-type", "application/json"),
            }
            async for chunk in response.content.iter_any():
                yield chunk
        finally:
            response.release()

    async def aclose(self) -> None:
        """Close the session, from the loop that uses it."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def close(self) -> None:
        """Close the session in its loop, from any thread (Serve's stop of the replica)."""
        session, loop, self._session = self._session, self._loop, None
        if session is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(session.close(), loop)


JSON = {"content-type": "application/json"}


def _pull_artifact(config: EngineReplicaConfig) -> Path:
    """The artifact the engine loads: a quantized one pulled from the store and checked against
    its manifest (as a node agent's serve job does), else the given path."""
    from quantplan.agent.artifacts import ArtifactStore
    from quantplan.errors import QuantplanError

    if config.artifact_id is None:
        return Path(config.artifact_path)
    store = ArtifactStore(config.store_url)
    manifest = store.get(config.artifact_id)
    if manifest is None:
        raise QuantplanError(f"artifact {config.artifact_id} is not in the store {store.url}")
    directory = store.pull(manifest)
    return directory / manifest.main_file if manifest.main_file else directory


def _gpu_engine(config: EngineReplicaConfig, node_id: str) -> tuple[Any, Any]:
    """The CUDA engine of a GPU line's replica on exactly the GPUs Serve gave this replica's
    actor (Ray set its ``CUDA_VISIBLE_DEVICES``, as it does a node agent's GPU lease), and the
    host as that engine sees it (the node's GPUs, fake ones named so)."""
    import os

    import ray

    from quantplan.agent.cluster.gpu_engines import GpuAssignment, gpu_engine, gpu_host_hardware
    from quantplan.agent.cluster.node_agent import node_accelerators
    from quantplan.agent.serve.host import detect_host

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    devices = tuple(d.strip() for d in visible.split(",") if d.strip())
    if len(devices) != config.gpus:
        raise EngineUnavailableError(
            f"{config.deployment} asked Ray for {config.gpus} GPU(s) and was given "
            f"{visible!r} as CUDA_VISIBLE_DEVICES"
        )
    resources: dict[str, float] = next(
        (n.get("Resources", {}) for n in ray.nodes() if n.get("NodeID") == node_id), {}
    )
    assignment = GpuAssignment(
        visible_devices=devices,
        accelerator_type=config.accelerator_type,
        memory_fraction=config.gpu_memory_fraction,
    )
    hardware = gpu_host_hardware(detect_host(), node_accelerators(resources))
    return gpu_engine(config.engine, assignment), hardware


class EngineReplica:
    """One engine server, owned by this Serve replica for as long as it lives."""

    def __init__(self, config_json: str) -> None:
        import ray

        from quantplan.agent.cluster.node_agent import built_engine
        from quantplan.agent.cluster.replicas import note_server
        from quantplan.agent.cluster.threads import release_ray_thread_cap
        from quantplan.agent.serve import get_engine
        from quantplan.agent.serve.manager import start_server

        release_ray_thread_cap()
        config = EngineReplicaConfig.model_validate_json(config_json)
        context = ray.get_runtime_context()
        node_id = context.get_node_id()
        placement = placement_detail(config, context.get_node_labels())
        replica = serve.get_replica_context().replica_id.unique_id
        self.note_id = f"{config.note_prefix}{replica}"
        self.collector = CollectorLink()
        self.event = ReplicaEvent(
            plan_id=config.plan_id,
            replica_id=self.note_id,
            engine=config.engine,
            scheme=config.scheme,
            node_id=node_id,
            instance_type=config.instance_type,
            state="starting",
        )
        self._report("starting", placement)
        engine = get_engine(config.engine)
        note = {"node_id": node_id, "engine": config.engine, "job_id": self.note_id}

        def noted(pid: int) -> None:
            note_server(self.note_id, {**note, "pid": pid, "state": "starting"})

        try:
            hardware = None
            if config.gpus:
                engine, hardware = _gpu_engine(config, node_id)
            python = built_engine(engine, f"{config.instance_type} node {node_id[:12]}")
            self.server = start_server(
                engine,
                _pull_artifact(config),
                config.options,
                python=python,
                hardware=hardware,
                on_launch=noted,
            )
        except BaseException as error:
            self._report("failed", _first_line(error))
            raise
        note_server(self.note_id, {**note, "pid": self.server.pid, "port": self.server.port})
        self._report("healthy", placement, endpoint=self.server.endpoint.base_url)
        self.engine = EngineClient(self.server.endpoint.base_url, config.engine_concurrency)
        self.deployment = config.deployment
        self.ingress: IngressSettings | None = None  # set by reconfigure, Serve's next call
        self.traffic: TrafficConfig | None = None
        self.meter: TrafficMeter | None = None
        self._slot_clock: asyncio.Task[None] | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve calls this after ``__init__`` and again whenever the line's user config
        changes: whether this replica answers the endpoint itself, with what key, and the
        fleet's prices its traffic is metered at (they change with the plan's replicas). The
        engine keeps running: a changed plan that only resizes the line keeps its replicas."""
        settings = user_config.get("ingress")
        self.ingress = IngressSettings.model_validate(settings) if settings else None
        traffic = self.ingress.traffic if self.ingress is not None else None
        if traffic is None:
            self.meter = None
        elif self.meter is None or self.meter.window_s != traffic.window_s:
            # Windows on the wall clock's slots: the collector sums each slot's shares of the
            # line's replicas into the plan's cost events.
            self.meter = TrafficMeter(traffic.window_s, clock=time.time, aligned=True)
        self.traffic = traffic

    def _report(
        self,
        state: Literal["starting", "healthy", "failed", "stopped"],
        detail: str = "",
        endpoint: str | None = None,
    ) -> None:
        """Tell the dashboard this replica's state (its fleet screen's Deployments and events);
        reporting never stops the replica."""
        update: dict[str, Any] = {"state": state, "detail": detail, "at": datetime.now(UTC)}
        if endpoint is not None:
            update["endpoint"] = endpoint
        self.event = self.event.model_copy(update=update)
        try:
            self.collector.publish(self.event)
        except Exception:
            logger.exception("could not report replica %s %s", self.note_id, state)

    async def check_health(self) -> None:
        """Serve calls this every few seconds; raising makes it replace the replica."""
        if not self.server.alive():
            detail = f"engine server (pid {self.server.pid}) exited"
            if self.event.state != "failed":
                self._report("failed", f"{detail}; Serve replaces the replica")
            raise RuntimeError(detail)

    async def ping(self) -> bool:
        """Answers once this replica runs (its engine started): the ingress asks each line this
        until it has answered, and picks a line still starting only if none other runs."""
        return True

    async def complete(self, path: str, body: bytes) -> dict[str, Any]:
        """A request answered in one piece: the engine's status, content type and body."""
        return await self.engine.complete(path, body)

    async def forward(self, path: str, body: bytes) -> AsyncIterator[Any]:
        """Yield the engine's status and content type first, then its body's chunks."""
        async for part in self.engine.forward(path, body):
            yield part

    async def __call__(self, request: Request) -> Response:
        """The endpoint's requests, where this line's replicas answer it themselves (a plan of
        one line): checked as the ingress checks them, then straight to this replica's engine."""
        if self.ingress is None:
            return _error(404, "this replica answers its fleet's ingress only", "not_found")
        admitted = await _admit(request, self.ingress)
        if isinstance(admitted, Response):
            return admitted
        started = time.monotonic()
        try:
            return await self._answer(*admitted, started)
        except EngineUnavailableError:
            pass  # nothing reached the client: once more, as the ingress tries once more
        try:
            return await self._answer(*admitted, started)
        except EngineUnavailableError as error:
            # HAProxy sends nothing more here once Serve's health check finds the engine gone.
            self._note(ok=False, output_tokens=None)
            return _error(503, f"the engine did not answer: {error}", "unavailable")

    async def _answer(self, path: str, body: bytes, stream: bool, started: float) -> Response:
        """The engine's answer; raises EngineUnavailableError while nothing was sent on."""
        headers = {DEPLOYMENT_HEADER: self.deployment}
        note = self._note if self.meter is not None else None
        if not stream:
            return _whole_answer(await self.complete(path, body), headers, note)
        chunks = self.forward(path, body)
        first = await chunks.__anext__()
        return _metered_stream(chunks, first, started, headers, note)

    def _note(self, **request: Any) -> None:
        """Meter one finished request; a slot that ended before it is sent first."""
        if self.meter is None:
            return
        self._send_share()
        self.meter.record(**request)
        if self._slot_clock is None:
            # Traffic that stops must still send its last slot.
            self._slot_clock = asyncio.get_running_loop().create_task(self._close_slots())

    async def _close_slots(self) -> None:
        """Send each slot's share just after the slot ends, requests arriving or not; ends
        when a changed plan stops the metering here (a later one starts it again)."""
        while self.meter is not None:
            window = self.meter.window_s
            await asyncio.sleep(window - time.time() % window + 0.05)
            self._send_share()
        self._slot_clock = None

    def _send_share(self) -> None:
        if self.meter is None or self.traffic is None:
            return
        taken = self.meter.take_share()
        if taken is None:
            return
        window, ttfts, started = taken
        try:
            share = TrafficShare(
                replica_id=self.note_id,
                line=self.deployment,
                slot_start=started,
                window=window,
                ttfts_ms=ttfts,
                config=self.traffic,
            )
            self.collector.add_traffic(share)
        except Exception:  # metering must never fail a request
            logger.exception("could not send the traffic share")

    def __del__(self) -> None:
        # Serve calls this when it stops the replica (scale-down, delete, unhealthy); Python
        # also calls it when __init__ raised (the engine never started).
        server = getattr(self, "server", None)
        if server is not None:
            from quantplan.agent.cluster.replicas import replicas_dir

            server.stop()
            if (engine := getattr(self, "engine", None)) is not None:
                engine.close()
            with contextlib.suppress(OSError):
                (replicas_dir() / f"{self.note_id}.json").unlink(missing_ok=True)
        if getattr(self, "event", None) is not None:
            # A failed replica is stopped too (Serve replaces it): the dashboard stops counting
            # it, and its failure stays in the event log.
            self._report("stopped", "after failing" if self.event.state == "failed" else "")


class Route(BaseModel):
    """One plan deployment as the ingress sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: str
    weight: float = Field(gt=0, description="Planned capacity (requests/s of all its replicas)")


def api_key_digest(api_key: str | None) -> str | None:
    """What Serve's configuration keeps of the endpoint's key: its SHA-256, never the key."""
    return hashlib.sha256(api_key.encode()).hexdigest() if api_key else None


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _authorized(request: Request, api_key_sha256: str | None) -> bool:
    if api_key_sha256 is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    digest = hashlib.sha256(token.encode()).hexdigest()
    return scheme.lower() == "bearer" and hmac.compare_digest(digest, api_key_sha256)


async def _admit(request: Request, settings: IngressSettings) -> Response | tuple[str, bytes, bool]:
    """What the endpoint answers itself (health, the model list, refusals), or the request to
    forward to an engine: its path, body and whether it asks for a stream."""
    path = request.url.path.rstrip("/")
    caller = request.client.host if request.client is not None else None
    local = (None, "127.0.0.1", "::1", "localhost", *settings.proxy_hosts)
    if settings.local_only and caller not in local:
        return _error(403, "this endpoint answers local callers only", "forbidden")
    if path == "/health":
        return Response(status_code=200)
    if not _authorized(request, settings.api_key_sha256):
        return _error(401, "missing or wrong API key", "authentication_error")
    if path == "/v1/models" and request.method == "GET":
        listed = {"id": settings.model, "object": "model", "owned_by": "quantplan"}
        return JSONResponse({"object": "list", "data": [listed]})
    if path not in FORWARDED_PATHS or request.method != "POST":
        return _error(404, f"{request.method} {path} is not served here", "not_found")
    body = await request.body()
    try:
        fields = json.loads(body)
        asked, stream = fields.get("model"), fields.get("stream") is True
    except (ValueError, AttributeError):
        return _error(400, "the body is not a JSON object", "invalid_request_error")
    if asked not in (None, settings.model):
        return _error(
            404,
            f"model {asked!r} is not served; this fleet serves {settings.model!r}",
            "model_not_found",
        )
    return path, body, stream


def _whole_answer(
    answer: dict[str, Any], headers: dict[str, str], note: Callable[..., None] | None
) -> Response:
    """An engine's answer in one piece (``EngineReplica.complete``'s), its usage noted."""
    if note is not None:
        ok = 200 <= answer["status"] < 300
        output, prompt = usage_of_body(answer["body"]) if ok else (None, None)
        note(ok=ok, output_tokens=output, prompt_tokens=prompt)
    return Response(
        answer["body"],
        status_code=answer["status"],
        media_type=answer["content_type"],
        headers=headers,
    )


def _metered_stream(
    chunks: AsyncIterator[Any],
    first: dict[str, Any],
    started: float,
    headers: dict[str, str],
    note: Callable[..., None] | None,
) -> StreamingResponse:
    """The engine's server-sent events passed on as they come; with ``note``, the stream's
    tokens and time to first token are noted once it ends."""
    tally = StreamTally() if note is not None else None

    async def rest() -> AsyncIterator[bytes]:
        first_token_s: float | None = None
        broke = False  # the engine's stream failed (a client hanging up is not a failure)
        try:
            async for chunk in chunks:
                if tally is not None:
                    tally.feed(chunk)
                    if first_token_s is None and tally.text_events:
                        first_token_s = time.monotonic() - started
                yield chunk
        except Exception:
            broke = True
            raise
        finally:
            if tally is not None and note is not None:
                output, prompt = tally.tokens()
                ok = not broke and 200 <= first["status"] < 300
                note(ok=ok, output_tokens=output, prompt_tokens=prompt, ttft_s=first_token_s)

    return StreamingResponse(
        rest(), status_code=first["status"], media_type=first["content_type"], headers=headers
    )


LINE_CHECK_EVERY_S = 0.5
"""How often the ingress asks the lines it has not yet seen running."""
LINE_CHECK_TIMEOUT_S = 0.5
"""How long one such question waits for a replica (a running one answers in milliseconds)."""
FIRST_LINE_WAIT_S = 120.0
"""How long a request waits for the first line to run before it is sent to one by weight."""


class FleetIngress:
    """The one OpenAI endpoint of the plan."""

    def __init__(
        self,
        model: str,
        routes: list[dict[str, Any]],
        handles: list[Any],
        api_key_sha256: str | None,
        traffic: dict[str, Any] | None = None,
        local_only: bool = False,
    ) -> None:
        # Only a digest of the key lives in Serve's configuration (the controller keeps it).
        # Serve's direct ingress opens this replica's own port on every interface: an endpoint
        # bound to loopback must still not answer the network (local_only).
        self.settings = IngressSettings(
            model=model, api_key_sha256=api_key_sha256, local_only=local_only
        )
        self.routes = [Route.model_validate(route) for route in routes]
        pairs = zip(self.routes, handles, strict=True)
        self.handles = {route.deployment: handle for route, handle in pairs}
        self.traffic = TrafficConfig.model_validate(traffic) if traffic else None
        self.meter = TrafficMeter(self.traffic.window_s) if self.traffic else None
        self._window_clock: asyncio.Task[None] | None = None
        self.collector = CollectorLink()
        # Lines with a replica that has answered: a line still starting (a changed plan's new
        # line, its engine loading) is passed over while another one runs, so its share of
        # the requests does not wait out its start (a minute for vLLM on CPUs).
        self.started: set[str] = set()
        self._first_started = asyncio.Event()
        self._line_watch: asyncio.Task[None] | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """A changed plan's routes and prices, on the running ingress. A line it has no
        handle for (added by the change) gets one by name from Serve when it is first asked
        (``_handle``); the lines it dropped are no longer picked. The traffic so far is
        published under the old prices first."""
        routes = [Route.model_validate(route) for route in user_config.get("routes") or []]
        if not routes:
            return
        self.routes = routes
        traffic = user_config.get("traffic")
        if traffic is not None:
            self._publish_window()
            self.traffic = TrafficConfig.model_validate(traffic)
            if self.meter is None or self.meter.window_s != self.traffic.window_s:
                self.meter = TrafficMeter(self.traffic.window_s)
        if self._line_watch is not None and self._line_watch.done():
            self._line_watch = None  # an added line is watched until it answers too

    def publish(self, event: CostEvent) -> None:
        """Hand a cost event to the cluster's collector without waiting for it."""
        self.collector.publish(event)

    def _note(self, **request: Any) -> None:
        """Meter one finished request (``TrafficMeter.record``'s fields); publish a window
        that has run its length."""
        if self.meter is None:
            return
        self.meter.record(**request)
        self._publish_window()
        if self._window_clock is None and self.traffic is not None:
            # Without it the last window of a burst would wait for the next request to be
            # reported: traffic that stops would never show its last seconds.
            loop = asyncio.get_running_loop()
            self._window_clock = loop.create_task(self._close_windows(self.traffic.window_s))

    async def _close_windows(self, window_s: float) -> None:
        """Publish each window that has run its length, requests arriving or not."""
        while True:
            await asyncio.sleep(window_s)
            self._publish_window()

    def _publish_window(self) -> None:
        if self.meter is None or self.traffic is None:
            return
        window = self.meter.take()
        if window is None:
            return
        try:
            for event in [
                cost_event(window, self.traffic),
                *line_cost_events(window, self.traffic),
            ]:
                self.publish(event)
        except Exception:  # metering must never fail a request
            logger.exception("could not publish the traffic window")

    async def _watch_lines(self) -> None:
        """Ask each line not yet seen running whether a replica answers, until all have."""
        while waiting := [r.deployment for r in self.routes if r.deployment not in self.started]:
            await asyncio.gather(*(self._ask(name) for name in waiting))
            await asyncio.sleep(LINE_CHECK_EVERY_S)

    def _handle(self, name: str) -> Any:
        """The handle of line ``name``: bound at start, or looked up by name for a line a
        changed plan added (it may not exist yet: then asking it fails, and is tried again)."""
        if name not in self.handles:
            app = serve.get_replica_context().app_name
            self.handles[name] = serve.get_deployment_handle(name, app_name=app)
        return self.handles[name]

    async def _ask(self, name: str) -> None:
        """Note ``name`` as running as soon as one of its replicas answers."""
        response = None
        try:
            response = self._handle(name).ping.remote()
            if await asyncio.wait_for(asyncio.shield(response), LINE_CHECK_TIMEOUT_S):
                self.started.add(name)
                self._first_started.set()
        except Exception:  # no replica runs yet (or it failed): ask again later
            if response is not None:
                response.cancel()

    async def _lines_known(self) -> None:
        """Start the watch with the first request; while no line runs yet (a new ingress, its
        lines starting), a request waits for the first that does rather than queue at the one
        its weight picks, which may be the slowest to start."""
        if self._line_watch is None:
            self._line_watch = asyncio.get_running_loop().create_task(self._watch_lines())
        if not self._first_started.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_started.wait(), FIRST_LINE_WAIT_S)

    def _pick(self, exclude: str | None = None) -> Route:
        candidates = [route for route in self.routes if route.deployment != exclude]
        candidates = candidates or self.routes
        running = [route for route in candidates if route.deployment in self.started]
        candidates = running or candidates
        return random.choices(candidates, weights=[r.weight for r in candidates])[0]

    async def __call__(self, request: Request) -> Response:
        admitted = await _admit(request, self.settings)
        if isinstance(admitted, Response):
            return admitted
        return await self._forward(*admitted)

    async def _forward(self, path: str, body: bytes, stream: bool) -> Response:
        started = time.monotonic()
        await self._lines_known()
        route = self._pick()
        try:
            return await self._send(route, path, body, stream, started)
        except Exception:
            # Nothing reached the client yet: once more, on another deployment if there is one.
            route = self._pick(exclude=route.deployment)
            try:
                return await self._send(route, path, body, stream, started)
            except Exception as error:
                self._note(ok=False, output_tokens=None)
                return _error(503, f"no replica answered: {_first_line(error)}", "unavailable")

    async def _send(
        self, route: Route, path: str, body: bytes, stream: bool, started: float
    ) -> Response:
        """The answer of one engine replica of ``route``; raises while nothing was sent on."""
        headers = {DEPLOYMENT_HEADER: route.deployment}
        handle = self._handle(route.deployment)
        note = functools.partial(self._note, line=route.deployment)
        if not stream:
            # One call, one reply: the whole answer exists before anything goes to the client.
            return _whole_answer(await handle.complete.remote(path, body), headers, note)
        chunks = handle.options(stream=True).forward.remote(path, body)
        first = await chunks.__anext__()
        return _metered_stream(chunks, first, started, headers, note if self.meter else None)


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


class Scaling(BaseModel):
    """Bounds and pace of a plan line that scales with its load (Serve's autoscaling)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(ge=1, description="The mean load's replicas (the plan's floor)")
    target_ongoing_requests: float = Field(
        gt=0, description="Requests per replica the plan's SLOs were predicted at"
    )
    up_delay_s: float = Field(gt=0, description="Load above target this long adds replicas")
    down_delay_s: float = Field(gt=0, description="Load below target this long removes them")


ENGINE_START_TRIES = 3
"""Tries Serve gives a replica's engine to start before the deployment counts as failed."""


def engine_deployment(
    config: EngineReplicaConfig,
    replicas: int,
    actor_options: dict[str, Any],
    concurrency: int,
    scaling: Scaling | None = None,
    surge_percent: int = 0,
    ingress: IngressSettings | None = None,
) -> Any:
    """A bound Serve deployment for one plan line: ``replicas`` engine replicas, or, with
    ``scaling``, between its floor and ``replicas`` as Serve's autoscaler sees the requests
    in flight and queued per replica against the target. It starts at the floor: the peak's
    replicas come with the peak. A replica's engine takes ``concurrency`` requests at once (the
    plan's). With ``ingress`` its replicas answer the endpoint themselves
    (a plan of one line); it is their user config, so a change of it reaches running replicas
    (``EngineReplica.reconfigure``) instead of replacing them."""
    sizing: dict[str, Any] = {"num_replicas": replicas}
    let_in = concurrency  # requests a replica takes from Serve at once
    if scaling is not None and scaling.min_replicas < replicas:
        sizing = {
            "autoscaling_config": {
                "min_replicas": scaling.min_replicas,
                "initial_replicas": scaling.min_replicas,
                "max_replicas": replicas,
                "target_ongoing_requests": scaling.target_ongoing_requests,
                "upscale_delay_s": scaling.up_delay_s,
                "downscale_delay_s": scaling.down_delay_s,
            }
        }
        if ingress is not None:
            # Requests that reach a replica straight from HAProxy wait in the replica for a
            # free slot, and Serve's autoscaler counts only those holding one: capped at the
            # target, the load would never look over it. So such a replica lets in as many
            # as the whole line's peak replicas would hold (those beyond its engine's
            # concurrency wait for a connection to it), and the autoscaler sees how far over
            # target it is.
            let_in *= replicas
    deployment = serve.deployment(
        name=config.deployment,
        ray_actor_options=actor_options,
        max_ongoing_requests=let_in,
        health_check_period_s=2.0,
        health_check_timeout_s=10.0,
        graceful_shutdown_timeout_s=5.0,
        # A replica whose engine cannot start fails the deployment after this many tries (Serve
        # tries 20 by default), so a changed plan that cannot run is rolled back in seconds.
        max_constructor_retry_count=ENGINE_START_TRIES,
        # A changed line's new replicas start beside its old ones, up to this share, and the
        # old ones stop once the new are running (Serve's surge); 0: an old one stops first.
        max_surge_percent=surge_percent,
        user_config={"ingress": ingress.model_dump(mode="json") if ingress else None},
        **sizing,
    )(EngineReplica)
    started_from = config.model_copy(update={"engine_concurrency": concurrency}).model_dump_json()
    return _versioned(deployment, started_from, actor_options).bind(started_from)


def _versioned(deployment: Any, *started_from: Any) -> Any:
    """``deployment`` with a version made from what its replicas start from.

    serve.run gives a deployment without a version a random one, and Serve replaces every
    replica of a deployment whose version changed: each changed plan would restart even the
    lines (and the ingress) it left alone. With the version held, a changed plan is one of
    Serve's lightweight updates to them (replica count, autoscaling, user config, requests let
    in). The public options no longer take a version; ``_version`` is what serve.run reads
    (Ray 2.60, pinned in the lock; the real endpoint tests check that a kept line keeps its
    engine)."""
    text = json.dumps(started_from, sort_keys=True, default=str)
    deployment._version = hashlib.sha256(text.encode()).hexdigest()[:16]
    return deployment


def fleet_application(
    model: str,
    engines: list[tuple[Route, Any]],
    api_key: str | None,
    ingress_options: dict[str, Any],
    traffic: TrafficConfig | None = None,
    *,
    local_only: bool = False,
) -> Any:
    """The application: the ingress bound to the plan deployments' bound engine deployments.

    The routes and prices are the ingress's user config and its version is what it starts
    from (model, key digest, where it runs): a changed plan reconfigures the running ingress
    (``FleetIngress.reconfigure``) instead of replacing it, so no request in flight on it is
    dropped while HAProxy moves to a new one."""
    digest = api_key_digest(api_key)
    routes = [route.model_dump() for route, _ in engines]
    config = {"routes": routes, "traffic": traffic.model_dump(mode="json") if traffic else None}
    ingress = serve.deployment(
        name="ingress",
        max_ongoing_requests=1000,
        ray_actor_options=ingress_options,
        user_config=config,
    )(FleetIngress)
    ingress = _versioned(ingress, model, digest, local_only, ingress_options)
    return ingress.bind(
        model, routes, [bound for _, bound in engines], digest, config["traffic"], local_only
    )
