"""``quantplan serve``, ``quantplan bench`` and ``quantplan profile``.

Imports stay light at module level (typer, rich); engines, httpx and the catalog load inside the
commands, so ``quantplan --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from quantplan.errors import QuantplanError

if TYPE_CHECKING:
    from collections.abc import Callable

    from quantplan.agent.benchmark.protocol import RunResult, SweepResult
    from quantplan.agent.benchmark.runner import BenchPlan
    from quantplan.agent.serve.engine import EngineServer
    from quantplan.agent.serve.host import HostHardware

console = Console()
err_console = Console(stderr=True)
CommandT = TypeVar("CommandT", bound="Callable[..., Any]")


def stops_children_on_signals(command: CommandT) -> CommandT:
    """Run a long command under ``stop_children_on_signals``: SIGTERM, SIGINT and SIGHUP stop
    the engines and steps it started and exit 128 + signum. The logic is imported when the
    command runs, so ``quantplan --help`` does not pay for the toolchain modules."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from quantplan.agent.toolchains.process import stop_children_on_signals

        with stop_children_on_signals():
            return command(*args, **kwargs)

    return run  # type: ignore[return-value]


EngineOption = Annotated[
    str,
    typer.Option(
        "--engine", help="auto (llama.cpp for .gguf, vLLM for model directories), vllm, llama.cpp"
    ),
]
HostOption = Annotated[
    str, typer.Option("--host", help="Bind address. Anything but 127.0.0.1 exposes the server.")
]
PortOption = Annotated[int | None, typer.Option("--port", help="Port (default: a free one).")]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="QUANTPLAN_API_KEY",
        help="Require this bearer token. Prefer the QUANTPLAN_API_KEY variable: a flag's value "
        "shows in the process list to every local user.",
    ),
]
ThreadsOption = Annotated[int | None, typer.Option("--threads", help="Engine CPU threads.")]
MaxLenOption = Annotated[int, typer.Option("--max-model-len", help="Context to allocate.")]
ParallelOption = Annotated[
    int | None,
    typer.Option(
        "--parallel",
        min=1,
        max=512,
        help="llama.cpp: requests batched together (slots), each with --max-model-len context.",
    ),
]
GpusOption = Annotated[
    int,
    typer.Option(
        "--gpus",
        min=0,
        max=16,
        help="Serve on this many of the host's NVIDIA GPUs (the first ones CUDA_VISIBLE_DEVICES "
        "allows) with the engine's CUDA build: llama.cpp splits the layers over them, vLLM runs "
        "tensor parallel. 0: the CPU.",
    ),
]
GpuLayersOption = Annotated[
    int | None,
    typer.Option(
        "--gpu-layers",
        min=1,
        help="llama.cpp with --gpus: keep only the first N layers on the GPUs and run the rest "
        "on the host (partial offload, for a model larger than the GPUs' memory). The output "
        "layer goes to the GPU only when N exceeds the model's layers. Default: all.",
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--startup-timeout", help="Seconds to wait for the health check.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def _engine_for(engine: str, artifact: Path) -> EngineServer:
    from quantplan.agent.serve import engine_for_artifact, get_engine

    return engine_for_artifact(artifact) if engine == "auto" else get_engine(engine)


def _on_gpus(
    chosen: EngineServer, gpus: int, gpu_layers: int | None
) -> tuple[EngineServer, HostHardware | None, str]:
    """The engine's CUDA server on the first ``gpus`` GPUs this process may use, the host as
    that server sees it, and a few words on the placement; the CPU server where ``gpus`` is 0."""
    if gpu_layers is not None and not gpus:
        raise QuantplanError(
            "--gpu-layers places layers on GPUs: it needs --gpus",
            hint="e.g. --gpus 1 --gpu-layers 20",
        )
    if gpu_layers is not None and not chosen.partial_offload:
        raise QuantplanError(
            f"--gpu-layers (partial offload) does not apply to {chosen.name}: it keeps the "
            "whole model on its GPUs",
            hint="leave out --gpu-layers, or serve a .gguf file (llama.cpp offloads layers)",
        )
    if not gpus:
        return chosen, None, "the CPU"
    import os

    from quantplan.agent.cluster.gpu_engines import (
        gpu_engine,
        gpu_host_hardware,
        host_gpu_assignment,
    )
    from quantplan.agent.serve.host import detect_host
    from quantplan.agent.toolchains.gpu import detect_accelerators

    inventory = detect_accelerators()
    assignment = host_gpu_assignment(inventory, gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    where = f"GPU {', '.join(assignment.visible_devices)}"
    if gpu_layers is not None:
        where += f", first {gpu_layers} layers"
    return (
        gpu_engine(chosen.name, assignment),
        gpu_host_hardware(detect_host(), inventory),
        where,
    )


@stops_children_on_signals
def serve_command(
    artifact: Annotated[Path, typer.Argument(help="A model directory or a .gguf file.")],
    engine: EngineOption = "auto",
    host: HostOption = "127.0.0.1",
    port: PortOption = None,
    api_key: ApiKeyOption = None,
    threads: ThreadsOption = None,
    max_model_len: MaxLenOption = 2048,
    startup_timeout: TimeoutOption = 300.0,
    parallel: ParallelOption = None,
    served_name: Annotated[
        str | None,
        typer.Option(
            "--served-name",
            help="Model name clients send (default: <model>-<scheme> from the artifact's "
            "manifest, else the file or directory name).",
        ),
    ] = None,
    gpus: GpusOption = 0,
    gpu_layers: GpuLayersOption = None,
) -> None:
    """Serve an artifact in the foreground with an OpenAI-compatible API.

    Ctrl-C, SIGTERM or SIGHUP stops the engine server and its children, then exits
    128 + the signal number (130 for Ctrl-C).

    Examples:

      quantplan serve model.gguf --parallel 8

      quantplan serve model.gguf --gpus 1 --gpu-layers 20   # the other layers on the CPU
    """
    import time

    from quantplan.agent.serve.engine import ServeOptions
    from quantplan.agent.serve.manager import start_server
    from quantplan.agent.serve.naming import check_served_name

    chosen, hardware, where = _on_gpus(_engine_for(engine, artifact), gpus, gpu_layers)
    options = ServeOptions(
        host=host,
        port=port,
        api_key=api_key,
        threads=threads,
        max_model_len=max_model_len,
        startup_timeout_s=startup_timeout,
        parallel_slots=parallel,
        served_name=None if served_name is None else check_served_name(served_name),
        gpu_layers=-1 if gpu_layers is None else gpu_layers,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"[yellow]warning:[/] binding {host}: reachable from other machines")
    with console.status(f"starting {chosen.name} on {artifact.name} ({where}) ..."):
        server = start_server(chosen, artifact, options, hardware=hardware)
    with server:
        console.print(f"[green]ready[/] in {server.startup_s:.1f} s")
        # soft_wrap: a long path stays one line, to copy or to parse.
        endpoint = f"endpoint: {server.endpoint.base_url}/v1  model: {server.endpoint.model}"
        console.print(endpoint, soft_wrap=True)
        console.print(f"log: {server.log_path}", soft_wrap=True)
        # Runs until the engine dies or a signal arrives: stop_children_on_signals turns that
        # into an exception here, and leaving the with block stops the server.
        while True:
            server.raise_if_dead()
            time.sleep(1.0)


def _parse_levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise QuantplanError(
            f"--concurrency takes comma-separated integers, got {text!r}", hint="e.g. 1,2,4,8"
        ) from None
    if not levels or min(levels) < 1:
        raise QuantplanError("--concurrency levels must be >= 1", hint="e.g. 1,2,4,8")
    return levels


def levels_table(result: SweepResult, title: str) -> Table:
    table = Table(title=title)
    for column in (
        "load",
        "ok/fail",
        "out tok/s",
        "total tok/s",
        "req/s",
        "TTFT p50/p95/p99 ms",
        "ITL p50/p95 ms",
        "e2e p50 ms",
        "peak mem GB",
        "SLO",
    ):
        table.add_column(column, justify="right")
    for level in result.levels:
        table.add_row(*_level_cells(level, best=level is result.best))
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _level_cells(level: RunResult, *, best: bool) -> list[str]:
    m = level.metrics
    load = f"c={level.concurrency}" if level.mode == "closed" else f"{level.request_rate:g}/s"
    return [
        ("* " if best else "") + load,
        f"{m.completed}/{m.failed}",
        f"{m.output_tokens_per_s:.1f}",
        f"{m.total_tokens_per_s:.1f}",
        f"{m.requests_per_s:.2f}",
        f"{_ms(m.ttft.p50_ms)}/{_ms(m.ttft.p95_ms)}/{_ms(m.ttft.p99_ms)}",
        f"{_ms(m.itl.p50_ms)}/{_ms(m.itl.p95_ms)}",
        _ms(m.e2e.p50_ms),
        "-" if level.peak_server_memory_gb is None else f"{level.peak_server_memory_gb:.2f}",
        {None: "-", True: "met", False: "broken"}[m.slo_met],
    ]


BENCH_FLAGS = {
    "rate": "--rate",
    "num_requests": "--requests",
    "max_concurrency": "--max-concurrency",
    "input_tokens": "--input-tokens",
    "output_tokens": "--output-tokens",
    "concurrencies": "--concurrency",
}


@stops_children_on_signals
def bench_command(
    target: Annotated[
        str, typer.Argument(help="An endpoint URL (http://host:port) or an artifact to serve.")
    ],
    concurrency: Annotated[
        str | None,
        typer.Option("--concurrency", "-c", help="Fixed levels, e.g. 1,4 (default: a sweep)."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="Open loop: Poisson requests per second.")
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option("--requests", "-n", help="Requests per level.", min=1, max=1_000_000),
    ] = None,
    input_tokens: Annotated[int, typer.Option("--input-tokens", min=1, max=32768)] = 128,
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=1, max=32768)] = 64,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, max=4096)] = 64,
    slo_ttft_ms: Annotated[float | None, typer.Option("--slo-ttft-ms")] = None,
    slo_tpot_ms: Annotated[float | None, typer.Option("--slo-tpot-ms")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name for an endpoint (default: asked).")
    ] = None,
    api_key: ApiKeyOption = None,
    engine: EngineOption = "auto",
    threads: ThreadsOption = None,
    json_output: JsonOption = False,
) -> None:
    """Benchmark an endpoint or an artifact with the one protocol every engine gets.

    Closed loop at fixed levels (-c), a sweep (1, 2, 4, ... requests at once
    until throughput stops growing), or Poisson arrivals (--rate). Every prompt
    opens with its run's tag, so a server's prompt cache never answers one:
    each level pays for its own prefills.

    Examples:

      quantplan bench http://127.0.0.1:8000 -c 1,8

      quantplan bench model.gguf --rate 2 -n 64   # serves it, measures, stops it
    """
    from quantplan.agent.benchmark.metrics import slo_from_flags
    from quantplan.agent.benchmark.runner import BenchPlan
    from quantplan.agent.benchmark.workload import Workload

    if concurrency and rate:
        raise QuantplanError("give --concurrency or --rate, not both")
    slo = slo_from_flags(slo_ttft_ms, slo_tpot_ms)
    try:
        plan = BenchPlan(
            workload=Workload(input_tokens=input_tokens, output_tokens=output_tokens),
            mode="open" if rate is not None else "closed" if concurrency else "sweep",
            concurrencies=_parse_levels(concurrency) if concurrency else [],
            rate=rate,
            num_requests=requests,
            max_concurrency=max_concurrency,
            slo=slo,
        )
    except ValidationError as error:  # e.g. --rate nan, which click's ranges let through
        first = error.errors()[0]
        flag = BENCH_FLAGS.get(str(first["loc"][-1]), str(first["loc"][-1]))
        raise QuantplanError(f"{flag}: {first['msg']}", hint="see quantplan bench --help") from None

    def show(level: RunResult) -> None:
        if not json_output:
            m = level.metrics
            err_console.print(
                f"  {level.mode} c={level.concurrency} rate={level.request_rate}: "
                f"{m.output_tokens_per_s:.1f} out tok/s, TTFT p50 {_ms(m.ttft.p50_ms)} ms, "
                f"{m.completed}/{m.requests} ok"
            )

    if target.startswith(("http://", "https://")):
        result = _bench_endpoint(target, model, api_key, plan, show)
        payload: dict[str, object] = result.model_dump(mode="json")
        title = target
    else:
        from quantplan.agent.benchmark.runner import benchmark_artifact
        from quantplan.agent.serve.engine import ServeOptions

        artifact = Path(target)
        chosen = _engine_for(engine, artifact)
        err_console.print(f"serving {artifact.name} with {chosen.name} for the benchmark ...")
        bench = benchmark_artifact(
            chosen,
            artifact,
            plan,
            options=ServeOptions(api_key=api_key, threads=threads, prefix_caching=False),
            on_level=show,
        )
        result = bench.result
        payload = bench.model_dump(mode="json")
        title = f"{artifact.name} on {bench.engine} {bench.engine_version or ''}"
    if json_output:
        console.print_json(json.dumps(payload))
        return
    console.print(levels_table(result, title))
    console.print(f"stopped: {result.stop_reason}")


def _bench_endpoint(
    url: str,
    model: str | None,
    api_key: str | None,
    plan: BenchPlan,
    show: Callable[[RunResult], None],
) -> SweepResult:
    import asyncio

    import httpx

    from quantplan.agent.benchmark.client import Endpoint
    from quantplan.agent.benchmark.runner import run_plan

    base = url.rstrip("/").removesuffix("/v1")
    if model is None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            listing = httpx.get(f"{base}/v1/models", headers=headers, timeout=10).json()
            model = listing["data"][0]["id"]
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as error:
            raise QuantplanError(
                f"cannot ask {base}/v1/models for the model name: {error}",
                hint="check the URL and --api-key, or pass --model",
            ) from error
    endpoint = Endpoint(base_url=base, model=model, api_key=api_key)
    return asyncio.run(run_plan(endpoint, plan, on_level=show))


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``bench`` to the root app."""
    app.command("serve")(serve_command)
    app.command("bench")(bench_command)
