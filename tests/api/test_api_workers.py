"""`quantplan api --workers N`: worker processes share their plans, and a signal stops them all."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from api_servers import start_api

from quantplan.errors import UnknownNameError
from quantplan.planner.plan import Plan
from quantplan.services import PlanStore


def test_stores_sharing_a_directory_see_each_others_plans(tmp_path: Path, catalog_url: str) -> None:
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.snapshot import load_snapshot
    from quantplan.planner.decide import make_plan
    from quantplan.planner.targets import Targets, Workload

    snapshot = load_snapshot(open_catalog(catalog_url))

    def plan(rate: float) -> Plan:
        targets = Targets(model="Llama-3.2-1B", workload=Workload(requests_per_s=rate))
        return make_plan(targets, snapshot)

    one, other = PlanStore(directory=tmp_path), PlanStore(directory=tmp_path, capacity=2)
    first = one.add(plan(1.0))
    assert other.get(first) == one.get(first)
    second, third = other.add(plan(2.0)), other.add(plan(3.0))  # capacity 2: first pruned
    assert [p.plan_id for p in one.list()] == [third, second]
    with pytest.raises(UnknownNameError):
        one.get(first)
    for bad in ("../../etc/passwd", "ABCDEF012345", "", "0" * 64):
        with pytest.raises(UnknownNameError):
            one.get(bad)
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.integration
@pytest.mark.slow
def test_workers_share_plans_and_stop_together_on_sigterm(catalog_url: str) -> None:
    server, base = start_api("--workers", "2", "--db", catalog_url)
    try:
        workers = [p for p in _children(server.pid) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2
        settings = _environ(workers[0])["QUANTPLAN_API_SETTINGS"]
        plan_directory = Path(json.loads(settings)["plan_directory"])
        assert plan_directory.is_dir()

        made = []
        with httpx.Client(base_url=base, timeout=60) as http:
            for rate in (1, 2, 3, 4, 5, 6):
                targets = {"model": "Llama-3.2-1B", "workload": {"requests_per_s": rate}}
                answer = http.post("/v1/plan", json=targets)
                assert answer.status_code == 200, answer.text
                made.append(answer.json()["summary"])
            # New connections land on either worker; each must list every plan.
            for _ in range(6):
                with httpx.Client(base_url=base, timeout=60) as fresh:
                    listed = fresh.get("/v1/plans").json()
                assert sorted(p["summary"] for p in listed) == sorted(made)
                for stored in listed:
                    fetched = fresh_get(base, f"/v1/plans/{stored['plan_id']}")
                    assert fetched["summary"] == stored["summary"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode is not None
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a worker outlived the server"
    assert not plan_directory.exists(), "the shared plan directory was left behind"
    assert "Traceback" not in server.stderr.read()


def fresh_get(base: str, path: str) -> dict:
    with httpx.Client(base_url=base, timeout=60) as http:
        answer = http.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


if os.name != "posix":  # /proc and signals as Linux has them
    pytestmark = pytest.mark.skip("Linux only")
