"""Run a benchmark plan against an endpoint, or against an artifact served just for it.

This is the entry point node agents and the CLI call: ``run_plan`` for an endpoint that is
already up, ``benchmark_artifact`` to start the right engine, measure, and stop it again. A
server that dies mid-run raises :class:`~quantplan.agent.serve.errors.EngineDiedError`; the
caller records a failed run and keeps no partial numbers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from quantplan.agent.benchmark.client import Endpoint
from quantplan.agent.benchmark.metrics import Slo
from quantplan.agent.benchmark.protocol import (
    RunResult,
    ServerWatch,
    SweepResult,
    best_level,
    requests_for_level,
    run_closed_loop,
    run_open_loop,
    sweep_concurrency,
)
from quantplan.agent.benchmark.workload import Workload
from quantplan.agent.serve.engine import ArtifactInfo, EngineServer, ServeOptions
from quantplan.agent.serve.manager import (
    engine_interpreter,
    engine_provenance,
    start_server,
)


class BenchPlan(BaseModel):
    """What to measure: a sweep, fixed concurrency levels, or a Poisson rate."""

    model_config = ConfigDict(extra="forbid")

    workload: Workload = Field(default_factory=Workload)
    mode: Literal["sweep", "closed", "open"] = "sweep"
    concurrencies: list[int] = Field(
        default_factory=list, description="Closed loop: the levels to run, in order"
    )
    rate: float | None = Field(default=None, gt=0, description="Open loop: requests per second")
    num_requests: int | None = Field(
        default=None, ge=1, description="Requests per level; default: 4 per worker, at least 8"
    )
    max_concurrency: int = Field(default=64, ge=1, description="Sweep: the highest level")
    min_gain: float = Field(default=0.05, ge=0, description="Sweep: stop below this growth")
    slo: Slo | None = None
    warmup_requests: int = Field(
        default=2, ge=0, description="Unmeasured requests first (caches, lazy init)"
    )

    @model_validator(mode="after")
    def _mode_has_its_parameters(self) -> BenchPlan:
        if self.mode == "closed" and not self.concurrencies:
            raise ValueError("a closed-loop plan needs concurrencies")
        if self.mode == "open" and self.rate is None:
            raise ValueError("an open-loop plan needs a rate")
        return self

    def requests_at(self, concurrency: int) -> int:
        return self.num_requests or requests_for_level(concurrency)


async def run_plan(
    endpoint: Endpoint,
    plan: BenchPlan,
    *,
    watch: ServerWatch | None = None,
    on_level: Callable[[RunResult], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SweepResult:
    """Run ``plan`` against a live endpoint; every mode returns levels, best and stop reason.
    ``transport`` stands in for the network (tests)."""
    if plan.warmup_requests:
        warmup = plan.workload.model_copy(update={"output_tokens": 4})
        await run_closed_loop(
            endpoint,
            warmup,
            concurrency=1,
            num_requests=plan.warmup_requests,
            watch=watch,
            transport=transport,
        )
    if plan.mode == "sweep":
        return await sweep_concurrency(
            endpoint,
            plan.workload,
            slo=plan.slo,
            max_concurrency=plan.max_concurrency,
            min_gain=plan.min_gain,
            requests_per_level=plan.requests_at,
            watch=watch,
            on_level=on_level,
            transport=transport,
        )
    levels: list[RunResult] = []
    if plan.mode == "open":
        assert plan.rate is not None
        result = await run_open_loop(
            endpoint,
            plan.workload,
            rate=plan.rate,
            num_requests=plan.num_requests or 32,
            slo=plan.slo,
            watch=watch,
            transport=transport,
        )
        levels.append(result)
        if on_level:
            on_level(result)
    else:
        for concurrency in plan.concurrencies:
            result = await run_closed_loop(
                endpoint,
                plan.workload,
                concurrency=concurrency,
                num_requests=plan.requests_at(concurrency),
                slo=plan.slo,
                watch=watch,
                transport=transport,
            )
            levels.append(result)
            if on_level:
                on_level(result)
    return SweepResult(levels=levels, best=best_level(levels), stop_reason="ran every level asked")


class ArtifactBench(BaseModel):
    """A benchmark of one artifact on a server started for it."""

    model_config = ConfigDict(extra="forbid")

    artifact: ArtifactInfo
    engine: str
    engine_version: str | None
    engine_build: str | None
    startup_s: float | None
    server_log: Path
    result: SweepResult
    wall_s: float


def benchmark_artifact(
    engine: EngineServer,
    artifact: Path,
    plan: BenchPlan,
    *,
    options: ServeOptions | None = None,
    python: Path | None = None,
    on_level: Callable[[RunResult], None] | None = None,
) -> ArtifactBench:
    """Serve ``artifact`` with ``engine``, run ``plan`` against it, stop the server.

    Prefix caching is off unless ``options`` say otherwise: repeated prompts would otherwise
    skip their prefill and flatter TTFT.
    """
    options = options or ServeOptions(prefix_caching=False)
    started = time.perf_counter()
    python = python or engine_interpreter(engine)
    with start_server(engine, artifact, options, python=python) as server:
        watch = ServerWatch(pid=server.pid, raise_if_dead=server.raise_if_dead)
        result = asyncio.run(run_plan(server.endpoint, plan, watch=watch, on_level=on_level))
    # Asked after the server stopped, so a second engine import never competes with the
    # measured server for CPU or memory.
    provenance = engine_provenance(engine, python)
    return ArtifactBench(
        artifact=server.model,
        engine=engine.name,
        engine_version=provenance.get("engine_version"),
        engine_build=provenance.get("build"),
        startup_s=server.startup_s,
        server_log=server.log_path,
        result=result,
        wall_s=time.perf_counter() - started,
    )
