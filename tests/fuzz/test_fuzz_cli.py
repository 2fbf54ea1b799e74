"""Property-based fuzzing of the CLI through the installed `quantplan` script.

Four surfaces: command lines drawn from the real command tree, targets files, catalog import
files (CSV, JSON, YAML; every record kind) and plan files. For every generated input the
script must not print a traceback; it must exit 0, or exit non-zero with one clear line
(`error: ...` with an optional hint, or click's usage error for exit 2); a refused input must
leave the catalog exactly as it was; an unmutated valid input must be accepted, and a record
or targets file holding NaN/Infinity must be refused. A successful import is followed by
reads of the catalog (list, export, plan), which must cope with whatever was accepted.

Each case starts the script (about a second), so the generated cases are few and fixed
(derandomized); bench/fuzz_bench.py runs thousands. The explicit examples are the bugs the
suite was written for.
"""

from __future__ import annotations

import random
from typing import Any

from fuzz_cases import (
    ALIAS_BOMB,
    Case,
    CommandSpec,
    argv_case,
    import_case,
    plan_case,
    targets_case,
)
from fuzz_harness import Result, Sandbox, execute
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

# Fixed examples and no shrinking: a failing run stays within the time budget and names the
# whole generated case (argv and file) in its message; bench/fuzz_bench.py groups failures.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
randoms = st.randoms(use_true_random=False)


def describe(result: Result) -> str:
    case = result.case
    lines = [f"quantplan {' '.join(map(repr, case.argv))}  ({case.what})"]
    for name, body in case.files.items():
        lines.append(f"  {name} ({len(body)} bytes): {body[:300]!r}")
    lines.append(f"  exit {result.run.rc} in {result.run.seconds:.1f} s")
    for problem in result.problems:
        lines.append(f"  {problem.category}: {problem.signature}\n    {problem.detail}")
    return "\n".join(lines)


def check(case: Case, sandbox: Sandbox) -> None:
    result = execute(case, sandbox)
    assert not result.problems, describe(result)


QUALITY_NAN = (
    b"kind: quality\nrows:\n- {model: Llama-2-7B, scheme: gptq-w4a16-g128, eval_set: fz, "
    b"perplexity: .nan, basis: published, source: fuzz}\n"
)
PROFILE_INFINITY = (
    b'{"kind": "profiles", "rows": [{"model": "Llama-3.1-8B", "scheme": "gptq-w4a16-g128", '
    b'"engine": "vllm", "hardware": "A10G", "input_tokens": 512, "output_tokens": 256, '
    b'"concurrency": 8, "output_tokens_per_s": Infinity, "basis": "measured", '
    b'"source": "fuzz"}]}'
)


@settings(FUZZ, max_examples=examples(40))
@given(data=randoms)
@example(data=Case("argv", ["--bogus"], what="unknown root option"))
@example(data=Case("argv", ["plan", "--rps", "abc"], what="non-numeric --rps"))
# Fuzz bench, seed 5: a NaN objective reached the benchmark's Slo model (exit 70), and a
# 5,000-character path was echoed whole in a file error.
@example(data=Case("argv", ["bench", "x", "--slo-ttft-ms", "nan"], what="NaN SLO"))
@example(data=Case("argv", ["report", "y" * 5000, "-o", "r.html"], what="huge path"))
# Seed 6: a negative --output-tokens reached bench's Workload model, and a 5,000-character
# import path made the filesystem's "name too long" an internal error (both exit 70).
@example(data=Case("argv", ["bench", "x", "--output-tokens", "-1"], what="negative tokens"))
@example(data=Case("argv", ["bench", "x", "--rate", "nan"], what="NaN rate"))
@example(data=Case("argv", ["catalog", "import", "y" * 5000], what="huge import path"))
# Seed 7: a 5,000-character --where clause was echoed whole.
@example(data=Case("argv", ["catalog", "list", "-w", "y" * 5000], what="huge filter"))
def test_command_lines(data: Any, sandbox: Sandbox, tree: list[CommandSpec]) -> None:
    case = data if isinstance(data, Case) else argv_case(data, tree)
    check(case, sandbox)


@settings(FUZZ, max_examples=examples(25))
@given(data=randoms)
@example(
    data=Case(
        "targets",
        ["plan", "--targets", "bomb.yaml"],
        {"bomb.yaml": ALIAS_BOMB.encode()},
        "alias bomb",
        expect_refused=True,
    )
)
def test_targets_files(data: Any, sandbox: Sandbox) -> None:
    case = data if isinstance(data, Case) else targets_case(data)
    check(case, sandbox)


@settings(FUZZ, max_examples=examples(35))
@given(data=randoms)
@example(
    data=Case(
        "import",
        ["catalog", "import", "quality.yaml"],
        {"quality.yaml": QUALITY_NAN},
        "NaN perplexity",
        expect_refused=True,
    )
)
@example(
    data=Case(
        "import",
        ["catalog", "import", "profiles.json"],
        {"profiles.json": PROFILE_INFINITY},
        "Infinity throughput",
        expect_refused=True,
    )
)
@example(
    data=Case(
        "import",
        ["catalog", "import", "models.yaml"],
        {"models.yaml": ALIAS_BOMB.encode()},
        "alias bomb",
        expect_refused=True,
    )
)
@example(
    data=Case(
        "import",
        ["catalog", "import", "instances.csv"],
        {"instances.csv": bytes(random.Random(7).randrange(256) for _ in range(600))},
        "binary bytes",
        expect_refused=True,
    )
)
def test_import_files(data: Any, sandbox: Sandbox) -> None:
    case = data if isinstance(data, Case) else import_case(data)
    check(case, sandbox)


@settings(FUZZ, max_examples=examples(25))
@given(data=randoms)
@example(
    data=Case(
        "plan_file",
        ["apply", "plan.yaml", "--dry-run"],
        {"plan.yaml": b"- a\n- b\n"},
        "plan file that is a YAML list",
        expect_refused=True,
    )
)
@example(
    data=Case(
        "plan_file",
        ["report", "plan.yaml", "-o", "report.html"],
        {"plan.yaml": b"- a\n- b\n"},
        "plan file that is a YAML list",
        expect_refused=True,
    )
)
def test_plan_files(data: Any, sandbox: Sandbox, plans: list[dict[str, Any]]) -> None:
    case = data if isinstance(data, Case) else plan_case(data, plans)
    check(case, sandbox)
