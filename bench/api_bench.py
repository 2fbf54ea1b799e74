"""Plans per second through the HTTP API: a started `quantplan api`, N concurrent clients.

Each client posts distinct targets (request rates drawn from a fixed sequence, so no two
consecutive requests ask the same question) and counts answered plans; the run reports
plans/s, latency percentiles, the load average before and after, and the date. Writes
bench/results/api.json (api.md, the readable summary, is written from it by hand).

    .venv/bin/python bench/api_bench.py --clients 8 --seconds 30 --workers 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"
QUANTPLAN = str(Path(sys.executable).with_name("quantplan"))
MODELS = ("Llama-3.2-1B", "Llama-3.1-8B", "Qwen2.5-14B", "Mistral-7B")


def _targets(i: int) -> dict:
    return {
        "model": MODELS[i % len(MODELS)],
        "workload": {"requests_per_s": round(0.5 + (i * 7.31) % 40, 2)},
        "slos": {"ttft_p95_ms": 1000.0},
    }


async def _client(base: str, start: int, step: int, until: float, latencies: list[float]) -> int:
    done, i = 0, start
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while time.monotonic() < until:
            sent = time.perf_counter()
            answer = await http.post("/v1/plan", json=_targets(i))
            answer.raise_for_status()
            latencies.append(time.perf_counter() - sent)
            done, i = done + 1, i + step
    return done


async def _run(base: str, clients: int, seconds: float) -> tuple[int, list[float], float]:
    latencies: list[float] = []
    began = time.monotonic()
    counts = await asyncio.gather(
        *(_client(base, c, clients, began + seconds, latencies) for c in range(clients))
    )
    return sum(counts), latencies, time.monotonic() - began


def _measure(workers: int, clients: int, seconds: float) -> dict:
    """One started server with ``workers`` processes, measured under ``clients`` clients."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data_dir = tempfile.mkdtemp(prefix="qp-api-bench-")
    env = {**os.environ, "QUANTPLAN_DATA_DIR": data_dir}
    env.pop("QUANTPLAN_DB", None)
    server = subprocess.Popen(
        [QUANTPLAN, "api", "--port", str(port), "--workers", str(workers)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the API server did not start") from None
                time.sleep(0.2)
        # Warm-up: every worker loads its catalog snapshot, numpy and its first contexts.
        asyncio.run(_run(base, 2 * workers, 3.0))
        load_before = os.getloadavg()
        plans, latencies, elapsed = asyncio.run(_run(base, clients, seconds))
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    return {
        "workers": workers,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "plans": plans,
        "plans_per_s": round(plans / elapsed, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="quantplan api --workers, in turn"
    )
    args = parser.parse_args()
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "server": "quantplan api (uvicorn), catalog snapshot reused for 5 s; clients on the "
        "same machine",
        "runs": [_measure(w, args.clients, args.seconds) for w in args.workers],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
