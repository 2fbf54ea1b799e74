"""Launcher configs (`quantplan cluster config`): what they deploy, what they open, and how
quantplan reaches the nodes: a wheel built here, installed only if its sha256 matches, never
`pip install quantplan` from an index. One wheel is built for the whole module."""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from plans import default_model_plan

from quantplan.agent.cluster.launcher import RAY_VERSION, LauncherOptions, cluster_config
from quantplan.agent.cluster.wheel import QuantplanWheel, WheelError, build_wheel, load_wheel
from quantplan.errors import QuantplanError
from quantplan.inputs import parse_yaml
from quantplan.planner.plan import Plan, save_plan

PROVIDERS = ("aws", "gcp", "kuberay")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> QuantplanWheel:
    """This checkout's wheel, built once (about 2 s) into a private cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return build_wheel()


def _plan_on(provider: str) -> Plan:
    plan = default_model_plan()  # an AWS CPU plan from the shipped catalog
    if provider != "gcp":
        return plan
    deployment = plan.fleet[0]
    instance = deployment.instance.model_copy(
        update={"cloud": "gcp", "name": "c3-standard-4", "region": "us-central1"}
    )
    return plan.model_copy(
        update={"fleet": (deployment.model_copy(update={"instance": instance}),)}
    )


def _config(provider: str, wheel: QuantplanWheel, **options: Any) -> str:
    return cluster_config(
        _plan_on(provider),
        provider,  # type: ignore[arg-type]
        LauncherOptions(wheel=wheel.path, **options),
    )


def _install_commands(provider: str, text: str) -> list[str]:
    """Every shell command the config runs to install software on a node or pod."""
    documents = [d for d in yaml.safe_load_all(text) if d]
    if provider != "kuberay":
        return list(documents[0]["setup_commands"])
    cluster = next(d for d in documents if d["kind"] == "RayCluster")
    templates = [cluster["spec"]["headGroupSpec"]["template"]] + [
        group["template"] for group in cluster["spec"]["workerGroupSpecs"]
    ]
    commands = []
    for template in templates:
        for container in template["spec"].get("initContainers", []):
            commands.extend(container["command"][-1].splitlines())
        for container in template["spec"]["containers"]:
            assert "command" not in container and "args" not in container
    return commands


def _requirements_text(provider: str, text: str, commands: list[str]) -> str:
    """The requirements file pip gets with --require-hashes, as it reaches the node."""
    if provider == "kuberay":
        (configmap,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "ConfigMap"]
        return configmap["data"]["requirements.txt"]
    (echo,) = [c for c in commands if c.startswith("echo ")]
    return shlex.split(echo)[1]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_nodes_install_quantplan_only_from_the_hash_pinned_wheel(
    provider: str, wheel: QuantplanWheel
) -> None:
    text = _config(provider, wheel)
    commands = _install_commands(provider, text)
    pip_commands = [c for c in commands if re.match(r"\s*(python -m )?pip3? install", c)]
    assert len(set(pip_commands)) == 2  # the same two on every node and pod
    for command in pip_commands:
        requirements = [t for t in shlex.split(command)[2:] if not t.startswith("-")]
        # No bare or version-ranged quantplan from an index, and no URL other than the wheel.
        assert not [t for t in requirements if re.match(r"quantplan\b", t)], command
        assert not [t for t in requirements if "://" in t], command
        ray = [t for t in requirements if t.startswith("ray")]
        assert ray in ([], [f"ray[default]=={RAY_VERSION}"]), command
    (hashed,) = {c for c in pip_commands if "--require-hashes" in c}
    assert "--no-deps" in hashed and "-r " in hashed

    requirements = _requirements_text(provider, text, commands)
    match = re.fullmatch(
        r"quantplan @ file://(?P<dir>\S+)/(?P<name>[^/\s]+) --hash=sha256:(?P<sha>[0-9a-f]{64})\n?",
        requirements,
    )
    assert match is not None, requirements
    actual = hashlib.sha256(wheel.path.read_bytes()).hexdigest()
    assert match["sha"] == wheel.sha256 == actual
    assert match["name"] == wheel.path.name
    assert f"sha256 {actual}" in text  # the header says which bytes the nodes will run

    documents = [d for d in yaml.safe_load_all(text) if d]
    if provider == "kuberay":
        (configmap,) = [d for d in documents if d["kind"] == "ConfigMap"]
        shipped = base64.b64decode(configmap["binaryData"][wheel.path.name])
        assert hashlib.sha256(shipped).hexdigest() == actual
        assert match["dir"] == "/opt/quantplan-wheel"
    else:
        mounts = documents[0]["file_mounts"]
        assert mounts[f"~/quantplan-wheel/{wheel.path.name}"] == str(wheel.path)
        assert match["dir"] == "$HOME/quantplan-wheel"  # expanded by the node's shell


def test_every_kuberay_pod_installs_the_wheel_before_ray_starts(wheel: QuantplanWheel) -> None:
    text = _config("kuberay", wheel)
    for document in text.split("\n---\n"):  # quantplan's own loader refuses anchors/aliases
        parse_yaml(document, "kuberay manifest")
    configmap, cluster, _policy = list(yaml.safe_load_all(text))
    templates = [cluster["spec"]["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["spec"]["workerGroupSpecs"]
    ]
    for template in templates:
        spec = template["spec"]
        (init,) = spec["initContainers"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["quantplan-wheel"]["configMap"]["name"] == configmap["metadata"]["name"]
        (ray,) = spec["containers"]
        site = {e["name"]: e["value"] for e in ray["env"]}["PYTHONUSERBASE"]
        assert {e["name"]: e["value"] for e in init["env"]}["PYTHONUSERBASE"] == site
        assert site in {m["mountPath"] for m in ray["volumeMounts"]}
        assert init["command"][-1].startswith("set -euo pipefail")


def test_a_wheel_whose_bytes_change_no_longer_matches(
    tmp_path: Path, wheel: QuantplanWheel
) -> None:
    """The hash is of the file, so a swapped file gives a config that names other bytes."""
    copy = tmp_path / wheel.path.name
    copy.write_bytes(wheel.path.read_bytes() + b"\0")  # still a readable zip: trailing bytes
    assert load_wheel(copy).sha256 != wheel.sha256


def test_something_else_given_as_the_wheel_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "quantplan-0.1.0-py3-none-any.whl"
    fake.write_bytes(b"not a zip")
    with pytest.raises(WheelError, match="not a readable quantplan wheel"):
        load_wheel(fake)
    for name in ("quantplan-0.1;rm -rf ~-py3-none-any.whl", "other-1.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")  # the name goes into shell commands: refused first
        with pytest.raises(WheelError, match="not named like a quantplan wheel"):
            load_wheel(tmp_path / name)


def test_cli_writes_a_config_with_the_given_wheel(tmp_path: Path, wheel: QuantplanWheel) -> None:
    plan_file = save_plan(default_model_plan(), tmp_path / "plan.yaml")
    output = tmp_path / "cluster.yaml"
    quantplan = [sys.executable, "-m", "quantplan", "cluster", "config", str(plan_file)]
    result = subprocess.run(
        [*quantplan, "--provider", "aws", "--wheel", str(wheel.path), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert wheel.sha256 in output.read_text()

    bad = subprocess.run(
        [*quantplan, "--provider", "aws", "--wheel", str(tmp_path / "nope.whl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
    assert "does not exist" in " ".join(bad.stderr.split())


# -- what the configs deploy and open (moved here from test_plan_logic) ---------------------


@pytest.mark.parametrize("provider", ["aws", "kuberay"])
def test_launcher_configs_come_from_the_plan_and_open_nothing_extra(
    provider: str, wheel: QuantplanWheel
) -> None:
    plan = default_model_plan()
    text = cluster_config(plan, provider, LauncherOptions(wheel=wheel.path))  # type: ignore[arg-type]
    assert "0.0.0.0/0" not in text and "0.0.0.0 " not in text
    documents = [d for d in yaml.safe_load_all(text) if d]
    deployment = plan.fleet[0]
    if provider == "aws":
        config = documents[0]
        workers = [t for n, t in config["available_node_types"].items() if n.startswith("qp-")]
        assert workers[0]["node_config"]["InstanceType"] == deployment.instance.name
        assert workers[0]["min_workers"] == deployment.instances
        assert workers[0]["resources"] == {f"instance:{deployment.instance.name}": 1}
        ports = {p["FromPort"] for p in config["provider"]["security_group"]["IpPermissions"]}
        assert ports == {22, 8000}
        start = " ".join(config["head_start_ray_commands"])
        assert "RAY_AUTH_MODE=token" in start and "--dashboard-host=127.0.0.1" in start
    else:
        _configmap, cluster, policy = documents
        assert cluster["spec"]["authOptions"] == {"mode": "token"}
        group = cluster["spec"]["workerGroupSpecs"][0]
        assert group["replicas"] == deployment.instances
        assert deployment.instance.name in group["rayStartParams"]["resources"]
        assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
        assert policy["kind"] == "NetworkPolicy"
        open_ports = [
            p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])
        ]
        assert open_ports == [8000]


def test_launcher_refuses_a_plan_on_another_cloud_before_building_anything() -> None:
    with pytest.raises(QuantplanError, match="not gcp"):
        cluster_config(default_model_plan(), "gcp")


def test_launcher_refuses_an_infeasible_plan() -> None:
    plan = default_model_plan().model_copy(update={"fleet": ()})
    with pytest.raises(QuantplanError, match="no fleet"):
        cluster_config(plan, "kuberay")


def test_launcher_rents_instances_not_replicas_when_a_machine_holds_several(
    wheel: QuantplanWheel,
) -> None:
    """A multi-GPU instance holding 4 replicas is one worker node with 4 replica slots."""
    plan = default_model_plan()
    packed = plan.fleet[0].model_copy(
        update={"replicas": 8, "instances": 2, "replicas_per_instance": 4}
    )
    plan = plan.model_copy(update={"fleet": (packed,)})
    config = yaml.safe_load(cluster_config(plan, "aws", LauncherOptions(wheel=wheel.path)))
    (workers,) = [t for n, t in config["available_node_types"].items() if n.startswith("qp-")]
    assert (workers["min_workers"], workers["max_workers"]) == (2, 3)  # + 25 % surge room
    assert workers["resources"] == {f"instance:{packed.instance.name}": 4}
    assert config["max_workers"] == 3


@pytest.mark.parametrize("provider", ["aws", "kuberay"])
def test_gpu_workers_get_their_gpus_and_build_the_cuda_toolchain(
    provider: str, wheel: QuantplanWheel
) -> None:
    from plans import GPU_INSTANCE, gpu_plan

    text = cluster_config(gpu_plan(), provider, LauncherOptions(wheel=wheel.path))  # type: ignore[arg-type]
    documents = [d for d in yaml.safe_load_all(text) if d]
    if provider == "aws":
        (worker,) = [
            t for n, t in documents[0]["available_node_types"].items() if n.startswith("qp-")
        ]
        assert worker["node_config"]["InstanceType"] == GPU_INSTANCE
        assert worker["resources"] == {f"instance:{GPU_INSTANCE}": 2}  # two replicas of 2 GPUs
        assert worker["worker_setup_commands"] == ["quantplan toolchain install vllm-cuda"]
    else:
        cluster = next(d for d in documents if d["kind"] == "RayCluster")
        (group,) = cluster["spec"]["workerGroupSpecs"]
        assert group["rayStartParams"]["num-gpus"] == "4"
        (container,) = group["template"]["spec"]["containers"]
        assert container["resources"] == {"limits": {"nvidia.com/gpu": "4"}}
        head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert "resources" not in head


@pytest.mark.parametrize("provider", ["aws", "kuberay"])
def test_a_spot_line_s_nodes_say_spot_and_an_empty_on_demand_group_waits_as_its_fallback(
    provider: str, wheel: QuantplanWheel
) -> None:
    plan = default_model_plan()
    on_demand = plan.fleet[0]
    spot = on_demand.model_copy(update={"pricing": "spot", "instances": 2, "replicas": 2})
    plan = plan.model_copy(update={"fleet": (spot, on_demand)})
    text = cluster_config(plan, provider, LauncherOptions(wheel=wheel.path))  # type: ignore[arg-type]
    documents = [d for d in yaml.safe_load_all(text) if d]
    if provider == "aws":
        config = documents[0]
        workers = {n: t for n, t in config["available_node_types"].items() if n.startswith("qp-")}
        spot_group, fallback, plain = workers.values()
        assert spot_group["node_config"]["InstanceMarketOptions"] == {"MarketType": "spot"}
        assert spot_group["labels"] == {"ray.io/market-type": "spot"}
        assert (fallback["min_workers"], fallback["max_workers"]) == (0, 2)
        assert fallback["labels"] == {"ray.io/market-type": "on-demand"}
        assert "InstanceMarketOptions" not in fallback["node_config"]
        assert fallback["resources"] == spot_group["resources"]
        assert plain["labels"] == {"ray.io/market-type": "on-demand"}
        surge = 1 + 1  # each line's 25 % of its instances, rounded up
        assert config["max_workers"] == 2 * 2 + on_demand.instances + surge
    else:
        groups = documents[1]["spec"]["workerGroupSpecs"]
        labels = [g["rayStartParams"]["labels"] for g in groups]
        assert labels == ["ray.io/market-type=spot", "ray.io/market-type=on-demand"]


@pytest.mark.parametrize("provider", ["aws", "kuberay"])  # GCP's groups are AWS's code path
def test_node_groups_leave_room_for_a_rolling_update_s_new_replicas(
    provider: str, wheel: QuantplanWheel
) -> None:
    """A changed line's new replicas start beside the old ones (`cluster endpoint
    --surge-percent`): the groups keep the plan's instances and may grow by the surge share,
    rounded up, so the autoscaler can start the machines those replicas wait for."""
    plan = default_model_plan()
    line = plan.fleet[0].model_copy(update={"instances": 8, "replicas": 8})
    plan = plan.model_copy(update={"fleet": (line,)})

    def bounds(surge_percent: int) -> tuple[int, int]:
        options = LauncherOptions(wheel=wheel.path, surge_percent=surge_percent)
        text = cluster_config(plan, provider, options)  # type: ignore[arg-type]
        documents = [d for d in yaml.safe_load_all(text) if d]
        if provider == "kuberay":
            (group,) = documents[1]["spec"]["workerGroupSpecs"]
            return group["minReplicas"], group["maxReplicas"]
        (workers,) = [
            t for n, t in documents[0]["available_node_types"].items() if n.startswith("qp-")
        ]
        assert documents[0]["max_workers"] == workers["max_workers"]
        return workers["min_workers"], workers["max_workers"]

    assert bounds(25) == (8, 10)
    assert bounds(1) == (8, 9)  # any share above 0 leaves room for one machine
    assert bounds(0) == (8, 8)
    with pytest.raises(ValueError, match="surge_percent"):
        LauncherOptions(surge_percent=101)
