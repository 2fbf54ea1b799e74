"""Plans per second through the HTTP API: a started `quantplan api`, N concurrent clients.

Each client (aiohttp; ``--client httpx`` for the client of earlier runs) keeps one HTTP/1.1
connection and posts distinct targets (four models, request rates from a fixed sequence, so no
two consecutive requests ask the same question), reads every answer whole, checks that it is
a plan for the targets asked and counts it; the run reports plans/s, latency percentiles,
the CPU the server processes and the clients spent per plan, the load average before and
after, and the date. Writes bench/results/api.json (api.md, the readable summary, is written
from it by hand).

    .venv/bin/python bench/api_bench.py --clients 8 --seconds 30 --workers 1 2

``--baseline DIR`` (a checkout of another commit, e.g. ``git worktree add /tmp/base HEAD``)
measures that code's server in turn with this one's, interleaved, under the same clients, so
that a shared machine's load falls on both alike; the result gives the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

RESULTS = Path(__file__).parent / "results"
REPOSITORY = Path(__file__).resolve().parent.parent
MODELS = ("Llama-3.2-1B", "Llama-3.1-8B", "Qwen2.5-14B", "Mistral-7B")
# The repository's top-level folders installed under the quantplan namespace (setup.py).
SUBPACKAGES = ("catalog", "planner", "agent", "tui")
PLAN_START = b'{"schema_version":'


def _targets(i: int) -> dict:
    return {
        "model": MODELS[i % len(MODELS)],
        "workload": {"requests_per_s": round(0.5 + (i * 7.31) % 40, 2)},
        "slos": {"ttft_p95_ms": 1000.0},
    }


def _check(targets: dict, status: int, body: bytes) -> None:
    """The answer is a whole plan for the targets asked (its targets echo the rate)."""
    rate = f'"requests_per_s":{targets["workload"]["requests_per_s"]},'.encode()
    if status != 200 or not body.startswith(PLAN_START) or rate not in body[:4096]:
        raise SystemExit(f"{targets}: HTTP {status}: {body[:300]!r}")


async def _client(base: str, start: int, step: int, until: float, latencies: list[float]) -> int:
    """One client: one keep-alive connection, requests one after another until ``until``."""
    done, i = 0, start
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(base, connector=connector) as http:
        while time.monotonic() < until:
            sent = time.perf_counter()
            targets = _targets(i)
            async with http.post("/v1/plan", json=targets) as answer:
                _check(targets, answer.status, await answer.read())
            latencies.append(time.perf_counter() - sent)
            done, i = done + 1, i + step
    return done


async def _httpx_client(
    base: str, start: int, step: int, until: float, latencies: list[float]
) -> int:
    """The same with httpx (the client of earlier runs: 3-4x the CPU a request)."""
    done, i = 0, start
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while time.monotonic() < until:
            sent = time.perf_counter()
            targets = _targets(i)
            answer = await http.post("/v1/plan", json=targets)
            _check(targets, answer.status_code, answer.content)
            latencies.append(time.perf_counter() - sent)
            done, i = done + 1, i + step
    return done


CLIENTS = {"aiohttp": _client, "httpx": _httpx_client}


async def _run(
    base: str, clients: int, seconds: float, kind: str = "aiohttp"
) -> tuple[int, list[float], float]:
    latencies: list[float] = []
    began = time.monotonic()
    client = CLIENTS[kind]
    counts = await asyncio.gather(
        *(client(base, c, clients, began + seconds, latencies) for c in range(clients))
    )
    return sum(counts), latencies, time.monotonic() - began


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its living descendants (uvicorn's worker processes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent_of: dict[int, int] = {}
    cpu_of: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(entry.name)] = int(fields[1])
        cpu_of[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu_of.get(current, 0.0)
        todo += [child for child, parent in parent_of.items() if parent == current]
    return total


def _package_tree(checkout: Path) -> Path:
    """A folder whose ``quantplan`` package is ``checkout``'s, laid out as setup.py installs
    it, to put first on PYTHONPATH (the editable install maps this repository's)."""
    tree = Path(tempfile.mkdtemp(prefix="qp-api-bench-baseline-"))
    shutil.copytree(checkout / "quantplan", tree / "quantplan")
    for folder in SUBPACKAGES:
        (tree / "quantplan" / folder).symlink_to(checkout / folder)
    return tree


def _server_command(workers: int, port: int, baseline: Path | None) -> tuple[list[str], dict]:
    env = {**os.environ}
    env.pop("QUANTPLAN_DB", None)
    env["QUANTPLAN_DATA_DIR"] = tempfile.mkdtemp(prefix="qp-api-bench-")
    command = [sys.executable, "-m", "quantplan", "api", "--port", str(port)]
    command += ["--workers", str(workers)]
    if baseline is not None:
        env["PYTHONPATH"] = str(_package_tree(baseline))
    return command, env


def _measure(
    code: str, workers: int, clients: int, seconds: float, baseline: Path | None, kind: str
) -> dict:
    """One started server with ``workers`` processes, measured under ``clients`` clients."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command, env = _server_command(workers, port, baseline)
    # Started outside the repository: the baseline's package must not be shadowed by ours.
    server = subprocess.Popen(command, env=env, cwd=tempfile.gettempdir())
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
        server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time()
        plans, latencies, elapsed = asyncio.run(_run(base, clients, seconds, kind))
        server_cpu = _cpu_seconds(server.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    return {
        "code": code,
        "client": kind,
        "workers": workers,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "plans": plans,
        "plans_per_s": round(plans / elapsed, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
        "server_cpu_ms_per_plan": round(server_cpu / plans * 1000, 2),
        "client_cpu_ms_per_plan": round(client_cpu / plans * 1000, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def _commit(checkout: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(checkout), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="quantplan api --workers, in turn"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of other code to measure in turn with this one (same clients)",
    )
    parser.add_argument(
        "--client", choices=sorted(CLIENTS), nargs="+", default=["aiohttp"], help="in turn"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "api.json")
    args = parser.parse_args()
    codes: list[tuple[str, Path | None]] = [(_commit(REPOSITORY), None)]
    if args.baseline is not None:
        codes.insert(0, (f"baseline {_commit(args.baseline)}", args.baseline.resolve()))
    runs = []
    for kind in args.client:
        for workers in args.workers:
            for code, checkout in codes:
                runs.append(_measure(code, workers, args.clients, args.seconds, checkout, kind))
                print(json.dumps(runs[-1]), flush=True)
    result: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "server": "quantplan api (uvicorn), catalog snapshot reused for 5 s; clients (one "
        "keep-alive connection each, in the bench's process) on the same machine",
        "runs": runs,
    }
    if args.baseline is not None:
        rate = {(r["code"], r["client"], r["workers"]): r["plans_per_s"] for r in runs}
        (before, _), (after, _) = codes
        result["ratio_to_baseline"] = {
            f"{kind}, {w} worker(s)": round(rate[(after, kind, w)] / rate[(before, kind, w)], 2)
            for kind in args.client
            for w in args.workers
        }
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
