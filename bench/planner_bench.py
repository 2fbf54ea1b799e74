"""Planner benchmarks: latency on the shipped catalog, scale, the MILP, and optimality.

Run: ``.venv/bin/python bench/planner_bench.py`` (about a minute on 2 cores). Writes
``bench/results/planner.json`` and ``bench/results/planner.md``. Wall-clock and CPU times are
both recorded: on a shared machine the CPU time is the fairer number.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from quantplan.catalog.seeding import seed_records
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import fleet_types, make_plan, prepare
from quantplan.planner.fleet import FleetType, prune_dominated, solve_mixed_fleet
from quantplan.planner.optimize import cheapest
from quantplan.planner.oracle import brute_force_cost, brute_force_fleet
from quantplan.planner.synthetic import synthetic_snapshot
from quantplan.planner.targets import (
    Budget,
    Constraints,
    QualityTarget,
    Slos,
    Targets,
    Workload,
)

RESULTS = Path(__file__).parent / "results"


def _timed(function, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "median_wall_ms": statistics.median(walls) * 1000,
        "median_cpu_ms": statistics.median(cpus) * 1000,
        "min_wall_ms": min(walls) * 1000,
        "repeats": repeats,
    }


def bench_shipped() -> dict[str, Any]:
    snapshot = CatalogSnapshot(**{kind: tuple(rows) for kind, rows in seed_records()})
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=10, input_tokens=512, output_tokens=256),
        slos=Slos(ttft_p95_ms=800, itl_p95_ms=60),
        quality=QualityTarget(max_perplexity_increase_pct=3),
    )
    make_plan(targets, snapshot)  # warm imports and caches of numpy/scipy
    # The machine is shared: time three batches a little apart and report the quietest one
    # (all three are recorded), as timeit does with repeats.
    batches = []
    for _ in range(3):
        batches.append(_timed(lambda: make_plan(targets, snapshot), 31))
        time.sleep(2)
    result = dict(min(batches, key=lambda b: b["median_wall_ms"]))
    result["batch_median_wall_ms"] = [round(b["median_wall_ms"], 2) for b in batches]
    result["candidates"] = make_plan(targets, snapshot).candidates_evaluated
    result["target_ms"] = 50
    return result


def bench_scale() -> dict[str, Any]:
    build = time.perf_counter()
    snapshot = synthetic_snapshot(
        7, instances=1000, schemes=40, models=30, hardware=40, quality_rows=600, profiles=60
    )
    built_s = time.perf_counter() - build
    targets = Targets(
        model=snapshot.models[0].name,
        workload=Workload(requests_per_s=20, input_tokens=512, output_tokens=256),
        slos=Slos(ttft_p95_ms=2000, itl_p95_ms=100),
        quality=QualityTarget(max_perplexity_increase_pct=5),
        constraints=Constraints(spot_allowed=True),
    )
    make_plan(targets, snapshot)
    batches = [_timed(lambda: make_plan(targets, snapshot), 5) for _ in range(2)]
    timing = dict(min(batches, key=lambda b: b["median_wall_ms"]))
    timing["batch_median_wall_ms"] = [round(b["median_wall_ms"], 1) for b in batches]
    tracemalloc.start()
    plan = make_plan(targets, snapshot)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "instances": len(snapshot.instances),
        "schemes": len(snapshot.schemes),
        "models": len(snapshot.models),
        "candidates": plan.candidates_evaluated,
        "catalog_build_s": built_s,
        **timing,
        "peak_traced_mb": peak / 1e6,
        "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "feasible": plan.feasible,
        "target_s": 1.0,
        "target_peak_mb": 1000,
    }


def bench_milp() -> dict[str, Any]:
    snapshot = synthetic_snapshot(11, instances=1000, schemes=40, models=5, hardware=40)
    targets = Targets(
        model=snapshot.models[0].name,
        workload=Workload(requests_per_s=200, input_tokens=512, output_tokens=256),
        slos=Slos(ttft_p95_ms=3000),
        constraints=Constraints(spot_allowed=True, max_replicas=200, max_spot_fraction=0.6),
    )
    context = prepare(targets, snapshot)
    types = fleet_types(context.evaluation)
    rng = np.random.default_rng(0)
    chosen = [types[k] for k in rng.choice(len(types), size=min(200, len(types)), replace=False)]
    import scipy.optimize  # noqa: F401  (imported lazily by the planner; not solve time)

    runs = []
    for max_types in (3, 200):
        wall = time.perf_counter()
        solution = solve_mixed_fleet(
            chosen, targets.workload.peak_requests_per_s, max_replicas=200,
            max_types=max_types, max_spot_fraction=0.6,
        )  # fmt: skip
        runs.append(
            {
                "max_types": max_types,
                "types": len(chosen),
                "solve_s": time.perf_counter() - wall,
                "usd_per_hour": solution.usd_per_hour if solution else None,
                "replicas": solution.replicas if solution else None,
                "types_used": len(solution.counts) if solution else None,
            }
        )
    return {"runs": runs, "pruned_types": len(prune_dominated(chosen)), "target_s": 2.0}


def _random_targets(rng: np.random.Generator, snapshot: CatalogSnapshot) -> Targets:
    def maybe(p: float, value: object) -> object:
        return value if rng.random() < p else None

    return Targets(
        model=snapshot.models[int(rng.integers(len(snapshot.models)))].name,
        workload=Workload(
            requests_per_s=float(rng.lognormal(0, 1.5)),
            input_tokens=int(rng.choice([128, 512, 2048])),
            output_tokens=int(rng.choice([64, 256, 512])),
            peak_to_mean=float(rng.uniform(1, 3)),
        ),
        slos=Slos(
            ttft_p95_ms=maybe(0.7, float(rng.choice([200, 1000, 5000]))),  # type: ignore[arg-type]
            itl_p95_ms=maybe(0.6, float(rng.choice([20, 50, 200]))),  # type: ignore[arg-type]
            min_output_tokens_per_s=maybe(0.2, float(rng.uniform(10, 5000))),  # type: ignore[arg-type]
        ),
        quality=QualityTarget(
            max_perplexity_increase_pct=maybe(0.5, float(rng.choice([0.5, 2, 5, 20]))),  # type: ignore[arg-type]
            max_kl_divergence=maybe(0.2, float(rng.choice([0.01, 0.05]))),  # type: ignore[arg-type]
        ),
        budget=Budget(
            max_usd_per_month=maybe(0.5, float(rng.lognormal(8, 1.5))),  # type: ignore[arg-type]
            max_usd_per_million_tokens=maybe(0.2, float(rng.lognormal(0, 1.5))),  # type: ignore[arg-type]
        ),
        constraints=Constraints(
            spot_allowed=bool(rng.random() < 0.5),
            device=str(rng.choice(["any", "any", "gpu", "cpu"])),  # type: ignore[arg-type]
            max_replicas=int(rng.choice([1, 4, 16, 64])),
            clouds=tuple(
                rng.choice(["aws", "gcp", "azure"], size=int(rng.integers(0, 3)), replace=False)
            ),
        ),
    )


def bench_optimality(scenarios: int = 600, fleets: int = 300) -> dict[str, Any]:
    agree = feasible = 0
    mismatches = []
    for seed in range(scenarios):
        rng = np.random.default_rng(10_000 + seed)
        snapshot = synthetic_snapshot(seed, instances=20, schemes=10, models=3)
        targets = _random_targets(rng, snapshot)
        expected = brute_force_cost(targets, snapshot)
        context = prepare(targets, snapshot)
        best = cheapest(context.evaluation)
        got = float(context.evaluation.usd_per_month[best]) if best is not None else None
        same = (expected is None and got is None) or (
            expected is not None and got is not None and abs(got - expected) <= 1e-9 * expected
        )
        agree += same
        feasible += expected is not None
        if not same:
            mismatches.append({"seed": seed, "planner": got, "brute_force": expected})
    fleet_agree = fleet_feasible = with_engines = 0
    for seed in range(fleets):
        rng = np.random.default_rng(50_000 + seed)
        types = [
            FleetType(key=(k, 0, int(spot)), usd_per_hour=float(rng.uniform(0.2, 10)),
                      requests_per_s=float(rng.uniform(0.1, 5)), spot=bool(spot),
                      engine=str(rng.choice(["vllm", "llama.cpp"])))
            for k, spot in enumerate(rng.random(int(rng.integers(1, 6))) < 0.4)
        ]  # fmt: skip
        settings: dict[str, Any] = {
            "max_replicas": int(rng.integers(1, 6)),
            "max_types": int(rng.integers(1, 4)),
            "max_spot_fraction": float(rng.choice([0.0, 0.5, 1.0])),
            "max_usd_per_hour": float(rng.uniform(1, 40)) if rng.random() < 0.3 else None,
            # A third of the fleets must run both engines (constraints.required_engines).
            "required_engines": ("vllm", "llama.cpp") if rng.random() < 1 / 3 else (),
        }
        with_engines += bool(settings["required_engines"])
        demand = float(rng.uniform(0.5, 12))
        expected_fleet = brute_force_fleet(types, demand, **settings)
        solved = solve_mixed_fleet(types, demand, **settings)
        got_fleet = solved.usd_per_hour if solved else None
        fleet_agree += (expected_fleet is None and got_fleet is None) or (
            expected_fleet is not None
            and got_fleet is not None
            and abs(got_fleet - expected_fleet) <= 1e-9 * expected_fleet
        )
        fleet_feasible += expected_fleet is not None
    return {
        "single_type": {
            "scenarios": scenarios, "feasible": feasible, "infeasible": scenarios - feasible,
            "agree": agree, "agreement": agree / scenarios, "mismatches": mismatches[:10],
        },
        "mixed_fleet": {
            "scenarios": fleets, "feasible": fleet_feasible, "agree": fleet_agree,
            "agreement": fleet_agree / fleets, "with_required_engines": with_engines,
        },
    }  # fmt: skip


def _markdown(results: dict[str, Any]) -> str:
    s, sc, m, o = results["shipped"], results["scale"], results["milp"], results["optimality"]
    milp_rows = "\n".join(
        f"| {r['types']} | {r['max_types']} | {r['solve_s']:.3f} | {r['usd_per_hour']:.2f} | "
        f"{r['replicas']} | {r['types_used']} |"
        for r in m["runs"]
    )
    st, mf = o["single_type"], o["mixed_fleet"]
    rows = [
        (
            f"single plan, shipped catalog ({s['candidates']} candidates)",
            f"median {s['median_wall_ms']:.1f} ms wall, {s['median_cpu_ms']:.1f} ms CPU "
            f"(min {s['min_wall_ms']:.1f} ms; batch medians {s['batch_median_wall_ms']})",
            "< 50 ms",
        ),
        (
            f"one plan, synthetic {sc['instances']} instances x {sc['schemes']} schemes x "
            f"{sc['models']} models ({sc['candidates']} candidates)",
            f"median {sc['median_wall_ms'] / 1000:.3f} s wall, "
            f"{sc['median_cpu_ms'] / 1000:.3f} s CPU (batch medians "
            f"{sc['batch_median_wall_ms']} ms)",
            "< 1 s",
        ),
        (
            "peak memory of that plan",
            f"{sc['peak_traced_mb']:.0f} MB traced (process max RSS "
            f"{sc['process_max_rss_mb']:.0f} MB)",
            "< 1 GB",
        ),
        (
            "mixed-fleet MILP, 200 types",
            f"{max(r['solve_s'] for r in m['runs']):.3f} s (slowest run)",
            "< 2 s",
        ),
        (
            "optimality, single type: planner = brute force",
            f"{st['agree']}/{st['scenarios']} ({st['feasible']} feasible, "
            f"{st['infeasible']} infeasible)",
            "100 %",
        ),
        (
            "optimality, mixed fleet: MILP = enumeration",
            f"{mf['agree']}/{mf['scenarios']} ({mf['feasible']} feasible, "
            f"{mf['with_required_engines']} requiring both engines)",
            "100 %",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return f"""# Planner benchmarks

Machine: {results["machine"]}. Load average at start: {results["load_average"]}.
Wall-clock times include contention from other work on the machine; CPU times do not.

| benchmark | result | target |
|---|---|---|
{table}

## MILP runs (HiGHS via scipy.optimize.milp, mip_rel_gap = 0)

| types | max distinct types | solve s | $/hour | replicas | types used |
|---|---|---|---|---|---|
{milp_rows}

Dominance pruning would keep {m["pruned_types"]} of the 200 types (not applied in these timings).

The brute force walks every option x instance x pricing x concurrency x load x replica count
with scalar arithmetic (`planner/oracle.py`), sharing only the per-candidate time map; the
mixed-fleet check enumerates every replica vector.
"""


def main() -> None:
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "shipped": bench_shipped(),
        "scale": bench_scale(),
        "milp": bench_milp(),
        "optimality": bench_optimality(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "planner.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "planner.md").write_text(_markdown(results))
    sys.stdout.write(_markdown(results))


if __name__ == "__main__":
    main()
