"""What the CPU server benchmarks (bench/llamacpp_server.py, bench/vllm_cpu_server.py) share:
the default model's cached artifacts, one closed-loop level after another against a running
server with the load average around each, and the rule for seeding a run's rows."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from quantplan.agent.artifacts import ArtifactManifest
from quantplan.agent.benchmark.client import Endpoint
from quantplan.agent.benchmark.protocol import ServerWatch, run_closed_loop
from quantplan.agent.benchmark.workload import Workload


def default_model_artifact(method: str, *options: str) -> tuple[ArtifactManifest, Path]:
    """The default model quantized by ``method`` (``quantplan quantize``: taken from the
    artifact cache, quantized now if missing): its manifest and local directory."""
    from quantplan.agent.artifacts import ArtifactStore

    quantplan = str(Path(sys.executable).with_name("quantplan"))
    quantize = [quantplan, "quantize", "--method", method, "--model", "default", *options]
    output = subprocess.run(
        [*quantize, "--no-layer-error", "--json"], capture_output=True, text=True, check=True
    ).stdout
    manifest = ArtifactManifest.model_validate(json.loads(output)[0])
    return manifest, ArtifactStore().local_dir(manifest)


def measure_levels(
    endpoint: Endpoint,
    watch: ServerWatch,
    workload: Workload,
    levels: Iterable[int],
    requests_at: Callable[[int], int],
    label: str,
) -> list[dict[str, Any]]:
    """One closed-loop run a concurrency level, after one warm-up request (the first prompt
    pays page faults and allocations): each level's results and the 1-minute load average
    before and after it (the machine is shared)."""
    asyncio.run(run_closed_loop(endpoint, workload, concurrency=1, num_requests=1))
    measured = []
    for concurrency in levels:
        load_before = os.getloadavg()[0]
        result = asyncio.run(
            run_closed_loop(
                endpoint, workload, concurrency=concurrency,
                num_requests=requests_at(concurrency), watch=watch,
            )
        )  # fmt: skip
        m = result.metrics
        measured.append(
            {
                "concurrency": concurrency,
                "requests": m.requests,
                "completed": m.completed,
                "failed": m.failed,
                "duration_s": round(m.duration_s, 2),
                "output_tokens_per_s": round(m.output_tokens_per_s, 1),
                "mean_prompt_tokens": round(m.prompt_tokens / max(m.completed, 1), 1),
                "ttft_p50_ms": m.ttft.p50_ms,
                "ttft_p95_ms": m.ttft.p95_ms,
                "itl_p50_ms": m.itl.p50_ms,
                "itl_p95_ms": m.itl.p95_ms,
                "load_1min_before": round(load_before, 2),
                "load_1min_after": round(os.getloadavg()[0], 2),
                "errors": m.errors,
            }
        )
        print(
            f"{label} c={concurrency:2d} {m.output_tokens_per_s:7.1f} tok/s  "
            f"TTFT p50 {m.ttft.p50_ms or 0:7.0f} ms  load {load_before:.1f}",
            flush=True,
        )
    return measured


def mark_if_quiet(report: dict[str, Any], loads: list[float]) -> bool:
    """Whether the run may be seeded, recorded in ``report`` with the rule. A run that shared
    the cores with other work measured a fraction of the machine; as seed profiles it would
    pull every estimate of that setting down by that fraction. Only a run whose load stayed
    within the machine's cores (plus the client's share) is seeded."""
    limit = report["host"]["cores"] + 0.5
    report["seeded"] = bool(loads) and max(loads) <= limit
    report["seed_rule"] = f"seeded only when every level's 1-min load was <= {limit:g}"
    return bool(report["seeded"])


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
