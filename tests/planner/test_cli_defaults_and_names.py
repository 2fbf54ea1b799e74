"""`quantplan plan` as a new user meets it, through the installed script: the defaults it
assumes are visible, every targets field has a flag, names are matched case-insensitively with
"did you mean", and an infeasible plan exits 3 with reasons that name flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from catalog_copy import copy_catalog

from quantplan.planner.cli import FLAG_OF_FIELD, INFEASIBLE_EXIT_CODE
from quantplan.planner.defaults import DEFAULTS_HELP
from quantplan.planner.targets import Targets


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, seeded_catalog_file: Path) -> str:
    """A seeded catalog of this module's own (a copy of the session's, as the first plan on a
    new file would have seeded it)."""
    path = copy_catalog(seeded_catalog_file, tmp_path_factory.mktemp("catalog") / "catalog.db")
    return f"sqlite:///{path}"


def _plan(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantplan", "plan", *args, "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "500"},  # one rich line per message
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_help_shows_every_default_and_the_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "quantplan", "plan", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    text = " ".join(result.stdout.replace("│", " ").split())  # rich's option panel
    for field, value in DEFAULTS_HELP.items():
        flag = f"--{field.replace('_', '-')}"
        assert flag in text
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert f"[default: {shown}]" in text, field
    assert f"{INFEASIBLE_EXIT_CODE} no deployment meets them" in text


def test_every_targets_field_has_a_flag() -> None:
    """A targets-file field without a flag is a filter a CLI user cannot reach."""
    fields = {
        f"{section}.{name}"
        for section, info in Targets.model_fields.items()
        if section != "model"
        for name in info.annotation.model_fields  # type: ignore[union-attr]
    }
    assert fields <= set(FLAG_OF_FIELD), fields - set(FLAG_OF_FIELD)
    help_text = subprocess.run(
        [sys.executable, "-m", "quantplan", "plan", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    ).stdout
    for flag in FLAG_OF_FIELD.values():
        for name in flag.split("/"):
            assert name in help_text, name


def test_plan_says_what_it_assumed_and_new_flags_filter(db: str) -> None:
    result = _plan(
        db, "--model", "llama-3.1-8b", "--rps", "5", "--hardware", "l4", "--family", "AWQ",
        "--instance", "G6.XLARGE", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["model"] == "Llama-3.1-8B"
    assert plan["choice"]["hardware"] == "L4" and plan["choice"]["method"] == "awq"
    assert plan["choice"]["instance"]["name"] == "g6.xlarge"
    assumed = " ".join(plan["assumed"])
    assert "peak-to-mean 2" in assumed and "512 input / 256 output" in assumed
    given = _plan(
        db, "--model", "Llama-3.1-8B", "--rps", "5", "--peak-to-mean", "1",
        "--input-tokens", "512", "--output-tokens", "256",
    )  # fmt: skip
    assert given.returncode == 0, given.stderr
    assumed_line = next(x for x in given.stdout.splitlines() if x.startswith("assumed:"))
    assert "peak-to-mean" not in assumed_line and "input tokens" not in assumed_line
    assert "--spot" in assumed_line


def test_typos_in_names_get_a_suggestion_and_exit_2(db: str) -> None:
    result = _plan(db, "--model", "Llama-3.1-8B", "--rps", "5", "--instance", "g6.xlarg")
    assert result.returncode == 2
    assert "unknown instance type (--instance) 'g6.xlarg'" in _one_line_error(result)
    assert "did you mean g6.xlarge" in result.stderr
    family = _plan(db, "--model", "Llama-3.1-8B", "--rps", "5", "--family", "awk")
    assert family.returncode == 2 and "did you mean awq" in family.stderr


def test_a_recovery_benchmark_no_figure_is_on_is_a_typo_not_a_baseline_plan(db: str) -> None:
    """Without this check, `--recovery-benchmark ruler` rejected every quantized option (no
    figure on 'ruler') and printed a feasible BF16 plan as if quality had decided it."""
    cap = ("--model", "Qwen2.5-32B", "--rps", "2", "--min-recovery", "95")
    short = _plan(db, *cap, "--recovery-benchmark", "ruler")
    assert short.returncode == 2
    assert "unknown recovery benchmark (--recovery-benchmark) 'ruler'" in _one_line_error(short)
    assert "did you mean 'ruler (Mekala et al. 2025)'?" in short.stderr
    unrelated = _plan(db, *cap, "--recovery-benchmark", "xyz")
    assert unrelated.returncode == 2 and "openllm-v1" in unrelated.stderr  # every one listed

    other_case = _plan(db, *cap, "--recovery-benchmark", "RULER (mekala et al. 2025)", "--json")
    assert other_case.returncode == 0, other_case.stderr
    plan = json.loads(other_case.stdout)
    assert plan["targets"]["quality"]["recovery_benchmark"] == "ruler (Mekala et al. 2025)"
    assert plan["fleet"][0]["scheme"] != "bf16"  # its own figures let a quantized one pass


def test_infeasible_exits_3_and_names_flags(db: str, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = _plan(
        db, "--model", "Llama-3.1-8B", "--rps", "20", "--budget-month", "100", "--cpu-only",
        "-o", str(out),
    )  # fmt: skip
    assert result.returncode == INFEASIBLE_EXIT_CODE, result.stderr
    assert "Traceback" not in result.stderr and out.exists()
    assert "--budget-month" in result.stdout
    assert "budget.max_usd_per_month" not in result.stdout
    families = _plan(db, "--model", "Llama-3.1-8B", "--rps", "1", "--family", "awq")
    assert "excluded by --family" in families.stdout
    assert "constraints.families" not in families.stdout
    engines = _plan(db, "--model", "Llama-3.1-8B", "--rps", "5", "--require-engine", "vllm")
    assert engines.returncode == 2
    line = _one_line_error(engines)
    assert "--mixed-fleet" in line and "allow_mixed_fleet" not in line


def test_report_into_a_missing_folder_is_one_line(db: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "quantplan", "report", "--model", "Llama-3.2-1B", "--rps", "1",
         "-o", str(tmp_path / "nowhere" / "report.html"), "--db", db],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"},
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot write the report to" in _one_line_error(result)


@pytest.mark.parametrize(
    ("argv", "own"),
    [
        (("plan", "--help"), "quantplan.planner.cli"),
        (("catalog", "list", "--help"), "quantplan.catalog.cli"),
    ],
)
def test_a_command_starts_without_the_other_commands_modules(
    argv: tuple[str, ...], own: str
) -> None:
    """A command registers only its own module's commands: no httpx, agent or dashboard."""
    from quantplan.cli import COMMAND_MODULES

    imports = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "quantplan", *argv],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    others = [name for name in COMMAND_MODULES if name != own]
    for heavy in ("httpx", *others):
        assert f"| {heavy}\n" not in imports and f" {heavy}\n" not in imports, heavy


def test_a_daily_shape_prices_the_scaling_fleet_and_bad_shapes_are_one_line(db: str) -> None:
    day = ",".join(["1"] * 8 + ["2"] * 8 + ["0.5"] * 8)  # mean 1.1667: busiest 1.71x
    base = ("--model", "Llama-3.1-70B", "--rps", "10")
    shaped = _plan(db, *base, "--daily-shape", day, "--json")
    assert shaped.returncode == 0, shaped.stderr
    choice = json.loads(shaped.stdout)["choice"]
    assert choice["floor_usd_per_month"] <= choice["expected_usd_per_month"]
    assert choice["expected_usd_per_month"] <= choice["usd_per_month"]
    text = _plan(db, *base, "--daily-shape", day).stdout
    assert "over the daily shape" in " ".join(text.replace("│", " ").split())
    short = _one_line_error(_plan(db, *base, "--daily-shape", "1,2,3"))
    assert "--daily-shape: give 24 numbers" in short and "got 3 value(s)" in short
    steep = _one_line_error(_plan(db, *base, "--daily-shape", day, "--peak-to-mean", "1.5"))
    assert "busiest hour is 1.71x" in steep and "--peak-to-mean to at least 1.71" in steep
