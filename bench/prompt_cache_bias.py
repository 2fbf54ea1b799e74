"""How much an engine's prompt cache flattered the benchmark before every prompt had its own tag.

Before, ``quantplan bench URL -c 1,4`` (and apply's benchmark job) sent the same prompts at every
level, and the warm-up sent the first level's first prompts. A server that caches prompts
(``quantplan serve`` and applied replicas: llama-server's slots keep their last prompt) then
answered later levels' prefills from its cache. This script starts ``quantplan serve`` on the
default model's GGUF as a user does (cache on), and runs the protocol's closed loop both ways,
alternating, on the same server:

* ``repeated``: every level and the warm-up draw the same prompts (the protocol before);
* ``tagged``: each run's prompts open with their own tag (the protocol now).

    python bench/prompt_cache_bias.py   # -> bench/results/prompt_cache_bias.{json,md}
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantplan.agent.benchmark import protocol
from quantplan.agent.benchmark.client import Endpoint
from quantplan.agent.benchmark.workload import Workload, make_prompts
from quantplan.agent.model_source import default_gguf

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
QUANTPLAN = Path(sys.executable).with_name("quantplan")
WORKLOAD = Workload(input_tokens=256, output_tokens=32)
LEVELS = (1, 4)
REQUESTS = 8
ROUNDS = 2


async def one_run(endpoint: Endpoint, repeated: bool) -> list[dict[str, Any]]:
    real = protocol.make_prompts
    if repeated:
        protocol.make_prompts = lambda w, n, run=None: make_prompts(w, n, run="same")  # type: ignore[assignment]
    try:
        warmup = WORKLOAD.model_copy(update={"output_tokens": 4})
        await protocol.run_closed_loop(endpoint, warmup, concurrency=1, num_requests=2)
        rows = []
        for level in LEVELS:
            result = await protocol.run_closed_loop(
                endpoint, WORKLOAD, concurrency=level, num_requests=REQUESTS
            )
            m = result.metrics
            rows.append(
                {
                    "concurrency": level,
                    "output_tokens_per_s": round(m.output_tokens_per_s, 1),
                    "ttft_p50_ms": round(m.ttft.p50_ms or 0.0, 1),
                    "itl_p50_ms": round(m.itl.p50_ms or 0.0, 2),
                    "completed": m.completed,
                }
            )
        return rows
    finally:
        protocol.make_prompts = real  # type: ignore[assignment]


def main() -> None:
    gguf = default_gguf()
    options = ["--parallel", "4", "--threads", "2", "--max-model-len", "512"]
    command = [str(QUANTPLAN), "serve", str(gguf), *options]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    url = None
    for line in server.stdout:
        found = re.search(r"endpoint: (http://\S+)/v1", line)
        if found:
            url = found.group(1)
            break
    assert url, "quantplan serve printed no endpoint"
    served = json.loads(subprocess.run(
        ["curl", "-s", url + "/v1/models"], capture_output=True, text=True, check=True
    ).stdout)["data"][0]["id"]  # fmt: skip
    endpoint = Endpoint(base_url=url, model=served)
    result: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "load_average_start": os.getloadavg(),
        # As a user types it: the script by name, the default model's file by its name.
        "command": ["quantplan", "serve", gguf.name, *options],
        "workload": WORKLOAD.model_dump(),
        "requests_per_level": REQUESTS,
        "runs": [],
    }
    try:
        for round_ in range(ROUNDS):
            for repeated in (True, False):
                began = time.monotonic()
                rows = asyncio.run(one_run(endpoint, repeated))
                arm = "repeated" if repeated else "tagged"
                print(arm, round_, rows, flush=True)
                result["runs"].append(
                    {"arm": arm, "round": round_, "levels": rows,
                     "seconds": round(time.monotonic() - began, 1)}
                )  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    result["load_average_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prompt_cache_bias.json").write_text(json.dumps(result, indent=2) + "\n")
    write_summary(result)


def write_summary(result: dict[str, Any]) -> None:
    lines = [
        "# The benchmark's prompts and a server's prompt cache",
        "",
        f"`python bench/prompt_cache_bias.py` ({result['started'][:16]} UTC, this 2-core shared",
        f"machine, load average {result['load_average_start'][0]:.2f} at the start, "
        f"{result['load_average_end'][0]:.2f} at the end).",
        "`quantplan serve` on the default model's GGUF (llama-server, 4 slots, 2 threads, its",
        "prompt cache on, as users and applied replicas run it); the protocol's closed loop, "
        f"{WORKLOAD.input_tokens} prompt / {WORKLOAD.output_tokens} output tokens, "
        f"{REQUESTS} requests a level after 2 warm-up requests, the two arms alternating:",
        "",
        "- **repeated**: the same prompts at every level and in the warm-up (the protocol before);",
        "- **tagged**: every prompt opens with its run's tag (the protocol now).",
        "",
        "| round | arm | concurrency | out tok/s | TTFT p50 ms | ITL p50 ms |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        for row in run["levels"]:
            lines.append(
                f"| {run['round'] + 1} | {run['arm']} | {row['concurrency']} | "
                f"{row['output_tokens_per_s']} | {row['ttft_p50_ms']} | {row['itl_p50_ms']} |"
            )
    (RESULTS / "prompt_cache_bias.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
