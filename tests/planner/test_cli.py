"""`quantplan plan` and `quantplan report` end to end on the embedded (seeded) catalog."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from catalog_copy import copy_catalog
from typer.testing import CliRunner

from quantplan.cli import app, register_commands

runner = CliRunner()


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory, seeded_catalog_file: Path) -> str:
    """A seeded catalog of this module's own (a copy of the session's, as the first plan on a
    new file would have seeded it)."""
    path = copy_catalog(seeded_catalog_file, tmp_path_factory.mktemp("catalog") / "catalog.db")
    return f"sqlite:///{path}"


def _run(*args: str):  # type: ignore[no-untyped-def]
    register_commands()
    return runner.invoke(app, list(args))


def test_plan_json_has_the_contract_fields(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "plan.yaml"
    result = _run(
        "plan", "--model", "Llama-3.1-8B", "--rps", "5", "--ttft-p95-ms", "800",
        "--max-ppl-increase", "3", "--json", "-o", str(out), "--db", db_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # warnings go to stderr
    for key in ("feasible", "choice", "alternatives", "rejected", "binding_constraints"):
        assert key in document
    choice = document["choice"]
    for key in ("method", "scheme", "engine", "instance", "replicas", "usd_per_month"):
        assert key in choice
    assert {"value", "low", "high", "basis"} <= set(choice["metrics"]["ttft_p95_ms"])
    assert out.exists() and "schema_version: 2\nprovenance:" in out.read_text()


def test_plan_table_and_infeasible_explanation(db_url: str) -> None:
    result = _run(
        "plan", "--model", "Llama-3.1-8B", "--rps", "20", "--budget-month", "100",
        "--cpu-only", "--db", db_url,
    )  # fmt: skip
    assert result.exit_code == 3, result.output  # infeasible: documented in --help
    assert "infeasible" in result.output and "relax" in result.output


def test_unknown_model_is_a_clean_error_with_a_suggestion(db_url: str) -> None:
    from quantplan.errors import UnknownNameError

    # A name in another case is the same model; a misspelling gets a suggestion.
    result = _run("plan", "--model", "Llama-3.1-8Bx", "--rps", "1", "--db", db_url)
    assert isinstance(result.exception, UnknownNameError)
    assert "Llama-3.1-8B" in str(result.exception.hint)


def test_help_shows_examples() -> None:
    result = _run("plan", "--help")
    assert result.exit_code == 0 and "Examples" in result.output


def test_report_writes_self_contained_html_and_markdown(db_url: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    made = _run(
        "plan", "--model", "Llama-3.2-1B", "--tokens-per-day", "5e6", "--ttft-p95-ms", "10000",
        "-o", str(plan_file), "--db", db_url,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    html = tmp_path / "report.html"
    result = _run("report", str(plan_file), "-o", str(html), "--db", db_url)
    assert result.exit_code == 0, result.output
    text = html.read_text()
    assert text.count("<svg") >= 4 and "<script" not in text
    # Nothing fetched from anywhere: the only links are the SVGs' own #fragment references.
    assert not re.search(r'(src|href)="(?!#)', text) and "http://purl" not in text
    markdown = html.with_suffix(".md").read_text()
    assert "Pareto front" in markdown and "Headroom" in markdown and "spot" in markdown


def test_targets_file_with_flags_on_top(db_url: str, tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "model: Llama-3.2-1B\n"
        "workload: {tokens_per_day: 1000000, input_tokens: 300, output_tokens: 150}\n"
        "slos: {ttft_p95_ms: 15000}\n"
    )
    result = _run("plan", "--targets", str(targets), "--cpu-only", "--json", "--db", db_url)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # warnings go to stderr
    assert document["targets"]["constraints"]["device"] == "cpu"
    assert document["targets"]["slos"]["ttft_p95_ms"] == 15000
    assert all(d["accelerator_count"] == 0 for d in document["fleet"])


def test_report_svgs_are_well_formed(db_url: str, tmp_path: Path) -> None:
    import re
    import xml.etree.ElementTree as ElementTree

    html = tmp_path / "r.html"
    result = _run(
        "report", "--model", "Llama-3.1-8B", "--rps", "3", "-o", str(html), "--db", db_url
    )
    assert result.exit_code == 0, result.output
    for svg in re.findall(r"<svg.*?</svg>", html.read_text(), flags=re.S):
        ElementTree.fromstring(svg)
