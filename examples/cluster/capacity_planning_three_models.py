"""Capacity planning for three models at once: what each costs at the same traffic.

    python examples/cluster/capacity_planning_three_models.py [--rps 5] [--out DIR]

Plans SmolLM2-135M-Instruct, Llama-3.2-1B and Llama-3.1-8B for the same workload and SLOs on
the shipped catalog, prints the chosen deployment and cost of each, and writes a
capacity-planning report (HTML + Markdown: $/month against traffic, crossovers, headroom,
spot sensitivity) per model into --out. Planning only: nothing is deployed.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from quantplan.catalog.db import open_catalog
from quantplan.catalog.snapshot import load_snapshot
from quantplan.planner.capacity import capacity_report
from quantplan.planner.decide import make_plan, prepare
from quantplan.planner.report import render_html, render_markdown
from quantplan.planner.targets import Targets

MODELS = ("SmolLM2-135M-Instruct", "Llama-3.2-1B", "Llama-3.1-8B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rps", type=float, default=5.0, help="mean requests per second")
    parser.add_argument("--ttft-p95-ms", type=float, default=1000.0)
    parser.add_argument("--out", type=Path, default=Path("capacity-reports"))
    args = parser.parse_args()
    snapshot = load_snapshot(open_catalog())
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'model':24} {'deployment':52} {'$/month':>10} {'$/M tokens':>11}")
    for model in MODELS:
        targets = Targets.model_validate(
            {
                "model": model,
                "workload": {"input_tokens": 512, "output_tokens": 256, "requests_per_s": args.rps},
                "slos": {"ttft_p95_ms": args.ttft_p95_ms},
            }
        )
        plan = make_plan(targets, snapshot)
        if not plan.feasible or plan.choice is None:
            print(f"{model:24} infeasible: {plan.summary[:80]}")
            continue
        choice = plan.choice
        monthly = plan.fleet_usd_per_month or choice.usd_per_month
        print(
            f"{model:24} {choice.label:52} {monthly:>10.0f} {choice.usd_per_million_tokens:>11.4f}"
        )
        report = capacity_report(prepare(targets, snapshot))
        today = datetime.now(UTC).date()  # price ages are judged against today
        html = render_html(report, today=today)
        (args.out / f"{model}.html").write_text(html, encoding="utf-8")
        markdown = render_markdown(report, today=today)
        (args.out / f"{model}.md").write_text(markdown, encoding="utf-8")
    print(f"capacity reports written to {args.out}/")


if __name__ == "__main__":
    main()
