"""`quantplan serve --gpus 1 --gpu-layers N` on a real GPU host, measured by `quantplan bench`.

The user's path for GGUF on a GPU, run as a user runs it: the installed commands in
subprocesses, the CUDA ``llama-server`` built by quantplan from the pinned sdist on first use,
partial offload (the first N of 32 layers on the GPU, the rest on the host's cores) and full
offload of an F16 GGUF in Llama-3.1-8B's shape, each benchmarked with the one protocol, then
stopped with SIGTERM. Random weights in the real shapes (the weights cannot travel): speed
only, no quality.

The device machine downloads nothing, so three calls carry what they need (64 MiB a call) and
run back to back while the machine keeps /tmp:

* ``prepare`` (here): ``.devcarry/s1`` (quantplan's core wheels for Python 3.12, the first half
  of the pinned llama-cpp-python sdist) and ``.devcarry/s2`` (its second half, the default
  model's tokenizer as a GGUF);
* ``install`` (there, carry s1): the wheels into /tmp/qpw/site, the first half kept;
* ``build`` (there, carry s2): the sdist rejoined where quantplan's build looks for it, the CUDA
  ``llama-server`` built (quantplan's own build, sha256-checked), the 8B-shape GGUF written;
* ``serve`` (there, carry nothing): for each setting, ``quantplan serve FILE --gpus 1
  --gpu-layers N``, ``quantplan bench URL``, SIGTERM, the exit code;
* ``report`` (here): bench/results/gpu_serve_cli.{json,md}, with the planner's prediction of
  each setting (planner/offload.py, as bench/llamacpp_partial_offload.py predicts the engine-loop
  runs) before it saw these.

    bash bench/gpu_serve_cli.sh install   # carry .devcarry/s1
    bash bench/gpu_serve_cli.sh build     # carry .devcarry/s2 (~6 min)
    bash bench/gpu_serve_cli.sh serve     # (~5 min)
    bash bench/gpu_serve_cli.sh sweeps    # (~4 min) the 135M and 8B sweeps, all on the GPU
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".devcarry"
WORK = Path(os.environ.get("QP_WORK", "/tmp/qpw"))
RESULTS = ROOT / "bench" / "results"
GGUF = WORK / "llama8b-random-F16.gguf"
WEIGHTS_8B = (
    "random N(0, 0.02) in Llama-3.1-8B's layer shapes with the default model's 49,152-token "
    "tokenizer (about 4 % fewer weights than the real model; speed only)"
)
LAYERS = 32
# (gpu layers, concurrency levels): half the layers on the GPU, then all of them. Requests per
# level: the bench command's default, 4 per worker and at least 8.
SETTINGS = ((16, (1, 2, 4, 8, 16)), (LAYERS, (1, 8)))
THREADS = 14  # of the host's 16 cores: the client and the server's HTTP loop keep two
# The same serve / bench / SIGTERM path on a CPU host, on the default model, without --gpus:
# checks the harness before device time is spent on it.
REHEARSAL = bool(os.environ.get("QP_REHEARSAL"))

# Run as a script, this folder is on the path: the device-run helpers are gpu_node_steps's.
from gpu_node_steps import CORE_WHEELS, _download, log, save  # noqa: E402

# -- here --------------------------------------------------------------------------------------


def prepare() -> None:
    from quantplan.agent.model_source import default_gguf
    from quantplan.agent.toolchains.llama_server import SDIST_NAME, _sdist

    for part in ("s1", "s2"):
        shutil.rmtree(CARRY / part, ignore_errors=True)
    _download(CORE_WHEELS, CARRY / "s1" / "whl-core")
    sdist = _sdist(CARRY / "sdist.log", lambda line: None)
    assert sdist.name == SDIST_NAME
    data = sdist.read_bytes()
    half = len(data) // 2
    (CARRY / "s1" / "sdist.part1").write_bytes(data[:half])
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "serving_gguf_skeleton.py"), "export",
         str(default_gguf()), str(CARRY / "s1" / "gguf-skeleton.json")],
        check=True,
    )  # fmt: skip
    (CARRY / "s2").mkdir(parents=True)
    (CARRY / "s2" / "sdist.part2").write_bytes(data[half:])
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "llamacpp_server_gpu.py"), "tokenizer",
         "--source", str(default_gguf()), "--out", str(CARRY / "s2" / "tokenizer.gguf")],
        check=True,
    )  # fmt: skip
    for part in ("s1", "s2"):
        size = sum(f.stat().st_size for f in (CARRY / part).rglob("*") if f.is_file())
        log(f".devcarry/{part}: {size / 2**20:.1f} MiB")


# -- there -------------------------------------------------------------------------------------


def build() -> None:
    from quantplan.agent.serve import LlamaServer
    from quantplan.agent.toolchains.llama_server import SDIST_NAME
    from quantplan.paths import cache_dir

    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    sdists = cache_dir() / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    data = (WORK / "sdist.part1").read_bytes() + (CARRY / "s2" / "sdist.part2").read_bytes()
    (sdists / SDIST_NAME).write_bytes(data)
    shutil.copy2(CARRY / "s2" / "tokenizer.gguf", WORK / "tokenizer.gguf")
    began = time.monotonic()
    binary = LlamaServer(cuda=True).binary()  # what `serve --gpus` builds on first use
    result["build"] = {"binary": str(binary), "seconds": round(time.monotonic() - began, 1)}
    save("build.json", result)
    sys.path.insert(0, str(ROOT / "bench"))
    from llamacpp_server_gpu import random_model

    began = time.monotonic()
    random_model("8b", WORK / "tokenizer.gguf", GGUF)
    result["gguf"] = {"bytes": GGUF.stat().st_size, "seconds": round(time.monotonic() - began, 1)}
    save("build.json", result)
    log(json.dumps(result))


def _quantplan(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "quantplan", *arguments]


def serve_and_bench(layers: int, levels: tuple[int, ...]) -> dict[str, Any]:
    command = _quantplan(
        "serve", str(GGUF), "--gpus", "1", "--gpu-layers", str(layers),
        "--parallel", str(max(levels)), "--max-model-len", "256", "--threads", str(THREADS),
    )  # fmt: skip
    if REHEARSAL:
        from quantplan.agent.model_source import default_gguf

        command = _quantplan("serve", str(default_gguf()), "--parallel", str(max(levels)))
    log("$ " + " ".join(command))
    began = time.monotonic()
    server = subprocess.Popen(
        command, cwd=WORK, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert server.stdout is not None
    lines: list[str] = []
    url = None
    for line in server.stdout:
        lines.append(line.rstrip())
        log("serve: " + line.rstrip())
        found = re.search(r"endpoint: (http://\S+)/v1", line)
        if found:
            url = found.group(1)
            break
    result: dict[str, Any] = {"gpu_layers": layers, "serve_command": command}
    result["ready_s"] = round(time.monotonic() - began, 1)
    if url is None:
        result["error"] = "the server never printed its endpoint"
        result["output"] = lines[-30:]
        server.wait(timeout=60)
        result["exit_code"] = server.returncode
        return result
    bench = subprocess.run(
        _quantplan(
            "bench", url, "-c", ",".join(map(str, levels)),
            "--input-tokens", "128", "--output-tokens", "64", "--json",
        ),
        cwd=WORK, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    result["bench_exit_code"] = bench.returncode
    try:
        result["bench"] = json.loads(bench.stdout)
    except json.JSONDecodeError:
        result["bench_output"] = (bench.stdout + bench.stderr)[-3000:]
    stopping = time.monotonic()
    server.send_signal(signal.SIGTERM)
    rest, _ = server.communicate(timeout=60)
    result["exit_code"] = server.returncode  # 128 + SIGTERM = 143
    result["stop_s"] = round(time.monotonic() - stopping, 1)
    result["serve_output"] = lines + rest.splitlines()[-10:]
    leftover = subprocess.run(["pgrep", "-f", "llama-server"], capture_output=True, text=True)
    result["llama_server_left"] = leftover.stdout.split()
    return result


def serve() -> None:
    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
        result["nvidia_smi"] = "\n".join(smi.splitlines()[:12])
    result["cpu"] = subprocess.run(["lscpu"], capture_output=True, text=True).stdout[-3000:]
    runs = []
    for layers, levels in SETTINGS:
        try:
            runs.append(serve_and_bench(layers, levels))
        except Exception as error:  # recorded: the other settings still run
            runs.append({"gpu_layers": layers, "error": f"{type(error).__name__}: {error}"})
        result["runs"] = runs
        save("serve.json", result)
    log(json.dumps([{k: v for k, v in run.items() if k != "serve_output"} for run in runs])[:4000])


def sweeps() -> None:
    """The node agent's serve and benchmark steps (bench/gpu_node_steps.py's), again, on the
    default model's shape and on the 8B file, F16, all layers on the GPU: the seed's H200 HTTP
    rows came from their first run, whose levels sent the same prompts to a server with its
    prompt cache on (bench/results/prompt_cache_bias.md). Their reports and profile rows go to
    $OUT, as the first run's did."""
    import gpu_node_steps as steps

    small = WORK / "smollm2-random-F16.gguf"
    small_weights = "random, in the default model's GGUF shapes and tokenizer (speed only)"
    steps.run_steps(
        "sweeps.json",
        [
            ("gguf", lambda: steps.random_gguf(small)),
            ("smollm2", lambda: steps.serve_and_bench(
                small, "SmolLM2-135M-Instruct", small_weights, "smollm2")),
            ("smollm2_catalog", lambda: steps.record_and_export("smollm2")),
            ("llama8b", lambda: steps.serve_and_bench(GGUF, "Llama-3.1-8B", WEIGHTS_8B, "llama8b")),
            ("llama8b_catalog", lambda: steps.record_and_export("llama8b")),
        ],
    )  # fmt: skip


# -- here, after the calls -----------------------------------------------------------------------


def report(device: Path) -> None:
    """bench/results/gpu_serve_cli.json: every measured level beside the planner's prediction of
    its setting (planner/offload.py with its shipped host figures and, for comparison, the prior
    ones), as bench/llamacpp_partial_offload.py predicts the engine-loop runs."""
    sys.path.insert(0, str(ROOT / "bench"))
    import llamacpp_partial_offload as offload

    from quantplan.catalog.seeding import seed_records
    from quantplan.catalog.snapshot import CatalogSnapshot
    from quantplan.planner.offload import HOST, PRIOR_HOST

    snapshot = CatalogSnapshot(**{kind: tuple(rows) for kind, rows in seed_records()})
    served = json.loads((device / "serve.json").read_text(encoding="utf-8"))
    rows = []
    for run in served["runs"]:
        for level in run["bench"]["levels"]:
            metrics = level["metrics"]
            setting = {"pp": 128, "tg": 64, "pl": level["concurrency"]}
            setting["n_gpu_layers"] = run["gpu_layers"]
            measured = metrics["output_tokens_per_s"]
            predicted = offload.predict(snapshot, [setting], HOST, "gguf-f16")[0]
            prior = offload.predict(snapshot, [setting], PRIOR_HOST, "gguf-f16")[0]
            rows.append(
                {
                    "gpu_layers": run["gpu_layers"],
                    "concurrency": level["concurrency"],
                    "output_tokens_per_s": round(measured, 2),
                    "ttft_p50_ms": round(metrics["ttft"]["p50_ms"], 1),
                    "itl_p50_ms": round(metrics["itl"]["p50_ms"], 2),
                    "failed": metrics["failed"],
                    "predicted_output_tokens_per_s": round(predicted, 2),
                    "error": round(predicted / measured - 1, 4),
                    "prior_predicted_output_tokens_per_s": round(prior, 2),
                }
            )
    runs = [
        {k: v for k, v in run.items() if k not in ("bench", "serve_output")}
        for run in served["runs"]
    ]
    build = json.loads((device / "build.json").read_text(encoding="utf-8"))
    payload = {"started": served["started"], "build": build, "runs": runs, "levels": rows}
    payload["nvidia_smi"] = served.get("nvidia_smi")
    target = RESULTS / "gpu_serve_cli.json"
    target.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    for row in rows:
        log(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "build", "serve", "sweeps", "report"))
    parser.add_argument("--device", type=Path, help="report: the folder of the calls' files")
    arguments = parser.parse_args()
    if arguments.step == "report":
        report(arguments.device)
        return
    {"prepare": prepare, "build": build, "serve": serve, "sweeps": sweeps}[arguments.step]()


if __name__ == "__main__":
    main()
