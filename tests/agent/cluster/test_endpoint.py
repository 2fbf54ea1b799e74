"""One OpenAI endpoint for a plan's fleet on Ray Serve, on a real multi-node Ray cluster: the
README demo's plan (one vLLM and one llama.cpp replica of the default model), each engine owned
by a Serve replica; chat, streamed chat and completions through the one endpoint; an engine
``kill -9``ed under requests (they keep succeeding; Serve replaces the replica); stopped with
nothing left running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from ray_fixtures import RayTestCluster

from quantplan.agent.benchmark.client import Endpoint, make_http_client, stream_completion
from quantplan.agent.benchmark.metrics import RequestSample
from quantplan.agent.benchmark.protocol import poisson_arrivals
from quantplan.agent.benchmark.workload import Workload, make_prompts
from quantplan.agent.cluster.collector_actor import RayEventSource
from quantplan.agent.cluster.endpoint import (
    EndpointOptions,
    start_endpoint,
    stop_endpoint,
    update_endpoint,
)
from quantplan.agent.cluster.endpoint_app import DEPLOYMENT_HEADER
from quantplan.agent.cluster.events import CostEvent, FleetEvent, ReplicaEvent
from quantplan.agent.serve.manager import free_port
from quantplan.catalog.db import open_catalog
from quantplan.catalog.snapshot import load_snapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.plan import Plan, save_plan
from quantplan.planner.targets import load_targets

pytestmark = [
    pytest.mark.ray_cluster,
    pytest.mark.integration,
    pytest.mark.engine,
    pytest.mark.toolchain,
    pytest.mark.slow,
]

DEMO_TARGETS = Path(__file__).parents[3] / "examples" / "cluster" / "local-demo-targets.yaml"
KEY = "test-key-not-secret"
QUANTPLAN = Path(sys.executable).with_name("quantplan")
MODEL = "SmolLM2-135M-Instruct"


def _notes(data: Path, engine: str) -> dict[str, dict[str, object]]:
    """The replica notes of the endpoint's engines of ``engine``."""
    found = {}
    for path in (data / "replicas").glob("endpoint-*.json"):
        note = json.loads(path.read_text())
        if note.get("engine") == engine and note.get("port"):
            found[path.stem] = note
    return found


def _traffic_events(
    cluster: RayTestCluster, plan_id: str, requests: int = 0, lines: int = 0
) -> list[CostEvent]:
    """The plan's traffic cost events the collector holds, the plan's and its lines', waiting
    up to 30 s until the plan's windows count ``requests`` answers and ``lines`` plan lines
    have a window of their own (the ingress sends a window when it closes, so the last answers
    arrive a window or two after they were served, and a line that answered only at the end
    of a burst has its window later than the plan's first ones)."""

    def traffic(event: FleetEvent) -> bool:
        return (
            isinstance(event, CostEvent)
            and event.plan_id == plan_id
            and event.measured_by == "traffic"
        )

    def counted(found: list[FleetEvent]) -> bool:
        costs = [e for e in found if isinstance(e, CostEvent)]
        answered = sum(e.requests or 0 for e in costs if e.scope == "plan")
        priced = {e.deployment for e in costs if e.scope == "line"}
        return bool(found) and answered >= requests and len(priced) >= lines

    return [e for e in _collected(cluster, traffic, enough=counted) if isinstance(e, CostEvent)]


def _collected(
    cluster: RayTestCluster,
    wanted: Callable[[FleetEvent], bool],
    until: int = 1,
    enough: Callable[[list[FleetEvent]], bool] | None = None,
) -> list[FleetEvent]:
    """The wanted events the collector holds, waiting up to 30 s for at least ``until`` (or
    until ``enough`` says the found events are enough)."""
    done = enough or (lambda found: len(found) >= until)
    source = RayEventSource(cluster.collector)  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    while True:
        batch = source.events_since(0, timeout_s=1.0, limit=10_000)
        found = [e for e in batch.events if wanted(e)]
        if done(found) or time.monotonic() > deadline:
            return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


class _Asker:
    """Clients asking the endpoint in a loop, each in its own thread, until ``stop``: a
    completion of ``max_tokens`` tokens, then ``pause_s``. Every request is noted as (when it
    ended, status, the line that answered); one that ended without an answer (timed out,
    dropped) is status 0 with the error in place of the line, so a failure cannot end a
    client's thread unseen."""

    def __init__(
        self,
        url: str,
        max_tokens: int = 1,
        pause_s: float = 0.1,
        clients: int = 1,
        timeout_s: float = 60,
    ) -> None:
        self.url, self.max_tokens, self.pause_s, self.timeout_s = (
            url,
            max_tokens,
            pause_s,
            timeout_s,
        )
        self.answers: list[tuple[float, int, str]] = []
        self._sending = threading.Event()
        self._threads = [threading.Thread(target=self._ask, daemon=True) for _ in range(clients)]

    def start(self) -> _Asker:
        self._sending.set()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._sending.clear()
        for thread in self._threads:
            if thread.ident is not None:  # started (stop also runs where a test failed early)
                thread.join(timeout=self.timeout_s + 30)

    @property
    def statuses(self) -> list[int]:
        return [status for _, status, _ in self.answers]

    def failed(self) -> list[tuple[float, int, str]]:
        return [answer for answer in self.answers if answer[1] != 200]

    def _ask(self) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        body = {"model": MODEL, "prompt": "Hi", "max_tokens": self.max_tokens}
        with httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout_s) as client:
            while self._sending.is_set():
                try:
                    response = client.post("/v1/completions", json=body)
                except httpx.HTTPError as error:
                    self.answers.append((time.monotonic(), 0, repr(error)))
                    time.sleep(0.2)
                    continue
                line = response.headers.get(DEPLOYMENT_HEADER, "")
                self.answers.append((time.monotonic(), response.status_code, line))
                time.sleep(self.pause_s)


def test_one_endpoint_serves_a_mixed_fleet_and_survives_an_engine_kill(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engines note their process groups where the nodes' processes write (their data dir).
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(ray_cluster.data_dir))
    plan = make_plan(load_targets(DEMO_TARGETS), load_snapshot(open_catalog("sqlite://")))
    assert {d.engine for d in plan.fleet} == {"vllm", "llama.cpp"}
    port = free_port()
    options = EndpointOptions(
        name="endpoint-test",
        port=port,
        api_key=KEY,
        database_url=ray_cluster.database_url,
        traffic_window_s=1.0,
    )
    started = time.monotonic()
    endpoint = start_endpoint(plan, options)
    startup_s = time.monotonic() - started
    try:
        # OpenAI's own client, as users talk to the endpoint (no retries: a failure must show).
        client = openai.OpenAI(base_url=f"{endpoint.url}/v1", api_key=KEY, max_retries=0)
        with client:
            with (
                openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0) as keyless,
                pytest.raises(openai.AuthenticationError),
            ):
                keyless.models.list()
            assert [m.id for m in client.models.list()] == [MODEL]

            chat = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "What is the capital of France?"}],
                max_tokens=8,
                timeout=120,
            )
            assert chat.choices[0].message.content

            streamed = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Say hello."}],
                max_tokens=8,
                stream=True,
                timeout=120,
            )
            pieces = [c.choices[0].delta.content for c in streamed if c.choices]
            assert len(pieces) >= 2 and "".join(p or "" for p in pieces)  # chunk by chunk

            completion = client.completions.create(
                model=MODEL, prompt="The capital of France is", max_tokens=4, timeout=120
            )
            assert completion.choices[0].text

            # Both plan deployments answer through the one endpoint.
            def answered_by() -> str:
                raw = client.completions.with_raw_response.create(
                    model=MODEL, prompt="Hi", max_tokens=1, timeout=120
                )
                raw.parse()  # a well-formed completion, not only a 200
                return raw.headers[DEPLOYMENT_HEADER]

            # The ingress picks a line at random in proportion to its planned capacity: here
            # about 11 % of the requests go to llama.cpp, so 24 of them all went to vLLM in about
            # one run in sixteen. It keeps asking until both have answered (200 requests all on
            # one line: about 1 in 10^10).
            seen: set[str] = set()
            sent = 0
            while (len(seen) < 2 or sent < 24) and sent < 200:
                seen.add(answered_by())
                sent += 1
            assert len(seen) == 2, f"{sent} requests, all answered by {seen}"

            # The traffic so far reached the collector as the plan's measured cost.
            events = _traffic_events(ray_cluster, endpoint.app_name, requests=20, lines=len(seen))
            traffic = [e for e in events if e.scope == "plan"]
            lines = [e for e in events if e.scope == "line"]
            assert traffic, "no traffic window reached the collector"
            # Each plan line is priced at the traffic it answered, with its own instances.
            assert len({e.deployment for e in lines}) == 2, {e.key for e in lines}
            assert sum(e.requests or 0 for e in lines) <= sum(e.requests or 0 for e in traffic)
            assert all(e.usd_per_hour < traffic[-1].usd_per_hour for e in lines)
            assert all(e.output_tokens_per_s > 0 and e.usd_per_million_tokens for e in traffic)
            assert sum(e.requests or 0 for e in traffic) >= 20
            last = traffic[-1]
            print(
                f"traffic: {len(traffic)} window(s); last {last.requests} requests in "
                f"{last.window_s:.1f} s, {last.output_tokens_per_s:.1f} out tok/s, "
                f"${last.usd_per_million_tokens:.2f}/M tokens at that load "
                f"(plan: ${last.predicted_usd_per_million_tokens}/M at its planned load)"
            )
            llama = next(name for name in seen if "llama" in name)

            # kill -9 the llama.cpp engine: requests keep succeeding, Serve replaces it.
            (killed_note,) = _notes(ray_cluster.data_dir, "llama.cpp").values()
            killed = int(killed_note["pid"])  # type: ignore[call-overload]
            os.kill(killed, signal.SIGKILL)
            killed_at = time.monotonic()
            answers = [answered_by() for _ in range(12)]  # each one must succeed
            replaced_s = None
            deadline = killed_at + 120
            while time.monotonic() < deadline:
                notes = _notes(ray_cluster.data_dir, "llama.cpp")
                pids = {int(n["pid"]) for n in notes.values()}  # type: ignore[call-overload]
                if pids and killed not in pids and answered_by() == llama:
                    replaced_s = time.monotonic() - killed_at
                    break
                answers.append(answered_by())
                time.sleep(0.5)
            assert replaced_s is not None, "the killed engine's replica was never replaced"
            print(
                f"endpoint up in {startup_s:.1f} s; engine replaced in {replaced_s:.1f} s; "
                f"{len(answers)} requests after the kill all succeeded"
            )
            engines = {
                int(note["pid"])  # type: ignore[call-overload]
                for engine in ("vllm", "llama.cpp")
                for note in _notes(ray_cluster.data_dir, engine).values()
            }
            assert len(engines) == 2
    finally:
        stopping = time.monotonic()
        stop_endpoint(endpoint.app_name)
    print(f"stopped in {time.monotonic() - stopping:.1f} s")
    # The dashboard saw each replica's life: both lines healthy, the killed engine's replica
    # failed and stopped, its replacement healthy, and every replica stopped at the end.
    app = endpoint.app_name

    def lives() -> dict[str, list[ReplicaEvent]]:
        events = _collected(
            ray_cluster, lambda e: isinstance(e, ReplicaEvent) and e.plan_id == app, until=10
        )
        by_replica: dict[str, list[ReplicaEvent]] = {}
        for event in events:
            assert isinstance(event, ReplicaEvent)
            by_replica.setdefault(event.replica_id, []).append(event)
        return by_replica

    states = {replica: [e.state for e in events] for replica, events in lives().items()}
    print(f"replica events: {states}")
    assert len(states) == 3, states  # two lines, one replacement
    assert all(s[0] == "starting" and s[-1] == "stopped" for s in states.values()), states
    assert sum(s == ["starting", "healthy", "failed", "stopped"] for s in states.values()) == 1
    failed = next(e for events in lives().values() for e in events if e.state == "failed")
    assert failed.engine == "llama.cpp" and "exited" in failed.detail
    # Every engine stopped with its replica, and no note is left for a sweep to find.
    assert not list((ray_cluster.data_dir / "replicas").glob("endpoint-*.json"))
    assert not [pid for pid in (*engines, killed) if _alive(pid)]


def _lines_of(path: Path, marker: str, process: subprocess.Popen[str], timeout_s: float) -> str:
    """Wait until the command's output (written to ``path``) holds ``marker``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text()
        if marker in text:
            return text
        assert process.poll() is None, f"the endpoint exited early:\n{text}"
        time.sleep(0.5)
    raise AssertionError(f"{marker!r} not printed within {timeout_s} s:\n{path.read_text()}")


def _save_atomically(plan: Plan, path: Path) -> None:
    """As an editor saves: a new file moved over the old (the watch never sees half a plan)."""
    written = save_plan(plan, path.with_suffix(".new.yaml"))
    written.replace(path)


def test_a_changed_plan_file_rolls_the_endpoint_over_while_it_answers(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    plan = make_plan(load_targets(DEMO_TARGETS), load_snapshot(open_catalog("sqlite://")))
    llama = next(d for d in plan.fleet if d.engine == "llama.cpp")
    one = plan.model_copy(update={"fleet": (llama,)})
    two = plan.model_copy(
        update={
            "fleet": (
                llama.model_copy(
                    update={
                        "replicas": 2,
                        "min_replicas": 2,  # the floor rises too: two from the start
                        "instances": 2,
                        "capacity_requests_per_s": 2 * llama.capacity_requests_per_s,
                    }
                ),
            )
        }
    )
    plan_file = tmp_path / "plan.yaml"
    save_plan(one, plan_file)
    port = free_port()
    address = ray_cluster.cluster.address  # type: ignore[attr-defined]
    output = tmp_path / "endpoint.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [
                *(str(QUANTPLAN), "cluster", "endpoint", str(plan_file), "--address", address),
                *("--db", ray_cluster.database_url, "--port", str(port), "--name", "roll"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={
                **os.environ,
                "QUANTPLAN_API_KEY": KEY,
                "QUANTPLAN_DATA_DIR": str(ray_cluster.data_dir),
                "COLUMNS": "300",
            },
        )
    asker = _Asker(f"http://127.0.0.1:{port}")
    try:
        _lines_of(output, "serving", process, 240)
        (first,) = _notes(ray_cluster.data_dir, "llama.cpp").values()
        asker.start()
        started = time.monotonic()
        _save_atomically(two, plan_file)
        text = _lines_of(output, "serving the changed plan", process, 240)
        rolled_s = time.monotonic() - started
        engines = [n["pid"] for n in _notes(ray_cluster.data_dir, "llama.cpp").values()]
        assert len(engines) == 2  # the added replica runs
        assert first["pid"] in engines  # beside the first, which a resize leaves running
        # A plan it cannot run is refused whole; the fleet keeps serving as it was.
        plan_file.write_text("fleet: [")
        text = _lines_of(output, "still serving the previous plan", process, 60)
        assert "changed plan refused" in text and "Traceback" not in text
        # A changed plan that passes the checks but whose new replicas cannot start (its
        # context, four million tokens a request, is more KV cache than any host allocates:
        # the engine exits at start) is rolled back; the replicas that run keep answering.
        workload = two.targets.workload.model_copy(update={"input_tokens": 4_000_000})
        huge = two.model_copy(
            update={"targets": two.targets.model_copy(update={"workload": workload})}
        )
        started = time.monotonic()
        _save_atomically(huge, plan_file)
        text = _lines_of(output, "rolled back: serving the previous plan", process, 300)
        rollback_s = time.monotonic() - started
        assert "update failed" in text and "Traceback" not in text, text
        time.sleep(2)
        asker.stop()
        print(
            f"rolled over to 2 replicas in {rolled_s:.1f} s, rolled back a plan whose new "
            f"replicas failed in {rollback_s:.1f} s; {len(asker.answers)} requests meanwhile, "
            f"statuses {sorted(set(asker.statuses))}"
        )
        assert asker.answers and not asker.failed(), asker.failed()
        assert len(_notes(ray_cluster.data_dir, "llama.cpp")) == 2
    finally:
        asker.stop()
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert returncode == 0, output.read_text()
    assert not list((ray_cluster.data_dir / "replicas").glob("endpoint-roll-*.json"))
    lives: dict[str, list[str]] = {}
    for event in _collected(
        ray_cluster, lambda e: isinstance(e, ReplicaEvent) and e.plan_id == "roll", until=6
    ):
        assert isinstance(event, ReplicaEvent)
        lives.setdefault(event.replica_id[-8:], []).append(event.state)
    print(f"replica events of the roll-over: {lives}")
    assert all(states[-1] == "stopped" for states in lives.values()), lives


RAMP_RATES = (0.2, 2.0, 4.0, 8.0, 16.0)
"""Requests a second of the scaling test's open loop, step by step (it stops once scaled)."""


def _ramp_requests(rate: float) -> int:
    """A step's requests: a trickle of three, else about ten seconds of arrivals."""
    return 3 if rate < 1 else int(rate * 10)


class _Ramp:
    """An open loop at a rising rate that stops sending the moment it is told to: a trickle the
    floor carries, then steps of about ten seconds of arrivals, the rate doubling. Arrivals do
    not wait for earlier answers, within a step or across steps. Whatever one replica answers
    on this machine, some step sends more arrivals a second than that and requests pile up in
    flight (a single fixed rate exceeded it only where answers were slow: a faster machine
    never scaled). Stopping mid-step matters as much: a step that ran to its end after the
    scale-up queued up to 160 more requests on a slow machine, and the test waited on them."""

    def __init__(self, endpoint: Endpoint, workload: Workload) -> None:
        self.endpoint, self.workload = endpoint, workload
        self.stop = threading.Event()
        self.rates: list[float] = []  # the steps begun
        self.sent = 0
        self.waiting: dict[asyncio.Task[RequestSample], float] = {}  # unanswered: sent when
        self.answers: list[RequestSample] = []  # each request's sample, as it ends

    def run(self) -> None:
        asyncio.run(self._send())

    async def _send(self) -> None:
        def answered(task: asyncio.Task[RequestSample]) -> None:
            self.waiting.pop(task)
            self.answers.append(task.result())

        async with make_http_client(self.endpoint) as client:
            in_flight: list[asyncio.Task[RequestSample]] = []
            for step, rate in enumerate(RAMP_RATES):
                count = _ramp_requests(rate)
                prompts = make_prompts(self.workload, count)
                offsets = poisson_arrivals(rate, count, self.workload.seed + step)
                begin = time.perf_counter()
                self.rates.append(rate)
                for prompt, offset in zip(prompts, offsets, strict=True):
                    await asyncio.sleep(max(0.0, begin + offset - time.perf_counter()))
                    if self.stop.is_set():
                        break
                    task = asyncio.create_task(
                        stream_completion(client, self.endpoint, prompt, self.workload)
                    )
                    self.sent += 1
                    self.waiting[task] = time.perf_counter()
                    task.add_done_callback(answered)
                    in_flight.append(task)
                if self.stop.is_set():
                    break
            await asyncio.gather(*in_flight)

    def unanswered(self) -> str:
        """What is still out: to tell a request stuck in the fleet from a queue draining."""
        now = time.perf_counter()
        waiting = sorted(self.waiting.copy().values())  # a copy: the loop runs in its thread
        oldest = f", the oldest sent {now - waiting[0]:.0f} s ago" if waiting else ""
        last = max((a.end_s for a in self.answers), default=None)
        latest = f"; the last answer came {now - last:.0f} s ago" if last is not None else ""
        return f"{len(waiting)} of {self.sent} requests unanswered{oldest}{latest}"


def test_a_line_scales_up_with_its_load_and_back_down_to_the_plans_floor(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(ray_cluster.data_dir))
    plan = make_plan(load_targets(DEMO_TARGETS), load_snapshot(open_catalog("sqlite://")))
    llama = next(d for d in plan.fleet if d.engine == "llama.cpp")
    # One replica for the mean load, two for the peak; two requests in flight per replica is
    # the target (the plan's operating concurrency, small here so a few clients exceed it).
    line = llama.model_copy(
        update={
            "replicas": 2,
            "min_replicas": 1,
            "instances": 2,
            "capacity_requests_per_s": 2 * llama.capacity_requests_per_s,
            "metrics": llama.metrics.model_copy(update={"concurrency": 2}),
        }
    )
    options = EndpointOptions(
        name="scale",
        port=free_port(),
        api_key=KEY,
        database_url=ray_cluster.database_url,
        scale_up_after_s=2.0,
        scale_down_after_s=10.0,
    )
    endpoint = start_endpoint(plan.model_copy(update={"fleet": (line,)}), options)
    target = Endpoint(base_url=endpoint.url, model=MODEL, api_key=KEY)
    workload = Workload(input_tokens=32, output_tokens=24, ignore_eos=False)

    def engines() -> int:
        return len(_notes(ray_cluster.data_dir, "llama.cpp"))

    try:
        assert "1-2 replicas with its load" in next(iter(endpoint.deployments.values()))
        assert engines() == 1  # the floor: the mean load's replica
        ramp = _Ramp(target, workload)
        load = threading.Thread(target=ramp.run, daemon=True)
        started = time.monotonic()
        load.start()
        while engines() < 2 and load.is_alive() and time.monotonic() - started < 180:
            time.sleep(1)
        up_s = time.monotonic() - started
        scaled = engines() == 2
        ramp.stop.set()
        # What was sent before the stop drains, now over two replicas.
        load.join(timeout=180)
        assert scaled, f"the open loop rose to {ramp.rates[-1]} req/s and never added a replica"
        assert not load.is_alive(), f"after the scale-up: {ramp.unanswered()}"
        stopped = time.monotonic()
        while engines() > 1 and time.monotonic() - stopped < 180:
            time.sleep(1)
        down_s = time.monotonic() - stopped
        assert engines() == 1, "with no load the line never went back to its floor"
        sent = len(ramp.answers)
        errors = [a.error for a in ramp.answers if not a.ok]
        print(
            f"open loop rising through {ramp.rates} req/s: scaled up {up_s:.1f} s after the "
            f"ramp began, down {down_s:.1f} s after the last answer; {len(errors)} of {sent} "
            f"requests failed ({errors})"
        )
        assert sent == ramp.sent and not errors
        # A one-line plan has no ingress: each replica metered its own answers, and the
        # collector summed the replicas' shares of each window into the plan's cost events.
        windows = [e for e in _traffic_events(ray_cluster, "scale", sent) if e.scope == "plan"]
        assert sum(e.requests or 0 for e in windows) == sent
        assert all(e.usd_per_million_tokens for e in windows if e.output_tokens_per_s)
    finally:
        stop_endpoint(endpoint.app_name)
    lives: dict[str, list[str]] = {}
    for event in _collected(
        ray_cluster, lambda e: isinstance(e, ReplicaEvent) and e.plan_id == "scale", until=6
    ):
        assert isinstance(event, ReplicaEvent)
        lives.setdefault(event.replica_id[-8:], []).append(event.state)
    print(f"replica events while scaling: {lives}")
    # The dashboard saw the added replica come and go.
    assert len(lives) == 2 and all(s == ["starting", "healthy", "stopped"] for s in lives.values())


def test_a_worker_node_killed_under_load_is_replaced_and_its_requests_fail_over(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last in the module: it swaps a worker node for a fresh one of the same type."""
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(ray_cluster.data_dir))
    plan = make_plan(load_targets(DEMO_TARGETS), load_snapshot(open_catalog("sqlite://")))
    llama = next(d for d in plan.fleet if d.engine == "llama.cpp")
    line = llama.model_copy(
        update={
            "replicas": 2,
            "min_replicas": 2,
            "instances": 2,
            "capacity_requests_per_s": 2 * llama.capacity_requests_per_s,
        }
    )
    options = EndpointOptions(
        name="node-kill", port=free_port(), api_key=KEY, database_url=ray_cluster.database_url
    )
    endpoint = start_endpoint(plan.model_copy(update={"fleet": (line,)}), options)
    asker = _Asker(endpoint.url, max_tokens=8, pause_s=0, clients=2, timeout_s=120)
    engines: set[int] = set()
    try:
        notes = _notes(ray_cluster.data_dir, "llama.cpp")
        assert len(notes) == 2
        engines |= {int(n["pid"]) for n in notes.values()}  # type: ignore[call-overload]
        killed_node = str(next(iter(notes.values()))["node_id"])
        asker.start()
        time.sleep(3)  # requests in flight on both replicas
        before = len(asker.answers)
        # Timed from the kill: the fresh node's start (add_worker waits for it) is part of it.
        killed_at = time.monotonic()
        ray_cluster.kill_and_replace(killed_node)
        replaced_s = None
        while time.monotonic() - killed_at < 180:
            alive = [
                n
                for n in _notes(ray_cluster.data_dir, "llama.cpp").values()
                if n["node_id"] != killed_node
            ]
            engines |= {int(n["pid"]) for n in alive}  # type: ignore[call-overload]
            if len(alive) == 2:
                replaced_s = time.monotonic() - killed_at
                break
            time.sleep(1)
        time.sleep(3)  # both replicas answer again
        asker.stop()
        after = asker.statuses[before:]
        failed = [s for s in after if s != 200]
        print(
            f"node kill under load: replica replaced in {replaced_s or 0:.1f} s; "
            f"{len(after)} requests from the kill on, {len(failed)} failed ({sorted(set(failed))})"
        )
        assert replaced_s is not None, "the killed node's replica was never replaced"
        assert len(after) > len(failed)  # the endpoint kept answering
    finally:
        asker.stop()
        stop_endpoint(endpoint.app_name)
    # The killed node's engine lost its replica with the node; the endpoint's stop found its
    # note and stopped it: no engine of this endpoint is left.
    assert not list((ray_cluster.data_dir / "replicas").glob("endpoint-node-kill-*.json"))
    assert not [pid for pid in engines if _alive(pid)]


def test_a_spot_replica_whose_node_is_taken_back_is_replaced_on_demand(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spot line's replica runs on the spot node; the cloud takes that node back (killed
    outright); Serve replaces the replica on an on-demand node of the same type, the plan's
    fallback, and the replica events say so."""
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(ray_cluster.data_dir))
    plan = make_plan(load_targets(DEMO_TARGETS), load_snapshot(open_catalog("sqlite://")))
    llama = next(d for d in plan.fleet if d.engine == "llama.cpp")
    line = llama.model_copy(
        update={"pricing": "spot", "replicas": 1, "min_replicas": 1, "instances": 1}
    )
    spot_node = ray_cluster.add_worker(spot=True)
    options = EndpointOptions(
        name="spot", port=free_port(), api_key=KEY, database_url=ray_cluster.database_url
    )
    endpoint = start_endpoint(plan.model_copy(update={"fleet": (line,)}), options)
    asker = _Asker(endpoint.url, max_tokens=8, pause_s=0)
    engines: set[int] = set()
    try:
        (note,) = _notes(ray_cluster.data_dir, "llama.cpp").values()
        assert note["node_id"] == spot_node.node_id, "the spot line's replica is not on spot"
        engines.add(int(note["pid"]))  # type: ignore[call-overload]
        asker.start()
        time.sleep(2)
        ray_cluster.kill(spot_node.node_id)
        taken_at = time.monotonic()
        replaced_s = None
        while time.monotonic() - taken_at < 180:
            moved = [
                n
                for n in _notes(ray_cluster.data_dir, "llama.cpp").values()
                if n["node_id"] != spot_node.node_id
            ]
            engines |= {int(n["pid"]) for n in moved}  # type: ignore[call-overload]
            if moved:
                replaced_s = time.monotonic() - taken_at
                break
            time.sleep(1)
        assert replaced_s is not None, "the spot replica was never replaced"
        (fallback,) = moved
        assert fallback["node_id"] in {n.node_id for n in ray_cluster.workers}
        answered_again = None
        while time.monotonic() - taken_at < replaced_s + 60:
            if any(s == 200 and t > taken_at + replaced_s for t, s, _ in asker.answers):
                answered_again = True
                break
            time.sleep(0.5)
        asker.stop()
        after = [s for t, s, _ in asker.answers if t >= taken_at]
        failed = [s for s in after if s != 200]
        print(
            f"spot node taken back: replica replaced on on-demand in {replaced_s:.1f} s; "
            f"{len(after)} requests from then on, {len(failed)} failed ({sorted(set(failed))}): "
            "the line had one replica"
        )
        assert answered_again, "the endpoint never answered again after the fallback started"
    finally:
        asker.stop()
        stop_endpoint(endpoint.app_name)
    details = [
        (e.state, e.detail)
        for e in _collected(
            ray_cluster,
            lambda e: isinstance(e, ReplicaEvent) and e.plan_id == "spot" and e.state == "healthy",
            until=2,
        )
        if isinstance(e, ReplicaEvent)
    ]
    print(f"healthy replica events: {details}")
    assert details[0] == ("healthy", "on a spot c7i.xlarge node")
    assert details[-1][1].startswith("spot fallback: on an on-demand c7i.xlarge node")
    assert not [pid for pid in engines if _alive(pid)]


def test_a_changed_line_starts_its_new_replica_before_the_old_one_stops(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rolling update with a spare node of the line's type: Serve starts the changed line's
    new replica beside the old one, and stops the old one once the new one runs."""
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(ray_cluster.data_dir))
    plan = make_plan(load_targets(DEMO_TARGETS), load_snapshot(open_catalog("sqlite://")))
    llama = next(d for d in plan.fleet if d.engine == "llama.cpp")
    line = llama.model_copy(update={"replicas": 1, "min_replicas": 1, "instances": 1})
    one = plan.model_copy(update={"fleet": (line,)})
    # A longer request needs a longer context (512 -> 768 tokens here): the engine restarts
    # with another command line. (A change that leaves the context as it was leaves the
    # engine running: the replica's version is what it starts from.)
    workload = one.targets.workload.model_copy(
        update={"input_tokens": one.targets.workload.input_tokens + 256}
    )
    changed = one.model_copy(
        update={"targets": one.targets.model_copy(update={"workload": workload})}
    )
    options = EndpointOptions(
        name="surge", port=free_port(), api_key=KEY, database_url=ray_cluster.database_url
    )
    endpoint = start_endpoint(one, options)
    asker = _Asker(endpoint.url, max_tokens=4)
    seen: list[set[str]] = []
    watching = threading.Event()

    def watch() -> None:
        while watching.is_set():
            seen.append(set(_notes(ray_cluster.data_dir, "llama.cpp")))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        (old,) = _notes(ray_cluster.data_dir, "llama.cpp")
        asker.start()
        watching.set()
        watcher.start()
        started = time.monotonic()
        update_endpoint(endpoint, changed, options)
        running_s = time.monotonic() - started
        while old in _notes(ray_cluster.data_dir, "llama.cpp") and time.monotonic() - started < 90:
            time.sleep(0.5)
        time.sleep(2)
        asker.stop()
        watching.clear()
        watcher.join(timeout=60)
        (new,) = _notes(ray_cluster.data_dir, "llama.cpp")
        both = [s for s in seen if old in s and new in s]
        print(
            f"rolling update with a spare node: new replica running {running_s:.1f} s after the "
            f"change, beside the old one in {len(both)} of {len(seen)} looks; "
            f"{len(asker.answers)} requests, statuses {sorted(set(asker.statuses))}"
        )
        assert new != old
        assert both, "the old replica stopped before the new one was up"
        assert asker.answers and not asker.failed(), asker.failed()
    finally:
        asker.stop()
        watching.clear()
        stop_endpoint(endpoint.app_name)


def test_a_plan_moves_from_one_line_to_two_and_back_while_it_answers(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One line answers the endpoint itself; two lines need the ingress. A changed plan that
    adds a line moves the endpoint to the ingress (the kept line is replaced, its new replica
    up before the old one stops, and the new line gets requests only once it runs); one that
    drops back to one line keeps the ingress and the kept line's engine. A steady trickle of
    requests meanwhile: none fails."""
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(ray_cluster.data_dir))
    plan = make_plan(load_targets(DEMO_TARGETS), load_snapshot(open_catalog("sqlite://")))
    llama = next(d for d in plan.fleet if d.engine == "llama.cpp")
    one = plan.model_copy(update={"fleet": (llama,)})
    options = EndpointOptions(
        name="reshape", port=free_port(), api_key=KEY, database_url=ray_cluster.database_url
    )
    endpoint = start_endpoint(one, options)
    asker = _Asker(endpoint.url, max_tokens=2)

    def llama_engines() -> list[object]:
        return [n["pid"] for n in _notes(ray_cluster.data_dir, "llama.cpp").values()]

    try:
        assert endpoint.engines_answer
        asker.start()
        started = time.monotonic()
        two_lines = update_endpoint(endpoint, plan, options)
        to_two_s = time.monotonic() - started
        assert not two_lines.engines_answer
        # Both lines answer through the ingress now (it picks vLLM about 9 times in 10).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len({a[2] for a in asker.answers[-20:]}) < 2:
            time.sleep(0.5)
        after_two = len(asker.answers)
        (engine,) = llama_engines()
        started = time.monotonic()
        back = update_endpoint(two_lines, one, options)
        to_one_s = time.monotonic() - started
        time.sleep(3)
        asker.stop()
        print(
            f"one line -> two in {to_two_s:.1f} s, two -> one in {to_one_s:.1f} s; "
            f"{len(asker.answers)} requests ({after_two} before the way back), statuses "
            f"{sorted(set(asker.statuses))}, lines {sorted({a[2] for a in asker.answers})}"
        )
        assert asker.answers and not asker.failed(), asker.failed()
        assert len({a[2] for a in asker.answers[after_two - 20 : after_two]}) == 2
        assert not back.engines_answer and list(back.deployments) == [
            name for name in two_lines.deployments if "llama" in name
        ]
        assert not _notes(ray_cluster.data_dir, "vllm")  # the dropped line's engine stopped
        assert llama_engines() == [engine]  # the kept line's engine kept running
    finally:
        asker.stop()
        stop_endpoint(endpoint.app_name)
