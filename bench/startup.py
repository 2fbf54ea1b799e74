"""Start-up of ``quantplan plan``, as a ratio to ``python -c pass`` on the same interpreter.

Run: ``.venv/bin/python bench/startup.py [--runs N]`` (about a minute). Writes
``bench/results/startup.json`` and ``bench/results/startup.md``.

Each command is timed as a whole process (start to exit) with its child's CPU time read from
``os.wait4``; the command and the ``python -c pass`` baseline run in turn (A B A B ...) and the
ratio is taken pair by pair, so a machine whose speed drifts (this one is shared) moves both
sides alike. Medians are quoted. A ``-X importtime`` run of each command says where the
imports go, by top-level package.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
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


def paired(command: list[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    """Median wall and CPU seconds of ``command`` and of the baseline, and their ratios."""
    baseline = [PYTHON, "-c", "pass"]
    _run(command, env)  # warm the file cache; not counted
    rows = []
    for _ in range(runs):
        a_wall, a_cpu, code = _run(command, env)
        b_wall, b_cpu, _ = _run(baseline, env)
        rows.append((a_wall, a_cpu, b_wall, b_cpu, code))
    med = statistics.median
    return {
        "command": " ".join(["python -m quantplan", *command[3:]]),
        "runs": runs,
        "exit_codes": sorted({r[4] for r in rows}),
        "wall_s": round(med(r[0] for r in rows), 4),
        "cpu_s": round(med(r[1] for r in rows), 4),
        "baseline_wall_s": round(med(r[2] for r in rows), 4),
        "baseline_cpu_s": round(med(r[3] for r in rows), 4),
        "ratio_wall": round(med(r[0] / r[2] for r in rows), 2),
        "ratio_cpu": round(med(r[1] / max(r[3], 1e-3) for r in rows), 2),
        "wall_s_min_max": [round(min(r[0] for r in rows), 4), round(max(r[0] for r in rows), 4)],
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "QUANTPLAN_DB": f"sqlite:///{Path(tmp) / 'catalog.db'}",
            "QUANTPLAN_CACHE_DIR": str(Path(tmp) / "cache"),
        }
        # A cache directory that cannot exist: every plan opens and reads the catalog.
        uncached = {**env, "QUANTPLAN_CACHE_DIR": "/dev/null/no-cache"}
        subprocess.run([*QUANTPLAN, *PLAN_ARGS], capture_output=True, env=env, check=False)
        for _ in range(2):  # a catalog still for 2 s gets its snapshot kept (snapshot_cache)
            time.sleep(2.5)
            subprocess.run([*QUANTPLAN, *PLAN_ARGS], capture_output=True, env=env, check=False)
        cases = {
            "version": ([*QUANTPLAN, "--version"], env),
            "plan_help": ([*QUANTPLAN, "plan", "--help"], env),
            "plan": ([*QUANTPLAN, *PLAN_ARGS], env),
            "plan_catalog_opened": ([*QUANTPLAN, *PLAN_ARGS], uncached),
        }
        results = {name: paired(command, runs, e) for name, (command, e) in cases.items()}
        imports = {name: import_breakdown(command, e) for name, (command, e) in cases.items()}
    load = os.getloadavg()
    document = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
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
        f"Python {document['python']}, {document['cpus']} CPUs, load average "
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
        "catalog is unchanged); `plan_catalog_opened` has no snapshot cache, so it opens, "
        "checks and reads the catalog as any plan after a catalog change does.",
    ]
    lines += ["", "Imports by top-level package, cumulative ms (`-X importtime`, one run):", ""]
    for name, packages in imports.items():
        shown = ", ".join(f"{k} {v:g}" for k, v in packages.items())
        lines.append(f"- {name}: {shown}")
    (RESULTS / "startup.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
