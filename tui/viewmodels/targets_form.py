"""The advisor's targets form as plain data: text fields in, Targets or per-field errors out.

Validation as you type runs here, not in widgets: each keystroke rebuilds a :class:`TargetsForm`
and :func:`validate_form` answers with the Targets the planner would get, or a message for each
field that is wrong. The planner's own pydantic models decide what is valid; this module only maps
their errors back onto the form's fields and adds catalog-aware checks (unknown model or cloud,
with near-miss suggestions).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from quantplan.errors import did_you_mean
from quantplan.planner.targets import (
    Budget,
    Constraints,
    QualityTarget,
    Slos,
    Targets,
    Workload,
)

DeviceField = Literal["any", "gpu", "cpu"]


@dataclass(frozen=True)
class TargetsForm:
    """The form's raw values, exactly as typed."""

    model: str = "Llama-3.1-8B"
    requests_per_s: str = "5"
    tokens_per_day: str = ""
    input_tokens: str = "512"
    output_tokens: str = "256"
    peak_to_mean: str = "2"
    ttft_p95_ms: str = "1000"
    itl_p95_ms: str = ""
    max_perplexity_increase_pct: str = ""
    max_usd_per_month: str = ""
    max_usd_per_million_tokens: str = ""
    clouds: str = ""
    spot_allowed: bool = False
    device: DeviceField = "any"

    def with_value(self, name: str, value: Any) -> TargetsForm:
        return replace(self, **{name: value})


FORM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TargetsForm))

# Short labels: the form shares 80 columns with the results.
FIELD_LABELS: dict[str, str] = {
    "model": "Model",
    "requests_per_s": "Requests/s",
    "tokens_per_day": "or tokens/day",
    "input_tokens": "Input tok/req",
    "output_tokens": "Output tok/req",
    "peak_to_mean": "Peak/mean",
    "ttft_p95_ms": "p95 TTFT ms",
    "itl_p95_ms": "p95 ITL ms",
    "max_perplexity_increase_pct": "Max ppl +%",
    "max_usd_per_month": "Max $/month",
    "max_usd_per_million_tokens": "Max $/M tok",
    "clouds": "Clouds",
    "spot_allowed": "Spot allowed",
    "device": "Hardware",
}

# Where each Targets field lives on the form, to put pydantic's errors next to the right input.
_ERROR_LOCATIONS: dict[tuple[str, ...], str] = {
    ("model",): "model",
    ("workload", "requests_per_s"): "requests_per_s",
    ("workload", "tokens_per_day"): "tokens_per_day",
    ("workload", "input_tokens"): "input_tokens",
    ("workload", "output_tokens"): "output_tokens",
    ("workload", "peak_to_mean"): "peak_to_mean",
    ("workload",): "requests_per_s",
    ("slos", "ttft_p95_ms"): "ttft_p95_ms",
    ("slos", "itl_p95_ms"): "itl_p95_ms",
    ("quality", "max_perplexity_increase_pct"): "max_perplexity_increase_pct",
    ("budget", "max_usd_per_month"): "max_usd_per_month",
    ("budget", "max_usd_per_million_tokens"): "max_usd_per_million_tokens",
    ("constraints", "clouds"): "clouds",
}


@dataclass(frozen=True)
class FormResult:
    """Targets when the form is valid, else the message for each field that is not."""

    targets: Targets | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.targets is not None and not self.errors


class _FieldError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def _number(form: TargetsForm, name: str, *, integer: bool = False) -> float | int | None:
    text = str(getattr(form, name)).strip().replace("_", "").replace(",", "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _FieldError(name, f"{text!r} is not a number") from None
    if integer:
        if not value.is_integer():
            raise _FieldError(name, "needs a whole number")
        return int(value)
    return value


def _pydantic_message(error: ErrorDetails) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if "exactly one of requests_per_s or tokens_per_day" in message:
        return "give requests/s or tokens/day (one of them, not both)"
    return message


def validate_form(
    form: TargetsForm,
    *,
    known_models: Iterable[str] = (),
    known_clouds: Iterable[str] = (),
) -> FormResult:
    """Build Targets from the form, or say what is wrong with each field."""
    errors: dict[str, str] = {}
    numbers: dict[str, float | int | None] = {}
    integer_fields = {"input_tokens", "output_tokens"}
    numeric = [n for n in FORM_FIELDS if n not in ("model", "clouds", "spot_allowed", "device")]
    for name in numeric:
        try:
            numbers[name] = _number(form, name, integer=name in integer_fields)
        except _FieldError as error:
            errors[error.name] = error.message

    model = form.model.strip()
    models = list(known_models)
    # Suggestions complete case-insensitively, so names match that way too (catalog spelling).
    model = {m.lower(): m for m in models}.get(model.lower(), model)
    if not model:
        errors["model"] = "name a model from the catalog"
    elif models and model not in models:
        hint = did_you_mean(model, models)
        errors["model"] = f"the catalog has no model {model!r}" + (f"; {hint}" if hint else "")

    clouds = tuple(c.strip() for c in form.clouds.split(",") if c.strip())
    known = sorted(set(known_clouds))
    unknown = [c for c in clouds if known and c not in known]
    if unknown:
        errors["clouds"] = f"unknown cloud {unknown[0]!r}; known: {', '.join(known)}"

    if errors:
        return FormResult(None, errors)

    def given(name: str) -> dict[str, Any]:
        value = numbers.get(name)
        return {} if value is None else {name: value}

    try:
        targets = Targets(
            model=model,
            workload=Workload(
                **given("requests_per_s"),
                **given("tokens_per_day"),
                **given("input_tokens"),
                **given("output_tokens"),
                **given("peak_to_mean"),
            ),
            slos=Slos(**given("ttft_p95_ms"), **given("itl_p95_ms")),
            quality=QualityTarget(**given("max_perplexity_increase_pct")),
            budget=Budget(**given("max_usd_per_month"), **given("max_usd_per_million_tokens")),
            constraints=Constraints(
                clouds=clouds, spot_allowed=form.spot_allowed, device=form.device
            ),
        )
    except ValidationError as error:
        return FormResult(None, _errors_by_field(error))
    return FormResult(targets)


def _errors_by_field(error: ValidationError) -> dict[str, str]:
    """Map pydantic's errors (raised by the nested model that failed) onto form fields."""
    title_to_section = {
        "Workload": "workload",
        "Slos": "slos",
        "QualityTarget": "quality",
        "Budget": "budget",
        "Constraints": "constraints",
    }
    section = title_to_section.get(error.title)
    mapped: dict[str, str] = {}
    for item in error.errors():
        location = tuple(str(part) for part in item["loc"])
        if section is not None:
            location = (section, *location)
        name = _ERROR_LOCATIONS.get(location) or _ERROR_LOCATIONS.get(location[:1], "model")
        mapped.setdefault(name, _pydantic_message(item))
    return mapped
