"""Write catalog/seed/quality_measured.yaml from the project's own quality measurements.

The rows come from bench/results/quantize.json (``quantplan evaluate`` of every artifact the
quantize benchmark made, on the default model), then from bench/results/int8_w8a8_cpu.json for
the schemes that benchmark did not make (INT8 W8A8): one seed row per scheme that the serving
engine evaluated, with its engine, run id (where the evaluation was recorded) and the caveat
that the base weights are dequantized from Q4_1. Rows the engine could not evaluate are left out
here and listed in the file's header.

    .venv/bin/python bench/seed_measured_quality.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "bench" / "results" / "quantize.json"
INT8_SOURCE = ROOT / "bench" / "results" / "int8_w8a8_cpu.json"
TARGET = ROOT / "catalog" / "seed" / "quality_measured.yaml"
CAVEAT = (
    "base weights dequantized from Q4_1 (already on a 4-bit grid): requantizing looks cheaper "
    "than on a real bf16 model; not a general ranking of methods"
)


def measured_rows(result: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Seed rows for every evaluated, quantized scheme; and the schemes left out, with why."""
    run_id = result["quality"]["recorded"].split()[1].rstrip(":")
    return table_rows(result["quality"]["table"], run_id, "quantize.md", result["date"])


def table_rows(
    table: dict[str, Any], run_id: str | None, report: str, date: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """One evaluation table's quantized rows as seed rows (``run_id`` None: not recorded)."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for row in table["rows"]:
        if row["error"]:
            skipped.append(f"{row['scheme']} ({row['error']})")
            continue
        if row["baseline_perplexity"] is None:
            continue  # a 16-bit baseline: nothing to compare it with
        baseline = "the bf16 base in vLLM" if row["engine"] == "vllm" else "the F16 GGUF"
        out: dict[str, Any] = {
            "model": table["model"],
            "scheme": row["scheme"],
            "eval_set": table["eval_set"],
            "perplexity": round(row["perplexity"], 4),
            "baseline_perplexity": round(row["baseline_perplexity"], 4),
            "kl_divergence": round(row["kl_divergence"], 5),
            "top1_agreement": round(row["top1_agreement"], 4),
            "bits_per_weight": row["bits_per_weight"],
            "compression_ratio": row["compression_ratio"],
            "engine": row["engine"],
            "basis": "measured",
            "source": f"quantplan evaluate, bench/results/{report} ({date[:10]}): "
            f"{table['tokens_per_model']} tokens vs {baseline}; KL: {row['kl_method'] or 'exact'}",
            "run_id": run_id,
            "notes": CAVEAT,
        }
        if run_id is None:
            del out["run_id"]
        rows.append(out)
    return rows, skipped


def main() -> None:
    result = json.loads(SOURCE.read_text(encoding="utf-8"))
    rows, skipped = measured_rows(result)
    int8 = json.loads(INT8_SOURCE.read_text(encoding="utf-8"))
    more, _ = table_rows(int8["evaluate"]["table"], None, "int8_w8a8_cpu.md", int8["date"])
    covered = {row["scheme"] for row in rows}
    rows += [row for row in more if row["scheme"] not in covered]
    header = (
        "# The project's own quality measurements of the default model, written by\n"
        "# bench/seed_measured_quality.py from bench/results/quantize.json and\n"
        "# int8_w8a8_cpu.json. Do not edit by hand.\n"
        f"# Not evaluated (no row): {', '.join(skipped) or 'none'}.\n"
    )
    body = yaml.safe_dump({"kind": "quality", "rows": rows}, sort_keys=False, width=100)
    TARGET.write_text(header + body, encoding="utf-8")
    print(f"{TARGET.relative_to(ROOT)}: {len(rows)} rows; skipped {skipped}")


if __name__ == "__main__":
    main()
