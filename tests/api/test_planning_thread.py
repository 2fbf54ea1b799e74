"""The HTTP API plans on one thread per process and keeps its event loop free meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from quantplan.http_api import create_app
from quantplan.services import CatalogService, Services

TARGETS = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}


class SlowServices(Services):
    """Real plans, each held for a while, counting how many are made at once."""

    def __init__(self, catalog_url: str) -> None:
        super().__init__(catalog=CatalogService(catalog_url, max_age_s=60))
        self.running = 0
        self.most_at_once = 0
        self.counting = threading.Lock()

    def plan_document(self, targets: Any) -> Any:
        with self.counting:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(0.05)
            return super().plan_document(targets)
        finally:
            with self.counting:
                self.running -= 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_plans_are_made_one_at_a_time_while_other_requests_are_answered(
    catalog_url: str, anyio_backend: str
) -> None:
    services = SlowServices(catalog_url)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        rates = [1.0, 2.0, 3.0, 4.0]
        asked = [
            client.post("/v1/plan", json={**TARGETS, "workload": {"requests_per_s": r}})
            for r in rates
        ]
        planning = asyncio.gather(*asked)
        await asyncio.sleep(0.02)
        began = time.monotonic()
        health = await client.get("/healthz")
        answered_in = time.monotonic() - began
        answers = await planning
    assert health.status_code == 200
    assert answered_in < 0.15  # not queued behind the four plans (0.18 s and more)
    assert [a.json()["targets"]["workload"]["requests_per_s"] for a in answers] == rates
    assert services.most_at_once == 1
