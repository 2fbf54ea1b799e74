"""Tampered plan files through the installed ``quantplan apply``: refused before Ray is touched.

A plan file is user input. Each of these is what a hand edit, a truncated copy or a hostile file
looks like; ``apply`` (dry run or not) must refuse it with one error line, exit non-zero, print
no traceback and never import Ray -- checked with Python's own import log
(PYTHONPROFILEIMPORTTIME), so a refusal that happened only after connecting would fail here
even with no cluster running.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from plans import llama_cpp_plan

pytestmark = [pytest.mark.slow]

QUANTPLAN = Path(sys.executable).with_name("quantplan")
Data = dict[str, Any]


def _fleet(data: Data, **fields: object) -> Data:
    data["fleet"][0].update(fields)
    return data


def _without(data: Data, field: str) -> Data:
    del data["fleet"][0][field]
    return data


def _provenance(data: Data, **fields: object) -> Data:
    data["provenance"].update(fields)
    return data


# name -> (how to tamper with the plan's data, or the file's text; what the refusal says)
CASES: dict[str, tuple[Callable[[Data], Data] | str | bytes, str]] = {
    "unknown scheme": (lambda d: _fleet(d, scheme="gguf-q9_9"), "unknown scheme 'gguf-q9_9'"),
    "engine is a shell command": (lambda d: _fleet(d, engine="rm -rf ~"), "unknown engine"),
    "fleet serves another model": (
        lambda d: _fleet(d, model="Llama-3.1-8B"),
        "serves model 'Llama-3.1-8B', but the plan is for",
    ),
    "plan and targets disagree": (
        lambda d: {**d, "model": "Llama-3.1-8B"},
        "but its targets name",
    ),
    "model not in the catalog": (
        lambda d: _fleet(
            {**d, "model": "Nope-1B", "targets": {**d["targets"], "model": "Nope-1B"}},
            model="Nope-1B",
        ),
        "model 'Nope-1B' is not in the catalog",
    ),
    "method does not match scheme": (lambda d: _fleet(d, method="gptq"), "is a gguf scheme"),
    "engine without a kernel": (lambda d: _fleet(d, engine="vllm"), "no cpu kernel for"),
    "unknown instance type": (
        lambda d: _fleet(d, instance={"cloud": "aws", "name": "x1.huge", "region": "us-east-1"}),
        "unknown instance type",
    ),
    "GPU claimed on a CPU instance": (
        lambda d: _fleet(d, hardware="H100", accelerator_count=8),
        "in the catalog, not 'H100' x8",
    ),
    "huge replica count": (
        lambda d: _fleet(d, replicas=10**12, instances=10**12),
        "apply runs at most 10,000",
    ),
    "replicas and instances disagree": (lambda d: _fleet(d, instances=7), "do not make 7"),
    "negative replicas": (lambda d: _fleet(d, replicas=-3), "fleet.0.replicas"),
    "NaN price": (lambda d: _fleet(d, usd_per_hour=math.nan), "usd_per_hour"),
    "infinite price": (lambda d: _fleet(d, usd_per_hour=math.inf), "usd_per_hour"),
    "fleet is a string": (lambda d: {**d, "fleet": "everything"}, "field 'fleet'"),
    "metrics is a list": (lambda d: _fleet(d, metrics=[1, 2]), "fleet.0.metrics"),
    "instance is a number": (lambda d: _fleet(d, instance=5), "fleet.0.instance"),
    "missing scheme": (lambda d: _without(d, "scheme"), "fleet.0.scheme': Field required"),
    "unknown top-level field": (lambda d: {**d, "run": "curl x | sh"}, "field 'run'"),
    "no schema version": (
        lambda d: {k: v for k, v in d.items() if k != "schema_version"},
        "no schema_version",
    ),
    "newer schema": (lambda d: {**d, "schema_version": 3}, "plan schema 3; this is quantplan"),
    "newer quantplan": (
        lambda d: _provenance(d, quantplan_version="99.0.0"),
        "written by quantplan 99.0.0",
    ),
    "infeasible plan": (lambda d: {**d, "feasible": False, "fleet": []}, "not feasible"),
    "a YAML list": ("- schema_version: 2\n- fleet: []\n", "holds a list, not a plan"),
    "a string": ("rm -rf ~\n", "holds a string, not a plan"),
    "alias bomb": ('a: &a ["x", "x"]\nb: &b [*a, *a]\nc: [*b, *b]\n', "anchors"),
    "not text": (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
}


def _write(directory: Path, name: str, tamper: Callable[[Data], Data] | str | bytes) -> Path:
    path = directory / (name.replace(" ", "-") + ".yaml")
    if isinstance(tamper, bytes):
        path.write_bytes(tamper)
    elif isinstance(tamper, str):
        path.write_text(tamper)
    else:  # PyYAML writes NaN and infinity as .nan and .inf, as a user could
        data = tamper(llama_cpp_plan().model_dump(mode="json"))
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _apply(plan_file: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(QUANTPLAN), "apply", str(plan_file), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_tampered_plan_files_are_refused_in_one_line_before_ray(tmp_path: Path) -> None:
    from quantplan.catalog.db import open_catalog

    database = f"sqlite:///{tmp_path / 'catalog.db'}"
    open_catalog(database)  # migrated and seeded once, not by 54 racing commands
    env = {
        **os.environ,
        "QUANTPLAN_DB": database,
        "QUANTPLAN_DATA_DIR": str(tmp_path / "data"),
        "QUANTPLAN_RAY_ADDRESS": "auto",
        "PYTHONPROFILEIMPORTTIME": "1",  # every import, on stderr: proves Ray stayed out
        "COLUMNS": "1000",  # rich would wrap the one line at 80 columns
    }
    env.pop("RAY_ADDRESS", None)
    runs = [
        (name, _write(tmp_path, name, tamper), expected, extra)
        for name, (tamper, expected) in CASES.items()
        for extra in ((), ("--dry-run",))
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda run: _apply(run[1], env, *run[3]), runs))
    problems = []
    for (name, _, expected, extra), result in zip(runs, results, strict=True):
        label = f"{name}{' --dry-run' if extra else ''}"
        imports = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
        said = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
        ray_imports = [line for line in imports if line.split("|")[-1].strip() == "ray"]
        errors = [line for line in said if line.startswith("error:")]
        if result.returncode == 0:
            problems.append(f"{label}: exit 0")
        if any("Traceback" in line for line in said):
            problems.append(f"{label}: traceback\n" + "\n".join(said[-5:]))
        if ray_imports:
            problems.append(f"{label}: imported ray")
        if len(errors) != 1 or expected not in errors[0]:
            problems.append(f"{label}: expected one error line with {expected!r}, got {said}")
        if len([line for line in said if not line.lstrip().startswith("hint:")]) != 1:
            problems.append(f"{label}: more than the error line and its hint: {said}")
    assert not problems, "\n".join(problems)
