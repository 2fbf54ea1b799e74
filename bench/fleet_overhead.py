"""Router overhead of the fleet endpoint (`quantplan cluster endpoint`) against a direct replica.

A local cluster (`quantplan cluster up --nodes c7i.xlarge:1`) runs a one-replica llama.cpp plan
of the default model behind the endpoint, started as the command line starts it (a separate
`quantplan cluster endpoint` process). The same short request (completions, max_tokens=1) is then
sent, one at a time and alternating, to the endpoint and straight to the engine server the
replica owns, so both see the same load. Per path: p50, p99 and mean latency; the overhead is
the difference of the p50s, and the median of the per-pair differences. Then the endpoint is
stopped with SIGTERM: how long it took, and whether its engine process and replica note are gone.

Both routes the endpoint has, one after the other in one run, each on a fresh cluster:
- one hop (the default for a plan of one line): HAProxy -> the engine replica -> engine;
- with the ingress (`--always-ingress`; every plan of several lines): HAProxy -> ingress
  replica -> engine replica (through its Serve handle) -> engine.

Usage: flock /tmp/quantplan-heavy.lock python bench/fleet_overhead.py [--requests 200]
Writes bench/results/fleet.json and fleet.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"
QUANTPLAN = str(Path(sys.executable).parent / "quantplan")
MODEL = "SmolLM2-135M-Instruct"
TARGETS = f"""model: {MODEL}
workload: {{input_tokens: 64, output_tokens: 32, requests_per_s: 0.5}}
constraints:
  device: cpu
  clouds: [aws]
  instance_allow: [c7i.xlarge]
  max_replicas: 1
  engines: [llama.cpp]
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.50), 3),
        "p99_ms": round(percentile(values, 0.99), 3),
        "mean_ms": round(statistics.fmean(values), 3),
    }


def wait_until(check, timeout_s: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"{what} not within {timeout_s:g} s")


def measure(router: str, direct: str, requests: int) -> dict[str, object]:
    body = {"model": MODEL, "prompt": "The capital of France is", "max_tokens": 1}
    times: dict[str, list[float]] = {"router": [], "direct": []}
    with httpx.Client(timeout=60) as client:
        for _ in range(10):  # warm-up: connections, Serve's handles, the engine's cache
            for url in (router, direct):
                client.post(url + "/v1/completions", json=body).raise_for_status()
        for _ in range(requests):
            for name, url in (("router", router), ("direct", direct)):
                started = time.perf_counter()
                response = client.post(url + "/v1/completions", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                times[name].append(elapsed)
        # Where the overhead lies: GET /v1/models is answered by the replica that takes the
        # endpoint's requests (HAProxy and that replica's Python, no engine) and by the engine.
        for _ in range(requests):
            for name, url in (("router_models", router), ("direct_models", direct)):
                started = time.perf_counter()
                client.get(url + "/v1/models").raise_for_status()
                times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    pairs = [r - d for r, d in zip(times["router"], times["direct"], strict=True)]
    router_s, direct_s = summary(times["router"]), summary(times["direct"])
    return {
        "requests_per_path": requests,
        "router": router_s,
        "direct": direct_s,
        "overhead_p50_ms": round(router_s["p50_ms"] - direct_s["p50_ms"], 3),
        "overhead_p99_ms": round(router_s["p99_ms"] - direct_s["p99_ms"], 3),
        "paired_difference_median_ms": round(statistics.median(pairs), 3),
        "models_via_proxy_and_ingress": summary(times["router_models"]),
        "models_direct_from_engine": summary(times["direct_models"]),
    }


def run(requests: int, always_ingress: bool) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="qp-fleet-bench-"))
    env = {**os.environ, "QUANTPLAN_DATA_DIR": str(work / "data"), "RAY_USAGE_STATS_ENABLED": "0"}
    db = f"sqlite:///{work / 'catalog.db'}"
    (work / "targets.yaml").write_text(TARGETS)
    subprocess.run(
        [QUANTPLAN, "plan", "--targets", str(work / "targets.yaml"), "--db", db, "-o",
         str(work / "plan.yaml")],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    load_before = uptime()
    subprocess.run(
        [QUANTPLAN, "cluster", "up", "--nodes", "c7i.xlarge:1", "--db", db],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    endpoint = None
    port = 18431
    router = f"http://127.0.0.1:{port}"
    notes = work / "data" / "replicas"
    try:
        started = time.monotonic()
        with (work / "endpoint.log").open("wb") as log:
            endpoint = subprocess.Popen(
                [QUANTPLAN, "cluster", "endpoint", str(work / "plan.yaml"), "--port", str(port),
                 "--db", db, *(["--always-ingress"] if always_ingress else [])],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def serving() -> bool:
            if endpoint.poll() is not None:
                raise RuntimeError(f"the endpoint exited: {(work / 'endpoint.log').read_text()}")
            # The command prints this once serve.run saw every replica healthy (the proxy
            # routes to the ingress earlier, while the engines still load).
            return "serving" in (work / "endpoint.log").read_text()

        wait_until(serving, 300, "the endpoint")
        startup_s = time.monotonic() - started
        (note,) = [json.loads(path.read_text()) for path in notes.glob("endpoint-*.json")]
        direct = f"http://127.0.0.1:{note['port']}"
        result = measure(router, direct, requests)
        load_after = uptime()
        stopping = time.monotonic()
        endpoint.send_signal(signal.SIGTERM)
        endpoint.wait(timeout=120)
        stop_s = time.monotonic() - stopping
        engine_gone = not Path(f"/proc/{note['pid']}").exists()
        notes_left = len(list(notes.glob("endpoint-*.json")))
    finally:
        if endpoint is not None and endpoint.poll() is None:
            endpoint.kill()
        subprocess.run([QUANTPLAN, "cluster", "down"], env=env, capture_output=True)
    shutil.rmtree(work, ignore_errors=True)  # kept when a step failed, for its logs
    return {
        "route": ROUTES[always_ingress],
        "endpoint_startup_s": round(startup_s, 1),
        **result,
        "sigterm_stop_s": round(stop_s, 1),
        "sigterm_exit_code": endpoint.returncode if endpoint else None,
        "engine_process_gone_after_stop": engine_gone,
        "replica_notes_left_after_stop": notes_left,
        "uptime_before": load_before,
        "uptime_after": load_after,
    }


ROUTES = {
    False: "one hop: HAProxy -> engine replica -> engine",
    True: "with the ingress (--always-ingress): HAProxy -> ingress replica -> engine replica "
    "-> engine",
}


HEADER = (
    "| route | endpoint p50 ms | direct p50 ms | overhead p50 ms | paired median ms "
    "| endpoint p99 ms | direct p99 ms | `/v1/models` via the endpoint p50 ms "
    "| engine's `/v1/models` p50 ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def markdown(results: dict) -> str:  # type: ignore[type-arg]
    rows, notes = [], []
    for r in results["routes"]:
        router, direct = r["router"], r["direct"]
        models = r["models_via_proxy_and_ingress"]
        rows.append(
            f"| {r['route']} | {router['p50_ms']} | {direct['p50_ms']} | "
            f"**{r['overhead_p50_ms']}** | {r['paired_difference_median_ms']} | "
            f"{router['p99_ms']} | {direct['p99_ms']} | {models['p50_ms']} | "
            f"{r['models_direct_from_engine']['p50_ms']} |"
        )
        notes.append(
            f"- {r['route']}: endpoint start (command to first answer, engine load included) "
            f"{r['endpoint_startup_s']} s; SIGTERM stopped it with code {r['sigterm_exit_code']} "
            f"after {r['sigterm_stop_s']} s; engine process gone: "
            f"{r['engine_process_gone_after_stop']}; replica notes left: "
            f"{r['replica_notes_left_after_stop']}. Load before `{r['uptime_before']}`, after "
            f"`{r['uptime_after']}`."
        )
    first = results["routes"][0]
    met = "met" if first["overhead_p50_ms"] < 5 else "not met"
    table = "\n".join(rows)
    return f"""# Fleet endpoint: router overhead per request

`python bench/fleet_overhead.py` ({results["date"]}, {results["cpus"]} CPUs, shared machine).
Plan: {results["plan"]}, behind `quantplan cluster endpoint` on a local cluster
(`cluster up --nodes c7i.xlarge:1`). Request: {results["request"]};
{first["requests_per_path"]} requests per path after 10 warm-ups each. Router = the endpoint's
route; direct = the same engine server, on the port its Serve replica started it on. Both
routes in this one run, one after the other, each on a fresh cluster.

{HEADER}
{table}

`/v1/models` is answered by the replica that takes the endpoint's requests (HAProxy and that
replica's Python, no engine). Target: < 5 ms at p50 for the default route of this plan -- {met}.

{chr(10).join(notes)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    requests = parser.parse_args().requests
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "plan": "one llama.cpp replica (llama-server) of the default model, c7i.xlarge",
        "request": "POST /v1/completions, prompt 'The capital of France is', max_tokens=1, "
        "one at a time, router and direct alternating",
        "routes": [run(requests, always_ingress) for always_ingress in (False, True)],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fleet.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "fleet.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
