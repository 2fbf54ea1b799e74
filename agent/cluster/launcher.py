"""``quantplan cluster config``: a Ray cluster-launcher YAML (AWS, GCP) or a KubeRay manifest.

Node types and counts come from the plan's fleet: one worker type per deployment, as many
workers as replicas, each declaring ``instance:<type>`` so the node agents and ``apply`` match
them the same way as on a local cluster. Security defaults follow Ray's own advice (anyone who
reaches a Ray port can run code): token authentication on, the dashboard on 127.0.0.1, and no
inbound ports besides SSH for the launcher (from one admin range) and the serving port (from one
client range). Nothing is opened to 0.0.0.0/0 unless those ranges are set to it explicitly.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from quantplan.planner.plan import Deployment, Plan

from quantplan.errors import QuantplanError

Provider = Literal["aws", "gcp", "kuberay"]
RAY_VERSION = "2.60.0"
RAY_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311"
SERVE_PORT = 8000
TOKEN_ENV = "RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=~/.ray/auth_token"


class LauncherOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    admin_cidr: str = Field(default="10.0.0.0/8", description="Who may SSH to the nodes")
    serve_cidr: str = Field(default="10.0.0.0/8", description="Who may call the serving port")
    head_instance: str | None = Field(default=None, description="Head node type (small default)")
    cluster_name: str | None = None
    project_id: str = Field(default="YOUR_GCP_PROJECT", description="GCP project")
    token_path: str = Field(default="~/.ray/auth_token", description="Local Ray token file")


def _name(plan: Plan, options: LauncherOptions) -> str:
    base = options.cluster_name or f"quantplan-{plan.model}"
    return "".join(c if c.isalnum() else "-" for c in base.lower()).strip("-")[:50]


def _group(deployment: Deployment, index: int) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in deployment.instance.name.lower())
    return f"qp-{index}-{slug}"[:60]


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


def aws_config(plan: Plan, options: LauncherOptions) -> dict[str, Any]:
    region = plan.fleet[0].instance.region
    node_types: dict[str, Any] = {
        "ray.head.default": {
            "resources": {"CPU": 0},  # the head schedules; replicas run on workers
            "node_config": {"InstanceType": options.head_instance or "m7i.large"},
        }
    }
    for index, deployment in enumerate(plan.fleet):
        node_types[_group(deployment, index)] = {
            "min_workers": deployment.instances,
            "max_workers": deployment.instances,
            "resources": _replica_slots(deployment),
            "node_config": {
                "InstanceType": deployment.instance.name,
                **(
                    {"InstanceMarketOptions": {"MarketType": "spot"}}
                    if deployment.pricing == "spot"
                    else {}
                ),
            },
        }
    return {
        "cluster_name": _name(plan, options),
        "max_workers": sum(d.instances for d in plan.fleet),
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
        **_common(plan, options),
    }


def _aws_ingress(options: LauncherOptions) -> list[dict[str, Any]]:
    return [
        {"FromPort": port, "ToPort": port, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": cidr}]}
        for port, cidr in ((22, options.admin_cidr), (SERVE_PORT, options.serve_cidr))
    ]


def gcp_config(plan: Plan, options: LauncherOptions) -> dict[str, Any]:
    region = plan.fleet[0].instance.region
    node_types: dict[str, Any] = {
        "ray_head_default": {
            "resources": {"CPU": 0},
            "node_config": {"machineType": options.head_instance or "e2-standard-2"},
        }
    }
    for index, deployment in enumerate(plan.fleet):
        node_types[_group(deployment, index)] = {
            "min_workers": deployment.instances,
            "max_workers": deployment.instances,
            "resources": _replica_slots(deployment),
            "node_config": {
                "machineType": deployment.instance.name,
                "scheduling": [{"preemptible": deployment.pricing == "spot"}],
            },
        }
    return {
        "cluster_name": _name(plan, options),
        "max_workers": sum(d.instances for d in plan.fleet),
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
        **_common(plan, options),
    }


def _common(plan: Plan, options: LauncherOptions) -> dict[str, Any]:
    return {
        "file_mounts": {"~/.ray/auth_token": options.token_path},
        "setup_commands": [f"pip install 'ray[default]=={RAY_VERSION}' quantplan"],
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


def kuberay_manifest(plan: Plan, options: LauncherOptions) -> list[dict[str, Any]]:
    name = _name(plan, options)
    groups = []
    for index, deployment in enumerate(plan.fleet):
        resources = json.dumps(_replica_slots(deployment))
        groups.append(
            {
                "groupName": _group(deployment, index),
                "replicas": deployment.instances,
                "minReplicas": deployment.instances,
                "maxReplicas": deployment.instances,
                "rayStartParams": {"resources": f"'{resources}'"},
                "template": _pod(
                    {"node.kubernetes.io/instance-type": deployment.instance.name},
                    ports=[{"containerPort": SERVE_PORT, "name": "serve"}],
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
                "template": _pod({}, ports=[]),
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
    return [cluster, policy]


def _pod(node_selector: dict[str, str], ports: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "ray", "image": RAY_IMAGE}
    if ports:
        container["ports"] = ports
    spec: dict[str, Any] = {"containers": [container]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"spec": spec}


def cluster_config(plan: Plan, provider: Provider, options: LauncherOptions | None = None) -> str:
    """The config file text for ``provider``."""
    options = options or LauncherOptions()
    _check(plan, provider)
    if provider == "aws":
        return yaml.safe_dump(aws_config(plan, options), sort_keys=False)
    if provider == "gcp":
        return yaml.safe_dump(gcp_config(plan, options), sort_keys=False)
    return yaml.safe_dump_all(kuberay_manifest(plan, options), sort_keys=False)
