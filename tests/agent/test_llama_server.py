"""llama.cpp's own llama-server: its build recipe, command line and environment (fast), and the
real server on the default model's GGUF (marked engine/toolchain): requests really overlap,
SIGTERM through the CLI stops it and frees its port, a bad file and a taken port are one line.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from quantplan.agent.benchmark.client import make_http_client, stream_completion
from quantplan.agent.benchmark.workload import Workload, make_prompts
from quantplan.agent.serve import LlamaServer, engine_for_artifact, get_engine
from quantplan.agent.serve.engine import ServeOptions, inspect_artifact
from quantplan.agent.serve.manager import engine_environment, port_is_free, start_server
from quantplan.agent.toolchains import llama_server as build
from quantplan.agent.toolchains.specs import get_spec

QUANTPLAN = Path(sys.executable).with_name("quantplan")
READY = re.compile(r"endpoint: http://127\.0\.0\.1:(\d+)/v1")


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 32)
    return path


def arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_slots_context_threads_and_metrics_on_the_command_line(gguf: Path) -> None:
    engine = LlamaServer(binary=Path("/opt/llama-server"))
    options = ServeOptions(threads=2, parallel_slots=8, max_model_len=512, api_key="sk-secret")
    command = engine.command(Path("python"), inspect_artifact(gguf), options, 8123)
    assert command[0] == "/opt/llama-server"
    # -c is the whole KV cache; llama-server gives each of the -np slots c / np tokens.
    assert arg(command, "--ctx-size") == "4096" and arg(command, "--parallel") == "8"
    assert arg(command, "--threads") == arg(command, "--threads-batch") == "2"
    assert "--metrics" in command and "--cont-batching" in command
    assert arg(command, "--n-gpu-layers") == "0"  # CPU build: nothing offloaded
    assert arg(command, "--host") == "127.0.0.1" and arg(command, "--port") == "8123"
    assert not any("sk-secret" in part for part in command)
    assert engine.health_path == "/health"


def test_prefix_caching_off_turns_the_slot_prompt_cache_off(gguf: Path) -> None:
    engine = LlamaServer(binary=Path("/opt/llama-server"))
    model = inspect_artifact(gguf)
    assert "--no-cache-prompt" in engine.command(
        Path("p"), model, ServeOptions(prefix_caching=False), 1
    )
    assert "--no-cache-prompt" not in engine.command(Path("p"), model, ServeOptions(), 1)


def test_gpu_layers_all_or_some_on_a_cuda_build(gguf: Path) -> None:
    engine = LlamaServer(cuda=True, binary=Path("/opt/llama-server"))
    model = inspect_artifact(gguf)
    every = engine.command(Path("p"), model, ServeOptions(), 1)
    some = engine.command(Path("p"), model, ServeOptions(gpu_layers=16), 1)
    assert arg(every, "--n-gpu-layers") == "999" and arg(some, "--n-gpu-layers") == "16"


def test_key_in_its_variable_and_llama_arg_variables_not_passed_on(
    gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMA_ARG_HF_REPO", "someone/else")
    monkeypatch.setenv("llama_arg_model_url", "http://example.invalid/x.gguf")
    monkeypatch.setenv("LLAMA_API_KEY", "stray")
    environment = engine_environment(LlamaServer(), ServeOptions(api_key="sk-secret"))
    assert environment["LLAMA_API_KEY"] == "sk-secret"
    assert not [name for name in environment if name.upper().startswith("LLAMA_ARG_")]
    assert "LLAMA_API_KEY" not in engine_environment(LlamaServer(), ServeOptions())


def test_gguf_goes_to_llama_server_and_the_python_server_stays_by_name(gguf: Path) -> None:
    assert isinstance(engine_for_artifact(gguf), LlamaServer)
    assert isinstance(get_engine("llama-server"), LlamaServer)
    assert get_engine("llama-cpp-python").name == "llama-cpp-python"


def test_build_recipe_keys_cpu_and_cuda_apart_and_keeps_amx_off() -> None:
    cpu, cuda = build.cmake_args(None), build.cmake_args("90")
    assert "-DGGML_NATIVE=OFF" in cpu and "-DLLAMA_BUILD_UI=OFF" in cpu
    assert "-DLLAMA_USE_PREBUILT_UI=OFF" in cpu and "-DGGML_CUDA=ON" not in cpu
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in cuda
    assert len({build.build_key(None), build.build_key("90"), build.build_key("80")}) == 3
    # The source is the sdist the llama-cpp toolchain builds its wheel from.
    assert get_spec("llama-cpp").source_builds[0].requirement == build.SDIST_REQUIREMENT


def test_a_missing_build_is_one_error_when_asked_not_to_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path))
    with pytest.raises(build.ToolchainMissingError) as caught:
        build.ensure_llama_server(install=False)
    assert caught.value.hint and "toolchain install llama-cpp" in caught.value.hint


# --- the real server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_binary() -> Path:
    return build.ensure_llama_server().server


@pytest.fixture(scope="module")
def default_gguf() -> Path:
    from quantplan.agent.model_source import default_gguf

    return default_gguf()


async def _together(endpoint: object, prompts: list[str], workload: Workload) -> list:
    async with make_http_client(endpoint) as client:  # type: ignore[arg-type]
        samples = await asyncio.gather(
            *(stream_completion(client, endpoint, p, workload) for p in prompts)  # type: ignore[arg-type]
        )
    assert all(sample.error is None for sample in samples), [s.error for s in samples]
    assert all(sample.output_tokens == workload.output_tokens for sample in samples)
    return list(samples)


@pytest.mark.engine
@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.integration
def test_four_requests_share_the_batch(server_binary: Path, default_gguf: Path) -> None:
    workload = Workload(input_tokens=32, output_tokens=64)
    prompts = make_prompts(workload, 5)
    # One thread: two on the shared 2-core machine wait on each other at every step under load.
    options = ServeOptions(threads=1, parallel_slots=4, max_model_len=512, startup_timeout_s=120)
    engine = LlamaServer(binary=server_binary)
    with start_server(engine, default_gguf, options) as server:
        endpoint = server.endpoint
        samples = asyncio.run(_together(endpoint, prompts[1:], workload))
        metrics = httpx.get(endpoint.base_url + "/metrics", timeout=10).text
        health = httpx.get(endpoint.base_url + "/health", timeout=10)
    # Served one at a time, a request's first token comes only after the one before it has
    # finished. Batched, all four stream together: every first token arrives before the first
    # request ends. An ordering, not a speed, so a loaded machine cannot fail it.
    first_end = min(sample.end_s for sample in samples)
    first_tokens = [sample.start_s + (sample.ttft_s or 0.0) for sample in samples]
    assert all(t < first_end for t in first_tokens), (first_tokens, first_end)
    assert "llamacpp:tokens_predicted_total" in metrics and health.status_code == 200


def _serve(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [str(QUANTPLAN), "serve", *args],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process, out, err


@pytest.mark.engine
@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.integration
def test_sigterm_stops_llama_server_and_frees_its_port(
    server_binary: Path, default_gguf: Path, tmp_path: Path
) -> None:
    process, out, err = _serve([str(default_gguf), "--threads", "2", "--parallel", "2"], tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not READY.search(out.read_text()) and time.monotonic() < deadline:
            assert process.poll() is None, err.read_text()
            time.sleep(0.2)
        port = int(READY.search(out.read_text()).group(1))  # type: ignore[union-attr]
        engine = next(
            child
            for child in psutil.Process(process.pid).children()
            if "llama-server" in " ".join(child.cmdline())
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 143
        assert not psutil.pid_exists(engine.pid) or engine.status() == psutil.STATUS_ZOMBIE
        assert port_is_free("127.0.0.1", port)
        assert "Traceback" not in err.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.engine
@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.integration
def test_a_damaged_gguf_is_one_line(server_binary: Path, tmp_path: Path) -> None:
    bad = tmp_path / "damaged.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))  # right magic, garbage after it
    result = subprocess.run(
        [str(QUANTPLAN), "serve", str(bad), "--startup-timeout", "60"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "llama.cpp server exited during startup" in result.stderr
    assert "re-create the artifact" in result.stderr  # classified as a bad input, with its fix


@pytest.mark.engine
@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.integration
def test_a_taken_port_is_one_line(server_binary: Path, default_gguf: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [str(QUANTPLAN), "serve", str(default_gguf), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
