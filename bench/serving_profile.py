"""The whole serving matrix on this machine through ``quantplan profile``, as a user runs it.

BF16, GPTQ W4A16 and AWQ W4A16 on vLLM CPU; F16, Q8_0 and Q4_K_M GGUF on llama.cpp. Each cell is
quantized (or reused from the artifact store), served, swept (closed loop 1, 2, 4, ... until
throughput stops growing) and evaluated; outcomes go to the catalog. Writes
bench/results/serving_profile.json and .md.

Usage: .venv/bin/python bench/serving_profile.py [extra quantplan profile options]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(summary: dict[str, Any], wall_s: float, load: tuple[float, float, float]) -> str:
    lines = [
        "# Serving matrix on this machine (`quantplan profile`)",
        "",
        f"Host: {summary['hardware']}, measured copy bandwidth "
        f"{summary['memory_bandwidth_gbps']:.1f} GB/s. Price: ${summary['price_per_hour']:g}/h "
        f"({summary['price_source']}). Workload: prompts of about "
        f"{summary['workload']['input_tokens']} tokens from the evaluation text, "
        f"{summary['workload']['output_tokens']} output tokens, closed-loop sweep up to "
        f"concurrency {summary['max_concurrency']}. Wall time {wall_s / 60:.1f} min; load average "
        f"before the run {load[0]:.1f} (the machine is shared: other work ran beside it).",
        "",
        "| scheme | engine | best c | out tok/s | total tok/s | TTFT p50 / p95 ms | "
        "quality Δ ppl % | $/M out | $/M blended | latency cut vs bf16 | bandwidth use | "
        "roofline | status |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in summary["rows"]:
        status = "ok" if row["status"] == "succeeded" else f"failed ({row['error_kind']})"
        lines.append(
            f"| {row['scheme']} | {row['engine']} | {_num(row['best_concurrency'], 'd')} | "
            f"{_num(row['output_tokens_per_s'], '.1f')} | {_num(row['total_tokens_per_s'], '.1f')} "
            f"| {_num(row['ttft_p50_ms'], '.0f')} / {_num(row['ttft_p95_ms'], '.0f')} | "
            f"{_num(row['quality_delta_pct'], '+.2f')} | "
            f"{_num(row['usd_per_million_output'], '.3f')} | "
            f"{_num(row['usd_per_million_blended'], '.3f')} | "
            f"{_num(row['latency_reduction_pct'], '+.0f')} % | "
            f"{_num(row['bandwidth_utilization'], '.1%')} | "
            f"{_num(row['fraction_of_roofline'], '.1%')} | {status} |"
        )
    failed = [row for row in summary["rows"] if row["status"] == "failed"]
    if failed:
        lines += ["", "Failed cells (recorded in the catalog as failed runs, no numbers):", ""]
        lines += [f"- {row['scheme']}: {row['error']}" for row in failed]
    lines += [
        "",
        "Quality Δ: perplexity change on the held-out text, scored by the serving engine (vLLM "
        "rows vs the bf16 base in vLLM, GGUF rows vs the F16 GGUF in llama.cpp). The base weights "
        f"of this model are dequantized from {summary.get('dequantized_from') or 'a 4-bit GGUF'}: "
        "they already sit on a 4-bit grid, so requantizing looks nearly free here; this is not a "
        "ranking of methods. Latency cut vs bf16: how much lower the single-stream "
        "end-to-end latency (concurrency 1) is than bf16 on vLLM on this machine "
        "(negative: slower). "
        "Bandwidth use / roofline: bytes read per generated token (weights / concurrency + KV) x "
        "tokens/s over the measured copy bandwidth.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    load = os.getloadavg()
    started = time.perf_counter()
    command = [sys.executable, "-c", "from quantplan.cli import main; main()", "profile"]
    # Progress goes to stderr (shown as it happens); the JSON summary comes on stdout.
    done = subprocess.run([*command, "--json", *sys.argv[1:]], stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.returncode)
    summary = json.loads(done.stdout)
    summary["wall_s"] = wall
    summary["load_average_before"] = load
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving_profile.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "serving_profile.md").write_text(markdown(summary, wall, load))
    print(markdown(summary, wall, load))


if __name__ == "__main__":
    main()
