"""`apply` of a GPU plan on a real local Ray cluster whose worker declares fake GPUs.

Everything is real but the engine: Ray places the replicas' GPU leases, the node agent starts
the vLLM CUDA replica through the engine seam every replica uses -- the interpreter of its
toolchain (``vllm-cuda``), found in the toolchain cache -- and the benchmark runs against it.
Here that interpreter is a tiny OpenAI-speaking server that records the command line and
environment it was started with, since vLLM's CUDA build cannot run on this CPU machine.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from plans import GPU_INSTANCE, gpu_plan
from ray_fixtures import RayTestCluster, start_test_cluster, stop_test_cluster

from quantplan.agent.cluster.local_host import WorkerRequest

pytestmark = [pytest.mark.ray_cluster, pytest.mark.integration, pytest.mark.slow]

NO_GPU_INSTANCE = "g5.12xlarge"  # 4x A10G in the catalog; this node declares none

FAKE_ENGINE = '''
"""Stands in for vLLM's CUDA server: records its command and environment, answers OpenAI."""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

args = sys.argv[1:]
flag = lambda name: args[args.index(name) + 1]
port = int(flag("--port"))
records = Path(__file__).resolve().parent.parent / "records"
records.mkdir(exist_ok=True)
env = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")}
(records / f"{port}.json").write_text(json.dumps({"argv": [sys.argv[0], *args], "env": env}))
name = flag("--served-model-name")

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *_):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": name, "object": "model"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        tokens = int(request.get("max_tokens") or 16)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(tokens):
            last = "length" if i == tokens - 1 else None
            chunk = {"choices": [{"index": 0, "text": " x", "finish_reason": last}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\\n\\n".encode())
        usage = {"prompt_tokens": len(request["prompt"].split()), "completion_tokens": tokens}
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\\n\\n".encode())
        self.wfile.write(b"data: [DONE]\\n\\n")

ThreadingHTTPServer((flag("--host"), port), Handler).serve_forever()
'''


def install_fake_vllm_cuda(cache: Path) -> Path:
    """A 'built' vllm-cuda toolchain whose interpreter is the fake engine; returns its root."""
    return install_fake_toolchain(cache, "vllm-cuda", FAKE_ENGINE, {"vllm": "fake engine"})


FAKE_QUANTIZER = '''
"""Stands in for llm-compressor's GPTQ step on a CUDA torch: records its command and GPUs,
writes a tiny checkpoint and answers the step protocol."""
import json, os, struct, sys
from pathlib import Path

script, request_path, response_path = sys.argv[1:4]
request = json.loads(Path(request_path).read_text())
records = Path(__file__).resolve().parent.parent / "records"
records.mkdir(exist_ok=True)
env = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")}
record = {"argv": [sys.argv[0], *sys.argv[1:]], "env": env, "method": request["method"]}
(records / "quantize.json").write_text(json.dumps(record))
output = Path(request["output_dir"])
header = json.dumps({"w.weight": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}})
payload = struct.pack("<Q", len(header)) + header.encode() + bytes(8)
(output / "model.safetensors").write_bytes(payload)
(output / "config.json").write_text(json.dumps({"model_type": "llama"}))
result = {"calibration_tokens": 64, "calibrate_seconds": 0.0, "total_seconds": 0.1,
          "peak_rss_mb": 1.0, "layer_errors": []}
Path(response_path).write_text(json.dumps({"ok": True, "result": result}))
'''


def install_fake_toolchain(cache: Path, name: str, script: str, versions: dict[str, str]) -> Path:
    """A 'built' toolchain ``name`` whose interpreter is ``script``; returns its root."""
    from quantplan.agent.toolchains.build import MANIFEST_NAME, Toolchain, toolchain_dir
    from quantplan.agent.toolchains.specs import get_spec

    root = toolchain_dir(get_spec(name))  # under QUANTPLAN_CACHE_DIR = cache
    assert root.is_relative_to(cache)
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.write_text(f"#!{sys.executable}\n{script}")
    python.chmod(0o755)
    toolchain = Toolchain(
        name=name,
        key=root.name.rsplit("-", 1)[1],
        root=root,
        python_version="3.11",
        versions=versions,
        built_at=datetime.now(UTC),
        build_seconds=0.0,
    )
    (root / MANIFEST_NAME).write_text(toolchain.model_dump_json())
    return root


def fake_checkpoint(directory: Path) -> Path:
    """Enough of a Llama checkpoint for apply's checks; the fake engine never reads weights."""
    directory.mkdir(parents=True)
    config = {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
    }
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes(b"\0" * 64)
    return directory


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RayTestCluster, Path]]:
    tmp = tmp_path_factory.mktemp("gpucluster")
    cache = tmp / "cache"
    previous = os.environ.get("QUANTPLAN_CACHE_DIR")
    os.environ["QUANTPLAN_CACHE_DIR"] = str(cache)  # nodes inherit it when they start
    toolchain = install_fake_vllm_cuda(cache)
    install_fake_toolchain(cache, "llmcompressor-cuda", FAKE_QUANTIZER, {"torch": "stand-in"})
    workers = (
        WorkerRequest(
            name="gpu-1", instance_type=GPU_INSTANCE, num_cpus=4, fake_gpus=4, accelerator_type="L4"
        ),
        WorkerRequest(name="nogpu-1", instance_type=NO_GPU_INSTANCE, num_cpus=4),
    )
    test_cluster = start_test_cluster(tmp, workers=0, extra_workers=workers)
    try:
        yield test_cluster, toolchain
    finally:
        stop_test_cluster(test_cluster)
        if previous is None:
            os.environ.pop("QUANTPLAN_CACHE_DIR", None)
        else:
            os.environ["QUANTPLAN_CACHE_DIR"] = previous


def test_a_plan_whose_gpus_the_cluster_lacks_is_refused_in_one_line(
    gpu_cluster: tuple[RayTestCluster, Path], tmp_path: Path
) -> None:
    from quantplan.planner.plan import save_plan

    test_cluster, _ = gpu_cluster
    plan_file = save_plan(gpu_plan(instance_type=NO_GPU_INSTANCE), tmp_path / "plan.yaml")
    address = test_cluster.cluster.address  # type: ignore[attr-defined]
    command = [sys.executable, "-m", "quantplan", "apply", str(plan_file), "--address", address]
    command += ["--db", test_cluster.database_url, "--model-dir", str(tmp_path)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "400"},  # one line stays one line
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    # (Ray logs its connection on stderr too; the message is the one error line.)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        "error: the plan cannot be applied: bf16 (vllm) needs 1 node(s) of g5.12xlarge with 4 "
        "GPU(s) of accelerator_type:A10G (2 replica(s) of 2); 0 alive node(s) have them (the "
        "cluster has: g5.12xlarge (no GPU))"
    ], result.stderr


def test_apply_places_a_two_gpu_vllm_plan_on_the_fake_gpu_worker(
    gpu_cluster: tuple[RayTestCluster, Path], tmp_path: Path
) -> None:
    import ray

    from quantplan.agent.cluster.apply import ApplyOptions, apply_plan
    from quantplan.agent.cluster.fleet_ops import destroy, fleet_status

    test_cluster, toolchain = gpu_cluster
    plan = gpu_plan()  # two vLLM replicas of 2 L4 each on one g6.24xlarge
    options = ApplyOptions(
        name="gpu-test",
        database_url=test_cluster.database_url,
        model_dir=str(fake_checkpoint(tmp_path / "llama")),
        replan_threshold_pct=1e9,  # fake-engine speeds are not a reason to re-plan
        startup_timeout_s=60,
    )
    outcome = apply_plan(plan, options=options)
    assert outcome.status == "applied" and len(outcome.endpoints) == 2
    assert len(outcome.measurements) == 2  # both benchmarked through the OpenAI API

    gpu_node = next(
        n["NodeID"]
        for n in ray.nodes()
        if n["Alive"] and f"instance:{GPU_INSTANCE}" in n["Resources"]
    )
    assert {m.node_id for m in outcome.measurements} == {gpu_node}
    records = [json.loads(p.read_text()) for p in sorted((toolchain / "records").glob("*.json"))]
    assert len(records) == 2
    devices = []
    for record in records:
        argv = record["argv"]
        assert argv[0] == str(toolchain / "bin" / "python")  # the vllm-cuda toolchain
        assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
        flags = {
            flag: value
            for flag, value in itertools.pairwise(argv[3:])
            if flag.startswith("--") and not value.startswith("--")
        }
        assert flags["--tensor-parallel-size"] == "2"
        assert flags["--max-model-len"] == "1280"  # 2 x (512 + 128) of the plan's request
        assert flags["--gpu-memory-utilization"] == "0.9"
        assert flags["--max-num-seqs"] == str(plan.fleet[0].metrics.concurrency)
        devices.append(record["env"]["CUDA_VISIBLE_DEVICES"].split(","))
    # Ray gave each replica two of the node's four GPUs, none twice.
    assert sorted(d for pair in devices for d in pair) == ["0", "1", "2", "3"]

    status = fleet_status()
    (node,) = [n for n in status.nodes if n.node_id == gpu_node]
    assert (node.gpus, node.accelerator_type, node.fake_gpus) == (4, "L4", True)
    assert sorted(destroy("gpu-test")) == sorted(outcome.endpoints)
    # The leases died with their replicas: the node's GPUs are free again (Ray's resource view
    # follows a kill within a heartbeat or two).
    deadline = time.monotonic() + 20
    while ray.available_resources().get("GPU") != 4.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("GPU") == 4.0


def test_gptq_runs_on_the_gpu_worker_with_its_leased_gpu(
    gpu_cluster: tuple[RayTestCluster, Path], tmp_path: Path
) -> None:
    """apply's quantize step, as apply runs it: placed by place_quantize on the alive agents'
    offers, run by run_job; the stand-in quantizer is the llmcompressor-cuda interpreter."""
    import ray

    from quantplan.agent.artifacts import ArtifactStore
    from quantplan.agent.cluster.jobs import QuantizeJob
    from quantplan.agent.cluster.node_agent import start_node_agents
    from quantplan.agent.cluster.quantize_placement import place_quantize
    from quantplan.agent.cluster.scheduler import run_job
    from quantplan.agent.toolchains.build import toolchain_dir
    from quantplan.agent.toolchains.specs import get_spec

    del gpu_cluster  # the cluster; this test talks to it through Ray
    agents = start_node_agents()
    placement = place_quantize("gptq", {NO_GPU_INSTANCE}, [a.offer for a in agents])
    assert (placement.gpus, placement.instance_types) == (1, {GPU_INSTANCE})
    job = QuantizeJob(
        job_id="quantize-gpu-test",
        model=str(fake_checkpoint(tmp_path / "llama")),
        method="gptq",
        options={"scheme": "W4A16", "group_size": 128, "measure_layer_error": False},
        store_url=str(tmp_path / "store"),
        gpus=placement.gpus,
    )
    result = run_job(job, instance_types=placement.instance_types, timeout_s=120)
    assert result.status == "succeeded", result.detail
    gpu_node = next(
        n["NodeID"]
        for n in ray.nodes()
        if n["Alive"] and f"instance:{GPU_INSTANCE}" in n["Resources"]
    )
    assert result.node_id == gpu_node
    cuda = toolchain_dir(get_spec("llmcompressor-cuda"))
    record = json.loads((cuda / "records" / "quantize.json").read_text())
    assert record["argv"][0] == str(cuda / "bin" / "python")  # the CUDA build of the quantizer
    assert record["argv"][1].endswith("llmc_quantize.py") and record["method"] == "gptq"
    assert record["env"]["CUDA_VISIBLE_DEVICES"] in {"0", "1", "2", "3"}
    assert result.payload["cuda_visible_devices"] == record["env"]["CUDA_VISIBLE_DEVICES"]
    assert record["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    # Stored once, made by (and addressed with) the CUDA toolchain; any node pulls it checked.
    manifest = ArtifactStore(str(tmp_path / "store")).get(result.payload["artifact_id"])
    assert manifest is not None and manifest.tool_versions == {"torch": "stand-in"}
    assert manifest.toolchain_key == cuda.name.rsplit("-", 1)[1]
    assert (ArtifactStore(str(tmp_path / "store")).pull(manifest) / "model.safetensors").is_file()
    # The job's lease died with the job: the node's GPUs are all free again.
    deadline = time.monotonic() + 20
    while ray.available_resources().get("GPU") != 4.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("GPU") == 4.0


def test_the_endpoint_serves_a_gpu_plan_each_replica_on_gpus_of_its_own(
    gpu_cluster: tuple[RayTestCluster, Path], tmp_path: Path
) -> None:
    """`cluster endpoint` of the same 2 x 2-GPU plan: each Serve replica's actor holds two of
    the worker's four GPUs, its engine is the vllm-cuda build on exactly those, requests answer
    through the one endpoint, and stopping it gives the GPUs back."""
    import httpx
    import ray

    from quantplan.agent.cluster.endpoint import EndpointOptions, start_endpoint, stop_endpoint
    from quantplan.agent.serve.manager import free_port

    test_cluster, toolchain = gpu_cluster
    for stale in (toolchain / "records").glob("*.json"):
        stale.unlink()  # the apply test's engines
    plan = gpu_plan()
    options = EndpointOptions(
        name="gpu-endpoint",
        port=free_port(),
        database_url=test_cluster.database_url,
        model_dir=str(fake_checkpoint(tmp_path / "llama")),
        startup_timeout_s=120,
        scale_with_load=False,  # both replicas now, not the plan's floor
    )
    endpoint = start_endpoint(plan, options)
    try:
        assert ray.available_resources().get("GPU", 0.0) == 0.0  # two replicas, two GPUs each
        body = {"model": plan.model, "prompt": "a b c", "max_tokens": 3, "stream": True}
        for _ in range(6):
            answer = httpx.post(f"{endpoint.url}/v1/completions", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.text.count('"text"') == 3 and "[DONE]" in answer.text
        records = [json.loads(p.read_text()) for p in (toolchain / "records").glob("*.json")]
    finally:
        stop_endpoint(endpoint.app_name)
    assert len(records) == 2
    devices = []
    for record in records:
        argv = record["argv"]
        assert argv[0] == str(toolchain / "bin" / "python")  # the vllm-cuda toolchain
        flags = dict(itertools.pairwise(argv[3:]))
        assert flags["--tensor-parallel-size"] == "2"
        assert flags["--gpu-memory-utilization"] == "0.9"
        assert record["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        devices.append(record["env"]["CUDA_VISIBLE_DEVICES"].split(","))
    assert sorted(d for pair in devices for d in pair) == ["0", "1", "2", "3"]
    deadline = time.monotonic() + 20
    while ray.available_resources().get("GPU") != 4.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("GPU") == 4.0
