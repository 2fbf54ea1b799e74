"""GGUF serving on this machine's CPU: llama.cpp's llama-server vs llama-cpp-python's server.

Side by side in one run, on the default model's Q4_K_M and Q8_0 GGUFs (made by ``quantplan
quantize --model default --method gguf --scheme ...`` and taken from the artifact cache), with
quantplan's own closed-loop client (agent/benchmark) at concurrency 1, 2, 4, 8, 16: 128 prompt and
64 output tokens per request (EOS ignored), output tok/s, TTFT and ITL p50/p95. One server at a
time, each with 1 thread (see THREADS); llama-server with 16 slots of 512 tokens. The 1-minute
load average is recorded before and after every level: this machine is shared with other work.

Run it under the heavy-work lock, so other benchmarks do not run beside it:
    flock /tmp/quantplan-heavy.lock .venv/bin/python bench/llamacpp_server.py
Writes bench/results/llamacpp_server.json and .md.
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
from quantplan.agent.serve import LlamaCppServer, LlamaServer
from quantplan.agent.serve.engine import EngineServer, ServeOptions
from quantplan.agent.serve.host import detect_host
from quantplan.agent.serve.manager import engine_provenance, start_server

HERE = Path(__file__).parent
RESULTS = HERE / "results"
LEVELS = (1, 2, 4, 8, 16)
WORKLOAD = Workload(input_tokens=128, output_tokens=64)
SLOTS = 16
# One engine thread: with two threads on the two shared cores, each decode step waits at
# llama.cpp's thread barrier for both threads to be scheduled; with other work running (load
# 8-9) a first run fell to about 1 output tok/s a request. One thread only loses its share.
THREADS = 1


def gguf_artifact(scheme: str) -> tuple[Path, dict[str, Any]]:
    """The cached GGUF of the default model for ``scheme`` (quantized now if missing)."""
    manifest, directory = default_model_artifact("gguf", "--scheme", scheme)
    facts = {
        "artifact_id": manifest.artifact_id,
        "bits_per_weight": manifest.bits_per_weight,
        "bytes": manifest.total_bytes,
    }
    return directory / manifest.main_file, facts


def requests_at(concurrency: int) -> int:
    return max(4, concurrency)


def run_server(engine: EngineServer, gguf: Path, python: Path) -> dict[str, Any]:
    options = ServeOptions(
        threads=THREADS,
        max_model_len=512,
        parallel_slots=SLOTS,
        startup_timeout_s=180,
        prefix_caching=False,  # llama-server: every request pays its prefill
    )
    with start_server(engine, gguf, options, python=python) as server:
        watch = ServerWatch(pid=server.pid, raise_if_dead=server.raise_if_dead)
        label = f"{engine.name:17s} {gguf.name:36s}"
        levels = measure_levels(server.endpoint, watch, WORKLOAD, LEVELS, requests_at, label)
        startup_s = server.startup_s
    return {"startup_s": round(startup_s or 0.0, 2), "levels": levels}


SEED_NAME = "profiles_llamacpp_server_cpu.yaml"
SOURCE = "quantplan bench/results/llamacpp_server.json"
SCHEMES = {"Q4_K_M": "gguf-q4_k_m", "Q8_0": "gguf-q8_0"}


def profile_rows(report: dict[str, Any]) -> list[Any]:
    """llama-server's levels as measured seed profiles (the Python server is no plan engine)."""
    from quantplan.catalog.records import ProfileRecord

    rows = []
    engine = report["engines"]["llama.cpp"]
    for scheme, entry in report["models"].items():
        for level in entry["servers"]["llama.cpp"]["levels"]:
            if level["completed"] == 0:
                continue
            rows.append(
                ProfileRecord(
                    model="SmolLM2-135M-Instruct",
                    scheme=SCHEMES[scheme],
                    engine="llama.cpp",
                    hardware="Xeon-SapphireRapids",
                    # One engine thread on one of this VM's cores (it shows one thread a core):
                    # a whole core of the family, which is 2 of its vCPUs (2 threads a core).
                    hardware_count=2 * report.get("threads", THREADS),
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
                    run_id=f"llamacpp-cpu-{report['date'][:10]}",
                    engine_version=f"llama-server {engine.get('engine_version')}",
                    notes=(
                        f"llama-server -np {SLOTS} -t {THREADS}, prompt cache off, closed loop "
                        f"with quantplan's client on the same 2 shared cores (1-min load "
                        f"{level['load_1min_before']:.1f} before the level); the file is "
                        f"{entry['bits_per_weight']} bits per weight (k-quants fall back on "
                        "this model's 576-column rows)"
                    ),
                    details={
                        "url": "bench/results/llamacpp_server.json",
                        "where": f"models[{scheme}].servers[llama.cpp], c={level['concurrency']}",
                        "date": report["date"][:10],
                        "commit": report["commit"],
                        "category": "throughput_at_concurrency",
                        "served": True,  # over HTTP: a served curve (planner/batching.py)
                    },
                )
            )
    return rows


def write_md(report: dict[str, Any], path: Path) -> None:
    lines = [
        "# GGUF serving on CPU: llama-server vs llama-cpp-python's server",
        "",
        f"Run {report['date']} on {report['host']['describe']} ({report['host']['cores']} cores), "
        f"commit {report['commit']}. Default model (SmolLM2-135M-Instruct, dequantized from "
        "Q4_1: quality is not the point here), "
        f"{WORKLOAD.input_tokens} prompt / {WORKLOAD.output_tokens} output tokens per request, "
        f"closed loop with quantplan's client, {THREADS} server thread(s), llama-server with "
        f"{SLOTS} slots of 512 tokens, prompt cache off. One server at a time, client and "
        "server on the same 2 cores; max(4, concurrency) requests a level. One engine thread: "
        "with two, a first run under a load of 8-9 fell to about 1 output tok/s per request "
        "(each decode step waits at llama.cpp's thread barrier for both threads to be "
        "scheduled on the two shared cores).",
        "",
        (
            "**The machine is shared and was busy**: "
            if not report.get("seeded")
            else "**The machine is shared; it was quiet for this run**: "
        )
        + "the 1-minute load average before each level is "
        "in the tables (2 would mean the 2 cores were fully used; the benchmark's own server "
        "and client make about 1). Absolute numbers move with it; the ratio between the "
        "servers at one level is the finding. Run under `flock /tmp/quantplan-heavy.lock`.",
        "",
        f"llama-server: {report['engines']['llama.cpp'].get('engine_version')} "
        f"({report['engines']['llama.cpp'].get('build')}); llama-cpp-python "
        f"{report['engines']['llama-cpp-python'].get('engine_version')}.",
        "",
    ]
    for scheme, entry in report["models"].items():
        fast = entry["servers"]["llama.cpp"]["levels"]
        slow = entry["servers"]["llama-cpp-python"]["levels"]
        lines.append(
            f"- {scheme}: llama-server {fast[0]['output_tokens_per_s']:.1f} -> "
            f"{fast[-1]['output_tokens_per_s']:.1f} tok/s from concurrency {fast[0]['concurrency']}"
            f" to {fast[-1]['concurrency']} "
            f"({fast[-1]['output_tokens_per_s'] / fast[0]['output_tokens_per_s']:.1f}x), "
            f"llama-cpp-python {slow[0]['output_tokens_per_s']:.1f} -> "
            f"{slow[-1]['output_tokens_per_s']:.1f}; at {fast[-1]['concurrency']}, llama-server "
            f"is {fast[-1]['output_tokens_per_s'] / slow[-1]['output_tokens_per_s']:.1f}x and its "
            f"median TTFT {fmt(fast[-1]['ttft_p50_ms'])} ms against "
            f"{fmt(slow[-1]['ttft_p50_ms'])} ms."
        )
    lines.append("")
    for scheme, entry in report["models"].items():
        lines += [
            f"## {scheme} ({entry['file']}, {entry['bits_per_weight']} bits per weight)",
            "",
            "| concurrency | llama-server tok/s | TTFT p50 / p95 ms | ITL p50 / p95 ms "
            "| llama-cpp-python tok/s | TTFT p50 / p95 ms | ITL p50 / p95 ms | load |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        fast = entry["servers"]["llama.cpp"]["levels"]
        slow = entry["servers"]["llama-cpp-python"]["levels"]
        for a, b in zip(fast, slow, strict=True):
            lines.append(
                f"| {a['concurrency']} | {fmt(a['output_tokens_per_s'], 1)} | "
                f"{fmt(a['ttft_p50_ms'])} / {fmt(a['ttft_p95_ms'])} | "
                f"{fmt(a['itl_p50_ms'], 1)} / {fmt(a['itl_p95_ms'], 1)} | "
                f"{fmt(b['output_tokens_per_s'], 1)} | "
                f"{fmt(b['ttft_p50_ms'])} / {fmt(b['ttft_p95_ms'])} | "
                f"{fmt(b['itl_p50_ms'], 1)} / {fmt(b['itl_p95_ms'], 1)} | "
                f"{a['load_1min_before']:.1f} / {b['load_1min_before']:.1f} |"
            )
        lines.append("")
    from llamacpp_server_planner import comparison_md

    lines += [
        "## The planner against llama-server's curve",
        "",
        "`planner.estimate.predict_profile` for each llama-server level: before (the seed "
        "catalog without these rows) and after (these rows added except the point itself: "
        "interpolated from the neighbouring concurrencies, clamped at the ends). The planner "
        "models a machine of its own; "
        + (
            "this run is in the seed catalog."
            if report.get("seeded")
            else "this run shared its 2 cores with other work (load above the cores), so it "
            f"measured a fraction of the machine and is not seeded ({report.get('seed_rule')});"
            " the errors below are mostly that fraction, not the model."
        ),
        "",
        *comparison_md(report["planner"]),
        "",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schemes", default="Q4_K_M,Q8_0")
    parser.add_argument("--out", type=Path, default=RESULTS / "llamacpp_server.json")
    parser.add_argument(
        "--from-json",
        action="store_true",
        help="Measure nothing: rewrite the seed rows, planner comparison and md from --out",
    )
    args = parser.parse_args()
    if args.from_json:
        report = json.loads(args.out.read_text(encoding="utf-8"))
        finish(report, args.out)
        return
    from quantplan.agent.toolchains import ensure_toolchain

    python = ensure_toolchain("llama-cpp").python
    engines: list[EngineServer] = [LlamaServer(), LlamaCppServer()]
    host = detect_host()
    report: dict[str, Any] = {
        "benchmark": "llamacpp_server",
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
        "threads": THREADS,
        "llama_server_slots": SLOTS,
        "requests_per_level": {str(c): requests_at(c) for c in LEVELS},
        "engines": {engine.name: engine_provenance(engine, python) for engine in engines},
        "models": {},
    }
    started = time.monotonic()
    for scheme in args.schemes.split(","):
        gguf, facts = gguf_artifact(scheme)
        entry: dict[str, Any] = {"file": gguf.name, **facts, "servers": {}}
        for engine in engines:
            entry["servers"][engine.name] = run_server(engine, gguf, python)
        report["models"][scheme] = entry
    report["wall_s"] = round(time.monotonic() - started, 1)
    finish(report, args.out)


def finish(report: dict[str, Any], out: Path) -> None:
    """Seed rows, the planner's prediction, and the results files."""
    from llamacpp_server_planner import SEED_DIR, compare, write_seed

    rows = profile_rows(report)
    loads = [
        level["load_1min_before"]
        for entry in report["models"].values()
        for server in entry["servers"].values()
        for level in server["levels"]
    ]
    if mark_if_quiet(report, loads):
        header = (
            "llama-server on this project's 2-core CPU machine, measured by "
            "bench/llamacpp_server.py.\nWritten by that script; do not edit."
        )
        write_seed(SEED_DIR / SEED_NAME, header, rows)
    report["planner"] = compare(rows)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_md(report, out.with_suffix(".md"))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
