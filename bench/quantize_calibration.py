"""Calibration efficiency: GPTQ W4A16 quality at 16, 32, 64 and 128 calibration samples.

Each sample is 256 tokens of the calibration side of the pydoc topics; quality is measured with
vLLM on the held-out side (the same windows for every row), so the rows differ only in how much
calibration data GPTQ saw.

    .venv/bin/python bench/quantize_calibration.py [--samples 16,32,64,128]

Writes bench/results/quantize-calibration.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
LENGTH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="16,32,64,128")
    parser.add_argument("--method", default="gptq", choices=("gptq", "awq"))
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument(
        "--under", default="no lock", help="How the run was kept apart from other heavy work"
    )
    arguments = parser.parse_args()
    started = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]

    from quantplan.agent.artifacts import ArtifactStore
    from quantplan.agent.evaluate.api import evaluate
    from quantplan.agent.evaluate.engines import EvalSettings
    from quantplan.agent.quantize import quantize

    store = ArtifactStore()
    counts = [int(value) for value in arguments.samples.split(",")]
    artifacts = []
    for count in counts:
        options = {"calibration": {"num_samples": count, "sequence_length": LENGTH}}
        artifacts.append(quantize("default", arguments.method, options, store=store))
        print(f"{count} samples: {artifacts[-1].quantize_seconds:.0f} s", flush=True)
    load_after_quantize = [round(x, 2) for x in os.getloadavg()]
    table = evaluate(
        artifacts,
        settings=EvalSettings(num_windows=arguments.windows, window_length=256),
        store=store,
    )
    quantized_rows = [row for row in table.rows if row.artifact_id is not None]
    rows: list[dict[str, Any]] = []
    for count, manifest, row in zip(counts, artifacts, quantized_rows, strict=True):
        rows.append(
            {
                "samples": count,
                "tokens": count * LENGTH,
                "quantize_seconds": manifest.quantize_seconds,
                # An artifact already in the store is reused; its time is from when it was made.
                "reused": manifest.created_at < started,
                "perplexity": row.perplexity,
                "perplexity_delta_pct": row.perplexity_delta_pct,
                "kl_divergence": row.kl_divergence,
                "top1_agreement": row.top1_agreement,
            }
        )
    result = {
        "date": started.isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": {
            "start": load_at_start,
            "after_quantize": load_after_quantize,
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "lock": arguments.under,
        "method": arguments.method,
        "eval_set": table.eval_set,
        "notes": table.notes,
        "baseline_perplexity": table.rows[0].perplexity,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"quantize-calibration-{arguments.method}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# Calibration efficiency: {arguments.method.upper()} W4A16 g64 on SmolLM2-135M"
        + ("; base weights dequantized from Q4_1" if any("Q4_1" in n for n in table.notes) else ""),
        "",
        f"Date: {result['date']}. Machine: {result['machine']}, shared; run under "
        f"{result['lock']}. Load average (1, 5, 15 min) at start {load_at_start}, after "
        f"quantizing {load_after_quantize}, at the end {result['load_average']['end']}.",
        "",
        f"Evaluated with vLLM CPU on {table.eval_set} ({table.tokens_per_model} tokens); bf16 "
        f"baseline perplexity {result['baseline_perplexity']:.3f} in vLLM.",
        "",
    ]
    lines += [f"> {note}" for note in table.notes]
    lines += [
        "",
        "| samples x 256 tok | quantize s | perplexity | Δ ppl % | KL (top-20) | top-1 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['samples']} | {row['quantize_seconds']:.0f}"
            f"{' (reused)' if row['reused'] else ''} | "
            f"{row['perplexity']:.3f} | {row['perplexity_delta_pct']:+.2f} | "
            f"{row['kl_divergence']:.4f} | {row['top1_agreement']:.3f} |"
        )
    lines += [
        "",
        "Quantize s is the step's own time around the library work; '(reused)' marks an "
        "artifact already in the store with these exact settings, timed when it was made. "
        "KL is estimated from vLLM's top-20 prompt logprobs plus a tail bucket.",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
