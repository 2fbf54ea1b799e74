"""``quantplan mcp``: the services as an MCP server, for AI assistants and agents.

Built on the official MCP Python SDK (``mcp``'s :class:`MCPServer`). Tools answer with the
same pydantic documents the HTTP API and the Python API return, as structured content plus
the JSON text; a refusal is an error result whose structured content is
``{"error": {code, message, hint, field}}``, never a traceback.

Read-only by default. ``apply_plan`` and ``destroy_deployment`` exist only when the server
was started with ``--allow-changes``, and even then each call must repeat a confirmation
(the plan's model name, or the deployment's name).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from quantplan import __version__
from quantplan.service_models import error_info
from quantplan.services import Services

LOG = logging.getLogger("quantplan.mcp")

TargetsArg = Annotated[
    dict[str, Any],
    Field(
        description="Planning targets, the fields of a targets file: model (a catalog name), "
        "workload (requests_per_s or tokens_per_day, input_tokens, output_tokens, "
        "peak_to_mean), slos (ttft_p95_ms, itl_p95_ms), quality "
        "(max_perplexity_increase_pct), budget (max_usd_per_month), constraints (clouds, "
        "device, spot_allowed, ...). The resource quantplan://schema/targets has the schema. "
        'Example: {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}'
    ),
]
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
INSTRUCTIONS = (
    "quantplan plans quantized LLM deployments: which quantization method, engine, instance "
    "type and replica count serves a model under latency, quality and budget targets at least "
    "cost, each number with its basis (measured, modeled) and band. Start with `plan`; "
    "`compare_options` and `explain_rejection` say why other options lost; "
    "`list_catalog_rows` shows what the catalog knows (models, instances, schemes)."
)


def _jsonable(answer: Any) -> Any:
    if isinstance(answer, BaseModel):
        return answer.model_dump(mode="json")
    if isinstance(answer, list | tuple):
        return [_jsonable(item) for item in answer]
    return answer


def _result(call: Callable[[], Any]) -> CallToolResult:
    """Run one service call; the answer, or its error, as structured content and JSON text."""
    try:
        answer = call()
    except Exception as error:  # every refusal reaches the client as data, not a traceback
        info = error_info(error)
        if info.code == "internal_error":
            LOG.exception("tool failed")
        body = {"error": info.model_dump(mode="json")}
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(body))],
            structured_content=body,
            is_error=True,
        )
    data = _jsonable(answer)
    structured = data if isinstance(data, dict) else {"items": data}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(data))], structured_content=structured
    )


def build_server(services: Services, *, allow_changes: bool = False) -> MCPServer:
    """An MCP server over ``services``; change tools only with ``allow_changes``."""
    server = MCPServer(
        name="quantplan", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    @server.tool(annotations=READ_ONLY)
    def plan(targets: TargetsArg) -> CallToolResult:
        """Plan a deployment for these targets: the cheapest fleet meeting every target, with
        its predicted latency, quality and cost (each with basis and band), the alternatives,
        why each other family lost, and -- when nothing fits -- the binding target and the
        nearest relaxation. The plan is kept as resource quantplan://plans/{plan_id}."""

        def answer() -> dict[str, Any]:
            made = services.plan(targets)
            return {"plan_id": services.plans.add(made), "plan": made.model_dump(mode="json")}

        return _result(answer)

    @server.tool(annotations=READ_ONLY)
    def compare_options(targets: TargetsArg) -> CallToolResult:
        """Compare the options a plan weighed: the fleet, the alternatives and the Pareto front
        side by side ($/month, $/M tokens, p95 TTFT and ITL, perplexity increase, cost
        relative to the chosen fleet), and the reason each other family lost."""
        return _result(lambda: services.compare(targets))

    @server.tool(annotations=READ_ONLY)
    def explain_rejection(
        targets: TargetsArg,
        option: Annotated[
            str,
            Field(description="A family (baseline, gptq, awq, gguf), scheme or engine name"),
        ],
    ) -> CallToolResult:
        """Why an option was not chosen for these targets (or that it was): the stage it
        failed and the numbers that decided it, plus the binding targets."""
        return _result(lambda: services.explain_rejection(targets, option))

    @server.tool(annotations=READ_ONLY)
    def list_catalog_rows(
        kind: Annotated[
            str,
            Field(
                description="hardware, instances, models, schemes, support, engine_traits, "
                "method_traits, spot_interruptions, profiles or quality"
            ),
        ],
        where: Annotated[
            dict[str, str] | None,
            Field(description='Keep rows whose FIELD equals VALUE, e.g. {"cloud": "aws"}'),
        ] = None,
    ) -> CallToolResult:
        """List catalog rows of one kind, as `quantplan catalog list --json` does."""
        return _result(lambda: services.catalog.rows(kind, where))

    @server.tool(annotations=READ_ONLY)
    def show_catalog_row(
        name: Annotated[str, Field(description="An instance type, model, scheme or hardware")],
        kind: Annotated[
            str | None, Field(description="hardware, instances, models or schemes")
        ] = None,
    ) -> CallToolResult:
        """Every field of the catalog rows with this name (an instance type in all regions)."""
        return _result(lambda: services.catalog.show(name, kind))

    @server.tool(annotations=READ_ONLY)
    def fleet_status() -> CallToolResult:
        """The live fleet: nodes, replicas (healthy, not answering, failed) and the measured
        cost per million tokens of each plan and replica. Needs the server started with
        --address."""
        return _result(services.fleet_report)

    if allow_changes:

        @server.tool(annotations=ToolAnnotations(destructiveHint=True, openWorldHint=True))
        def apply_plan(
            plan_id: Annotated[str, Field(description="A plan id from the plan tool")],
            confirm: Annotated[str, Field(description="The plan's model name, repeated")],
        ) -> CallToolResult:
            """Deploy a plan made by the plan tool on the cluster. Rents nothing, but starts
            engines on the cluster's nodes: confirm with the plan's model name."""
            return _result(lambda: services.apply(plan_id, confirm))

        @server.tool(annotations=ToolAnnotations(destructiveHint=True, openWorldHint=True))
        def destroy_deployment(
            confirm: Annotated[str, Field(description="The deployment's name, or 'all'")],
            name: Annotated[str | None, Field(description="Deployment; omit for all")] = None,
        ) -> CallToolResult:
            """Stop the replicas of a deployment (all deployments without a name)."""
            return _result(lambda: services.destroy(name, confirm))

    @server.resource("quantplan://plans", mime_type="application/json")
    def plans() -> str:
        """The plans this server made, newest first (id, model, feasible, summary)."""
        return json.dumps([p.model_dump(mode="json") for p in services.plans.list()])

    @server.resource("quantplan://plans/{plan_id}", mime_type="application/json")
    def plan_resource(plan_id: str) -> str:
        """One plan this server made: the plan file's JSON."""
        return services.plans.get(plan_id).model_dump_json(indent=2)

    @server.resource("quantplan://reports/{plan_id}", mime_type="text/markdown")
    def report_resource(plan_id: str) -> str:
        """The capacity report for a plan's targets, in Markdown."""
        return services.report(plan_id=plan_id).markdown

    @server.resource("quantplan://schema/targets", mime_type="application/schema+json")
    def targets_schema() -> str:
        """The JSON schema of the targets the planning tools take."""
        from quantplan.planner.targets import Targets

        return json.dumps(Targets.model_json_schema())

    return server


def run(
    services: Services,
    *,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    allow_changes: bool = False,
) -> None:
    """Serve until stopped: over stdin/stdout, or streamable HTTP at http://HOST:PORT/mcp."""
    server = build_server(services, allow_changes=allow_changes)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
