"""Start-up of ``quantplan plan``, as a ratio to ``python -c pass`` on the same interpreter.

Run: ``.venv/bin/python bench/startup.py [--runs N] [--before REV]`` (about a minute, two
with ``--before``). Writes ``bench/results/startup.json`` and ``bench/results/startup.md``.

Each command is timed as a whole process (start to exit) with its child's CPU time read from
``os.wait4``; the command and the ``python -c pass`` baseline run in turn (A B A B ...) and the
ratio is taken pair by pair, so a machine whose speed drifts (this one is shared) moves both
sides alike. Medians are quoted. A ``-X importtime`` run of each command says where the
imports go, by top-level package.

``--before REV`` measures the code of an earlier git revision in the same runs, interleaved
(new, old, baseline, new, old, baseline ...), so a change is compared under one machine load:
the revision is exported to a temporary folder and laid out as the installed package
(scripts/package_view.py), which ``PYTHONPATH`` puts ahead of the editable install.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = sys.executable
QUANTPLAN = [PYTHON, "-m", "quantplan"]
PLAN_ARGS = ["plan", "--model", "Llama-3.1-8B", "--rps", "5", "--ttft-p95-ms", "800"]


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the child, exit status) of one whole-process run."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, process.returncode


Timing = tuple[float, float, int]


def _summary(rows: list[Timing], base: list[Timing]) -> dict[str, Any]:
    med = statistics.median
    pairs = list(zip(rows, base, strict=True))
    return {
        "exit_codes": sorted({r[2] for r in rows}),
        "wall_s": round(med(r[0] for r in rows), 4),
        "cpu_s": round(med(r[1] for r in rows), 4),
        "ratio_wall": round(med(r[0] / b[0] for r, b in pairs), 2),
        "ratio_cpu": round(med(r[1] / max(b[1], 1e-3) for r, b in pairs), 2),
        "wall_s_min_max": [round(min(r[0] for r in rows), 4), round(max(r[0] for r in rows), 4)],
    }


def paired(
    command: list[str], runs: int, env: dict[str, str], before_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Median wall and CPU seconds of ``command`` and of the baseline, and their ratios; with
    ``before_env`` (the earlier code), the same for it, in the same rounds."""
    baseline = [PYTHON, "-c", "pass"]
    _run(command, env)  # warm the file cache; not counted
    if before_env is not None:
        _run(command, before_env)
    after: list[Timing] = []
    before: list[Timing] = []
    base: list[Timing] = []
    for _ in range(runs):
        after.append(_run(command, env))
        if before_env is not None:
            before.append(_run(command, before_env))
        base.append(_run(baseline, env))
    result = {
        "command": " ".join(["python -m quantplan", *command[3:]]),
        "runs": runs,
        **_summary(after, base),
        "baseline_wall_s": round(statistics.median(b[0] for b in base), 4),
        "baseline_cpu_s": round(statistics.median(b[1] for b in base), 4),
    }
    if before_env is not None:
        result["before"] = _summary(before, base)
    return result


def _code_of(revision: str, folder: Path) -> dict[str, str]:
    """The environment that runs ``revision``'s code: exported under ``folder``, laid out as the
    installed package, first on PYTHONPATH."""
    root = RESULTS.parent.parent
    tree = folder / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", revision], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    view = folder / "view"
    subprocess.run([PYTHON, str(tree / "scripts" / "package_view.py"), str(view)], check=True)
    return {"PYTHONPATH": str(view)}


def import_breakdown(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Cumulative import milliseconds per top-level package (``-X importtime``), largest first."""
    result = subprocess.run(
        [PYTHON, "-X", "importtime", *command[1:]],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    totals: dict[str, float] = defaultdict(float)
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if name.startswith("  ") or not cumulative.strip().isdigit():
            continue  # nested: already inside its parent's cumulative time
        package = name.strip().split(".")[0]
        totals[package] += int(cumulative) / 1000
    return dict(sorted(((k, round(v, 1)) for k, v in totals.items()), key=lambda kv: -kv[1])[:12])


def _with_a_row_the_planner_skips(source: Path, target: Path) -> None:
    """A copy of the catalog with one quality row that does not validate: every plan on it
    opens the catalog in full (SQLAlchemy) to name the row in its warning."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        dst.execute("UPDATE quality_result SET perplexity_delta_pct = 'NaN' WHERE id = 1")
    src.close()
    dst.close()


def _git(*args: str) -> str:
    root = RESULTS.parent.parent
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--before", help="git revision to measure in the same runs, for comparison")
    arguments = parser.parse_args()
    runs = arguments.runs
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        # Commands run in an empty folder: `python -m` puts the working directory first on
        # sys.path, where a source tree's quantplan/ would shadow the code being measured.
        os.chdir(tmp)
        env = {
            **os.environ,
            "QUANTPLAN_DB": f"sqlite:///{Path(tmp) / 'catalog.db'}",
            "QUANTPLAN_CACHE_DIR": str(Path(tmp) / "cache"),
        }
        env.pop("PYTHONPATH", None)
        before = None
        if arguments.before:
            code = _code_of(arguments.before, Path(tmp) / "before")
            # Its own snapshot cache: a snapshot is keyed to the catalog code that made it.
            before = {**env, **code, "QUANTPLAN_CACHE_DIR": str(Path(tmp) / "cache-before")}
        subprocess.run([*QUANTPLAN, *PLAN_ARGS], capture_output=True, env=env, check=False)
        for _ in range(2):  # a catalog still for 2 s gets its snapshot kept (snapshot_cache)
            time.sleep(2.5)
            for e in (env, before) if before else (env,):
                subprocess.run([*QUANTPLAN, *PLAN_ARGS], capture_output=True, env=e, check=False)
        flawed = Path(tmp) / "flawed.db"
        _with_a_row_the_planner_skips(Path(tmp) / "catalog.db", flawed)

        def variant(e: dict[str, str] | None, **changes: str) -> dict[str, str] | None:
            return None if e is None else {**e, **changes}

        # A cache directory that cannot exist: every plan opens and reads the catalog.
        no_cache = {"QUANTPLAN_CACHE_DIR": "/dev/null/no-cache"}
        full = {**no_cache, "QUANTPLAN_DB": f"sqlite:///{flawed}"}
        cases = {
            "version": ([*QUANTPLAN, "--version"], env, before),
            "plan_help": ([*QUANTPLAN, "plan", "--help"], env, before),
            "plan": ([*QUANTPLAN, *PLAN_ARGS], env, before),
            "plan_catalog_opened": (
                [*QUANTPLAN, *PLAN_ARGS], {**env, **no_cache}, variant(before, **no_cache)
            ),
            "plan_full_open": ([*QUANTPLAN, *PLAN_ARGS], {**env, **full}, variant(before, **full)),
        }  # fmt: skip
        results = {name: paired(command, runs, e, b) for name, (command, e, b) in cases.items()}
        imports = {name: import_breakdown(command, e) for name, (command, e, _) in cases.items()}
    load = os.getloadavg()
    document = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "before": _git("rev-parse", "--short", arguments.before) if arguments.before else None,
        "load_average_1m_at_start": round(load_at_start[0], 2),
        "load_average_1m_at_end": round(load[0], 2),
        "results": results,
        "imports_ms": imports,
        "target": "quantplan plan under 0.5 s",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        "# Start-up of quantplan (bench/startup.py)",
        "",
        f"Commit {document['commit']}; Python {document['python']}, {document['cpus']} CPUs, "
        f"load average {document['load_average_1m_at_start']} at the start and "
        f"{document['load_average_1m_at_end']} at the end (a shared machine: read CPU time and "
        "the ratios). Medians of paired runs against `python -c pass`.",
        "",
        "| case | command | wall s | CPU s | baseline wall s | wall ratio | CPU ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        lines.append(
            f"| {name} | `{result['command']}` | {result['wall_s']} | {result['cpu_s']} | "
            f"{result['baseline_wall_s']} | {result['ratio_wall']} | {result['ratio_cpu']} |"
        )
    lines += [
        "",
        "`plan` reads the snapshot the previous plan kept (catalog/snapshot_cache.py: the "
        "catalog is unchanged); `plan_catalog_opened` has no snapshot cache, so it checks and "
        "reads the catalog file as any plan after a catalog change does (catalog/sqlite_read.py "
        "when the catalog is current); `plan_full_open` plans on a copy with one row that does "
        "not validate, which every plan opens through SQLAlchemy to name in its warning.",
    ]
    if document["before"]:
        lines += [
            "",
            f"Before and after, measured in the same rounds (before: {document['before']}, "
            "run from an export of that revision):",
            "",
            "| case | wall s before | wall s after | CPU s before | CPU s after | "
            "wall ratio before | wall ratio after |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, result in results.items():
            old = result["before"]
            lines.append(
                f"| {name} | {old['wall_s']} | {result['wall_s']} | {old['cpu_s']} | "
                f"{result['cpu_s']} | {old['ratio_wall']} | {result['ratio_wall']} |"
            )
    lines += ["", "Imports by top-level package, cumulative ms (`-X importtime`, one run):", ""]
    for name, packages in imports.items():
        shown = ", ".join(f"{k} {v:g}" for k, v in packages.items())
        lines.append(f"- {name}: {shown}")
    (RESULTS / "startup.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
