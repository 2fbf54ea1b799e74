"""Every number and string entering the catalog is finite and bounded, for every record kind.

The fields are found from each record's JSON schema, so a field added later without bounds
fails ``test_every_field_is_bounded`` instead of slipping through.
"""

from __future__ import annotations

import functools
import math
import struct
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from quantplan.catalog.records import RECORD_TYPES, Record, first_problem
from quantplan.catalog.seeding import seed_records

PROFILE_ROW: dict[str, Any] = {
    "model": "Llama-3.1-8B",
    "scheme": "awq-w4a16-g128",
    "engine": "vllm",
    "hardware": "A10G",
    "input_tokens": 512,
    "output_tokens": 256,
    "concurrency": 8,
    "output_tokens_per_s": 400.0,
    "ttft_p95_ms": 300.0,
    "basis": "measured",
    "source": "test",
}


def _valid_row(kind: str, seed: dict[str, list[Record]]) -> dict[str, Any]:
    """A valid row of each kind: the first shipped seed row, or a hand-written profile."""
    if kind == "profiles":
        return dict(PROFILE_ROW)
    if seed.get(kind):
        return seed[kind][0].model_dump(exclude_none=True)
    raise AssertionError(f"no seed row of kind {kind}")


# The seed files parsed once (about 0.6 s each time, at collection in every xdist worker).
_SEED = dict(seed_records())
VALID_ROWS = {kind: _valid_row(kind, _SEED) for kind in RECORD_TYPES}


def _leaf_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null alternative of an optional field's schema."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") != "null":
            return option
    return schema


def fields_of(model: type[BaseModel], json_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, schema) of every field of ``model`` whose values are of ``json_type``."""
    properties = model.model_json_schema()["properties"]
    found = []
    for name, schema in properties.items():
        leaf = _leaf_schema(schema)
        if leaf.get("type") == json_type and "enum" not in leaf and "format" not in leaf:
            found.append((name, leaf))
    return found


NUMBER_FIELDS = [
    (kind, name, schema)
    for kind, record_type in RECORD_TYPES.items()
    for json_type in ("number", "integer")
    for name, schema in fields_of(record_type, json_type)
]
FLOAT_FIELDS = [(kind, name) for kind, name, schema in NUMBER_FIELDS if schema["type"] == "number"]
STRING_FIELDS = [
    (kind, name, schema)
    for kind, record_type in RECORD_TYPES.items()
    for name, schema in fields_of(record_type, "string")
]


def lower(schema: dict[str, Any]) -> tuple[float, bool]:
    """(bound, inclusive) of a numeric schema's lower end."""
    if "minimum" in schema:
        return schema["minimum"], True
    return schema["exclusiveMinimum"], False


def upper(schema: dict[str, Any]) -> tuple[float, bool]:
    if "maximum" in schema:
        return schema["maximum"], True
    return schema["exclusiveMaximum"], False


def _build(kind: str, **changes: Any) -> Record:
    return RECORD_TYPES[kind].model_validate({**VALID_ROWS[kind], **changes})


def test_the_shipped_seed_validates_and_every_kind_has_a_valid_row() -> None:
    for kind in RECORD_TYPES:
        _build(kind)
    assert len(NUMBER_FIELDS) > 40 and len(STRING_FIELDS) > 30


@pytest.mark.parametrize(("kind", "name", "schema"), NUMBER_FIELDS)
def test_every_number_is_bounded_on_both_sides(kind: str, name: str, schema: dict) -> None:
    assert {"minimum", "exclusiveMinimum"} & schema.keys(), f"{kind}.{name} has no lower bound"
    assert {"maximum", "exclusiveMaximum"} & schema.keys(), f"{kind}.{name} has no upper bound"


@pytest.mark.parametrize(("kind", "name", "schema"), STRING_FIELDS)
def test_every_string_is_bounded(kind: str, name: str, schema: dict) -> None:
    if name == "compute_capability":  # a pattern of two short numbers bounds it
        assert schema["pattern"] == r"^\d{1,2}\.\d{1,2}$"
        return
    assert schema.get("maxLength", math.inf) <= 4000, f"{kind}.{name} has no length cap"


# Every float that is not finite is a NaN (of either sign, any payload) or an infinity; a
# negative NaN and one with a payload stand for the rest.
NAN_WITH_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_0001))[0]
NON_FINITE = st.sampled_from([math.nan, -math.nan, NAN_WITH_PAYLOAD, math.inf, -math.inf])


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(FLOAT_FIELDS), value=NON_FINITE)
def test_no_float_field_takes_a_non_finite_number(field: tuple[str, str], value: float) -> None:
    kind, name = field
    with pytest.raises(ValidationError) as caught:
        _build(kind, **{name: value})
    assert caught.value.errors()[0]["loc"][0] == name


@st.composite
def out_of_bounds(draw: st.DrawFn) -> tuple[str, str, float]:
    """A numeric field and a finite value just or far outside its bounds."""
    kind, name, schema = draw(st.sampled_from(NUMBER_FIELDS))
    below = draw(st.booleans())
    bound, inclusive = lower(schema) if below else upper(schema)
    if schema["type"] == "integer":
        step = (-1 if below else 1) if inclusive else 0
        edge = int(bound) + step
        ints = st.integers(max_value=edge) if below else st.integers(min_value=edge)
        return kind, name, draw(ints)
    # An inclusive bound is itself allowed, an exclusive one is not.
    finite = {"allow_nan": False, "allow_infinity": False}
    if below:
        value = draw(st.floats(max_value=bound, exclude_max=inclusive, **finite))
    else:
        value = draw(st.floats(min_value=bound, exclude_min=inclusive, **finite))
    return kind, name, value


@settings(max_examples=300, deadline=None)
@given(case=out_of_bounds())
def test_every_number_outside_its_bounds_is_refused(case: tuple[str, str, float]) -> None:
    kind, name, value = case
    with pytest.raises(ValidationError) as caught:
        _build(kind, **{name: value})
    assert caught.value.errors()[0]["loc"][0] == name


@st.composite
def within_bounds(draw: st.DrawFn) -> tuple[str, str, float]:
    kind, name, schema = draw(st.sampled_from(NUMBER_FIELDS))
    (low, low_in), (high, high_in) = lower(schema), upper(schema)
    if schema["type"] == "integer":
        low_int = int(low) if low_in else int(low) + 1
        high_int = int(high) if high_in else int(high) - 1
        return kind, name, draw(st.integers(low_int, high_int))
    value = draw(
        st.floats(low, high, exclude_min=not low_in, exclude_max=not high_in, allow_nan=False)
    )
    return kind, name, value


# Fields a cross-field rule ties to others: the partners that keep the rule whatever the value
# (a mixture-of-experts card gives both expert counts, fewer a token than experts, and its
# active parameters below the total; a spot band's low edge is at most its high one).
PARTNERS: dict[tuple[str, str], Any] = {
    ("spot_interruptions", "monthly_rate_low"): lambda v: {"monthly_rate_high": 1.0},
    ("spot_interruptions", "monthly_rate_high"): lambda v: {"monthly_rate_low": 0.0},
    ("models", "experts"): lambda v: {"experts_per_token": 1, "active_parameters_b": 0.05},
    ("models", "experts_per_token"): lambda v: {"experts": v + 1, "active_parameters_b": 0.05},
}


@settings(max_examples=300, deadline=None)
@given(case=within_bounds())
def test_every_number_within_its_bounds_is_accepted(case: tuple[str, str, float]) -> None:
    kind, name, value = case
    partners = PARTNERS.get((kind, name), lambda v: {})(value)
    assert getattr(_build(kind, **{name: value}, **partners), name) == value


@pytest.mark.parametrize(
    "bad",
    ["A10G\n", "A10\x00G", "A10G\x1b[31m", "\tA10G", " A10G", "x" * 201, "", "A10\u0085G"],
)
def test_names_refuse_control_characters_padding_and_overlong(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _build("instances", hardware=bad)
    assert caught.value.errors()[0]["loc"] == ("hardware",)


def test_free_text_may_span_lines_but_not_hold_control_characters() -> None:
    assert _build("support", note="first line\nsecond line\twith a tab").note.count("\n") == 1
    for bad in ("bell\x07", "nul\x00", "x" * 4001):
        with pytest.raises(ValidationError):
            _build("support", note=bad)
    with pytest.raises(ValidationError):
        _build("support", source="")


@pytest.mark.parametrize(
    "details",
    [
        {"ratio": math.nan},
        {"levels": [{"ttft": math.inf}]},
        {"deep": functools.reduce(lambda inner, _: {"a": inner}, range(20), {})},
        {"blob": "x" * 1_000_001},
        {"when": object()},
    ],
    ids=["nan", "nested-inf", "too-deep", "too-large", "not-json"],
)
def test_details_are_bounded_json(details: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        _build("profiles", details=details)
    assert caught.value.errors()[0]["loc"] == ("details",)


def test_details_of_a_real_profile_pass() -> None:
    layers = [{"layer": i, "error": 0.001 * i, "name": f"model.layers.{i}.mlp"} for i in range(560)]
    record = _build("profiles", details={"levels": [{"concurrency": 1}], "layer_error": layers})
    assert len(record.details["layer_error"]) == 560


def test_quality_delta_is_derived_within_bounds() -> None:
    record = _build("quality", perplexity=1e6, baseline_perplexity=1.0, perplexity_delta_pct=None)
    assert record.perplexity_delta_pct is not None and record.perplexity_delta_pct <= 1e8
    with pytest.raises(ValidationError):
        _build("quality", perplexity=0.5)  # perplexity is exp(NLL) >= 1


def test_details_with_shared_sub_objects_are_refused_at_once() -> None:
    """9 levels of 9 references to one list: 387 million leaves if walked in full."""
    node: Any = ["x"] * 9
    for _ in range(8):
        node = [node] * 9
    started = time.perf_counter()
    with pytest.raises(ValidationError) as caught:
        _build("profiles", details={"bomb": node})
    assert "larger than" in first_problem(caught.value)
    assert time.perf_counter() - started < 0.5
