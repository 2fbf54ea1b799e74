"""The HTTP API: FastAPI's TestClient for the operations, one real server for the wire."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_servers import start_api
from fastapi.testclient import TestClient

from quantplan.http_api import create_app
from quantplan.services import CatalogService, Services

QUANTPLAN = str(Path(sys.executable).with_name("quantplan"))
OPENAPI = Path(__file__).parents[2] / "docs" / "openapi.json"
TARGETS = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}


@pytest.fixture(scope="module")
def client(catalog_url: str) -> TestClient:
    services = Services(catalog=CatalogService(catalog_url, max_age_s=60))
    return TestClient(create_app(services))


def test_plan_compare_explain_and_stored_plans(client: TestClient) -> None:
    plan = client.post("/v1/plan", json=TARGETS)
    assert plan.status_code == 200 and plan.json()["feasible"]
    stored = client.get("/v1/plans").json()
    assert stored[0]["summary"] == plan.json()["summary"]
    assert client.get(f"/v1/plans/{stored[0]['plan_id']}").json() == plan.json()
    report = client.get(f"/v1/plans/{stored[0]['plan_id']}/report").json()
    assert report["markdown"].startswith("#")
    compared = client.post("/v1/compare", json=TARGETS).json()
    assert compared["options"][0]["role"] == "fleet"
    # A family the plan did not choose (which one wins follows the catalog's evidence).
    chosen = {d["method"] for d in plan.json()["fleet"]}
    other = next(family for family in ("gguf", "awq", "gptq") if family not in chosen)
    explained = client.post("/v1/explain", json={"targets": TARGETS, "option": other}).json()
    assert not explained["chosen"] and other in explained["explanation"]


def test_catalog_rows_and_show(client: TestClient) -> None:
    rows = client.get("/v1/catalog/instances", params={"where": "cloud=aws"}).json()
    assert rows["rows"] and {r["cloud"] for r in rows["rows"]} == {"aws"}
    assert client.get("/v1/show/Llama-3.1-8B").json()[0]["kind"] == "models"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        ("post", "/v1/plan", {**TARGETS, "model": "Llama-3.1-8"}, 404, "unknown_name", "model"),
        ("post", "/v1/plan", {"model": "Llama-3.1-8B", "workload": {"requests_per_s": -1}},
         422, "invalid_targets", "workload.requests_per_s"),
        ("post", "/v1/plan", {**TARGETS, "colour": "red"}, 422, "invalid_targets", "colour"),
        ("get", "/v1/catalog/instance", None, 404, "unknown_name", "kind"),
        ("get", "/v1/catalog/instances?where=cloud", None, 400, "invalid_request", "where"),
        ("get", "/v1/plans/0123456789ab", None, 404, "unknown_name", "plan_id"),
        ("get", "/v1/fleet", None, 409, "no_cluster", None),
        ("post", "/v1/destroy", {"confirm": "all"}, 403, "changes_disabled", None),
    ],
)  # fmt: skip
def test_errors_are_structured(
    client: TestClient,
    method: str,
    path: str,
    body: dict | None,
    status: int,
    code: str,
    field: str | None,
) -> None:
    answer = client.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"] and "Traceback" not in answer.text


def test_api_key_is_required_when_given(catalog_url: str) -> None:
    services = Services(catalog=CatalogService(catalog_url, max_age_s=60))
    client = TestClient(create_app(services, api_key="s3cret"))
    assert client.get("/healthz").status_code == 200
    refused = client.post("/v1/plan", json=TARGETS)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert client.post("/v1/plan", json=TARGETS, headers={"X-API-Key": "wrong"}).status_code == 401
    bearer = {"Authorization": "Bearer s3cret"}
    assert client.post("/v1/plan", json=TARGETS, headers=bearer).status_code == 200


def test_published_openapi_schema_is_current() -> None:
    app = create_app(Services())
    assert json.loads(OPENAPI.read_text()) == app.openapi(), (
        "docs/openapi.json is stale: quantplan api --print-openapi > docs/openapi.json"
    )


def test_binding_off_loopback_without_a_key_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k != "QUANTPLAN_API_KEY"}
    out = subprocess.run(
        [QUANTPLAN, "api", "--host", "0.0.0.0"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "API key is required" in out.stderr and "QUANTPLAN_API_KEY" in out.stderr


@pytest.mark.integration
def test_a_real_server_answers_a_plan_over_httpx(catalog_url: str) -> None:
    server, base = start_api("--db", catalog_url)
    try:
        answer = httpx.post(f"{base}/v1/plan", json=TARGETS, timeout=60)
        assert answer.status_code == 200
        assert answer.json()["summary"].startswith("Serve Llama-3.1-8B")
    finally:
        server.terminate()
        server.wait(timeout=30)
