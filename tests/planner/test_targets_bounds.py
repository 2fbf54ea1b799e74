"""Targets: every number finite and bounded, every name bounded, files read safely.

In-process checks of the model, then the CLI through the installed script: a non-finite flag
and an alias-bomb targets file are refused in one line, quickly, without a traceback.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from quantplan.errors import QuantplanError
from quantplan.planner.targets import (
    Budget,
    Constraints,
    ModelShape,
    QualityTarget,
    Slos,
    Targets,
    Workload,
    load_targets,
)

SHAPE = {
    "name": "my-model",
    "parameters_b": 8.0,
    "layers": 32,
    "hidden_size": 4096,
    "heads": 32,
    "kv_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
    "max_context": 8192,
}
SECTIONS: dict[str, type[BaseModel]] = {
    "model": ModelShape,
    "workload": Workload,
    "slos": Slos,
    "quality": QualityTarget,
    "budget": Budget,
    "constraints": Constraints,
}


def _targets(section: str, field: str, value: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"model": dict(SHAPE), "workload": {"requests_per_s": 5.0}}
    data.setdefault(section, {})[field] = value
    if section == "workload" and field == "tokens_per_day":
        del data["workload"]["requests_per_s"]  # exactly one volume
    return data


def _numeric_fields() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for section, model in SECTIONS.items():
        for name, schema in model.model_json_schema()["properties"].items():
            for option in schema.get("anyOf", [schema]):
                if option.get("type") in ("number", "integer"):
                    found.append((section, name, option))
    return found


NUMERIC = _numeric_fields()
FLOATS = [(section, name) for section, name, schema in NUMERIC if schema["type"] == "number"]


def test_the_fields_were_found() -> None:
    assert len(NUMERIC) >= 20 and len(FLOATS) >= 10
    Targets.model_validate(_targets("workload", "input_tokens", 512))


@pytest.mark.parametrize(("section", "name", "schema"), NUMERIC)
def test_every_number_is_bounded_on_both_sides(section: str, name: str, schema: dict) -> None:
    assert {"minimum", "exclusiveMinimum"} & schema.keys(), f"{section}.{name}: no lower bound"
    assert {"maximum", "exclusiveMaximum"} & schema.keys(), f"{section}.{name}: no upper bound"


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(FLOATS),
    value=st.sampled_from([math.nan, -math.nan, math.inf, -math.inf]),
)
def test_no_float_takes_a_non_finite_number(field: tuple[str, str], value: float) -> None:
    section, name = field
    with pytest.raises(ValidationError) as caught:
        Targets.model_validate(_targets(section, name, value))
    assert name in caught.value.errors()[0]["loc"]


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(NUMERIC), factor=st.sampled_from([10.0, 1e3, 1e30]))
def test_numbers_far_above_their_cap_are_refused(
    field: tuple[str, str, dict], factor: float
) -> None:
    section, name, schema = field
    cap = schema.get("maximum", schema.get("exclusiveMaximum"))
    value = cap * factor if schema["type"] == "number" else int(cap * 10) + 1
    with pytest.raises(ValidationError):
        Targets.model_validate(_targets(section, name, value))


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("constraints", "clouds", ("aws\n",)),
        ("constraints", "regions", ("x" * 201,)),
        ("constraints", "instance_deny", ("g5",) * 1001),
        ("model", "name", "bad\x00name"),
    ],
)
def test_names_and_lists_are_bounded(section: str, field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        Targets.model_validate(_targets(section, field, value))


def test_a_catalog_model_name_is_bounded_too() -> None:
    with pytest.raises(ValidationError):
        Targets(model="Llama\x1b[2J", workload=Workload(requests_per_s=1))


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]\n"
    for i in range(8)
)


def test_load_targets_refuses_an_alias_bomb_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    started = time.perf_counter()
    with pytest.raises(QuantplanError, match="anchors"):
        load_targets(path)
    assert time.perf_counter() - started < 0.5


def test_load_targets_names_file_and_field_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("model: Llama-3.1-8B\nworkload: {requests_per_s: .inf}\n")
    with pytest.raises(QuantplanError) as caught:
        load_targets(path)
    assert "\n" not in caught.value.message
    assert "t.yaml" in caught.value.message
    assert "workload.requests_per_s" in caught.value.message
    assert "finite" in caught.value.message and caught.value.hint


@pytest.mark.parametrize(
    ("volume", "error"),
    [
        ("1" + "0" * 5000, "cannot be read"),
        # A date YAML would refuse to build stays its text, which the field then refuses.
        ("2024-13-45", "requests_per_s.*a valid number.*'2024-13-45'"),
    ],
    ids=["5000-digit-int", "bad-date"],
)
def test_load_targets_refuses_values_python_cannot_hold(
    tmp_path: Path, volume: str, error: str
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"model: Llama-3.1-8B\nworkload: {{requests_per_s: {volume}}}\n")
    with pytest.raises(QuantplanError, match=error):
        load_targets(path)


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
@pytest.mark.parametrize(
    "document",
    [
        '{"model": {"name": %s}, "workload": {"requests_per_s": 1}}',
        '{"model": "Llama-3.1-8B", "workload": {"requests_per_s": 1},'
        ' "constraints": {"clouds": [%s]}}',
    ],
    ids=["model-name", "cloud"],
)
def test_a_json_constant_is_not_read_as_a_name(
    tmp_path: Path, document: str, constant: str
) -> None:
    # YAML reads the bare word Infinity as the string "Infinity"; a .json file is strict JSON.
    path = tmp_path / "t.json"
    path.write_text(document % constant)
    with pytest.raises(QuantplanError, match=f"holds {constant}, which is not JSON"):
        load_targets(path)


def _quantplan(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantplan", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "500"},  # rich wraps at 80 columns otherwise
        check=False,
    )


def _assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    for needle in needles:
        assert needle in first, result.stderr


def test_cli_refuses_an_alias_bomb_targets_file_quickly(
    tmp_path: Path, seeded_sqlite_url: str
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    db = seeded_sqlite_url
    started = time.perf_counter()
    result = _quantplan("plan", "--targets", str(path), "--db", db)
    elapsed = time.perf_counter() - started
    _assert_refused(result, "bomb.yaml", "anchors")
    assert elapsed < 10  # interpreter start-up included; the expansion alone took over a minute


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--rps", "nan"), ("--rps", "inf"), ("--ttft-p95-ms", "-inf"), ("--budget-month", "1e300")],
)
def test_cli_refuses_non_finite_and_absurd_numeric_options(
    seeded_sqlite_url: str, flag: str, value: str
) -> None:
    db = seeded_sqlite_url
    args = ["plan", "--model", "Llama-3.1-8B", "--db", db]
    if flag != "--rps":
        args += ["--rps", "5"]
    result = _quantplan(*args, flag, value)
    _assert_refused(result, flag)
