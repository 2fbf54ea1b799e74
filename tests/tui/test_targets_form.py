"""The advisor form's validation: text in, Targets or a message per field out."""

from __future__ import annotations

import pytest

from quantplan.tui.viewmodels.targets_form import TargetsForm, validate_form

MODELS = ["Llama-3.1-8B", "Qwen2.5-7B"]
CLOUDS = ["aws", "gcp"]


def check(form: TargetsForm) -> dict[str, str]:
    return validate_form(form, known_models=MODELS, known_clouds=CLOUDS).errors


def test_defaults_give_targets_the_planner_accepts() -> None:
    result = validate_form(TargetsForm(), known_models=MODELS, known_clouds=CLOUDS)
    assert result.valid and result.targets is not None
    assert result.targets.model == "Llama-3.1-8B"
    assert result.targets.workload.requests_per_s == 5
    assert result.targets.slos.ttft_p95_ms == 1000


def test_every_field_reaches_the_targets() -> None:
    form = TargetsForm(
        model="Qwen2.5-7B",
        requests_per_s="",
        tokens_per_day="1,000,000",
        input_tokens="1024",
        output_tokens="128",
        peak_to_mean="3",
        ttft_p95_ms="500",
        itl_p95_ms="50",
        max_perplexity_increase_pct="2.5",
        max_usd_per_month="3000",
        max_usd_per_million_tokens="1.5",
        clouds="aws, gcp",
        spot_allowed=True,
        device="gpu",
    )
    targets = validate_form(form, known_models=MODELS, known_clouds=CLOUDS).targets
    assert targets is not None
    assert targets.workload.tokens_per_day == 1_000_000
    assert targets.workload.requests_per_s is None
    assert (targets.workload.input_tokens, targets.workload.output_tokens) == (1024, 128)
    assert targets.slos.itl_p95_ms == 50
    assert targets.quality.max_perplexity_increase_pct == 2.5
    assert targets.budget.max_usd_per_month == 3000
    assert targets.budget.max_usd_per_million_tokens == 1.5
    assert targets.constraints.clouds == ("aws", "gcp")
    assert targets.constraints.spot_allowed and targets.constraints.device == "gpu"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("requests_per_s", "fast", "not a number"),
        ("requests_per_s", "-1", "greater than or equal to 0.000001"),
        ("input_tokens", "1.5", "whole number"),
        ("peak_to_mean", "0.5", "greater than or equal to 1"),
        ("ttft_p95_ms", "0", "greater than 0"),
        ("max_usd_per_month", "-5", "greater than 0"),
        ("max_perplexity_increase_pct", "-1", "greater than or equal to 0"),
    ],
)
def test_a_bad_value_is_reported_on_its_own_field(field: str, value: str, message: str) -> None:
    errors = check(TargetsForm().with_value(field, value))
    assert list(errors) == [field]
    assert message in errors[field]


def test_both_or_neither_volume_is_explained() -> None:
    both = check(TargetsForm(tokens_per_day="100000"))
    neither = check(TargetsForm(requests_per_s=""))
    assert "one of them" in both["requests_per_s"]
    assert "one of them" in neither["requests_per_s"]


def test_unknown_model_gets_a_suggestion() -> None:
    errors = check(TargetsForm(model="llama-3.1-8b "))
    assert errors == {}  # surrounding spaces are not the user's intent
    errors = check(TargetsForm(model="Llama-3.1-8"))
    assert "did you mean Llama-3.1-8B" in errors["model"]
    assert "name a model" in check(TargetsForm(model=" "))["model"]


def test_unknown_cloud_lists_the_known_ones() -> None:
    errors = check(TargetsForm(clouds="aws, azure"))
    assert errors["clouds"] == "unknown cloud 'azure'; known: aws, gcp"
