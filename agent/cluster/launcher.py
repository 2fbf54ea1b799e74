"""``quantplan cluster config``: a Ray cluster-launcher YAML (AWS, GCP) or a KubeRay manifest.

Node types and counts come from the plan's fleet: one worker type per deployment, as many
workers as replicas, each declaring ``instance:<type>`` so the node agents and ``apply`` match
them the same way as on a local cluster. Security defaults follow Ray's own advice (anyone who
reaches a Ray port can run code): token authentication on, the dashboard on 127.0.0.1, and no
inbound ports besides SSH for the launcher (from one admin range) and the serving port (from one
client range). Nothing is opened to 0.0.0.0/0 unless those ranges are set to it explicitly.

quantplan itself reaches the nodes as a wheel built on the user's machine (``wheel.py``), never
by name from a package index: AWS and GCP nodes get it through the launcher's ``file_mounts``,
KubeRay pods through a ConfigMap and an init container; pip installs it only if its sha256
matches the one written into the config.
"""

from __future__ import annotations

import base64
import json
import math
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.cluster.naming import MARKET_LABEL, SPOT
from quantplan.agent.cluster.wheel import (
    QuantplanWheel,
    WheelError,
    build_wheel,
    load_wheel,
    node_dependencies,
    requirement_line,
)
from quantplan.errors import QuantplanError
from quantplan.inputs import dump_yaml, dump_yaml_all
from quantplan.planner.plan import Deployment, Plan

Provider = Literal["aws", "gcp", "kuberay"]
RAY_VERSION = "2.60.0"
RAY_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311"
SERVE_PORT = 8000
TOKEN_ENV = "RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=~/.ray/auth_token"
# Where the wheel lands on a launcher node (file_mounts copies it there before setup runs).
NODE_WHEEL_DIR = "~/quantplan-wheel"
# KubeRay: the ConfigMap holding the wheel is mounted here; the init container installs it into
# an emptyDir used as the ray container's Python user site.
POD_WHEEL_DIR = "/opt/quantplan-wheel"
POD_USER_BASE = "/opt/quantplan-site"
# A ConfigMap holds at most 1 MiB; binaryData is stored base64-encoded (4/3 larger).
CONFIGMAP_MAX_WHEEL_BYTES = 700 * 1024


class LauncherOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    admin_cidr: str = Field(default="10.0.0.0/8", description="Who may SSH to the nodes")
    serve_cidr: str = Field(default="10.0.0.0/8", description="Who may call the serving port")
    head_instance: str | None = Field(default=None, description="Head node type (small default)")
    cluster_name: str | None = None
    project_id: str = Field(default="YOUR_GCP_PROJECT", description="GCP project")
    token_path: str = Field(default="~/.ray/auth_token", description="Local Ray token file")
    wheel: Path | None = Field(
        default=None,
        description="quantplan wheel the nodes install (checked by sha256); None builds this "
        "checkout's wheel with `pip wheel --no-deps`.",
    )
    surge_percent: int = Field(
        default=25,
        ge=0,
        le=100,
        description="Room for a rolling update: each line's node group may grow by this share "
        "of its instances (rounded up) while new replicas start beside the old ones; the "
        "autoscaler starts those nodes only for replicas waiting for room, and lets them go "
        "when idle. 0: the groups stay at the plan's instances.",
    )


def _name(plan: Plan, options: LauncherOptions) -> str:
    base = options.cluster_name or f"quantplan-{plan.model}"
    return "".join(c if c.isalnum() else "-" for c in base.lower()).strip("-")[:50]


def _group(deployment: Deployment, index: int, role: str = "") -> str:
    slug = "".join(c if c.isalnum() else "-" for c in deployment.instance.name.lower())
    return f"qp-{index}-{role}{slug}"[:60]


def surge_nodes(deployment: Deployment, surge_percent: int) -> int:
    """Nodes a line's group may add for a rolling update: its instances x the share, rounded
    up, so any share above 0 leaves room for at least one new replica's machine."""
    return math.ceil(deployment.instances * surge_percent / 100)


def _worker_types(
    plan: Plan, options: LauncherOptions, node_config: Callable[[Deployment, bool], dict[str, Any]]
) -> dict[str, Any]:
    """One node group per plan line, labelled with its market as Ray's scheduler reads it. It
    holds the line's instances and may grow by its surge room (``surge_nodes``): `cluster
    endpoint --surge-percent` starts a changed line's new replicas beside the old ones, and the
    autoscaler starts the machines they wait for. A spot line also gets an on-demand group of
    its instance type that starts empty: where the autoscaler puts the plan's fallback when the
    cloud takes spot nodes back (the line's replicas ask for spot nodes first, then any other;
    agent/cluster/naming.py)."""
    types: dict[str, Any] = {}
    for index, d in enumerate(plan.fleet):
        spot = d.pricing == "spot"
        common = {"resources": _replica_slots(d), **_gpu_worker_setup(d, plan)}
        types[_group(d, index)] = {
            "min_workers": d.instances,
            "max_workers": d.instances + surge_nodes(d, options.surge_percent),
            **common,
            "labels": {MARKET_LABEL: SPOT if spot else "on-demand"},
            "node_config": node_config(d, spot),
        }
        if spot:
            types[_group(d, index, "fallback-")] = {
                "min_workers": 0,
                "max_workers": d.instances,
                **common,
                "labels": {MARKET_LABEL: "on-demand"},
                "node_config": node_config(d, False),
            }
    return types


def _max_workers(worker_types: dict[str, Any]) -> int:
    """What the worker groups may hold together: every line's instances and surge room, and
    room for a spot line's on-demand fallback."""
    return sum(group["max_workers"] for group in worker_types.values())


def _check(plan: Plan, provider: Provider) -> None:
    if not plan.fleet:
        raise QuantplanError(
            "the plan has no fleet to deploy (it is not feasible)",
            hint="re-plan with targets that can be met (`quantplan plan ...`)",
        )
    clouds = {d.instance.cloud for d in plan.fleet}
    if provider in ("aws", "gcp") and clouds != {provider}:
        raise QuantplanError(
            f"the plan's instances are on {', '.join(sorted(clouds))}, not {provider}",
            hint=f"use --provider {'/'.join(sorted(clouds))} or kuberay, or re-plan "
            f"with --cloud {provider}",
        )


def _replica_slots(deployment: Deployment) -> dict[str, int]:
    """One ``instance:<type>`` unit per replica the machine holds (a multi-GPU instance can hold
    several replicas, one per GPU subset), so the cluster rents whole instances, not replicas."""
    return {f"instance:{deployment.instance.name}": deployment.replicas_per_instance}


def _gpus_per_node(deployment: Deployment) -> int:
    return deployment.accelerator_count * deployment.replicas_per_instance


def _gpu_worker_setup(deployment: Deployment, plan: Plan) -> dict[str, list[str]]:
    """A GPU node type builds its engine's CUDA toolchain once, at setup (after quantplan is
    installed): node agents never build one inside a serve job. When the plan has GPTQ/AWQ
    artifacts to make, apply quantizes them on a GPU node (quantize_placement.py), so GPU nodes
    build llm-compressor's CUDA toolchain too. ``ray start`` on the node detects its GPUs and
    declares GPU and accelerator_type:<T> by itself."""
    from quantplan.agent.cluster.quantize_placement import gpu_quantizable
    from quantplan.agent.toolchains.specs import host_engine_toolchain, host_toolchain

    if not deployment.accelerator_count:
        return {}
    toolchains = [host_engine_toolchain(deployment.engine, gpu=True)]
    if any(gpu_quantizable(d.method) for d in plan.fleet):
        toolchains.append(host_toolchain("llmcompressor", gpu=True))
    return {"worker_setup_commands": [f"quantplan toolchain install {t}" for t in toolchains]}


def aws_config(plan: Plan, options: LauncherOptions, wheel: QuantplanWheel) -> dict[str, Any]:
    region = plan.fleet[0].instance.region
    node_types: dict[str, Any] = {
        "ray.head.default": {
            "resources": {"CPU": 0},  # the head schedules; replicas run on workers
            "node_config": {"InstanceType": options.head_instance or "m7i.large"},
        }
    }
    workers = _worker_types(
        plan,
        options,
        lambda d, spot: {
            "InstanceType": d.instance.name,
            **({"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}),
        },
    )
    node_types |= workers
    return {
        "cluster_name": _name(plan, options),
        "max_workers": _max_workers(workers),
        "provider": {
            "type": "aws",
            "region": region,
            "cache_stopped_nodes": False,
            "security_group": {
                "GroupName": f"{_name(plan, options)}-sg",
                "IpPermissions": _aws_ingress(options),
            },
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": node_types,
        "head_node_type": "ray.head.default",
        **_common(options, wheel),
    }


def _aws_ingress(options: LauncherOptions) -> list[dict[str, Any]]:
    return [
        {"FromPort": port, "ToPort": port, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": cidr}]}
        for port, cidr in ((22, options.admin_cidr), (SERVE_PORT, options.serve_cidr))
    ]


def gcp_config(plan: Plan, options: LauncherOptions, wheel: QuantplanWheel) -> dict[str, Any]:
    region = plan.fleet[0].instance.region
    node_types: dict[str, Any] = {
        "ray_head_default": {
            "resources": {"CPU": 0},
            "node_config": {"machineType": options.head_instance or "e2-standard-2"},
        }
    }
    workers = _worker_types(
        plan,
        options,
        lambda d, spot: {"machineType": d.instance.name, "scheduling": [{"preemptible": spot}]},
    )
    node_types |= workers
    return {
        "cluster_name": _name(plan, options),
        "max_workers": _max_workers(workers),
        "provider": {
            "type": "gcp",
            "region": region,
            "availability_zone": f"{region}-a",
            "project_id": options.project_id,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": node_types,
        "head_node_type": "ray_head_default",
        # GCP firewall rules are set outside the launcher: allow only 22 from the admin range
        # and the serving port from the client range (see the quantplan docs).
        **_common(options, wheel),
    }


def _common(options: LauncherOptions, wheel: QuantplanWheel) -> dict[str, Any]:
    return {
        "file_mounts": {
            "~/.ray/auth_token": options.token_path,
            f"{NODE_WHEEL_DIR}/{wheel.filename}": str(wheel.path),
        },
        "setup_commands": _node_setup_commands(wheel),
        "head_start_ray_commands": [
            "ray stop",
            f"{TOKEN_ENV} ray start --head --port=6379 --dashboard-host=127.0.0.1 "
            "--autoscaling-config=~/ray_bootstrap_config.yaml --disable-usage-stats",
        ],
        # The launcher passes each node type's `resources` to its workers' `ray start`.
        "worker_start_ray_commands": [
            "ray stop",
            f"{TOKEN_ENV} ray start --address=$RAY_HEAD_IP:6379 --disable-usage-stats",
        ],
    }


def _pip_install_dependencies(wheel: QuantplanWheel, flags: str = "") -> str:
    requirements = node_dependencies(wheel, RAY_VERSION)
    return f"pip install {flags}" + " ".join(shlex.quote(r) for r in requirements)


def _node_setup_commands(wheel: QuantplanWheel) -> list[str]:
    requirements = f"{NODE_WHEEL_DIR}/requirements.txt"
    # $HOME, not ~: a file:// URL needs an absolute path, and the shell expands it on the node.
    line = requirement_line(wheel, NODE_WHEEL_DIR.replace("~", "$HOME", 1))
    return [
        _pip_install_dependencies(wheel),
        f'echo "{line}" > {requirements}',
        f"pip install --no-deps --require-hashes -r {requirements}",
    ]


def kuberay_manifest(
    plan: Plan, options: LauncherOptions, wheel: QuantplanWheel
) -> list[dict[str, Any]]:
    name = _name(plan, options)
    wheel_map = _wheel_configmap(name, wheel)
    groups = []
    for index, deployment in enumerate(plan.fleet):
        resources = json.dumps(_replica_slots(deployment))
        gpus = _gpus_per_node(deployment)
        groups.append(
            {
                "groupName": _group(deployment, index),
                "replicas": deployment.instances,
                "minReplicas": deployment.instances,
                "maxReplicas": deployment.instances
                + surge_nodes(deployment, options.surge_percent),
                "rayStartParams": {
                    "resources": f"'{resources}'",
                    # Spot lines prefer spot-labelled nodes; which pods are spot is the
                    # cluster's node pool, chosen outside this manifest.
                    "labels": f"{MARKET_LABEL}="
                    + (SPOT if deployment.pricing == "spot" else "on-demand"),
                    **({"num-gpus": str(_gpus_per_node(deployment))} if gpus else {}),
                },
                "template": _pod(
                    {"node.kubernetes.io/instance-type": deployment.instance.name},
                    ports=[{"containerPort": SERVE_PORT, "name": "serve"}],
                    wheel=wheel,
                    wheel_map=wheel_map["metadata"]["name"],
                    gpus=gpus,
                ),
            }
        )
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "quantplan"}},
        "spec": {
            "rayVersion": RAY_VERSION,
            "authOptions": {"mode": "token"},
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "127.0.0.1", "num-cpus": "0"},
                "template": _pod(
                    {}, ports=[], wheel=wheel, wheel_map=wheel_map["metadata"]["name"]
                ),
            },
            "workerGroupSpecs": groups,
        },
    }
    # Only the serving port of worker pods is reachable, and only from the client range;
    # every other ingress to the cluster's pods is denied.
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-serve-only"},
        "spec": {
            "podSelector": {"matchLabels": {"ray.io/cluster": name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"ray.io/cluster": name}}}]},
                {
                    "from": [{"ipBlock": {"cidr": options.serve_cidr}}],
                    "ports": [{"protocol": "TCP", "port": SERVE_PORT}],
                },
            ],
        },
    }
    return [wheel_map, cluster, policy]


def _wheel_configmap(name: str, wheel: QuantplanWheel) -> dict[str, Any]:
    """The wheel itself, inside the manifest: pods need no index and no registry to get it."""
    size = wheel.path.stat().st_size
    if size > CONFIGMAP_MAX_WHEEL_BYTES:
        raise WheelError(
            f"the wheel {wheel.filename} is {size:,} bytes; a Kubernetes ConfigMap holds "
            f"{CONFIGMAP_MAX_WHEEL_BYTES:,} at most once base64-encoded",
            hint=f"bake it into an image FROM {RAY_IMAGE} and set that image in the manifest",
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{name}-quantplan-wheel"[:63],
            "labels": {"app.kubernetes.io/managed-by": "quantplan"},
        },
        "data": {"requirements.txt": requirement_line(wheel, POD_WHEEL_DIR) + "\n"},
        "binaryData": {wheel.filename: base64.b64encode(wheel.path.read_bytes()).decode()},
    }


def _install_init_container(wheel: QuantplanWheel) -> dict[str, Any]:
    """Installs the wheel (hash-checked) and its missing requirements into the pod's user site.

    ``pip --user`` resolves against the image's own packages (Ray is already there), so only
    what the image lacks lands in the emptyDir; the ray container reads it via PYTHONUSERBASE.
    """
    script = "\n".join(
        [
            "set -euo pipefail",
            _pip_install_dependencies(wheel, "--user "),
            f"pip install --user --no-deps --require-hashes -r {POD_WHEEL_DIR}/requirements.txt",
        ]
    )
    return {
        "name": "install-quantplan",
        "image": RAY_IMAGE,
        "command": ["bash", "-c", script],
        "env": [{"name": "PYTHONUSERBASE", "value": POD_USER_BASE}],
        "volumeMounts": [
            {"name": "quantplan-wheel", "mountPath": POD_WHEEL_DIR, "readOnly": True},
            {"name": "quantplan-site", "mountPath": POD_USER_BASE},
        ],
    }


def _pod(
    node_selector: dict[str, str],
    ports: list[dict[str, Any]],
    wheel: QuantplanWheel,
    wheel_map: str,
    gpus: int = 0,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "ray",
        "image": RAY_IMAGE,
        "env": [{"name": "PYTHONUSERBASE", "value": POD_USER_BASE}],
        "volumeMounts": [{"name": "quantplan-site", "mountPath": POD_USER_BASE, "readOnly": True}],
    }
    if gpus:
        # The pod gets exactly the instance's GPUs; Ray in it declares them (num-gpus) and
        # detects their accelerator_type. The image must carry the CUDA toolchain: pods have
        # no setup step to build it in.
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    if ports:
        container["ports"] = ports
    spec: dict[str, Any] = {
        "initContainers": [_install_init_container(wheel)],  # its own copy: no YAML anchors
        "containers": [container],
        "volumes": [
            {"name": "quantplan-wheel", "configMap": {"name": wheel_map}},
            {"name": "quantplan-site", "emptyDir": {}},
        ],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"spec": spec}


def _header(plan: Plan, provider: Provider, wheel: QuantplanWheel) -> str:
    """Comments on top of the file: where quantplan on the nodes comes from, and how to check."""
    if provider == "kuberay":
        how = [
            "The ConfigMap below carries this wheel; each pod's init container installs it with",
            "`pip install --user --no-deps --require-hashes` into an emptyDir that the ray",
            f"container uses as its Python user site (PYTHONUSERBASE={POD_USER_BASE}).",
            f"Ray comes from the image {RAY_IMAGE}.",
        ]
    else:
        how = [
            f"file_mounts copies it to {NODE_WHEEL_DIR}/ on every node before setup_commands,",
            "which install it with `pip install --no-deps --require-hashes`: pip refuses any",
            "other bytes. Keep the file at the path above until `ray up` has run.",
            f"Ray is pinned by version (ray[default]=={RAY_VERSION}), not by hash: its wheels",
            "differ per platform.",
        ]
    lines = [
        f"Written by `quantplan cluster config --provider {provider}` for the {plan.model} plan.",
        "quantplan is installed on the nodes from a wheel built on this machine, never by",
        "name from a package index (whoever registers the name there would run code here):",
        f"  {wheel.path}",
        f"  sha256 {wheel.sha256} (quantplan {wheel.version})",
        *how,
        "quantplan's other requirements come from your package index within the bounds its",
        "metadata declares; add a constraints file to pin them further.",
    ]
    return "".join(f"# {line}\n" for line in lines)


def resolve_wheel(options: LauncherOptions) -> QuantplanWheel:
    """The wheel given with ``--wheel``, or one built from this checkout."""
    return load_wheel(options.wheel) if options.wheel is not None else build_wheel()


def cluster_config(plan: Plan, provider: Provider, options: LauncherOptions | None = None) -> str:
    """The config file text for ``provider``, with quantplan shipped as a hash-pinned wheel."""
    options = options or LauncherOptions()
    _check(plan, provider)
    wheel = resolve_wheel(options)
    header = _header(plan, provider, wheel)
    if provider == "aws":
        return header + dump_yaml(aws_config(plan, options, wheel), sort_keys=False)
    if provider == "gcp":
        return header + dump_yaml(gcp_config(plan, options, wheel), sort_keys=False)
    return header + dump_yaml_all(kuberay_manifest(plan, options, wheel), sort_keys=False)
