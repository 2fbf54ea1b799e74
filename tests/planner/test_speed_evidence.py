"""A plan names the profiles its speed estimates rest on: the setting's own runs, else the
calibration class whose efficiency it takes, and the measured batching curve, each with its
sources; and says so when there are none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from catalog_copy import copy_catalog

from quantplan.planner.estimate import cite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, seeded_catalog_file: Path) -> str:
    path = copy_catalog(seeded_catalog_file, tmp_path_factory.mktemp("catalog") / "catalog.db")
    return f"sqlite:///{path}"


def _quantplan(db: str, *args: str) -> str:
    """``quantplan ARGS --db DB`` as a user runs it; its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", "quantplan", *args, "--db", db],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "500"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _plan_json(db: str, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(_quantplan(db, "plan", *args, "--json"))  # type: ignore[no-any-return]


def test_a_citation_counts_rows_and_names_the_biggest_sources() -> None:
    sources = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d", "e", ""]
    assert cite(sources) == "12 profile(s): a (5); b (3); c (2); 2 more source(s)"


def test_a_measured_setting_cites_its_own_runs(db: str) -> None:
    """The README's local demo plans SmolLM2 on a 4-vCPU host the catalog has measured."""
    plan = _plan_json(db, "--targets", str(EXAMPLES / "cluster" / "local-demo-targets.yaml"))
    evidence = [d["metrics"]["speed_evidence"] for d in plan["fleet"]]
    assert any(
        e.startswith("this setting's runs at concurrency")
        and "quantplan bench/results/cluster_apply.json" in e
        for e in evidence
    ), evidence


def test_a_calibrated_gpu_plan_cites_its_class_and_curve(db: str) -> None:
    """Llama-3.1-8B on llama.cpp on an H100: the file's own kernel class on that GPU, from the
    project's H100 runs, and the served llama.cpp curve."""
    plan = _plan_json(
        db, "--model", "Llama-3.1-8B", "--rps", "2", "--engine", "llama.cpp",
        "--hardware", "H100-SXM", "--family", "gguf",
    )  # fmt: skip
    evidence = plan["choice"]["metrics"]["speed_evidence"]
    assert "class (llama.cpp " in evidence and "H100" in evidence, evidence
    assert "profile(s): quantplan bench/results/llamacpp_" in evidence, evidence
    assert "batching: " in evidence and "measured curve(s) of llama.cpp gpu" in evidence


def test_a_plan_without_evidence_says_so(db: str) -> None:
    """No profile of vLLM's W8A8 kernels on a GPU: default efficiencies, and the table says
    there is nothing behind them rather than leaving the line out."""
    args = ("--model", "Llama-3.1-8B", "--rps", "2", "--engine", "vllm", "--family", "int8")
    plan = _plan_json(db, *args)
    assert plan["choice"]["metrics"]["speed_evidence"] == ""
    assert plan["choice"]["metrics"]["output_tokens_per_s"]["basis"] == "modeled"
    table = _quantplan(db, "plan", *args)
    assert "speeds rest on" in table and "no profile: default efficiencies" in table


def test_the_report_lists_what_each_deployment_s_speeds_rest_on(db: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    targets = str(EXAMPLES / "cluster" / "local-demo-targets.yaml")
    _quantplan(db, "plan", "--targets", targets, "-o", str(plan_file))
    _quantplan(db, "report", str(plan_file), "-o", str(tmp_path / "report.html"))
    markdown = (tmp_path / "report.md").read_text()
    section = markdown.split("Speed estimates: the profiles they rest on", 1)[1]
    assert "this setting's runs at concurrency" in section.split("\n#", 1)[0]
