"""The README's cluster demo, command for command, as a user types it.

`quantplan cluster up` starts real `ray start` processes on this machine, `plan` writes the demo
plan (one vLLM and one llama.cpp replica), `apply` deploys, benchmarks and costs it, `status`
shows it, the product-recommendation example chats with each replica, `destroy` stops them,
`cluster endpoint` serves the same plan behind one endpoint that the example chats through,
SIGTERM stops it, and `cluster down` leaves nothing running. Everything user-level lives in a
temporary data directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [
    pytest.mark.ray_cluster,
    pytest.mark.integration,
    pytest.mark.engine,
    pytest.mark.toolchain,
    pytest.mark.slow,
]

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _demo_commands() -> list[str]:
    """The shell block of the README that starts with `quantplan cluster up`."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    block = next(b for b in blocks if "quantplan cluster up" in b)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_demo_commands_are_the_ones_tested() -> None:
    assert _demo_commands()[:9] == [
        'quantplan cluster up --nodes "c7i.xlarge:2,c7i.large:1"',
        "quantplan plan --targets examples/cluster/local-demo-targets.yaml -o plan.yaml",
        "quantplan apply plan.yaml",
        "quantplan status",
        "quantplan destroy",
        "quantplan cluster endpoint plan.yaml --port 8000 &",
        "python examples/cluster/product_recommendation_chat.py --base-url http://127.0.0.1:8000",
        "kill %1",
        "quantplan cluster down",
    ]


def test_readme_cluster_demo(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QUANTPLAN_DATA_DIR": str(tmp_path / "data"),
        "QUANTPLAN_DB": f"sqlite:///{tmp_path / 'catalog.db'}",
        # Ray's socket paths must stay under 108 bytes.
        "RAY_TMPDIR": tempfile.mkdtemp(prefix="qp-demo-", dir="/tmp"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    quantplan = [sys.executable, "-m", "quantplan"]

    def run(*args: str, timeout: float = 900) -> str:
        done = subprocess.run(
            [*quantplan, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        assert done.returncode == 0, f"quantplan {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    targets = ROOT / "examples" / "cluster" / "local-demo-targets.yaml"
    run("cluster", "up", "--nodes", "c7i.xlarge:2,c7i.large:1", timeout=300)
    try:
        run("plan", "--targets", str(targets), "-o", "plan.yaml")
        outcome = json.loads(run("apply", "plan.yaml", "--json"))
        assert {m["engine"] for m in outcome["measurements"]} == {"vllm", "llama.cpp"}
        assert outcome["plan_cost"]["usd_per_million_tokens"] > 0
        assert outcome["comparisons"]

        assert "healthy" in run("status")  # the table a user reads
        status = json.loads(run("status", "--json"))
        healthy = {r["replica_id"] for r in status["replicas"] if r["healthy"]}
        assert healthy == set(outcome["endpoints"])

        # The example chat service answers through each engine's chat endpoint.
        chat = ROOT / "examples" / "cluster" / "product_recommendation_chat.py"
        for measurement in outcome["measurements"]:
            url = outcome["endpoints"][measurement["replica_id"]]
            model = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"]
            done = subprocess.run(
                [sys.executable, str(chat), "--base-url", url, "--model", model, "A gift?"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip(), f"no answer from {measurement['engine']}"

        run("destroy")
        for url in outcome["endpoints"].values():
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{url}/v1/models", timeout=5)

        # The same plan behind one endpoint; the chat client finds the model through it.
        port = _free_port()
        output = tmp_path / "endpoint.out"
        with output.open("w") as out:
            endpoint = subprocess.Popen(
                [*quantplan, "cluster", "endpoint", "plan.yaml", "--port", str(port)],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 600
            while "serving" not in output.read_text():
                assert endpoint.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(1)
            base = f"http://127.0.0.1:{port}"
            done = subprocess.run(
                [sys.executable, str(chat), "--base-url", base, "A gift?"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip(), "no answer through the endpoint"
        finally:
            endpoint.send_signal(signal.SIGTERM)  # the README's `kill %1`
            returncode = endpoint.wait(timeout=120)
        assert returncode == 0, output.read_text()
    finally:
        subprocess.run([*quantplan, "destroy"], cwd=tmp_path, env=env, capture_output=True)
        run("cluster", "down", timeout=300)
