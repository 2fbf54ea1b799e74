"""Quantization through quantplan vs the libraries called directly, and a quality table.

For GPTQ and AWQ (W4A16, group 64, 64 x 256-token calibration samples) and for all GGUF types
(F16 conversion + 7 quantizations), the same work is run twice on the default model: once as
``quantplan quantize`` (CLI, toolchain subprocess, artifact store, manifest) and once as a
plain script that calls llm-compressor / llama.cpp directly in the same toolchain interpreter.
Wall time, CPU time (user + sys of the process and every child it waited for) and peak RSS (the
largest single process of the tree), all from ``wait4``, are compared; CPU time does not grow when
other work shares the machine, wall time does. Then every artifact (and one W8A16 per-channel GPTQ
artifact) is evaluated on held-out text with the engine that serves it and the table is written.

    .venv/bin/python bench/quantize_bench.py [--only gguf,gptq,awq] [--skip-quality]

Writes bench/results/quantize.json and bench/results/quantize.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
QUANTPLAN = [sys.executable, "-m", "quantplan"]
SAMPLES, LENGTH = 64, 256


def measure(command: list[str]) -> dict[str, Any]:
    """Run ``command``; wall seconds, CPU seconds and peak RSS (MB) of its process tree."""
    # Files, not pipes: a chatty child (llama.cpp logs every tensor) would fill a pipe and
    # block while we wait for it.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{stderr[-3000:]}")
    return {
        "seconds": round(seconds, 1),
        # wait4's rusage covers the child and all descendants it reaped (the toolchain
        # subprocess, the converter), so this is the CPU time of the whole tree.
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "stdout": stdout,
    }


def quantplan_command(method: str, store: Path) -> list[str]:
    # Layer-error measurement is extra work the direct scripts do not do: off for timing.
    command = [
        *QUANTPLAN,
        *("quantize", "--method", method, "--store", str(store), "--json", "--no-layer-error"),
    ]
    if method == "gguf":
        return [*command, "--scheme", "all"]
    return [*command, "--samples", str(SAMPLES), "--sequence-length", str(LENGTH)]


def direct_command(method: str, model_dir: Path, out: Path) -> list[str]:
    from quantplan.agent.toolchains import ensure_toolchain

    if method == "gguf":
        python = ensure_toolchain("llama-cpp").python
        return [
            str(python),
            str(HERE / "quantize_direct" / "llama_cpp_direct.py"),
            str(model_dir),
            str(out),
        ]
    python = ensure_toolchain("llmcompressor").python
    return [
        str(python),
        str(HERE / "quantize_direct" / "llmcompressor_direct.py"),
        method,
        str(model_dir),
        str(out),
        str(SAMPLES),
        str(LENGTH),
    ]


def adopt(store_dir: Path) -> list[str]:
    """Move the bench's artifacts into the default store (same ids) for the quality table."""
    from quantplan.agent.artifacts import ArtifactStore

    default = ArtifactStore()
    adopted = []
    for entry in store_dir.iterdir():
        if (entry / "manifest.json").is_file():
            target = Path(default.root) / entry.name
            if not target.exists():
                shutil.move(str(entry), target)
            adopted.append(entry.name)
    return adopted


def run_speed(
    methods: list[str], source_dir: Path, *, direct_first: bool = False
) -> list[dict[str, Any]]:
    rows = []
    for method in methods:
        with tempfile.TemporaryDirectory(prefix="qp-bench-") as scratch:
            store, direct_out = Path(scratch) / "store", Path(scratch) / "direct"
            direct_out.mkdir()
            if direct_first:
                theirs = measure(direct_command(method, source_dir, direct_out))
                ours = measure(quantplan_command(method, store))
            else:
                ours = measure(quantplan_command(method, store))
                theirs = measure(direct_command(method, source_dir, direct_out))
            manifests = json.loads(ours.pop("stdout"))
            theirs.pop("stdout")
            rows.append(
                {
                    "method": method,
                    "quantplan": ours,
                    "direct": theirs,
                    "overhead_pct": round((ours["seconds"] / theirs["seconds"] - 1) * 100, 1),
                    "cpu_overhead_pct": round(
                        (ours["cpu_seconds"] / theirs["cpu_seconds"] - 1) * 100, 1
                    ),
                    "artifacts": [
                        {
                            "scheme": m["scheme"],
                            "bits_per_weight": m["bits_per_weight"],
                            "bytes": m["total_bytes"],
                            "quantize_seconds": m["quantize_seconds"],
                        }
                        for m in manifests
                    ],
                }
            )
            if method != "gguf":
                adopt(store)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def run_quality(windows: int, length: int, awq_calibration: dict[str, int]) -> dict[str, Any]:
    from quantplan.agent.artifacts import ArtifactStore
    from quantplan.agent.evaluate.api import evaluate
    from quantplan.agent.evaluate.engines import EvalSettings
    from quantplan.agent.quantize import quantize
    from quantplan.agent.quantize.gguf import GGUF_TYPES
    from quantplan.agent.toolchains.steps import without_stderr_tail

    store = ArtifactStore()
    calibration = {"num_samples": SAMPLES, "sequence_length": LENGTH}
    artifacts = [
        quantize("default", "gptq", {"calibration": calibration}, store=store),
        quantize("default", "awq", {"calibration": awq_calibration}, store=store),
        # Per-channel 8-bit: the scheme for layers no group size divides.
        quantize("default", "gptq", {"scheme": "W8A16", "calibration": calibration}, store=store),
        *(quantize("default", "gguf", {"type": kind}, store=store) for kind in GGUF_TYPES),
    ]
    started = datetime.now(UTC)
    table = evaluate(
        artifacts, settings=EvalSettings(num_windows=windows, window_length=length), store=store
    )
    recorded = record(table, started, artifacts)
    # Results are committed: keep the reasons an engine gave, not tracebacks with local paths.
    rows = [r.model_copy(update={"error": without_stderr_tail(r.error)}) if r.error else r
            for r in table.rows]  # fmt: skip
    return {
        "table": table.model_copy(update={"rows": rows}).model_dump(mode="json"),
        # Samples x tokens each llm-compressor row was calibrated on (GGUF types need none).
        "calibration": {
            m.artifact_id: f"{m.calibration['num_samples']} x {m.calibration['sequence_length']}"
            for m in artifacts
            if m.calibration
        },
        "started_at": started.isoformat(),
        "recorded": recorded,
    }


def record(table: Any, started: datetime, artifacts: list[Any]) -> str:
    from quantplan.agent.evaluate.report import quality_report
    from quantplan.agent.serve.host import detect_host
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.reports import record_report
    from quantplan.catalog.snapshot import load_snapshot

    engine = open_catalog()
    versions: dict[str, str] = {}
    for manifest in artifacts:
        versions.update(manifest.tool_versions)
    report, skipped = quality_report(
        table,
        started_at=started,
        hardware=detect_host().describe(),
        tool_versions=versions,
        known_schemes={s.name for s in load_snapshot(engine).schemes},
    )
    outcome = record_report(engine, report)
    return f"{outcome} {report.run.run_id}: {len(report.quality)} rows; skipped {skipped}"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Quantization: quantplan vs the libraries called directly",
        "",
        f"Date: {result['date']}. Machine: {result['machine']}. Load average at start: "
        f"{result['load_average']} (the machine is shared; both paths ran back to back, under "
        f"{result.get('lock', 'no lock')}).",
        f"Model: SmolLM2-135M-Instruct (bf16 checkpoint dequantized from the Q4_1 GGUF). "
        f"GPTQ/AWQ: W4A16 group 64, {SAMPLES} x {LENGTH}-token calibration samples"
        + (
            f" (AWQ in the quality table: {result['awq_calibration']['num_samples']} x "
            f"{result['awq_calibration']['sequence_length']})."
            if result.get("awq_calibration", {}).get("num_samples", SAMPLES) != SAMPLES
            else "."
        ),
        "",
        "| method | quantplan s | of which in the library call | outside it | direct s "
        "| wall-time ratio | quantplan CPU s | direct CPU s | CPU-time ratio "
        "| quantplan peak MB | direct peak MB | load 1m (quantplan; direct) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result.get("speed", []):
        ours, theirs = row["quantplan"], row["direct"]
        inside = sum(artifact["quantize_seconds"] for artifact in row["artifacts"])
        outside = ours["seconds"] - inside
        load = f"{ours.get('load_average_1m')}; {theirs.get('load_average_1m')}"
        cpu = (
            f"{ours['cpu_seconds']} | {theirs['cpu_seconds']} | {row['cpu_overhead_pct']:+.1f}%"
            if "cpu_seconds" in ours
            else "- | - | -"
        )
        lines.append(
            f"| {row['method']} | {ours['seconds']} | {inside:.1f} | {outside:.1f} "
            f"({outside / ours['seconds'] * 100:.1f}%) | {theirs['seconds']} | "
            f"{row['overhead_pct']:+.1f}% | {cpu} | {ours['peak_rss_mb']} | "
            f"{theirs['peak_rss_mb']} | {load} |"
        )
    lines += [
        "",
        "'In the library call' is the time the step itself measured around the library work "
        "(llm-compressor: tokenize + load + oneshot + save; llama.cpp: convert / quantize); "
        "'outside it' is what quantplan adds (CLI start, checks, subprocess, hashing, "
        "manifest, bits-per-weight measurement). Ratios are quantplan / direct - 1 (target: "
        "under +5 %). Wall time moves with other work on this shared 2-core machine (see the "
        "load column); CPU time (user + sys of the whole process tree) moves much less, but not "
        "always: see the notes. Peak MB is the "
        "largest single process of the tree.",
    ]
    # Observations added after the run (what else was running, why a row is not comparable).
    for note in result.get("notes", []):
        lines += ["", f"Note: {note}"]
    quality = result.get("quality")
    if quality:
        table = quality["table"]
        calibrations: dict[str, str] = quality.get("calibration", {})
        errors: list[str] = []
        lines += [
            "",
            f"## Quality on {table['eval_set']} ({table['tokens_per_model']} tokens per model)"
            + (
                "; base weights dequantized from Q4_1"
                if any("Q4_1" in note for note in table["notes"])
                else ""
            ),
            "",
        ]
        lines += [f"> {note}" for note in table["notes"]]
        lines += [
            "",
            "| scheme | engine | calibration | perplexity | Δ ppl % | KL | top-1 | bits/weight | "
            "compression | mean layer rel. error |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in table["rows"]:

            def number(value: Any, fmt: str) -> str:
                return format(value, fmt) if value is not None else "-"

            if row.get("error"):
                lines.append(
                    f"| {row['scheme']} | {row['engine']} | "
                    f"{calibrations.get(row['artifact_id'], '-')} | not served: see below "
                    f"| - | - | - | {number(row['bits_per_weight'], '.2f')} | "
                    f"{number(row['compression_ratio'], '.2f')}x | "
                    f"{number(row['layer_error'].get('mean_relative_error'), '.4f')} |"
                )
                errors.append(f"- {row['scheme']}: {row['error']}")
                continue
            lines.append(
                f"| {row['scheme']} | {row['engine']} | "
                f"{calibrations.get(row['artifact_id'], '-')} | "
                f"{number(row['perplexity'], '.3f')} | "
                f"{number(row['perplexity_delta_pct'], '+.2f')} | "
                f"{number(row['kl_divergence'], '.4f')} | {number(row['top1_agreement'], '.3f')} "
                f"| {number(row['bits_per_weight'], '.2f')} | "
                f"{number(row['compression_ratio'], '.2f')}x | "
                f"{number(row['layer_error'].get('mean_relative_error'), '.4f')} |"
            )
        if errors:
            lines += ["", "Rows the serving engine could not evaluate (evaluate's error):", *errors]
        lines += [
            "",
            "KL: vLLM rows use a top-20 + tail-bucket estimate from prompt logprobs; "
            "llama.cpp rows the exact full-vocabulary KL vs the F16 GGUF.",
            f"Catalog: {quality['recorded']}",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="gguf,gptq,awq")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--window-length", type=int, default=256)
    parser.add_argument("--render", action="store_true", help="Only rewrite the .md from .json")
    parser.add_argument("--name", default="quantize", help="Results file name (no suffix)")
    parser.add_argument("--direct-first", action="store_true", help="Run the direct path first")
    parser.add_argument(
        "--under", default="no lock", help="How the run was kept apart from other heavy work"
    )
    parser.add_argument("--awq-samples", type=int, default=SAMPLES)
    parser.add_argument("--awq-length", type=int, default=LENGTH)
    parser.add_argument(
        "--speed-log",
        type=Path,
        default=None,
        help="Reuse speed rows printed (one JSON object per line) by an earlier run",
    )
    arguments = parser.parse_args()
    if arguments.render:
        result = json.loads((RESULTS / f"{arguments.name}.json").read_text())
        (RESULTS / f"{arguments.name}.md").write_text(markdown(result))
        return
    from quantplan.agent.model_source import resolve_model

    source = resolve_model("default")
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "samples": SAMPLES,
        "sequence_length": LENGTH,
        "lock": arguments.under,
    }
    methods = [m for m in arguments.only.split(",") if m]
    earlier = []
    if arguments.speed_log is not None:
        lines = arguments.speed_log.read_text().splitlines()
        earlier = [json.loads(line) for line in lines if line.startswith('{"method"')]
    measured = run_speed(methods, source.path, direct_first=arguments.direct_first)
    result["speed"] = earlier + measured
    result["order"] = "direct first" if arguments.direct_first else "quantplan first"
    if not arguments.skip_quality:
        awq_calibration = {
            "num_samples": arguments.awq_samples,
            "sequence_length": arguments.awq_length,
        }
        result["awq_calibration"] = awq_calibration
        result["quality"] = run_quality(arguments.windows, arguments.window_length, awq_calibration)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{arguments.name}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{arguments.name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
