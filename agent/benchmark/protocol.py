"""The benchmark protocol: closed-loop concurrency sweep and open-loop Poisson arrivals.

Every engine gets the same client, prompts, token counts and metric definitions. A run can
watch the server it measures (:class:`ServerWatch`): peak memory of the server process tree,
and an abort when the server dies, so a partial run is never reported as a result.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import httpx
import psutil
from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.benchmark.client import Endpoint, make_http_client, stream_completion
from quantplan.agent.benchmark.metrics import BenchMetrics, RequestSample, Slo, summarize
from quantplan.agent.benchmark.workload import Workload, make_prompts
from quantplan.agent.serve.errors import EngineDiedError

MEMORY_POLL_S = 0.25


class ServerWatch(BaseModel):
    """The server process behind an endpoint, when we started it (None for remote ones)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    pid: int = Field(description="Server process id; its children are measured too")
    raise_if_dead: Callable[[], None] = Field(description="Raises EngineDiedError when gone")


class RunResult(BaseModel):
    """One run at one load level."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["closed", "open"]
    concurrency: int | None = Field(default=None, description="Closed loop: requests in flight")
    request_rate: float | None = Field(default=None, description="Open loop: Poisson rate /s")
    workload: Workload
    metrics: BenchMetrics
    peak_server_memory_gb: float | None = Field(
        default=None, description="Peak RSS of the server process tree during the run"
    )


class SweepResult(BaseModel):
    """A closed-loop sweep: every level run, the best one and why the sweep stopped."""

    model_config = ConfigDict(extra="forbid")

    levels: list[RunResult]
    best: RunResult | None = Field(description="Highest output tok/s among SLO-meeting levels")
    stop_reason: str


def _tree_rss_bytes(process: psutil.Process) -> int:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


async def _watch(watch: ServerWatch | None, peak: list[int], stop: asyncio.Event) -> None:
    """Sample memory and liveness until ``stop``; raises EngineDiedError if the server dies."""
    if watch is None:
        await stop.wait()
        return
    try:
        process = psutil.Process(watch.pid)
    except psutil.NoSuchProcess:
        watch.raise_if_dead()
        raise
    while not stop.is_set():
        watch.raise_if_dead()
        try:
            peak[0] = max(peak[0], _tree_rss_bytes(process))
        except psutil.NoSuchProcess:
            watch.raise_if_dead()
        try:
            await asyncio.wait_for(stop.wait(), MEMORY_POLL_S)
        except TimeoutError:
            continue


async def _run_with_watch(
    work: Callable[[], Awaitable[list[RequestSample]]],
    watch: ServerWatch | None,
) -> tuple[list[RequestSample], float, int]:
    """Run ``work`` while watching the server; a death cancels the work and propagates."""
    peak = [0]
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(watch, peak, stop))
    started = time.perf_counter()
    worker = asyncio.ensure_future(work())
    done, _ = await asyncio.wait({worker, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if watcher in done and worker not in done:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        watcher.result()  # re-raises the EngineDiedError
        raise EngineDiedError("the server stopped during the benchmark")
    samples = worker.result()
    duration = time.perf_counter() - started
    stop.set()
    await watcher
    if watch is not None:
        # A server that died right at the end may have failed the last requests: say so.
        watch.raise_if_dead()
        # A crashed engine can leave its process hanging (e.g. in a backtrace handler) with the
        # socket closed: no request reached it, so the run is a failed run, not zero numbers.
        if samples and all(s.error and s.error.startswith("ConnectError") for s in samples):
            raise EngineDiedError("the server stopped accepting connections during the benchmark")
    return samples, duration, peak[0]


async def fill_prompt_tokens(
    client: httpx.AsyncClient, endpoint: Endpoint, samples: list[RequestSample], prompts: list[str]
) -> None:
    """Ask the server to count prompt tokens where its stream reported no usage (llama.cpp)."""
    if not any(s.ok and s.prompt_tokens == 0 for s in samples):
        return
    counts: dict[str, int] = {}
    for prompt in set(prompts):
        counts[prompt] = await _count_tokens(client, endpoint, prompt)
    for sample, prompt in zip(samples, prompts, strict=True):
        if sample.ok and sample.prompt_tokens == 0:
            sample.prompt_tokens = counts[prompt]


async def _count_tokens(client: httpx.AsyncClient, endpoint: Endpoint, text: str) -> int:
    # vLLM serves /tokenize, llama-cpp-python /extras/tokenize; try both, report 0 if neither.
    try:
        response = await client.post("/tokenize", json={"model": endpoint.model, "prompt": text})
        if response.status_code == 200 and "count" in response.json():
            return int(response.json()["count"])
        response = await client.post("/extras/tokenize", json={"input": text})
        if response.status_code == 200 and "tokens" in response.json():
            return len(response.json()["tokens"])
    except (httpx.HTTPError, ValueError):
        pass  # prompt tokens then stay unknown (0); output metrics do not depend on them
    return 0


async def run_closed_loop(
    endpoint: Endpoint,
    workload: Workload,
    *,
    concurrency: int,
    num_requests: int,
    slo: Slo | None = None,
    watch: ServerWatch | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunResult:
    """``concurrency`` workers each send their next request as soon as the last one ends."""
    if concurrency < 1 or num_requests < 1:
        raise ValueError("concurrency and num_requests must be >= 1")
    prompts = make_prompts(workload, num_requests)
    async with make_http_client(endpoint, transport=transport) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(num_requests):
            queue.put_nowait(index)
        results: list[RequestSample | None] = [None] * num_requests

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                results[index] = await stream_completion(client, endpoint, prompts[index], workload)

        async def work() -> list[RequestSample]:
            await asyncio.gather(*(worker() for _ in range(min(concurrency, num_requests))))
            return [r for r in results if r is not None]

        samples, duration, peak = await _run_with_watch(work, watch)
        await fill_prompt_tokens(client, endpoint, samples, prompts)
    return RunResult(
        mode="closed",
        concurrency=concurrency,
        workload=workload,
        metrics=summarize(samples, duration, slo),
        peak_server_memory_gb=peak / 1e9 if peak else None,
    )


def poisson_arrivals(rate: float, count: int, seed: int) -> list[float]:
    """Send offsets (seconds from start) of a Poisson process at ``rate`` requests/s."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    rng = random.Random(seed)
    offsets: list[float] = []
    now = 0.0
    for _ in range(count):
        offsets.append(now)
        now += rng.expovariate(rate)
    return offsets


async def run_open_loop(
    endpoint: Endpoint,
    workload: Workload,
    *,
    rate: float,
    num_requests: int,
    slo: Slo | None = None,
    watch: ServerWatch | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunResult:
    """Requests arrive as a Poisson process at ``rate``/s, whether or not earlier ones ended."""
    if num_requests < 1:
        raise ValueError("num_requests must be >= 1")
    prompts = make_prompts(workload, num_requests)
    offsets = poisson_arrivals(rate, num_requests, workload.seed)
    async with make_http_client(endpoint, transport=transport) as client:

        async def one(index: int, begin: float) -> RequestSample:
            delay = begin + offsets[index] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            return await stream_completion(client, endpoint, prompts[index], workload)

        async def work() -> list[RequestSample]:
            begin = time.perf_counter()
            return list(await asyncio.gather(*(one(i, begin) for i in range(num_requests))))

        samples, duration, peak = await _run_with_watch(work, watch)
        await fill_prompt_tokens(client, endpoint, samples, prompts)
    return RunResult(
        mode="open",
        request_rate=rate,
        workload=workload,
        metrics=summarize(samples, duration, slo),
        peak_server_memory_gb=peak / 1e9 if peak else None,
    )


def requests_for_level(concurrency: int, minimum: int = 8, rounds: int = 4) -> int:
    """Enough requests that each worker runs several in a row (steady state, not ramp-up)."""
    return max(minimum, rounds * concurrency)


async def sweep_concurrency(
    endpoint: Endpoint,
    workload: Workload,
    *,
    slo: Slo | None = None,
    max_concurrency: int = 64,
    min_gain: float = 0.05,
    requests_per_level: Callable[[int], int] = requests_for_level,
    watch: ServerWatch | None = None,
    on_level: Callable[[RunResult], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SweepResult:
    """Closed loop at 1, 2, 4, ... until throughput gains less than ``min_gain`` or SLO breaks."""
    levels: list[RunResult] = []
    stop_reason = f"reached the maximum concurrency {max_concurrency}"
    concurrency = 1
    while concurrency <= max_concurrency:
        # Each level its own text as well as its own run tag (agent/benchmark/workload.py).
        level_workload = workload.model_copy(update={"seed": workload.seed + len(levels)})
        result = await run_closed_loop(
            endpoint,
            level_workload,
            concurrency=concurrency,
            num_requests=requests_per_level(concurrency),
            slo=slo,
            watch=watch,
            transport=transport,
        )
        levels.append(result)
        if on_level is not None:
            on_level(result)
        metrics = result.metrics
        if metrics.completed == 0:
            stop_reason = f"no request completed at concurrency {concurrency}"
            break
        if metrics.slo_met is False:
            stop_reason = f"SLO broken at concurrency {concurrency}"
            break
        if len(levels) >= 2:
            previous = levels[-2].metrics.output_tokens_per_s
            if previous > 0 and metrics.output_tokens_per_s < previous * (1 + min_gain):
                stop_reason = (
                    f"throughput grew less than {min_gain:.0%} from concurrency "
                    f"{concurrency // 2} to {concurrency}"
                )
                break
        concurrency *= 2
    return SweepResult(levels=levels, best=best_level(levels), stop_reason=stop_reason)


def best_level(levels: list[RunResult]) -> RunResult | None:
    """Highest output throughput among levels that completed requests and met the SLO."""
    eligible = [r for r in levels if r.metrics.completed > 0 and r.metrics.slo_met is not False]
    return max(eligible, key=lambda r: r.metrics.output_tokens_per_s, default=None)
