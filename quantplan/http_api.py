"""``quantplan api``: the services over HTTP (FastAPI), for CI pipelines and other programs.

The same operations as the MCP server, answered with the same pydantic documents; the
OpenAPI schema is published in docs/openapi.json (``quantplan api --print-openapi``).
Every refusal is ``{"error": {code, message, hint, field}}`` with a 4xx status (503 when the
catalog is busy or unusable, 500 for a bug of ours), never a traceback.

Bound to 127.0.0.1 unless told otherwise; bound anywhere else, every request needs the API
key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``), read from the environment or a
file, never from the command line, where ``ps`` would show it.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at
# runtime, and closures' local names (the key dependencies) cannot be resolved from strings.
import hmac
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from quantplan import __version__
from quantplan.errors import QuantplanError, shorten
from quantplan.planner.plan import Plan
from quantplan.planner.targets import StrictModel, Targets
from quantplan.service_models import (
    CatalogRows,
    ChangeOutcome,
    Comparison,
    ErrorInfo,
    FleetReport,
    RejectionExplanation,
    ReportDocument,
    StoredPlan,
    error_info,
)
from quantplan.services import Services

LOG = logging.getLogger("quantplan.api")
T = TypeVar("T")
STATUS_OF_CODE = {
    "unknown_name": 404,
    "no_cluster": 409,
    "confirmation_required": 409,
    "changes_disabled": 403,
    "unauthorized": 401,
    "catalog_busy": 503,
    "catalog_damaged": 503,
    "catalog_too_new": 503,
    "internal_error": 500,
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": dict[str, ErrorInfo], "description": description}
    for status, description in (
        (400, "Invalid request"),
        (401, "API key missing or wrong"),
        (404, "Unknown name"),
        (422, "Invalid targets or parameters"),
    )
}


class QuantplanErrorWithStatus(Exception):
    """A refusal made by the HTTP layer itself (key, filters, read-only)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


def _error_response(info: ErrorInfo, status: int | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": info.model_dump(mode="json")},
        status_code=status or STATUS_OF_CODE.get(info.code, 400),
    )


class ExplainRequest(StrictModel):
    """Targets and the option to explain."""

    targets: Targets
    option: str


class ApplyRequest(StrictModel):
    plan_id: str
    confirm: str


class DestroyRequest(StrictModel):
    name: str | None = None
    confirm: str


def create_app(
    services: Services, *, api_key: str | None = None, allow_changes: bool = False
) -> FastAPI:
    """The HTTP API over ``services``; with ``api_key`` every /v1 request must carry it."""
    app = FastAPI(
        title="quantplan",
        version=__version__,
        description="Plan quantized LLM deployments: the planner, the catalog and the live "
        "fleet over HTTP. Errors are {error: {code, message, hint, field}}.",
    )
    bearer = HTTPBearer(auto_error=False)
    header = APIKeyHeader(name="X-API-Key", auto_error=False)

    # async: a plain function would be run in a worker thread for every request.
    async def check_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        key: Annotated[str | None, Depends(header)],
    ) -> None:
        if api_key is None:
            return
        given = key or (credentials.credentials if credentials else None)
        if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise QuantplanErrorWithStatus(
                ErrorInfo(
                    code="unauthorized",
                    message="missing or wrong API key",
                    hint="send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                )
            )

    @app.exception_handler(QuantplanErrorWithStatus)
    async def _refused(_: Request, error: QuantplanErrorWithStatus) -> JSONResponse:
        return _error_response(error.info)

    @app.exception_handler(QuantplanError)
    async def _quantplan_error(_: Request, error: QuantplanError) -> JSONResponse:
        return _error_response(error_info(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(p for p in location if not p.startswith("function")) or None
        info = ErrorInfo(
            code="invalid_targets" if first.get("loc", ("",))[0] == "body" else "invalid_request",
            message=f"{where or 'request'}: {first.get('msg', 'invalid')}",
            hint="see docs/openapi.json for the fields; unknown fields are refused",
            field=where,
        )
        return _error_response(info, 422)

    @app.exception_handler(Exception)
    async def _bug(_: Request, error: Exception) -> JSONResponse:
        LOG.exception("request failed")
        return _error_response(error_info(error), 500)

    guarded = [Depends(check_key)]
    # Planning is CPU-bound Python and numpy under one GIL: more threads in a process only
    # take turns, and switching between them cost ~3 ms of CPU a plan under 8 clients. One
    # planning thread per process (``--workers`` adds processes); the event loop stays free.
    planning = anyio.CapacityLimiter(1)

    async def planned(call: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(call, *args, limiter=planning)

    @app.get("/healthz", tags=["meta"])
    def health() -> dict[str, str]:
        """Liveness: answers without a key."""
        return {"status": "ok", "version": __version__}

    @app.post(
        "/v1/plan",
        tags=["plan"],
        responses=ERROR_RESPONSES,
        dependencies=guarded,
        response_model=Plan,
    )
    async def plan(targets: Targets) -> Response:
        """The plan `quantplan plan --json` prints for these targets (kept under its id)."""
        # Sent as the store serialized it: the bytes FastAPI would write for the Plan
        # (Plan.model_dump_json), without validating and serializing a 64 KB plan again.
        _, text = await planned(services.plan_document, targets)
        return Response(text, media_type="application/json")

    @app.post("/v1/compare", tags=["plan"], responses=ERROR_RESPONSES, dependencies=guarded)
    async def compare(targets: Targets) -> Comparison:
        """Fleet, alternatives and Pareto front side by side, and why other families lost."""
        return await planned(services.compare, targets)

    @app.post("/v1/explain", tags=["plan"], responses=ERROR_RESPONSES, dependencies=guarded)
    async def explain(request: ExplainRequest) -> RejectionExplanation:
        """Why an option (family, scheme or engine) was or was not chosen."""
        return await planned(services.explain_rejection, request.targets, request.option)

    @app.post("/v1/report", tags=["plan"], responses=ERROR_RESPONSES, dependencies=guarded)
    async def report(targets: Targets) -> ReportDocument:
        """The capacity report (HTML and Markdown) for these targets."""
        return await planned(services.report, targets)

    @app.get("/v1/plans", tags=["plans"], dependencies=guarded)
    def plans() -> list[StoredPlan]:
        """The plans this server made, newest first."""
        return services.plans.list()

    @app.get("/v1/plans/{plan_id}", tags=["plans"], responses=ERROR_RESPONSES, dependencies=guarded)
    def stored_plan(plan_id: str) -> Plan:
        return services.plans.get(plan_id)

    @app.get(
        "/v1/plans/{plan_id}/report",
        tags=["plans"],
        responses=ERROR_RESPONSES,
        dependencies=guarded,
    )
    def stored_report(plan_id: str) -> ReportDocument:
        return services.report(plan_id=plan_id)

    @app.get(
        "/v1/catalog/{kind}", tags=["catalog"], responses=ERROR_RESPONSES, dependencies=guarded
    )
    def catalog_rows(
        kind: str,
        where: Annotated[list[str] | None, Query(description="FIELD=VALUE, repeatable")] = None,
    ) -> CatalogRows:
        """Rows of one kind, as `quantplan catalog list --json` lists them."""
        filters: dict[str, str] = {}
        for clause in where or []:
            field, sep, value = clause.partition("=")
            if not sep:
                raise QuantplanErrorWithStatus(
                    ErrorInfo(
                        code="invalid_request",
                        message=f"filter {shorten(clause)!r} is not FIELD=VALUE",
                        hint="e.g. ?where=cloud=aws",
                        field="where",
                    )
                )
            filters[field] = value
        return services.catalog.rows(kind, filters)

    @app.get("/v1/show/{name}", tags=["catalog"], responses=ERROR_RESPONSES, dependencies=guarded)
    def show(name: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Every row with this name (an instance type in all its regions)."""
        return services.catalog.show(name, kind)

    @app.get("/v1/fleet", tags=["fleet"], responses=ERROR_RESPONSES, dependencies=guarded)
    def fleet() -> FleetReport:
        """Nodes, replicas and measured cost per token (needs --address)."""
        return services.fleet_report()

    def changes_allowed() -> None:
        if not allow_changes:
            raise QuantplanErrorWithStatus(
                ErrorInfo(
                    code="changes_disabled",
                    message="this server is read-only: apply and destroy are off",
                    hint="restart it with --allow-changes to deploy from it",
                )
            )

    changing = [*guarded, Depends(changes_allowed)]

    @app.post("/v1/apply", tags=["fleet"], responses=ERROR_RESPONSES, dependencies=changing)
    def apply(request: Annotated[ApplyRequest, Body()]) -> ChangeOutcome:
        """Deploy a stored plan; confirm repeats its model name (needs --allow-changes)."""
        return services.apply(request.plan_id, request.confirm)

    @app.post("/v1/destroy", tags=["fleet"], responses=ERROR_RESPONSES, dependencies=changing)
    def destroy(request: Annotated[DestroyRequest, Body()]) -> ChangeOutcome:
        """Stop a deployment (all without a name); confirm repeats the name or 'all'."""
        return services.destroy(request.name, request.confirm)

    return app
