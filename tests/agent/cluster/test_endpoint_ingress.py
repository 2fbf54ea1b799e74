"""The fleet endpoint's ingress without a cluster: its Serve deployment handles replaced by
stand-ins that answer (or fail) as engine replicas do, requests sent through httpx's ASGI
transport. Key check, model check, weighted choice and the one retry elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from quantplan.agent.cluster.endpoint_app import (
    DEPLOYMENT_HEADER,
    LINE_CHECK_EVERY_S,
    LINE_CHECK_TIMEOUT_S,
    EngineClient,
    EngineReplica,
    FleetIngress,
    IngressSettings,
)
from quantplan.agent.cluster.traffic import LinePrice, TrafficConfig, TrafficMeter, TrafficShare

MODEL = "SmolLM2-135M-Instruct"
KEY = "k-123"


class StandInReplica:
    """An engine replica's handle as the ingress uses it: ``complete.remote(path, body)``
    answers a request in one piece, ``options(stream=True).forward.remote(path, body)`` is a
    stream whose first item is the engine's status, then the body's chunks. A failing one
    raises before any of that."""

    def __init__(self, chunks: list[bytes], fail: bool = False, running: bool = True) -> None:
        self.chunks = chunks
        self.fail = fail
        self.calls = 0
        self.running = running  # whether a replica runs: ``ping`` waits until one does

    @property
    def ping(self) -> _Ping:
        return _Ping(self)

    def options(self, stream: bool) -> StandInReplica:
        return self

    @property
    def forward(self) -> StandInReplica:
        return self

    @property
    def complete(self) -> _Whole:
        return _Whole(self)

    def remote(self, path: str, body: bytes) -> AsyncIterator[Any]:
        self.calls += 1
        return self._answer()

    async def _answer(self) -> AsyncIterator[Any]:
        if self.fail:
            raise ConnectionRefusedError("engine gone")
        yield {"status": 200, "content_type": "text/event-stream"}
        for chunk in self.chunks:
            yield chunk


class _Ping:
    """``ping.remote()`` as a Serve handle's: answers once the line has a running replica."""

    def __init__(self, replica: StandInReplica) -> None:
        self.replica = replica

    def remote(self) -> asyncio.Future[bool]:
        return asyncio.ensure_future(self._wait())

    async def _wait(self) -> bool:
        while not self.replica.running:
            await asyncio.sleep(0.05)
        return True


class _Whole:
    def __init__(self, replica: StandInReplica) -> None:
        self.replica = replica

    async def remote(self, path: str, body: bytes) -> dict[str, Any]:
        self.replica.calls += 1
        if self.replica.fail:
            raise ConnectionRefusedError("engine gone")
        content = b"".join(self.replica.chunks)
        return {"status": 200, "content_type": "application/json", "body": content}


def _client(ingress: FleetIngress | EngineReplica) -> httpx.AsyncClient:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        response = await ingress(Request(scope, receive))
        await response(scope, receive, send)

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://fleet",
        headers={"Authorization": f"Bearer {KEY}"},
    )


def _ingress(weights: dict[str, float], replicas: dict[str, StandInReplica]) -> FleetIngress:
    import hashlib

    routes = [{"deployment": name, "weight": weight} for name, weight in weights.items()]
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    return FleetIngress(MODEL, routes, [replicas[name] for name in weights], digest)


BODY = {"model": MODEL, "prompt": "Hi", "max_tokens": 1}


async def test_key_and_model_are_checked_before_anything_is_forwarded() -> None:
    replica = StandInReplica([b"{}"])
    async with _client(_ingress({"a": 1.0}, {"a": replica})) as client:
        wrong = await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        models = await client.get("/v1/models")
        assert [m["id"] for m in models.json()["data"]] == [MODEL]
        other = await client.post("/v1/completions", json={**BODY, "model": "gpt-4"})
        assert other.status_code == 404 and MODEL in other.text
        assert (await client.post("/v1/embeddings", json=BODY)).status_code == 404
        assert (await client.post("/v1/completions", content=b"[1]")).status_code == 400
    assert replica.calls == 0


async def test_lines_are_picked_in_proportion_to_planned_capacity() -> None:
    random.seed(7)
    replicas = {"big": StandInReplica([b"{}"]), "small": StandInReplica([b"{}"])}
    async with _client(_ingress({"big": 3.0, "small": 1.0}, replicas)) as client:
        answered: Counter[str] = Counter()
        for _ in range(400):
            response = await client.post("/v1/completions", json=BODY)
            answered[response.headers[DEPLOYMENT_HEADER]] += 1
    assert answered["big"] / 400 == pytest.approx(0.75, abs=0.06)


async def test_a_line_failing_before_its_first_byte_is_retried_once_on_another() -> None:
    dead, alive = StandInReplica([], fail=True), StandInReplica([b"data: 1\n\n", b"data: 2\n\n"])
    async with _client(
        _ingress({"dead": 1000.0, "alive": 0.001}, {"dead": dead, "alive": alive})
    ) as client:
        response = await client.post("/v1/chat/completions", json={**BODY, "stream": True})
        assert response.status_code == 200
        assert response.headers[DEPLOYMENT_HEADER] == "alive"
        assert response.text == "data: 1\n\ndata: 2\n\n"  # chunks passed through as they came
    assert dead.calls == 1 and alive.calls == 1

    both_dead = {"a": StandInReplica([], fail=True), "b": StandInReplica([], fail=True)}
    async with _client(_ingress({"a": 1.0, "b": 1.0}, both_dead)) as client:
        response = await client.post("/v1/completions", json=BODY)
    assert response.status_code == 503 and "engine gone" in response.text
    assert both_dead["a"].calls + both_dead["b"].calls == 2  # once more, not forever


async def test_a_line_still_starting_is_passed_over_while_another_one_runs() -> None:
    """A changed plan's new line answers nothing while its engine loads: its share of the
    requests goes to the lines that run, and comes back once it runs too."""
    starting, running = StandInReplica([b"{}"], running=False), StandInReplica([b"{}"])
    ingress = _ingress({"new": 1000.0, "old": 0.001}, {"new": starting, "old": running})
    async with _client(ingress) as client:
        first = [await client.post("/v1/completions", json=BODY) for _ in range(20)]
        assert {r.headers[DEPLOYMENT_HEADER] for r in first} == {"old"}
        starting.running = True
        await asyncio.sleep(0.3 + LINE_CHECK_EVERY_S + LINE_CHECK_TIMEOUT_S)
        later = [await client.post("/v1/completions", json=BODY) for _ in range(20)]
        assert {r.headers[DEPLOYMENT_HEADER] for r in later} == {"new"}
    assert starting.calls == 20 and running.calls == 20


async def test_a_changed_plan_reconfigures_the_running_ingress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Routes are the ingress's user config: a dropped line is no longer picked, and a line
    the change added is looked up by name from Serve (the replica keeps running throughout)."""
    from types import SimpleNamespace

    from quantplan.agent.cluster import endpoint_app

    replicas = {"a": StandInReplica([b"{}"]), "b": StandInReplica([b"{}"])}
    added = StandInReplica([b"{}"])
    looked_up: list[tuple[str, str]] = []

    def handle(name: str, app_name: str) -> StandInReplica:
        looked_up.append((name, app_name))
        return added

    monkeypatch.setattr(endpoint_app.serve, "get_deployment_handle", handle)
    monkeypatch.setattr(
        endpoint_app.serve, "get_replica_context", lambda: SimpleNamespace(app_name="demo")
    )
    ingress = _ingress({"a": 1.0, "b": 1.0}, replicas)
    async with _client(ingress) as client:
        ingress.reconfigure({"routes": [{"deployment": "a", "weight": 1.0}], "traffic": None})
        only_a = [await client.post("/v1/completions", json=BODY) for _ in range(10)]
        assert {r.headers[DEPLOYMENT_HEADER] for r in only_a} == {"a"}
        ingress.reconfigure({"routes": [{"deployment": "c", "weight": 1.0}], "traffic": None})
        only_c = [await client.post("/v1/completions", json=BODY) for _ in range(10)]
        assert {r.headers[DEPLOYMENT_HEADER] for r in only_c} == {"c"}
    assert looked_up == [("c", "demo")] and added.calls == 10


class StandInEngine(StandInReplica):
    """Answers as an engine does: a whole answer with its usage, or a stream of text events."""

    WHOLE = json.dumps(
        {"choices": [{"text": "Paris"}], "usage": {"completion_tokens": 4, "prompt_tokens": 6}}
    ).encode()

    def __init__(self) -> None:
        super().__init__([b'data: {"choices": [{"text": "a"}]}\n\n', b'data: {"choices": []}\n\n'])

    @property
    def complete(self) -> _Whole:
        return _Whole(StandInReplica([self.WHOLE]))


async def test_served_traffic_becomes_the_plans_cost_events() -> None:
    from quantplan.agent.cluster.events import CostEvent
    from quantplan.agent.cluster.traffic import TrafficMeter

    ingress = _ingress({"only": 1.0}, {"only": StandInEngine()})
    only = LinePrice(label="q4 llama.cpp c7i.xlarge", usd_per_hour=0.36)
    ingress.traffic = TrafficConfig(plan_id="demo", usd_per_hour=0.36, lines={"only": only})
    now = [0.0]
    ingress.meter = TrafficMeter(10.0, clock=lambda: now[0])
    published: list[CostEvent] = []
    ingress.publish = published.append  # type: ignore[method-assign]
    async with _client(ingress) as client:
        for _ in range(4):
            await client.post("/v1/completions", json=BODY)
            await client.post("/v1/completions", json={**BODY, "stream": True})
        assert published == []  # the window has not run yet
        now[0] = 10.0
        await client.post("/v1/completions", json=BODY)
    event, line = published
    assert event.key == "demo" and event.measured_by == "traffic" and event.requests == 9
    # The one line answered everything: its own event says the same, under its own key.
    assert (line.scope, line.key, line.requests) == ("line", "demo|q4 llama.cpp c7i.xlarge", 9)
    assert line.output_tokens_per_s == event.output_tokens_per_s
    # Whole answers count their usage (4 tokens each), streams their text events (1 each).
    assert event.output_tokens_per_s * 10 == pytest.approx(5 * 4 + 4 * 1)
    assert event.total_tokens_per_s * 10 == pytest.approx(5 * (4 + 6) + 4 * 1)
    assert event.usd_per_million_output_tokens == pytest.approx(0.36 / (2.4 * 3600) * 1e6)


async def test_the_last_window_of_a_burst_is_published_without_another_request() -> None:
    from quantplan.agent.cluster.events import CostEvent

    ingress = _ingress({"only": 1.0}, {"only": StandInEngine()})
    only = LinePrice(label="q4 llama.cpp c7i.xlarge", usd_per_hour=0.36)
    ingress.traffic = TrafficConfig(
        plan_id="demo", usd_per_hour=0.36, lines={"only": only}, window_s=0.05
    )
    ingress.meter = TrafficMeter(0.05)
    published: list[CostEvent] = []
    ingress.publish = published.append  # type: ignore[method-assign]
    async with _client(ingress) as client:
        for _ in range(3):
            await client.post("/v1/completions", json=BODY)
        await asyncio.sleep(0.3)  # traffic stops: the window closes on its own
    plan_events = [e for e in published if e.scope == "plan"]
    assert sum(e.requests or 0 for e in plan_events) == 3


async def test_a_loopback_endpoint_refuses_callers_from_the_network() -> None:
    # Serve's direct ingress opens the ingress replica's port on every interface.
    import hashlib

    digest = hashlib.sha256(KEY.encode()).hexdigest()
    replica = StandInReplica([b"{}"])
    routes = [{"deployment": "a", "weight": 1.0}]
    ingress = FleetIngress(MODEL, routes, [replica], digest, None, True)

    def client_from(host: str) -> httpx.AsyncClient:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope = {**scope, "client": (host, 40000)}
            response = await ingress(Request(scope, receive))
            await response(scope, receive, send)

        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://fleet",
            headers={"Authorization": f"Bearer {KEY}"},
        )

    async with client_from("10.1.2.3") as remote:
        assert (await remote.post("/v1/completions", json=BODY)).status_code == 403
    async with client_from("127.0.0.1") as local:
        assert (await local.post("/v1/completions", json=BODY)).status_code == 200
    assert replica.calls == 1


def test_haproxys_socket_path_fits_for_the_longest_application_name() -> None:
    # Serve puts a 56-character node id below the folder; HAProxy refuses sockets over 97.
    from quantplan.agent.cluster.endpoint import router_env

    env = router_env("x" * 60)
    folder, _, name = env["RAY_SERVE_HAPROXY_SOCKET_PATH"].rpartition("/")
    assert len(f"{folder}/{'0' * 56}/{name}") <= 97
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"


def test_without_a_collector_events_are_dropped_with_one_warning_and_looked_for_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import quantplan.agent.cluster.collector_actor as collector_actor
    from quantplan.agent.cluster.endpoint_app import CollectorLink
    from quantplan.agent.cluster.events import PlanEvent

    class Handle:
        def __init__(self) -> None:
            self.sent: list[str] = []
            self.publish = self  # handle.publish.remote(...)

        def remote(self, event: str) -> None:
            self.sent.append(event)

    handle: Handle | None = None
    looked = []

    def get_collector() -> Handle:
        looked.append(1)
        if handle is None:
            raise collector_actor.NoCollectorError("no collector yet")
        return handle

    monkeypatch.setattr(collector_actor, "get_collector", get_collector)
    link = CollectorLink()
    event = PlanEvent(plan_id="demo", state="running")
    for _ in range(3):
        link.publish(event)
    assert len(looked) == 1  # not looked for on every event
    assert sum("no quantplan collector" in r.message for r in caplog.records) == 1
    handle = Handle()
    link._missing_since = -1e9  # the retry interval has passed: the new collector is found
    link.publish(event)
    link.publish(event)
    assert len(looked) == 2 and len(handle.sent) == 2


def test_the_plan_watch_sees_a_changed_content_once_and_ignores_a_missing_file(
    tmp_path: Path,
) -> None:
    from quantplan.agent.cluster.endpoint import plan_watch

    plan = tmp_path / "plan.yaml"
    plan.write_text("model: a\n")
    changed = plan_watch(plan)
    assert not changed()
    plan.write_text("model: a\n")  # saved again, same content: nothing to roll out
    assert not changed()
    plan.write_text("model: b\n")
    assert changed() and not changed()
    plan.unlink()  # an editor between removing and writing: no change yet
    assert not changed()
    plan.write_text("model: b\n")
    assert not changed()
    plan.write_text("model: c\n")
    assert changed()


class StandInCollector:
    def __init__(self) -> None:
        self.shares: list[TrafficShare] = []

    def add_traffic(self, share: TrafficShare) -> None:
        self.shares.append(share)


@contextlib.asynccontextmanager
async def _engine(asked: list[str]) -> AsyncIterator[str]:
    """A real HTTP server on a free local port answering as an engine does: a whole answer
    with its usage, or a stream of text events. Yields its URL."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def answer(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        if (await request.json()).get("stream"):
            stream = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await stream.prepare(request)
            await stream.write(b'data: {"choices": [{"text": "a"}]}\n\n')
            await stream.write(b"data: [DONE]\n\n")
            return stream
        return web.Response(body=StandInEngine.WHOLE, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/completions", answer)
    app.router.add_post("/v1/chat/completions", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


def _answering_replica(engine_url: str, clock: Any) -> EngineReplica:
    """An engine replica of a one-line plan as Serve would have built it, its engine server
    at ``engine_url`` (the replica's own client is what talks to the engine)."""
    import hashlib

    replica = object.__new__(EngineReplica)
    replica.engine = EngineClient(engine_url, concurrency=2)
    replica.deployment = "0-q4"
    replica.note_id = "endpoint-demo-0-q4-r1"
    replica._slot_clock = None
    replica.collector = StandInCollector()  # type: ignore[assignment]
    line = LinePrice(label="gguf-q4_k_m llama.cpp c7i.xlarge", usd_per_hour=0.36)
    settings = IngressSettings(
        model=MODEL,
        api_key_sha256=hashlib.sha256(KEY.encode()).hexdigest(),
        traffic=TrafficConfig(plan_id="demo", usd_per_hour=0.36, lines={"0-q4": line}),
    )
    # As Serve does after __init__ (the line's user config); the meter on a test clock.
    replica.meter = None
    replica.reconfigure({"ingress": settings.model_dump(mode="json")})
    assert replica.meter is not None and replica.meter.aligned
    replica.meter = TrafficMeter(10.0, clock=clock, aligned=True)
    return replica


async def test_a_one_line_plans_replica_answers_the_endpoint_and_meters_its_share() -> None:
    asked: list[str] = []
    now = [1003.0]
    async with _engine(asked) as url:
        replica = _answering_replica(url, lambda: now[0])
        async with _client(replica) as client:  # type: ignore[arg-type]
            bad_key = {"Authorization": "Bad"}
            assert (await client.get("/v1/models", headers=bad_key)).status_code == 401
            other_model = await client.post("/v1/completions", json={**BODY, "model": "x"})
            assert other_model.status_code == 404
            whole = await client.post("/v1/completions", json=BODY)
            assert whole.json()["choices"][0]["text"] == "Paris"
            assert whole.headers[DEPLOYMENT_HEADER] == "0-q4"
            streamed = await client.post("/v1/chat/completions", json={**BODY, "stream": True})
            assert streamed.text.startswith('data: {"choices"')
            assert streamed.text.endswith("[DONE]\n\n")
            assert asked == ["/v1/completions", "/v1/chat/completions"]
            collector = replica.collector
            assert isinstance(collector, StandInCollector) and collector.shares == []
            now[0] = 1010.2  # the slot is over: the next request sends its share first
            await client.post("/v1/completions", json=BODY)
        await replica.engine.aclose()
    (share,) = collector.shares
    assert (share.slot_start, share.line, share.replica_id) == (1000.0, "0-q4", replica.note_id)
    assert share.window.requests == 2 and share.window.output_tokens == 4 + 1
    assert replica.meter is not None and replica.meter.requests == 1  # the next slot's


async def test_a_replica_whose_engine_is_gone_answers_503_and_counts_the_failure() -> None:
    import socket

    with socket.socket() as unused:  # a port nothing listens on: the connection is refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    replica = _answering_replica(f"http://127.0.0.1:{port}", lambda: 1003.0)
    async with _client(replica) as client:  # type: ignore[arg-type]
        for stream in (False, True):
            response = await client.post("/v1/completions", json={**BODY, "stream": stream})
            assert response.status_code == 503 and "the engine did not answer" in response.text
    assert replica.meter is not None and replica.meter.total.failed == 2
    await replica.engine.aclose()
    # A replica of a plan with an ingress answers only through it (a changed plan of several
    # lines reconfigures the running replica so).
    replica.reconfigure({"ingress": None})
    assert replica.meter is None
    async with _client(replica) as client:  # type: ignore[arg-type]
        assert (await client.post("/v1/completions", json=BODY)).status_code == 404


async def test_a_loopback_endpoints_replica_on_another_node_answers_haproxy_only() -> None:
    # Its direct-ingress port is open on every interface of its node; HAProxy calls it from
    # the head node's address.
    async with _engine([]) as url:
        replica = _answering_replica(url, lambda: 1003.0)
        assert replica.ingress is not None
        replica.ingress = replica.ingress.model_copy(
            update={"local_only": True, "proxy_hosts": ("10.0.0.1",)}
        )

        def client_from(host: str) -> httpx.AsyncClient:
            async def app(scope: Any, receive: Any, send: Any) -> None:
                response = await replica(Request({**scope, "client": (host, 40000)}, receive))
                await response(scope, receive, send)

            return httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://fleet",
                headers={"Authorization": f"Bearer {KEY}"},
            )

        async with client_from("10.0.0.7") as elsewhere, client_from("10.0.0.1") as head:
            assert (await elsewhere.post("/v1/completions", json=BODY)).status_code == 403
            assert (await head.post("/v1/completions", json=BODY)).status_code == 200
        await replica.engine.aclose()
