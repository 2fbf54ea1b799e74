"""Server manager faults, against a tiny real HTTP server process (tests/agent/serving_stub.py).

Each fault must raise its own clear error, leave no process behind and free the port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from stub_engine import CPU, OLD_CPU, STUB, StubEngine

from quantplan.agent.benchmark.metrics import Slo
from quantplan.agent.benchmark.protocol import (
    ServerWatch,
    run_closed_loop,
    run_open_loop,
    sweep_concurrency,
)
from quantplan.agent.benchmark.workload import Workload
from quantplan.agent.serve import LlamaCppServer, VllmServer
from quantplan.agent.serve.engine import EngineServer, ServeOptions
from quantplan.agent.serve.errors import (
    EngineDiedError,
    InvalidArtifactError,
    NeverHealthyError,
    OutOfMemoryAtLoadError,
    PortInUseError,
    UnsupportedHardwareError,
)
from quantplan.agent.serve.manager import ServerHandle, port_is_free, start_server


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tiny-model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (directory / "model.safetensors").write_bytes(b"\0" * 16)
    return directory


def start(engine: EngineServer, model: Path, tmp_path: Path, **options: object) -> ServerHandle:
    return start_server(
        engine,
        model,
        ServeOptions(**options),  # type: ignore[arg-type]
        python=Path(sys.executable),
        hardware=CPU,
        logs=tmp_path / "logs",
    )


def assert_released(handle: ServerHandle) -> None:
    assert not psutil.pid_exists(handle.pid) or psutil.Process(handle.pid).status() == "zombie"
    assert port_is_free("127.0.0.1", handle.port)


def test_healthy_server_starts_binds_localhost_and_stops_cleanly(
    model_dir: Path, tmp_path: Path
) -> None:
    with start(StubEngine(), model_dir, tmp_path) as handle:
        assert handle.endpoint.base_url.startswith("http://127.0.0.1:")
        assert handle.startup_s is not None
        connections = psutil.Process(handle.pid).net_connections(kind="tcp")
        assert {c.laddr.ip for c in connections if c.status == "LISTEN"} == {"127.0.0.1"}
        assert handle.log_path.exists()
    assert_released(handle)


def test_port_in_use_is_refused_before_starting(model_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port}"):
            start(StubEngine(), model_dir, tmp_path, port=port)


def test_never_healthy_server_times_out_and_is_killed(model_dir: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(NeverHealthyError) as caught:
        start(StubEngine("never-healthy"), model_dir, tmp_path, startup_timeout_s=2)
    assert time.monotonic() - started < 30
    assert caught.value.log_path is not None
    assert not any(
        str(STUB) in " ".join(p.info["cmdline"] or []) and "never-healthy" in str(p.info["cmdline"])
        for p in psutil.process_iter(["cmdline"])
    )


def test_oom_at_load_is_classified_from_the_log(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(OutOfMemoryAtLoadError, match="KV cache") as caught:
        start(StubEngine("oom"), model_dir, tmp_path)
    assert caught.value.hint and "max-model-len" in caught.value.hint


def test_silent_exit_is_engine_died(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineDiedError, match="exit code 3"):
        start(StubEngine("exit"), model_dir, tmp_path)


def test_missing_and_wrong_format_artifacts(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifactError, match="does not exist"):
        start(VllmServer(), tmp_path / "nope", tmp_path)
    with pytest.raises(InvalidArtifactError, match=r"llama\.cpp serves GGUF"):
        start(LlamaCppServer(), model_dir, tmp_path)
    fake_gguf = tmp_path / "broken.gguf"
    fake_gguf.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(InvalidArtifactError, match="not a GGUF file"):
        start(LlamaCppServer(), fake_gguf, tmp_path)
    real_magic = tmp_path / "model.gguf"
    real_magic.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(InvalidArtifactError, match="vLLM serves Hugging Face"):
        start(VllmServer(), real_magic, tmp_path)


def test_unsupported_hardware_is_refused_with_the_reason(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedHardwareError, match="avx512f"):
        start_server(VllmServer(), model_dir, python=Path(sys.executable), hardware=OLD_CPU)


def test_api_key_is_required_when_set(model_dir: Path, tmp_path: Path) -> None:
    workload = Workload(input_tokens=8, output_tokens=4)
    with start(StubEngine(), model_dir, tmp_path, api_key="s3cret") as handle:
        good = asyncio.run(
            run_closed_loop(handle.endpoint, workload, concurrency=1, num_requests=2)
        )
        anonymous = handle.endpoint.model_copy(update={"api_key": None})
        bad = asyncio.run(run_closed_loop(anonymous, workload, concurrency=1, num_requests=2))
    assert good.metrics.completed == 2
    assert bad.metrics.completed == 0 and bad.metrics.errors[0].startswith("HTTP 401")


def test_server_killed_mid_benchmark_fails_the_run_and_releases_everything(
    model_dir: Path, tmp_path: Path
) -> None:
    handle = start(StubEngine(token_delay=0.05), model_dir, tmp_path)
    try:
        killer = threading.Timer(1.0, lambda: psutil.Process(handle.pid).kill())
        killer.start()
        watch = ServerWatch(pid=handle.pid, raise_if_dead=handle.raise_if_dead)
        with pytest.raises(EngineDiedError, match="died"):
            asyncio.run(
                run_closed_loop(
                    handle.endpoint,
                    Workload(input_tokens=8, output_tokens=64),
                    concurrency=2,
                    num_requests=20,
                    watch=watch,
                )
            )
    finally:
        handle.stop()
    assert_released(handle)


def test_zero_completed_requests_is_a_result_not_a_crash(model_dir: Path, tmp_path: Path) -> None:
    with start(StubEngine("fail-requests"), model_dir, tmp_path) as handle:
        result = asyncio.run(
            run_closed_loop(
                handle.endpoint, Workload(), concurrency=2, num_requests=4, slo=Slo(ttft_ms=100)
            )
        )
    assert result.metrics.completed == 0
    assert result.metrics.error_rate == 1.0
    assert result.metrics.output_tokens_per_s == 0.0


def test_closed_loop_sweep_and_open_loop_against_a_live_server(
    model_dir: Path, tmp_path: Path
) -> None:
    workload = Workload(input_tokens=16, output_tokens=8)
    # The stub's per-token sleep must dwarf the client's own work per token, or on a busy
    # machine concurrency 4 gains under the sweep's 5 % and it rightly stops at 2.
    with start(StubEngine(token_delay=0.04), model_dir, tmp_path) as handle:
        watch = ServerWatch(pid=handle.pid, raise_if_dead=handle.raise_if_dead)
        sweep = asyncio.run(
            sweep_concurrency(handle.endpoint, workload, max_concurrency=4, watch=watch)
        )
        broken = asyncio.run(
            sweep_concurrency(handle.endpoint, workload, slo=Slo(ttft_ms=0.001), max_concurrency=4)
        )
        open_loop = asyncio.run(
            run_open_loop(handle.endpoint, workload, rate=20.0, num_requests=10, watch=watch)
        )
    assert [level.concurrency for level in sweep.levels] == [1, 2, 4]
    assert sweep.best is not None and sweep.best.concurrency == 4
    assert sweep.levels[0].metrics.output_tokens == 8 * 8  # usage from the stream
    assert sweep.levels[0].metrics.prompt_tokens == 7 * 8
    assert sweep.levels[0].peak_server_memory_gb and sweep.levels[0].peak_server_memory_gb > 0
    assert broken.stop_reason.startswith("SLO broken at concurrency 1")
    assert broken.best is None
    assert open_loop.metrics.completed == 10 and open_loop.request_rate == 20.0
    assert open_loop.metrics.itl.p50_ms is not None
