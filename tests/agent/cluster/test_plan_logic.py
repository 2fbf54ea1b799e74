"""Pure logic of applying plans: refusals, replica naming and diffs, cost and error arithmetic,
and the launcher configs' security defaults. No Ray, no engines."""

from __future__ import annotations

import pytest
import yaml
from plans import default_model_plan
from quantplan.agent.cluster.deployment_state import (
    DeploymentState,
    ReplicaRecord,
    diff,
    plan_hash,
    replica_specs,
)
from quantplan.agent.cluster.launcher import LauncherOptions, cluster_config
from quantplan.agent.cluster.measure import (
    ReplicaMeasurement,
    compare,
    cost_by_node,
    cost_line,
    usd_per_million,
)
from quantplan.agent.cluster.validation import plan_refusals

from quantplan.errors import QuantplanError


def test_plan_that_cannot_fit_is_refused_with_every_reason() -> None:
    original = default_model_plan()
    bigger = original.fleet[0].model_copy(update={"replicas": 3})
    plan = original.model_copy(update={"fleet": (bigger,)})
    reasons = plan_refusals(plan, ["c7i.xlarge", "c7i.large"], built_toolchains=set())
    assert any("3 node(s) of c7i.xlarge; the cluster has 1 alive" in r for r in reasons)
    assert any("toolchain llama-cpp is not installed" in r for r in reasons)
    assert plan_refusals(original, ["c7i.xlarge"]) == []


def test_infeasible_plan_is_refused() -> None:
    plan = default_model_plan().model_copy(update={"feasible": False, "fleet": ()})
    assert "not feasible" in plan_refusals(plan, ["c7i.xlarge"])[0]


def test_same_plan_gives_same_replicas_and_an_empty_diff() -> None:
    plan = default_model_plan()
    wanted = replica_specs(plan, "demo")
    assert [s.replica_id for s in wanted] == [s.replica_id for s in replica_specs(plan, "demo")]
    state = DeploymentState(
        name="demo",
        plan_hash=plan_hash(plan),
        replicas={
            s.replica_id: ReplicaRecord(
                spec=s,
                node_id="n",
                base_url="http://127.0.0.1:1",
                served_model="m",
                pid=1,
                artifact_path="/a",
            )
            for s in wanted
        },
    )
    alive = set(state.replicas)
    assert diff(wanted, state, alive).unchanged
    # A replica that stopped answering is started again; a plan with one more is a diff of one.
    assert len(diff(wanted, state, set()).add) == len(wanted)
    grown = plan.model_copy(update={"fleet": (plan.fleet[0].model_copy(update={"replicas": 2}),)})
    grown_diff = diff(replica_specs(grown, "demo"), state, alive)
    assert [s.replica_id for s in grown_diff.add] == [wanted[0].replica_id[:-1] + "2"]
    assert grown_diff.describe()[0].startswith("+ ")
    assert plan_hash(grown) != plan_hash(plan)


def measurement(replica: str, node: str, tps: float, total: float) -> ReplicaMeasurement:
    return ReplicaMeasurement(
        replica_id=replica,
        node_id=node,
        instance_type="c7i.xlarge",
        scheme="gguf-f16",
        engine="llama.cpp",
        usd_per_hour=0.18,
        concurrency=4,
        output_tokens_per_s=tps,
        total_tokens_per_s=total,
        ttft_p95_ms=200.0,
        run_id=f"run-{replica}",
    )


def test_cost_per_token_per_replica_node_and_plan() -> None:
    assert usd_per_million(0.18, 0) is None
    assert usd_per_million(3.6, 1000) == pytest.approx(1.0)
    replicas = [measurement("a", "n1", 50, 150), measurement("b", "n2", 25, 75)]
    assert replicas[0].usd_per_million_output_tokens == pytest.approx(0.18 / (50 * 3600) * 1e6)
    plan = cost_line("plan", replicas)
    assert plan.usd_per_hour == pytest.approx(0.36)
    assert plan.usd_per_million_tokens == pytest.approx(0.36 / (225 * 3600) * 1e6)
    assert [line.key for line in cost_by_node(replicas)] == ["n1", "n2"]


def test_predicted_vs_measured_errors() -> None:
    deployment = default_model_plan().fleet[0]
    predicted = deployment.metrics.output_tokens_per_s.value
    rows = {c.metric: c for c in compare(deployment, [measurement("a", "n1", predicted / 2, 1)])}
    assert rows["output_tokens_per_s"].error_pct == pytest.approx(-50.0)
    assert rows["usd_per_million_output_tokens"].error_pct == pytest.approx(100.0)
    assert compare(deployment, []) == []


@pytest.mark.parametrize("provider", ["aws", "gcp", "kuberay"])
def test_launcher_configs_come_from_the_plan_and_open_nothing_extra(provider: str) -> None:
    plan = default_model_plan()
    if provider == "gcp":
        with pytest.raises(QuantplanError, match="not gcp"):
            cluster_config(plan, "gcp")
        return
    text = cluster_config(plan, provider, LauncherOptions())  # type: ignore[arg-type]
    assert "0.0.0.0/0" not in text and "0.0.0.0 " not in text
    documents = list(yaml.safe_load_all(text))
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
        cluster, policy = documents
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


def test_launcher_refuses_an_infeasible_plan() -> None:
    plan = default_model_plan().model_copy(update={"fleet": ()})
    with pytest.raises(QuantplanError, match="no fleet"):
        cluster_config(plan, "kuberay")


def test_catalog_schemes_map_to_quantizer_options() -> None:
    from quantplan.agent.cluster.jobs import quantize_options_for_scheme

    assert quantize_options_for_scheme("gguf", "gguf-q4_k_m")["type"] == "Q4_K_M"
    assert quantize_options_for_scheme("awq", "awq-w4a16-g64") == {
        "scheme": "W4A16",
        "group_size": 64,
    }
    with pytest.raises(QuantplanError, match="do not know how"):
        quantize_options_for_scheme("gptq", "gptq-fp8")


def test_launcher_rents_instances_not_replicas_when_a_machine_holds_several() -> None:
    """A multi-GPU instance holding 4 replicas is one worker node with 4 replica slots."""
    plan = default_model_plan()
    packed = plan.fleet[0].model_copy(
        update={"replicas": 8, "instances": 2, "replicas_per_instance": 4}
    )
    plan = plan.model_copy(update={"fleet": (packed,)})
    config = yaml.safe_load(cluster_config(plan, "aws", LauncherOptions()))
    (workers,) = [t for n, t in config["available_node_types"].items() if n.startswith("qp-")]
    assert workers["min_workers"] == workers["max_workers"] == 2
    assert workers["resources"] == {f"instance:{packed.instance.name}": 4}
    assert config["max_workers"] == 2
