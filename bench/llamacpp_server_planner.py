"""The planner's llama.cpp prediction against measured llama-server points, and the seed rows.

Shared by bench/llamacpp_server.py (CPU) and bench/llamacpp_server_gpu.py (GPU). For every
measured point it asks ``planner.estimate.predict_profile`` twice:

* before: with the seed catalog's profiles as they were, without this run's rows;
* after: with this run's rows added except the point itself (leave-one-out): the planner
  pins the curve at the other measured concurrencies of the same setting and interpolates in
  log(concurrency) between them (clamped past the ends); settings without rows of their own
  are calibrated by those of the same engine, family and device kind. With the point itself
  in the catalog the planner reproduces it (basis "measured").

The measured points become seed profile rows (``basis: measured``) in their own YAML file
under catalog/seed/, written by the benchmark that measured them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.seeding import seed_records
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.estimate import predict_profile

SEED_DIR = Path(__file__).resolve().parent.parent / "catalog" / "seed"


def seed_snapshot(without_sources: set[str]) -> CatalogSnapshot:
    """The seed catalog, less the profiles of ``without_sources`` (this run's own file)."""
    kinds = {kind: tuple(records) for kind, records in seed_records()}
    kinds["profiles"] = tuple(
        p
        for p in kinds.get("profiles", ())
        if isinstance(p, ProfileRecord) and p.source not in without_sources
    )
    return CatalogSnapshot(**kinds)


def compare(rows: list[ProfileRecord]) -> list[dict[str, Any]]:
    """Measured vs predicted tok/s for each row, before and after the rows were known."""
    sources = {row.source for row in rows}
    snapshot = seed_snapshot(sources)
    before_evidence = tuple(snapshot.profiles)
    out = []
    for row in rows:
        after_evidence = before_evidence + tuple(other for other in rows if other is not row)
        before = predict_profile(row, snapshot, before_evidence)
        after = predict_profile(row, snapshot, after_evidence)
        measured = row.output_tokens_per_s
        out.append(
            {
                "model": row.model,
                "scheme": row.scheme,
                "hardware": row.hardware,
                "concurrency": row.concurrency,
                "measured_tokens_per_s": measured,
                "before_tokens_per_s": round(before.output_tokens_per_s, 1) if before else None,
                "before_error_pct": _error(before, measured),
                "before_basis": before.basis if before else None,
                "after_tokens_per_s": round(after.output_tokens_per_s, 1) if after else None,
                "after_error_pct": _error(after, measured),
                "after_basis": after.basis if after else None,
            }
        )
    return out


def _error(prediction: Any, measured: float) -> float | None:
    if prediction is None:
        return None
    return round(100 * (prediction.output_tokens_per_s - measured) / measured, 1)


def comparison_md(points: list[dict[str, Any]]) -> list[str]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.0f} %"

    lines = [
        "| model | scheme | hardware | concurrency | measured tok/s | planner before | error "
        "| planner after (point left out) | error |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p['model']} | {p['scheme']} | {p['hardware']} | {p['concurrency']} | "
            f"{p['measured_tokens_per_s']:,.1f} | {p['before_tokens_per_s'] or 0:,.1f} | "
            f"{pct(p['before_error_pct'])} | {p['after_tokens_per_s'] or 0:,.1f} | "
            f"{pct(p['after_error_pct'])} |"
        )
    within = [p for p in points if p["after_error_pct"] is not None]
    if within:
        inside = sum(abs(p["after_error_pct"]) <= 20 for p in within)
        before = sum(
            abs(p["before_error_pct"]) <= 20 for p in within if p["before_error_pct"] is not None
        )
        lines += [
            "",
            f"Within 20 %: {before} of {len(within)} points before, {inside} of {len(within)} "
            "after (each point predicted from the others of this run).",
        ]
    return lines


def write_seed(path: Path, header: str, rows: list[ProfileRecord] | list[dict[str, Any]]) -> None:
    """One YAML seed file of profile rows (flow style, one row a line, as the other seeds);
    plain dicts are checked as profile records first."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += ["kind: profiles", "rows:"]
    for found in rows:
        row = found if isinstance(found, ProfileRecord) else ProfileRecord(**found)
        data = row.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        data.setdefault("hardware_count", row.hardware_count)
        lines.append("- " + json.dumps(data, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- The planner's llama.cpp sizing against every measured curve, held out -----------------
#
#   .venv/bin/python bench/llamacpp_server_planner.py [--write-seed]
#
# writes bench/results/llamacpp_server_planner.{json,md} (and, with --write-seed, the seed file
# of the two served GPU curves). Planner arithmetic only: nothing is measured here.

RESULTS = Path(__file__).resolve().parent / "results"
SERVED_PROFILES = RESULTS / "gpu_node_steps-profiles.yaml"
SERVED_SEED_NAME = "profiles_llamacpp_server_http_gpu.yaml"
# Its own source, so that the first run's rows (retracted in seed version 19: their levels
# repeated prompts to a cache-on server) and these never share a catalog key.
SERVED_SOURCE = "quantplan bench/results/gpu_node_steps-profiles.yaml, 2026-12-04 rerun"
SERVED_COMMIT = "ef2debe"
WITHIN = 20.0
"""The issue's target: the planner's llama.cpp sizing within 20 % of the measured curve."""


def served_rows() -> list[ProfileRecord]:
    """Each level of the two profiles measured through llama-server over HTTP on an H200
    (bench/gpu_node_steps.py) as one seed row, marked ``served``."""
    import yaml

    document = yaml.safe_load(SERVED_PROFILES.read_text(encoding="utf-8"))
    rows = []
    for profile in document["rows"]:
        details = profile["details"]
        gpu = details["gpu"]
        for level in details["levels"]:
            done, failed = level["completed"], level["failed"]
            rows.append(
                ProfileRecord(
                    model=profile["model"],
                    scheme=profile["scheme"],
                    engine=profile["engine"],
                    hardware=profile["hardware"],
                    hardware_count=profile["hardware_count"],
                    input_tokens=profile["input_tokens"],
                    output_tokens=profile["output_tokens"],
                    concurrency=level["concurrency"],
                    output_tokens_per_s=round(level["output_tokens_per_s"], 1),
                    ttft_p50_ms=round(level["ttft_p50_ms"], 1),
                    ttft_p95_ms=round(level["ttft_p95_ms"], 1),
                    itl_p50_ms=round(level["itl_p50_ms"], 2),
                    error_rate=round(failed / max(done + failed, 1), 4),
                    basis="measured",
                    source=SERVED_SOURCE,
                    run_id=profile["run_id"],
                    engine_version=profile["engine_version"],
                    notes=(
                        "llama-server (CUDA, built from the pinned llama-cpp-python sdist's "
                        "tree) over HTTP, closed loop with quantplan's streaming client on the "
                        f"same host, {done + failed} requests at this level; "
                        f"weights: {details['weights']}"
                    ),
                    details={
                        "url": "bench/results/gpu_node_steps-profiles.yaml",
                        "where": f"{profile['run_id']} levels[concurrency={level['concurrency']}]",
                        "date": profile["recorded_at"][:10],
                        "commit": SERVED_COMMIT,
                        "category": "throughput_at_concurrency",
                        "served": True,
                        "gpu": f"{gpu['model']}, driver {gpu['driver_version']}, "
                        f"CUDA {gpu['cuda_version']}",
                    },
                    recorded_at=profile["recorded_at"],
                )
            )
    return rows


def cpu_rows(report: dict[str, Any]) -> list[ProfileRecord]:
    """llama-server's CPU curves from ``report`` (bench/results/llamacpp_server.json; seeded
    only when that run had the 2 cores to itself)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from llamacpp_server import profile_rows

    return list(profile_rows(report))


def _setting(row: ProfileRecord) -> tuple[object, ...]:
    """One measured curve: as planner.batching.setting_of (spelled out, so that this script
    also runs against a checkout from before that module)."""
    return (
        row.model, row.scheme, row.engine, row.hardware, row.hardware_count,
        row.input_tokens, row.output_tokens, row.run_id or row.source,
    )  # fmt: skip


def held_out(
    groups: dict[str, list[ProfileRecord]], snapshot: CatalogSnapshot
) -> list[dict[str, Any]]:
    """Each measured point predicted (a) with the point left out: the planner sizing a setting
    it measured, pinned by the neighbouring levels; (b) with its whole setting left out: the
    batching curve and efficiency drawn from the other settings only."""
    pool = tuple(snapshot.profiles)
    out = []
    for group, rows in groups.items():
        extra = tuple(r for r in rows if r not in pool)
        for row in rows:
            evidence = pool + extra
            point_out = tuple(
                p
                for p in evidence
                if (_setting(p), p.concurrency) != (_setting(row), row.concurrency)
            )
            setting_out = tuple(p for p in evidence if _setting(p) != _setting(row))
            by_point = predict_profile(row, snapshot, point_out)
            by_setting = predict_profile(row, snapshot, setting_out)
            measured = row.output_tokens_per_s
            out.append(
                {
                    "group": group,
                    "model": row.model,
                    "scheme": row.scheme,
                    "hardware": row.hardware,
                    "run_id": row.run_id,
                    "concurrency": row.concurrency,
                    "measured_tokens_per_s": measured,
                    "point_out_tokens_per_s": _round(by_point),
                    "point_out_error_pct": _error(by_point, measured),
                    "point_out_basis": by_point.basis if by_point else None,
                    "setting_out_tokens_per_s": _round(by_setting),
                    "setting_out_error_pct": _error(by_setting, measured),
                    "setting_out_batching": getattr(by_setting, "batching", None),
                }
            )
    return out


def _round(prediction: Any) -> float | None:
    return None if prediction is None else round(prediction.output_tokens_per_s, 1)


def _inside(points: list[dict[str, Any]], key: str) -> str:
    found = [p[key] for p in points if p[key] is not None]
    inside = sum(abs(e) <= WITHIN for e in found)
    median = sorted(abs(e) for e in found)[len(found) // 2] if found else float("nan")
    return f"{inside} of {len(found)} (median abs. error {median:.0f} %)"


def main() -> None:
    import argparse
    import os
    import subprocess
    from datetime import UTC, datetime

    parser = argparse.ArgumentParser(description="The planner's llama.cpp sizing, held out")
    parser.add_argument("--write-seed", action="store_true", help="(re)write the served seed")
    parser.add_argument("--out", type=Path, default=RESULTS / "llamacpp_server_planner.json")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="this script's JSON from an older checkout's planner, shown beside (its commit "
        "is read from it); run that checkout's package view first on sys.path",
    )
    args = parser.parse_args()
    served = served_rows()
    if args.write_seed:
        write_seed(
            SEED_DIR / SERVED_SEED_NAME,
            "llama-server over HTTP on one H200, each level of the two closed-loop sweeps in\n"
            "bench/results/gpu_node_steps-profiles.yaml (random weights in real shapes: speed\n"
            "only). Written by bench/llamacpp_server_planner.py --write-seed; do not edit.",
            served,
        )
    # The seed catalog without the served rows, then with them added as evidence.
    snapshot = seed_snapshot({SERVED_SOURCE})
    before = compare(served)
    groups: dict[str, list[ProfileRecord]] = defaultdict(list)
    for p in snapshot.profiles:
        if (
            p.engine == "llama.cpp"
            and p.hardware == "H200"
            and p.run_id == "llamacpp-gpu-2026-12-02"
        ):
            groups["GPU, llama-batched-bench"].append(p)
    groups["GPU, llama-server over HTTP"] = served
    cpu = json.loads((RESULTS / "llamacpp_server.json").read_text(encoding="utf-8"))
    label = "CPU, llama-server over HTTP" + ("" if cpu.get("seeded") else " (loaded machine)")
    groups[label] = cpu_rows(cpu)
    points = held_out(groups, snapshot)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    report = {
        "benchmark": "llamacpp_server_planner",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "load_1min": round(os.getloadavg()[0], 2),
        "served_before": before,
        "held_out": points,
        "curves": _curves(snapshot, served),
    }
    if args.baseline:
        old = json.loads(args.baseline.read_text(encoding="utf-8"))
        report["baseline"] = {"commit": old["commit"], "held_out": old["held_out"]}
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text("\n".join(_markdown(report)) + "\n", encoding="utf-8")
    for group in groups:
        mine = [p for p in points if p["group"] == group]
        print(group, "point out:", _inside(mine, "point_out_error_pct"),
              "setting out:", _inside(mine, "setting_out_error_pct"))  # fmt: skip


def _curves(snapshot: CatalogSnapshot, served: list[ProfileRecord]) -> list[dict[str, Any]]:
    """The batching curves the planner draws from the seed catalog with the served rows."""
    try:
        from quantplan.planner.estimate import _evidence
    except ImportError:  # a checkout from before measured curves
        return []
    from quantplan.planner.targets import Workload

    evidence = tuple(snapshot.profiles) + tuple(served)
    workload = Workload(requests_per_s=1, input_tokens=128, output_tokens=64)
    _, curves = _evidence(evidence, snapshot, workload)
    return [
        {
            "key": list(curve.key),
            "settings": curve.settings,
            "factors": {
                f"{c:g}": round(f, 3)
                for c, f in zip(curve.concurrencies, curve.factors, strict=True)
            },
        }
        for curve in curves.values()
    ]


READING = [
    "## Reading",
    "",
    "- **Settings the catalog has measured** (point out) are sized within 20 % at 38 of 42 "
    "engine-loop points and 12 of 14 served points: the issue's target holds there. The "
    "served 135M's throughput falls from 1,235 tok/s at 8 to 600 at 32 and rises to 809 at "
    "64, which interpolation does not follow.",
    "- **Settings it has not measured** (setting out: the point's whole run left out). Read "
    "with care: the 8B files now have a second run of the same model, file and GPU "
    "(bench/results/llamacpp_served_gap.md), which still pins them when one run is out, so "
    "their rows here (every 8B setting within 20 % but one point, Q4_K_M at 8: +21 %; the "
    "served 8B F16 6 of 7) say that two runs on two H200 machines agree, not that an "
    "unmeasured setting is predicted. The settings measured once are that test, and they are "
    "not within 20 %: the 1B files (2 of 21), whose single-stream level is 25-45 % low "
    "because the roofline's fixed step overhead (2 ms + 20 us a layer on a GPU) is more than "
    "a whole measured 1B F16 step, and the served 135M (1 of 7), a model so small that the "
    "server loop, not the GPU, sets its speed.",
    "- **Served and engine-loop curves are kept apart.** On one H200 and one file, "
    "llama-server over HTTP gave 27-49 % of llama-batched-bench's output at 4-64 requests "
    "(F16, Q8_0 and Q4_K_M alike; bench/results/llamacpp_served_gap.md): the server's host "
    "work per step, not the measuring client, is the limit. The planner sizes replicas from "
    "served curves and predicts the engine loop from loop curves; before, one mixed curve "
    "under-predicted the loop by up to 52 % and over-predicted serving by up to 276 %.",
    "- **The CPU curves** (llama-server, default model, 2 cores) were re-measured with the "
    "machine quiet (1-min load 1.0-1.3, the benchmark's own server and client) and are "
    "seeded (catalog/seed/profiles_llamacpp_server_cpu.yaml). Sized as measured settings "
    "(point out) they are within 20 % at every level; held out whole, at 5 of 10 levels "
    "(Q4_K_M 4 of 5, +20 % at one request to -23 % at 16; Q8_0 1 of 5, +13 % at one request "
    "rising to +76 % at 16), each predicted from the other file's curve. Since the scheme's "
    "own kernel on a device is a calibration class, a held-out Q8_0 takes its single-stream "
    "efficiency from the project's other Q8_0 runs on this CPU family (the README demo's "
    "replica, 64 tok/s at one request with every thread of the host) where it took the GGUF "
    "family's before (8 of 10 then). Before the planner saw them it over-predicted "
    "concurrency 8-16 by 84-113 %: the roofline batches the VM's one physical core "
    "(2 vCPUs) ideally up to its FLOPs, while llama-server saturated at about 50 tok/s by "
    "4 requests, and no other served CPU curve existed to bend it. The run gave the engine "
    "one thread (-t 1; the client shares the cores), which is that one physical core.",
]


def _markdown(report: dict[str, Any]) -> list[str]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.0f} %"

    points = report["held_out"]
    baseline = report.get("baseline")
    old = {
        (p["group"], p["model"], p["scheme"], p["run_id"], p["concurrency"]): p
        for p in (baseline["held_out"] if baseline else [])
    }
    lines = [
        "# The planner's llama.cpp sizing against the measured curves",
        "",
        f"Run {report['date']} at commit {report['commit']} (1-min load {report['load_1min']} on "
        "the 2-core machine; planner arithmetic only, nothing is measured here: "
        "`.venv/bin/python bench/llamacpp_server_planner.py"
        + (f" --baseline <the same JSON from {baseline['commit']}>`" if baseline else "`")
        + "). For every measured llama.cpp point, `planner.estimate.predict_profile` (the "
        "calibration the planner's time map uses) predicts the output tok/s of the closed loop "
        "at that concurrency in two ways:",
        "",
        "- **point out**: the point left out, everything else in the catalog kept. For a "
        "setting the catalog has measured, this is how the planner sizes it: pinned by the "
        "neighbouring levels, interpolated in log(concurrency), clamped past the ends.",
        "- **setting out**: the whole curve (its model, scheme, hardware, token shape and run) "
        "left out, so neither its pins nor its own batching curve help: what the planner "
        "predicts for a setting it has not measured, from the batching curves and "
        "efficiencies of the others.",
        "",
        "Target (issue 15): within 20 % of the measured curve. Curves: the "
        "llama-batched-bench points on one H200 (engine loop, no HTTP; "
        "bench/results/llamacpp_server_gpu.md; from seed version 34 on without the 7 levels "
        "that paid a start-up cost, bench/results/llamacpp_cold_start.md), the two "
        "llama-server sweeps over HTTP on an "
        "H200 (bench/results/gpu_node_steps.md, seeded here one row a level), and "
        "llama-server on this machine's 2 CPU cores (bench/results/llamacpp_server.md, "
        "measured quiet and seeded). "
        "Random weights in real shapes on the GPU: speed only.",
        "",
        "## Summary",
        "",
        "| curve | points | point out within 20 % | setting out within 20 % |"
        + (f" setting out, planner at {baseline['commit']} |" if baseline else ""),
        "|---|---:|---:|---:|" + ("---:|" if baseline else ""),
    ]
    for group in dict.fromkeys(p["group"] for p in points):
        mine = [p for p in points if p["group"] == group]
        row = (
            f"| {group} | {len(mine)} | {_inside(mine, 'point_out_error_pct')} | "
            f"{_inside(mine, 'setting_out_error_pct')} |"
        )
        if baseline:
            theirs = [
                old[k]
                for p in mine
                if (k := (p["group"], p["model"], p["scheme"], p["run_id"], p["concurrency"]))
                in old
            ]
            row += f" {_inside(theirs, 'setting_out_error_pct')} |"
        lines.append(row)
    lines += [
        "",
        "Per setting, held out whole (errors from the lowest to the highest concurrency):",
        "",
        "| curve | model | scheme | within 20 % | errors |"
        + (f" at {baseline['commit']}: within 20 % | errors |" if baseline else ""),
        "|---|---|---|---:|---|" + ("---:|---|" if baseline else ""),
    ]
    settings: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        settings[(p["group"], p["model"], p["scheme"], p["run_id"])].append(p)
    for (group, model, scheme, run_id), mine in settings.items():
        errors = [p["setting_out_error_pct"] for p in mine]
        row = (
            f"| {group} | {model} | {scheme} | {sum(abs(e) <= WITHIN for e in errors)} of "
            f"{len(errors)} | {', '.join(f'{e:+.0f}' for e in errors)} |"
        )
        if baseline:
            theirs = [
                old[(group, model, scheme, run_id, p["concurrency"])]["setting_out_error_pct"]
                for p in mine
            ]
            row += (
                f" {sum(abs(e) <= WITHIN for e in theirs)} of {len(theirs)} | "
                f"{', '.join(f'{e:+.0f}' for e in theirs)} |"
            )
        lines.append(row)
    lines += [
        "",
        "## The two served curves against the planner before it saw them",
        "",
        "Before: the seed catalog without these rows (the planner of this commit, with the "
        "llama-batched-bench rows of the same 8B F16 setting pinning it). After: these rows "
        "added, each point left out.",
        "",
        *comparison_md(report["served_before"]),
        "",
        "## Every point",
        "",
        "| curve | model | scheme | concurrency | measured tok/s | point out | error | "
        "setting out | error |" + (f" at {baseline['commit']}, setting out |" if baseline else ""),
        "|---|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if baseline else ""),
    ]
    for p in points:
        row = (
            f"| {p['group']} | {p['model']} | {p['scheme']} | {p['concurrency']} | "
            f"{p['measured_tokens_per_s']:,.1f} | {p['point_out_tokens_per_s'] or 0:,.1f} | "
            f"{pct(p['point_out_error_pct'])} | {p['setting_out_tokens_per_s'] or 0:,.1f} | "
            f"{pct(p['setting_out_error_pct'])} |"
        )
        if baseline:
            key = (p["group"], p["model"], p["scheme"], p["run_id"], p["concurrency"])
            found = old.get(key)
            row += f" {pct(found['setting_out_error_pct']) if found else '-'} |"
        lines.append(row)
    lines += ["", *READING]
    if report.get("curves"):
        lines += [
            "",
            "## The batching curves the planner holds (seed catalog)",
            "",
            "Measured over roofline speed at each concurrency, relative to concurrency 1, "
            "averaged over the settings measured as a curve (planner/batching.py; at most 1).",
            "",
            "| curve | settings | factors by concurrency |",
            "|---|---:|---|",
        ]
        for curve in report["curves"]:
            factors = ", ".join(f"{c}: {f:.2f}" for c, f in curve["factors"].items())
            lines.append(f"| {' / '.join(curve['key'])} | {curve['settings']} | {factors} |")
    return lines


if __name__ == "__main__":
    main()
