"""The MCP server through the SDK's own client, over stdio, against `quantplan mcp`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from quantplan.mcp_server import build_server
from quantplan.services import CatalogService, Services

QUANTPLAN = str(Path(sys.executable).with_name("quantplan"))
TARGETS = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}


def _server(catalog_url: str, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=QUANTPLAN,
        args=["mcp", "--db", catalog_url, *extra],
        env={"QUANTPLAN_DATA_DIR": os.environ["QUANTPLAN_DATA_DIR"]},
    )


async def test_an_mcp_client_asks_for_and_receives_an_explained_plan(catalog_url: str) -> None:
    async with Client(_server(catalog_url), read_timeout_seconds=120) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"plan", "compare_options", "explain_rejection", "list_catalog_rows",
                "show_catalog_row", "fleet_status"} <= tools  # fmt: skip
        assert not tools & {"apply_plan", "destroy_deployment"}  # read-only by default

        result = await client.call_tool("plan", {"targets": TARGETS})
        assert not result.is_error
        answer = result.structured_content
        plan = answer["plan"]
        assert plan["feasible"] and plan["summary"].startswith("Serve Llama-3.1-8B")
        assert plan["fleet"][0]["metrics"]["ttft_p95_ms"]["basis"]
        assert plan["rejected"], "the plan explains why other families lost"
        assert json.loads(result.content[0].text) == answer

        # The plan is a resource now, and so is its report.
        resource = await client.read_resource(f"quantplan://plans/{answer['plan_id']}")
        assert json.loads(resource.contents[0].text)["summary"] == plan["summary"]

        bad = await client.call_tool(
            "plan", {"targets": {"model": "Llama-3.1-8", "workload": {"requests_per_s": 5}}}
        )
        assert bad.is_error
        error = bad.structured_content["error"]
        assert error["code"] == "unknown_name" and error["field"] == "model"
        assert "Llama-3.1-8B" in error["hint"]

        invalid = await client.call_tool(
            "plan", {"targets": {"model": "Llama-3.1-8B", "workload": {"requests_per_s": -2}}}
        )
        assert invalid.structured_content["error"]["code"] == "invalid_targets"
        assert invalid.structured_content["error"]["field"] == "workload.requests_per_s"


async def test_tools_in_process(catalog_url: str) -> None:
    services = Services(catalog=CatalogService(catalog_url, max_age_s=60))
    async with Client(build_server(services, allow_changes=True)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"apply_plan", "destroy_deployment"} <= tools
        compared = await client.call_tool("compare_options", {"targets": TARGETS})
        options = compared.structured_content["options"]
        assert options[0]["role"] == "fleet" and options[0]["cost_ratio"] == 1.0
        explained = await client.call_tool(
            "explain_rejection", {"targets": TARGETS, "option": "gptq"}
        )
        assert "gptq" in explained.structured_content["explanation"]
        rows = await client.call_tool(
            "list_catalog_rows", {"kind": "instances", "where": {"cloud": "gcp"}}
        )
        assert {r["cloud"] for r in rows.structured_content["rows"]} == {"gcp"}
        fleet = await client.call_tool("fleet_status", {})
        assert fleet.structured_content["error"]["code"] == "no_cluster"
        planned = await client.call_tool("plan", {"targets": TARGETS})
        unconfirmed = await client.call_tool(
            "apply_plan", {"plan_id": planned.structured_content["plan_id"], "confirm": "yes"}
        )
        error = unconfirmed.structured_content["error"]
        assert error["code"] == "confirmation_required" and error["field"] == "confirm"


def test_cli_start_up_imports_neither_mcp_nor_fastapi() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "quantplan", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines()}
    assert not modules & {"mcp", "fastapi", "uvicorn", "starlette"}
    assert "mcp" in out.stdout and "api" in out.stdout
