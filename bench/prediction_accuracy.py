"""How close the performance model comes to published and measured profiles, held out.

Run: ``.venv/bin/python bench/prediction_accuracy.py [--label NAME]`` (seconds). Every profile of
the seed catalog (catalog/seed/profiles.yaml) is predicted from a catalog WITHOUT the profiles of
its own source (leave-one-source-out), so a source never calibrates its own predictions. Errors
are predicted / measured - 1, grouped by category, engine, scheme family, hardware and device
count; band coverage uses the band the planner states at confidence 0.9, from the residuals of
the other sources; ranking agreement counts
pairs of profiles of one source whose order (faster / slower) the model gets right.

Regenerates ``planner/residual_bands.py``: the residuals ln(measured / predicted) per engine,
basis group and category, with this commit and date, which the planner's bands come from.
Writes ``bench/results/prediction_accuracy.json`` (each run appended under its label, so the
before / after of a model change stay side by side; the per-point rows only for the latest
run, which git keeps for the earlier ones) and ``prediction_accuracy.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.seeding import seed_records
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.estimate import (
    COLD_START,
    SUPERSEDED_ENGINE,
    predict_profile,
    ttft_p95_under_load_ms,
)
from quantplan.planner.queueing import itl_under_load_s
from quantplan.planner.uncertainty import MODELED_GROUPS, Residuals, band_ratios

RESULTS = Path(__file__).parent / "results"
TARGETS = {
    "batch1_decode": ("median", 0.08),
    "throughput_at_concurrency": ("median", 0.15),
    "ttft_under_load": ("median", 0.20),
}
TIE = 0.02
"""Pairs whose measured values differ by less than this are not ranked (noise)."""
GROUP_OF_BASIS = {
    "modeled, default efficiencies": ("default", 0),
    "modeled, calibrated": ("calibrated", 1),
    "published or measured, same setting": ("same-setting", 3),
}
"""Residual group and a planner basis code of that group, per predict_profile basis."""
BAND_TABLE = Path(__file__).parent.parent / "planner" / "residual_bands.py"
CONFIDENCE = 0.9


def _snapshot() -> CatalogSnapshot:
    return CatalogSnapshot(**{kind: tuple(records) for kind, records in seed_records()})


def _release(profile: ProfileRecord) -> str:
    """What a point measured: the deployed engine release running (what plans rest on), a
    superseded release, or a start-up cost (planner/estimate.py SUPERSEDED_ENGINE and
    COLD_START)."""
    if profile.details.get(SUPERSEDED_ENGINE):
        return "superseded"
    return "cold start" if profile.details.get(COLD_START) else "deployed"


def _points(snapshot: CatalogSnapshot) -> list[dict[str, Any]]:
    """One row per (profile, category) with the held-out prediction and its error."""
    rows = []
    for profile in snapshot.profiles:
        evidence = tuple(p for p in snapshot.profiles if p.source != profile.source)
        prediction = predict_profile(profile, snapshot, evidence)
        if prediction is None:
            continue
        hardware = snapshot.hardware_by_name[profile.hardware]
        common = {
            "source": profile.source,
            "model": profile.model,
            "scheme": profile.scheme,
            "family": snapshot.scheme_by_name[profile.scheme].family,
            "engine": profile.engine,
            "hardware": profile.hardware,
            "kind": hardware.kind,
            "count": profile.hardware_count,
            "concurrency": profile.concurrency,
            "input_tokens": profile.input_tokens,
            "output_tokens": profile.output_tokens,
            "basis": prediction.basis,
            "group": GROUP_OF_BASIS[prediction.basis.split(" (")[0]][0],
            "release": _release(profile),
        }
        category = "batch1_decode" if profile.concurrency == 1 else "throughput_at_concurrency"
        rows.append(
            common
            | {
                "category": category,
                "measured": profile.output_tokens_per_s,
                "predicted": prediction.output_tokens_per_s,
            }
        )
        if profile.concurrency > 1 and profile.ttft_p95_ms is not None:
            rows.append(
                common
                | {
                    "category": "ttft_under_load",
                    "measured": profile.ttft_p95_ms,
                    "predicted": ttft_p95_under_load_ms(profile, prediction),
                }
            )
        elif profile.concurrency == 1 and profile.ttft_p50_ms is not None:
            rows.append(
                common
                | {
                    "category": "ttft_unloaded",
                    "measured": profile.ttft_p50_ms,
                    "predicted": prediction.ttft_ms,
                }
            )
    for row in rows:
        row["error"] = row["predicted"] / row["measured"] - 1
        row["residual"] = math.log(row["measured"] / row["predicted"])
    _band_coverage(rows)
    return rows


def _context_cost(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a longer context costs a one-sequence decode step, measured and held out: pairs of
    batch-1 points of one source and setting that differ only in how many tokens they
    generate (the step reads the KV cache of half of them on average). Not a headline
    category; it checks the KV read apart from the weights, which the headline mixes."""
    settings: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["category"] == "batch1_decode" and row["release"] == "deployed":
            fields = ("source", "model", "scheme", "hardware", "count", "input_tokens")
            settings[tuple(row[k] for k in fields)].append(row)
    pairs = []
    for key, found in sorted(settings.items()):
        lengths = sorted({r["output_tokens"] for r in found})
        if len(lengths) < 2:
            continue
        short = next(r for r in found if r["output_tokens"] == lengths[0])
        long = next(r for r in found if r["output_tokens"] == lengths[-1])
        measured = 1000 / long["measured"] - 1000 / short["measured"]
        predicted = 1000 / long["predicted"] - 1000 / short["predicted"]
        if measured <= 0:
            continue
        pairs.append(
            {
                "source": key[0],
                "setting": f"{key[1]} {key[2]} {key[3]} x{key[4]}",
                "lengths": f"{lengths[0]} -> {lengths[-1]}",
                "measured_ms": measured,
                "predicted_ms": predicted,
                "error": predicted / measured - 1,
            }
        )
    return _summary([p["error"] for p in pairs]) | {"rows": pairs}


def _itl_points(snapshot: CatalogSnapshot) -> list[dict[str, Any]]:
    """Mean ITL under load (not a headline category: the planner's bands do not use it),
    held out like the rest: the decode step alone and stretched by the prefills interleaved
    at the run's arrival rate, against the measured median ITL."""
    rows = []
    for profile in snapshot.profiles:
        if profile.concurrency < 2 or profile.itl_p50_ms is None:
            continue
        evidence = tuple(p for p in snapshot.profiles if p.source != profile.source)
        prediction = predict_profile(profile, snapshot, evidence)
        if prediction is None:
            continue
        rate = prediction.output_tokens_per_s / profile.output_tokens
        if profile.request_rate:
            rate = min(rate, profile.request_rate)
        step = prediction.decode_step_s * 1000
        loaded = 1000 * float(
            itl_under_load_s(prediction.decode_step_s, prediction.prefill_s, rate)
        )
        rows.append(
            {
                "source": profile.source,
                "setting": f"{profile.model} {profile.scheme} {profile.engine} "
                f"{profile.hardware_count}x {profile.hardware} c={profile.concurrency}",
                "measured": profile.itl_p50_ms,
                "step": step,
                "predicted": loaded,
                "error_step": step / profile.itl_p50_ms - 1,
                "error": loaded / profile.itl_p50_ms - 1,
            }
        )
    return rows


def residual_table(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[float]]:
    """ln(measured / predicted) filed under every group the planner may look up: (engine,
    basis group, category), both modeled groups pooled, every engine, every category. Points of
    a superseded engine release or of a start-up cost are left out: the planner's bands are for
    the deployed release, running."""
    table: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in rows:
        if row.get("release", "deployed") != "deployed":
            continue
        groups = [row["group"]] + (["modeled"] if row["group"] in MODELED_GROUPS else [])
        keys = [(engine, g, row["category"]) for engine in (row["engine"], "*") for g in groups]
        for key in [*keys, ("*", row["group"], "*")]:
            table[key].append(round(row["residual"], 4))
    return {key: sorted(values) for key, values in sorted(table.items())}


def _band_coverage(rows: list[dict[str, Any]]) -> None:
    """Each point's band at CONFIDENCE from the residuals of the OTHER sources (held out like
    the prediction), and whether the measurement falls inside it."""
    for row in rows:
        others: Residuals = residual_table([r for r in rows if r["source"] != row["source"]])
        code = GROUP_OF_BASIS[row["basis"].split(" (")[0]][1]
        ratios = band_ratios(row["engine"], code, row["category"], CONFIDENCE, others)
        row["band"] = [row["predicted"] * ratios.low, row["predicted"] * ratios.high]
        row["band_group"] = ratios.group
        row["inside_band"] = row["band"][0] <= row["measured"] <= row["band"][1]


def _summary(errors: list[float]) -> dict[str, Any]:
    absolute = sorted(abs(e) for e in errors)
    return {
        "n": len(errors),
        "median_abs": statistics.median(absolute) if absolute else None,
        "p90_abs": float(np.quantile(absolute, 0.9)) if absolute else None,
        "median_signed": statistics.median(errors) if errors else None,
    }


def _ranking(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pairs of one source and category: does the model order them as measured?"""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["source"], row["category"])].append(row)
    agree = total = 0
    for members in groups.values():
        for a, b in combinations(members, 2):
            if abs(a["measured"] / b["measured"] - 1) < TIE:
                continue
            total += 1
            agree += (a["measured"] > b["measured"]) == (a["predicted"] > b["predicted"])
    return {"pairs": total, "agreement": agree / total if total else None}


def evaluate() -> dict[str, Any]:
    """The held-out errors. The headline figures and the groups other than source and release
    cover the points of the deployed engine releases, which the planner claims to predict;
    a superseded release's points and those that measured a start-up cost (planner/estimate.py
    SUPERSEDED_ENGINE, COLD_START) are listed, and summed up under release and source, but are
    not what plans rest on."""
    snapshot = _snapshot()
    every = _points(snapshot)
    rows = [r for r in every if r["release"] == "deployed"]
    itl = _itl_points(snapshot)
    by: dict[str, dict[str, Any]] = {}
    for key in ("category", "engine", "release", "family", "hardware", "count", "source", "basis"):
        groups: dict[str, list[float]] = defaultdict(list)
        for row in every if key in ("release", "source") else rows:
            groups[str(row[key])].append(row["error"])
        by[key] = {name: _summary(errors) for name, errors in sorted(groups.items())}
    throughput = [r["error"] for r in rows if r["category"] == "throughput_at_concurrency"]
    # The band each basis and category would need to hold 90 % of these held-out points: what
    # residual-based bands (instead of the constants in estimate.BAND_WIDTH) would state.
    needed: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        needed[f"{row['basis'].split(' (')[0]} / {row['category']}"].append(abs(row["error"]))
    band_needed = {key: float(np.quantile(v, 0.9)) for key, v in sorted(needed.items())}
    return {
        "points": len(rows),
        "superseded_points": len(every) - len(rows),
        "sources": len({r["source"] for r in rows}),
        "overall": _summary([r["error"] for r in rows]),
        "by": by,
        "throughput_p90_abs": _summary(throughput)["p90_abs"],
        "band_needed_for_90pct": band_needed,
        "band_coverage": sum(r["inside_band"] for r in rows) / len(rows) if rows else None,
        "ranking": _ranking(rows),
        "context_cost": _context_cost(every),
        "rows": every,
        "itl_under_load": {
            "step_only": _summary([r["error_step"] for r in itl]),
            "with_prefill_interference": _summary([r["error"] for r in itl]),
            "rows": itl,
        },
    }


def _median(category: str) -> Callable[[dict[str, Any]], float]:
    return lambda run: float(run["by"]["category"].get(category, {}).get("median_abs", math.inf))


# The targets: name, the run's figure, the bound, whether the bound is an upper one.
TARGETS: tuple[tuple[str, Callable[[dict[str, Any]], float], float, bool], ...] = (
    ("batch-1 decode median", _median("batch1_decode"), 0.08, True),
    ("throughput median", _median("throughput_at_concurrency"), 0.15, True),
    ("throughput p90", lambda run: float(run["throughput_p90_abs"]), 0.40, True),
    ("TTFT under load median", _median("ttft_under_load"), 0.20, True),
    ("inside the band", lambda run: float(run["band_coverage"]), 0.80, False),
    ("ranking agreement", lambda run: float(run["ranking"]["agreement"]), 0.90, False),
)


def _targets_line() -> str:
    bounds = (f"{n} {'<=' if most else '>='} {b * 100:.0f} %" for n, _, b, most in TARGETS)
    return "Targets: " + ", ".join(bounds) + "."


def _against_targets(run: dict[str, Any]) -> str:
    """The latest run's headline figures to a tenth of a percent, each against its target
    (the table rounds to whole percents, which can hide a miss)."""
    parts = []
    for name, figure, bound, at_most in TARGETS:
        value = figure(run)
        met = value <= bound if at_most else value >= bound
        parts.append(f"{name} {value * 100:.1f} % ({'met' if met else 'not met'})")
    return "Latest run against the targets: " + "; ".join(parts) + "."


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def _markdown(runs: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Prediction accuracy, leave-one-source-out",
        "",
        "Each seed profile (catalog/seed/profiles.yaml) predicted from a catalog without its own "
        "source; error = predicted / measured - 1. Produced by `bench/prediction_accuracy.py`.",
        "",
        "From the run that added the superseded-release rule (vLLM before 0.6.0) on, the headline "
        "columns and the "
        "groups below (except release and source) count the points of deployed engine "
        "releases, the ones plans rest on; runs of a superseded release are predicted and "
        "listed too, and summed up under release and source. Earlier runs "
        "counted every point. From the run that added the cold-start rule on, a level that "
        "measured a start-up cost (llama-batched-bench's first level of a file, run without "
        "a warm-up) is set apart the same way; the count beside the points says how many "
        "were set apart.",
        "",
        "| run | commit | points | sources | batch-1 decode median | throughput median / p90 "
        "| TTFT under load median | inside band | ranking agreement (pairs) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run in runs.items():
        cat = run["by"]["category"]
        lines.append(
            f"| {label} | {run['commit']} | {run['points']}"
            + (f" (+{run['superseded_points']} set apart)" if run.get("superseded_points") else "")
            + f" | {run['sources']} "
            f"| {_pct(cat.get('batch1_decode', {}).get('median_abs'))} "
            f"| {_pct(cat.get('throughput_at_concurrency', {}).get('median_abs'))} / "
            f"{_pct(run['throughput_p90_abs'])} "
            f"| {_pct(cat.get('ttft_under_load', {}).get('median_abs'))} "
            f"| {_pct(run['band_coverage'])} "
            f"| {_pct(run['ranking']['agreement'])} ({run['ranking']['pairs']}) |"
        )
    lines += [
        "",
        _targets_line(),
    ]
    last_label, last = list(runs.items())[-1]
    lines += ["", _against_targets(last)]
    lines += ["", f"## Latest run ({last_label}) by group", ""]
    lines += ["### band half-width that would hold 90 % of the held-out points", ""]
    lines += ["| basis / category | half-width |", "|---|---:|"]
    for key, width in last["band_needed_for_90pct"].items():
        lines.append(f"| {key} | {_pct(width)} |")
    lines.append("")
    for key, groups in last["by"].items():
        lines += [f"### by {key}", "", "| group | n | median abs | p90 abs | median signed |"]
        lines.append("|---|---:|---:|---:|---:|")
        for name, s in groups.items():
            lines.append(
                f"| {name} | {s['n']} | {_pct(s['median_abs'])} | {_pct(s['p90_abs'])} "
                f"| {_pct(s['median_signed'])} |"
            )
        lines.append("")
    context = last.get("context_cost")
    if context:
        lines += [
            "### context cost at one sequence (not a headline category)",
            "",
            "Pairs of batch-1 points of one source and setting that differ only in how many "
            "tokens they generate: the extra milliseconds a step takes at the longer length "
            "(it reads a longer KV cache), measured and held out.",
            "",
            f"{context['n']} pairs: median abs {_pct(context['median_abs'])}, p90 abs "
            f"{_pct(context['p90_abs'])}, median signed {_pct(context['median_signed'])}.",
            "",
            "| source | setting | lengths | measured ms | predicted ms |",
            "|---|---|---|---:|---:|",
        ]
        for r in context["rows"]:
            lines.append(
                f"| {r['source']} | {r['setting']} | {r['lengths']} | {r['measured_ms']:.2f} "
                f"| {r['predicted_ms']:.2f} ({r['error'] * 100:+.0f} %) |"
            )
        lines.append("")
    itl = last.get("itl_under_load")
    if itl:
        lines += [
            "### mean ITL under load (not a headline category)",
            "",
            "Measured median ITL against the decode step alone and against the step stretched "
            "by the prefills interleaved at the run's arrival rate (step / (1 - rate x "
            "prefill)), held out like the rest.",
            "",
            "| prediction | n | median abs | p90 abs | median signed |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ("step_only", "with_prefill_interference"):
            s = itl[name]
            lines.append(
                f"| {name.replace('_', ' ')} | {s['n']} | {_pct(s['median_abs'])} "
                f"| {_pct(s['p90_abs'])} | {_pct(s['median_signed'])} |"
            )
        lines += ["", "| source | setting | measured ms | step | with interference |"]
        lines.append("|---|---|---:|---:|---:|")
        for r in itl["rows"]:
            lines.append(
                f"| {r['source']} | {r['setting']} | {r['measured']:.4g} "
                f"| {r['step']:.4g} ({r['error_step'] * 100:+.0f} %) "
                f"| {r['predicted']:.4g} ({r['error'] * 100:+.0f} %) |"
            )
        lines.append("")
    lines += [
        "### every point",
        "",
        "| source | setting | category | measured | predicted | error | basis |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in last["rows"]:
        setting = (
            f"{r['model']} {r['scheme']} {r['engine']} {r['count']}x {r['hardware']} "
            f"c={r['concurrency']}"
        )
        lines.append(
            f"| {r['source']} | {setting} | {r['category']} | {r['measured']:.4g} "
            f"| {r['predicted']:.4g} | {r['error'] * 100:+.0f} % | {r['basis']} |"
        )
    return "\n".join(lines) + "\n"


def _commit() -> str:
    """HEAD, plus the uncommitted model and catalog files the run saw (so a table made from a
    working tree does not claim to be that commit's)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    status = subprocess.run(
        [
            "git",
            "status",
            "--porcelain",
            "--",
            "planner",
            "catalog",
            "bench/prediction_accuracy.py",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    dirty = sorted(
        line[3:]
        for line in status
        if line[3:].endswith((".py", ".yaml")) and "residual_bands" not in line
    )
    return f"{head} + uncommitted {', '.join(dirty)}" if dirty else head


def write_band_table(rows: list[dict[str, Any]], commit: str) -> None:
    """The planner's residual table (a Python module: no file I/O at plan time)."""
    table = residual_table(rows)
    used = [r for r in rows if r.get("release", "deployed") == "deployed"]  # what it holds
    # The commit alone: the uncommitted files' names would overrun a line of the module.
    base, _, changed = commit.partition(" + ")
    commit = f"{base} + uncommitted changes" if changed else base
    lines = [
        '"""Held-out residuals ln(measured / predicted) of the performance model.',
        "",
        "GENERATED by bench/prediction_accuracy.py (leave-one-source-out over the seed profiles);",
        "do not edit: re-run the bench. Keys: (engine or *, basis group, category or *); basis",
        "groups: default and calibrated efficiencies (pooled: modeled), same-setting profiles.",
        'Read through planner/uncertainty.py."""',
        "",
        "SOURCE = {",
        '    "bench": "bench/prediction_accuracy.py",',
        f'    "commit": "{commit}",',
        f'    "date": "{datetime.date.today().isoformat()}",',
        f'    "points": {len(used)},',
        f'    "sources": {len({r["source"] for r in used})},',
        "}",
        "RESIDUALS: dict[tuple[str, str, str], tuple[float, ...]] = {",
    ]
    for key, values in table.items():
        lines.append(f"    {key!r}: ({', '.join(repr(v) for v in values)},),")
    lines.append("}")
    BAND_TABLE.write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(BAND_TABLE)], check=False)


def _without_rows(run: dict[str, Any]) -> dict[str, Any]:
    """An earlier run without its per-point rows: its figures stay beside the latest's, its
    points are in the results file of its own commit."""
    kept = {key: value for key, value in run.items() if key != "rows"}
    for key in ("itl_under_load", "context_cost"):
        if isinstance(kept.get(key), dict):
            kept[key] = {k: v for k, v in kept[key].items() if k != "rows"}
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current", help="name of this run in the results")
    args = parser.parse_args()
    run = evaluate()
    run["commit"] = _commit()
    write_band_table(run["rows"], run["commit"])
    path = RESULTS / "prediction_accuracy.json"
    runs: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    runs = {label: _without_rows(earlier) for label, earlier in runs.items() if label != args.label}
    runs[args.label] = run
    path.write_text(json.dumps(runs, indent=1, default=float) + "\n")
    (RESULTS / "prediction_accuracy.md").write_text(_markdown(runs))
    print(_markdown({args.label: run}).split("## Latest")[0])


if __name__ == "__main__":
    main()
