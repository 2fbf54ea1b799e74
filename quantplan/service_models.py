"""What the services answer: the pydantic documents the Python API, MCP and HTTP share.

Plans are the planner's own :class:`~quantplan.planner.plan.Plan` (the model the CLI writes);
this module holds only the answers that have no home in a package: an option comparison, a
rejection explained, catalog rows, a fleet's status with its cost per token, and the
structured error every front end returns.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.cluster.fleet_ops import FleetStatus
from quantplan.catalog.snapshot import SkippedRow
from quantplan.errors import QuantplanError, UnknownNameError
from quantplan.planner.plan import BindingConstraint, Plan, Rejection, Relaxation


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInfo(Answer):
    """A refusal a program can act on: a stable code, the message and hint a person reads,
    and the input field at fault when there is one."""

    code: str = Field(description="Stable, snake_case: invalid_targets, unknown_name, ...")
    message: str = Field(description="What is wrong, in one line")
    hint: str | None = Field(default=None, description="How to fix it")
    field: str | None = Field(
        default=None, description="Dotted path of the input at fault, e.g. workload.requests_per_s"
    )


class RequestError(QuantplanError):
    """A QuantplanError that knows its code and the input field at fault."""

    def __init__(
        self, message: str, *, code: str, hint: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.field = field


# The request field that names each kind of thing a lookup can fail to find.
FIELD_OF_UNKNOWN = {
    "model": "model",
    "kind": "kind",
    "option": "option",
    "plan": "plan_id",
    "catalog row": "name",
}


def _snake(name: str) -> str:
    name = name.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_info(error: BaseException) -> ErrorInfo:
    """The structured form of any error a service raised.

    A QuantplanError keeps its message and hint; its code comes from its class
    (``CatalogBusyError`` -> ``catalog_busy``) unless it carries one. Anything else is a bug of
    ours: ``internal_error`` with the exception's type and first line, never a traceback.
    """
    if isinstance(error, RequestError):
        return ErrorInfo(code=error.code, message=error.message, hint=error.hint, field=error.field)
    if isinstance(error, UnknownNameError):
        field = FIELD_OF_UNKNOWN.get(error.what)
        return ErrorInfo(code="unknown_name", message=error.message, hint=error.hint, field=field)
    if isinstance(error, QuantplanError):
        code = "invalid_request" if type(error) is QuantplanError else _snake(type(error).__name__)
        return ErrorInfo(code=code, message=error.message, hint=error.hint)
    first_line = next(iter(str(error).splitlines()), "")
    return ErrorInfo(
        code="internal_error",
        message=f"{type(error).__name__}: {first_line}",
        hint="this is a bug in quantplan; the server's log has the traceback",
    )


class OptionRow(Answer):
    """One deployment of a plan, in the columns people compare options by."""

    role: Literal["fleet", "alternative", "pareto"] = Field(
        description="fleet: what to deploy; alternative: next best; pareto: not beaten on "
        "cost, quality and TTFT"
    )
    label: str
    method: str
    scheme: str
    engine: str
    instance: str = Field(description="cloud/name/region")
    pricing: str
    replicas: int
    usd_per_month: float
    usd_per_million_tokens: float
    ttft_p95_ms: float
    itl_p95_ms: float
    perplexity_increase_pct: float | None
    basis: str = Field(description="Basis of the latency estimate: measured, modeled, ...")
    cost_ratio: float | None = Field(description="$/month over the fleet's (None: no fleet)")


class Comparison(Answer):
    """The options a plan weighed, side by side, with why the other families lost."""

    model: str
    feasible: bool
    summary: str
    options: tuple[OptionRow, ...]
    rejected: tuple[Rejection, ...]


class RejectionExplanation(Answer):
    """Why one option (a family, scheme or engine) was or was not chosen."""

    option: str = Field(description="What was asked about")
    chosen: bool = Field(description="Whether the plan deploys it")
    explanation: str = Field(description="The answer in words")
    rejections: tuple[Rejection, ...] = Field(description="The plan's rejections that match")
    binding_constraints: tuple[BindingConstraint, ...]
    relaxations: tuple[Relaxation, ...]


class CatalogRows(Answer):
    """Rows of one catalog kind, as ``quantplan catalog list --json`` prints them."""

    kind: str
    rows: tuple[dict[str, Any], ...]
    retracted_not_shown: int = Field(default=0, description="Retracted measurements left out")
    skipped: tuple[SkippedRow, ...] = Field(
        default=(), description="Stored rows left out because they do not validate"
    )


class FleetCost(Answer):
    """Measured cost per token of one plan or replica on the live fleet."""

    scope: Literal["plan", "replica", "node"]
    key: str
    usd_per_million_tokens: float | None
    predicted_usd_per_million_tokens: float | None = None
    output_tokens_per_s: float | None = None


class FleetReport(Answer):
    """What runs where, and what it costs per token as measured."""

    status: FleetStatus
    costs: tuple[FleetCost, ...] = ()
    costs_note: str = Field(default="", description="Why costs are missing, when they are")


class StoredPlan(Answer):
    """A plan this server made, under the id its resources use."""

    plan_id: str
    model: str
    feasible: bool
    summary: str


class ReportDocument(Answer):
    """The capacity report for a plan's targets, rendered."""

    plan_id: str | None = None
    markdown: str
    html: str


class ChangeOutcome(Answer):
    """What an apply or destroy did."""

    action: Literal["apply", "destroy"]
    outcome: str
    replicas: tuple[str, ...] = ()


__all__ = [
    "Answer",
    "CatalogRows",
    "ChangeOutcome",
    "Comparison",
    "ErrorInfo",
    "FleetCost",
    "FleetReport",
    "OptionRow",
    "Plan",
    "RejectionExplanation",
    "ReportDocument",
    "RequestError",
    "StoredPlan",
    "error_info",
]
