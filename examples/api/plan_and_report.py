"""Plan a deployment and write its capacity report from Python.

.venv/bin/python examples/api/plan_and_report.py [CATALOG_URL]
"""

import sys
from pathlib import Path

import quantplan

catalog = quantplan.catalog.open(sys.argv[1] if len(sys.argv) > 1 else None)
targets = {
    "model": "Llama-3.1-8B",
    "workload": {"requests_per_s": 5, "input_tokens": 512, "output_tokens": 256},
    "slos": {"ttft_p95_ms": 800},
    "quality": {"max_perplexity_increase_pct": 2},
}
try:
    plan = quantplan.plan(targets, catalog=catalog)
except quantplan.QuantplanError as error:
    sys.exit(f"error: {error}")
print(plan.summary)
for rejection in plan.rejected:
    print(f"  {rejection.family} lost ({rejection.stage}): {rejection.reason}")
report = quantplan.report(plan, catalog=catalog)
Path("report.md").write_text(report.markdown)
print("capacity report written to report.md")
