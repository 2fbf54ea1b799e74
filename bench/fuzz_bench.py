"""Fuzz the quantplan CLI with thousands of generated inputs; write bench/results/fuzz.{json,md}.

The cases and the judgement are tests/fuzz's (fuzz_cases.py, fuzz_harness.py): command lines
from the real command tree, targets files, catalog import files and plan files, each checked
for tracebacks, unclear refusals, and a catalog changed by a refused input.

Mode ``fork`` (default) runs ``quantplan.cli:main`` -- the console script's entry point -- in a
child forked per case from a worker that imported quantplan once; a sample of the same cases
then goes through the installed script in a subprocess (``--script-sample``), and both are
reported, with how often the two agreed.

    .venv/bin/python bench/fuzz_bench.py --cases 5000 --seed 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fuzz"))
sys.path.insert(0, str(REPO / "tests"))  # cli_output, which the harness imports

from fuzz_cases import SURFACES, Case, command_tree, make_case  # noqa: E402
from fuzz_harness import Sandbox, execute, preload_for_fork, valid_plans  # noqa: E402

RERUN = ".venv/bin/python bench/fuzz_bench.py --cases 5000 --seed 1"

_sandbox: Sandbox | None = None
_mode = "fork"


def _init_worker(root: str, mode: str) -> None:
    global _sandbox, _mode
    _sandbox, _mode = Sandbox(Path(root)), mode
    if mode == "fork":
        preload_for_fork()


def _run(item: tuple[int, Case]) -> dict[str, Any]:
    index, case = item
    assert _sandbox is not None
    result = execute(case, _sandbox, _mode)
    return {
        "index": index,
        "surface": case.surface,
        "rc": result.run.rc,
        "seconds": round(result.run.seconds, 3),
        "timed_out": result.run.timed_out,
        "catalog_changed": result.catalog_changed,
        "followups": len(result.followups),
        "problems": [
            {"category": p.category, "signature": p.signature, "detail": p.detail}
            for p in result.problems
        ],
    }


def generate(count: int, seed: int) -> list[Case]:
    """``count`` cases, the surfaces in turn, each from its own seeded stream."""
    plans = valid_plans(_setup_sandbox)
    tree = command_tree()
    return [
        make_case(SURFACES[i % len(SURFACES)], random.Random(f"{seed}:{i}"), plans, tree)
        for i in range(count)
    ]


def run_all(cases: list[tuple[int, Case]], root: Path, mode: str, workers: int) -> list[dict]:
    context = get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(str(root), mode)
    ) as pool:
        return list(pool.map(_run, cases, chunksize=4))


def summarise(outcomes: list[dict], cases: dict[int, Case], wall_s: float) -> dict[str, Any]:
    per_surface: dict[str, Any] = {}
    for surface in SURFACES:
        mine = [o for o in outcomes if o["surface"] == surface]
        per_surface[surface] = {
            "cases": len(mine),
            "exit_0": sum(o["rc"] == 0 for o in mine),
            "refused": sum(o["rc"] != 0 for o in mine),
            "with_problems": sum(bool(o["problems"]) for o in mine),
            "exit_codes": dict(sorted(Counter(str(o["rc"]) for o in mine).items())),
            "followup_runs": sum(o["followups"] for o in mine),
        }
    categories = Counter(p["category"] for o in outcomes for p in o["problems"])
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for outcome in outcomes:
        case = cases[outcome["index"]]
        for problem in outcome["problems"]:
            key = (outcome["surface"], problem["category"], problem["signature"])
            group = groups.setdefault(key, {"count": 0, "case": None})
            group["count"] += 1
            if group["case"] is None or case.size() < cases[group["index"]].size():
                group.update(index=outcome["index"], case=case, detail=problem["detail"])
    return {
        "cases": len(outcomes),
        "wall_s": round(wall_s, 1),
        "cases_per_s": round(len(outcomes) / wall_s, 2) if wall_s else None,
        "mean_case_s": round(sum(o["seconds"] for o in outcomes) / max(1, len(outcomes)), 3),
        "per_surface": per_surface,
        "exit_codes": dict(sorted(Counter(str(o["rc"]) for o in outcomes).items())),
        "tracebacks": categories.get("traceback", 0)
        + categories.get("after a successful import: traceback", 0),
        "catalog_changed_by_refused_input": categories.get("catalog changed by a refused input", 0),
        "unclear_errors": sum(
            n
            for c, n in categories.items()
            if c.split(": ")[-1]
            in (
                "unclear error",
                "multi-line error",
                "overlong error",
                "no message",
                "internal error",
            )
        ),
        "problem_categories": dict(categories.most_common()),
        "groups": [
            {
                "surface": surface,
                "category": category,
                "signature": signature,
                "count": group["count"],
                "reproducer": _reproducer(group["case"]),
                "detail": group["detail"],
            }
            for (surface, category, signature), group in sorted(
                groups.items(), key=lambda item: -item[1]["count"]
            )
        ],
    }


def _reproducer(case: Case) -> dict[str, Any]:
    return {
        "argv": case.argv,
        "what": case.what,
        "files": {
            name: repr(body[:400]) + (" ..." if len(body) > 400 else "")
            for name, body in case.files.items()
        },
        "file_bytes": {name: len(body) for name, body in case.files.items()},
    }


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    dirty = [line for line in git("status", "--porcelain").splitlines() if line[:2].strip() == "M"]
    return head + (f" (+{len(dirty)} modified files in the working tree)" if dirty else "")


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    main, sample = report["main"], report.get("script_sample")
    lines = [
        "# CLI fuzzing",
        "",
        f"Re-run: `{RERUN}` (the run below took {report['main']['wall_s'] / 60:.1f} min).",
        "",
        f"Date {report['date']}, quantplan {report['commit']}, Python {report['python']}, "
        f"seed {report['seed']}, {report['workers']} workers, load average "
        f"{report['load_before']} before / {report['load_after']} after.",
        "",
        f"Mode: **{report['mode']}** -- {_mode_words(report['mode'])}",
        "",
        "A case fails when the output holds a traceback, the command runs past "
        f"{report['timeout_s']:.0f} s, a refusal is not one clear line (`error: ...` plus optional "
        "`hint:` lines, or click's usage error for exit 2), an unmutated valid input is refused, "
        "a record or targets file with NaN/Infinity is accepted, or a refused input changed the "
        "catalog (sha256 over every SQLite table). A successful import is followed by "
        "`catalog list`, `catalog export` and `plan`, which must cope with what was accepted.",
        "",
        "## Totals",
        "",
        "| | main run | installed-script sample |",
        "|---|---:|---:|",
    ]
    rows = (
        ("cases", "cases"),
        ("tracebacks", "tracebacks"),
        ("unclear refusals", "unclear_errors"),
        ("catalog changed by a refused input", "catalog_changed_by_refused_input"),
        ("wall time, s", "wall_s"),
        ("mean per case, s", "mean_case_s"),
    )
    for label, key in rows:
        lines.append(f"| {label} | {main[key]} | {sample[key] if sample else '-'} |")
    if sample:
        lines += [
            "",
            f"Same exit code and same problem categories in both modes: "
            f"{report['agreement']['same']} of {report['agreement']['compared']} sampled cases.",
        ]
    lines += ["", "## Per surface (main run)", "",
              "| surface | cases | exit 0 | refused | with problems | exit codes |",
              "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for surface, s in main["per_surface"].items():
        codes = ", ".join(f"{k}: {v}" for k, v in s["exit_codes"].items())
        lines.append(
            f"| {surface} | {s['cases']} | {s['exit_0']} | {s['refused']} | "
            f"{s['with_problems']} | {codes} |"
        )
    lines += ["", "Exit codes overall: "
              + ", ".join(f"{k}: {v}" for k, v in main["exit_codes"].items()), ""]  # fmt: skip
    lines += ["## Problem categories (main run)", ""]
    if not main["problem_categories"]:
        lines.append("None: every case behaved.")
    for category, count in main["problem_categories"].items():
        lines.append(f"- {category}: {count}")
    lines += ["", "## Failure groups, each with its smallest reproducer", ""]
    for group in main["groups"]:
        reproducer = group["reproducer"]
        lines += [
            f"### {group['surface']} / {group['category']} ({group['count']} cases)",
            "",
            f"Signature: `{group['signature']}`",
            "",
            f"    quantplan {' '.join(_quote(a) for a in reproducer['argv'])}",
            f"    ({reproducer['what']})",
        ]
        for name, body in reproducer["files"].items():
            lines.append(f"    {name} ({reproducer['file_bytes'][name]} bytes): {body[:300]}")
        lines += ["", "```", group["detail"][:1200], "```", ""]
    path.write_text("\n".join(lines) + "\n")


def _quote(arg: str) -> str:
    import shlex

    text = shlex.quote(arg)
    return text if len(text) <= 80 else text[:60] + f"...' ({len(arg)} chars)"


def _mode_words(mode: str) -> str:
    if mode == "fork":
        return (
            "each case runs in a child forked from a worker that imported quantplan once; the "
            "child sets sys.argv, sends fds 1/2 to files and calls `quantplan.cli:main`, the "
            "installed script's entry point. The sample column ran the installed script itself."
        )
    return "each case ran the installed `quantplan` script in a subprocess."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=("fork", "script"), default="fork")
    parser.add_argument("--script-sample", type=int, default=300, help="0 to skip")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fuzz")
    args = parser.parse_args()

    global _setup_sandbox
    root = Path(tempfile.mkdtemp(prefix="quantplan-fuzz-"))
    _setup_sandbox = Sandbox(root)
    load_before = [round(x, 2) for x in os.getloadavg()]
    cases = generate(args.cases, args.seed)
    indexed = list(enumerate(cases))
    by_index = dict(indexed)

    started = time.perf_counter()
    outcomes = run_all(indexed, root, args.mode, args.workers)
    main_summary = summarise(outcomes, by_index, time.perf_counter() - started)
    print(json.dumps({k: main_summary[k] for k in ("cases", "wall_s", "tracebacks")}))

    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "python": platform.python_version(),
        "seed": args.seed,
        "workers": args.workers,
        "mode": args.mode,
        "timeout_s": 60.0,
        "rerun": RERUN,
        "main": main_summary,
    }
    if args.script_sample and args.mode == "fork":
        step = max(1, len(indexed) // args.script_sample)
        sampled = indexed[::step][: args.script_sample]
        started = time.perf_counter()
        sample_outcomes = run_all(sampled, root, "script", args.workers)
        report["script_sample"] = summarise(
            sample_outcomes, by_index, time.perf_counter() - started
        )
        fork_by_index = {o["index"]: o for o in outcomes}
        same = sum(
            o["rc"] == fork_by_index[o["index"]]["rc"]
            and sorted(p["category"] for p in o["problems"])
            == sorted(p["category"] for p in fork_by_index[o["index"]]["problems"])
            for o in sample_outcomes
        )
        report["agreement"] = {"compared": len(sample_outcomes), "same": same}
    report["load_before"] = load_before
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(args.out.with_suffix(".md"), report)
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


_setup_sandbox: Sandbox

if __name__ == "__main__":
    main()
