"""Which nodes a plan line's replicas may take: spot lines spot first, then on-demand (the
plan's fallback); on-demand lines never spot. Pure logic; the real cluster test is
``test_endpoint.py::test_a_spot_replica_whose_node_is_taken_back_is_replaced_on_demand``."""

from __future__ import annotations

from plans import default_model_plan

from quantplan.agent.cluster.endpoint_app import EngineReplicaConfig, placement_detail
from quantplan.agent.cluster.naming import MARKET_LABEL, NodeOffer, market_placement, node_offer
from quantplan.agent.cluster.validation import cluster_refusals
from quantplan.agent.serve.engine import ServeOptions


def test_spot_lines_ask_for_spot_and_fall_back_and_on_demand_lines_never_take_spot() -> None:
    assert market_placement("spot") == {
        "label_selector": {MARKET_LABEL: "spot"},
        "fallback_strategy": [{"label_selector": {MARKET_LABEL: "!spot"}}],
    }
    assert market_placement("on_demand") == {"label_selector": {MARKET_LABEL: "!spot"}}


def test_a_node_is_spot_only_when_its_label_says_so() -> None:
    resources = {"instance:c7i.xlarge": 1.0}
    assert node_offer(resources, {MARKET_LABEL: "spot"}).spot  # type: ignore[union-attr]
    assert not node_offer(resources, {MARKET_LABEL: "on-demand"}).spot  # type: ignore[union-attr]
    assert not node_offer(resources).spot  # type: ignore[union-attr]
    assert (
        NodeOffer(instance_type="c7i.xlarge", spot=True).describe() == "c7i.xlarge (no GPU, spot)"
    )


def test_an_on_demand_line_is_refused_a_cluster_of_spot_nodes_and_a_spot_line_is_not() -> None:
    plan = default_model_plan()
    line = plan.fleet[0]
    spot_nodes = [NodeOffer(instance_type=line.instance.name, spot=True)] * line.instances
    (reason,) = cluster_refusals(plan, spot_nodes)
    assert f"need {line.instances} on-demand node(s) of {line.instance.name}" in reason
    spot_plan = plan.model_copy(update={"fleet": (line.model_copy(update={"pricing": "spot"}),)})
    assert cluster_refusals(spot_plan, spot_nodes) == []
    on_demand_nodes = [NodeOffer(instance_type=line.instance.name)] * line.instances
    assert cluster_refusals(spot_plan, on_demand_nodes) == []  # its fallback


def test_a_spot_replica_says_whether_it_runs_on_spot_or_as_the_fallback() -> None:
    config = EngineReplicaConfig(
        deployment="d",
        engine="llama.cpp",
        instance_type="c7i.xlarge",
        artifact_path="/m.gguf",
        options=ServeOptions(served_name="m"),
        note_prefix="n-",
        plan_id="p",
        scheme="gguf-q4_k_m",
        pricing="spot",
    )
    assert placement_detail(config, {MARKET_LABEL: "spot"}) == "on a spot c7i.xlarge node"
    assert placement_detail(config, {}).startswith("spot fallback: on an on-demand c7i.xlarge")
    on_demand = config.model_copy(update={"pricing": "on_demand"})
    assert placement_detail(on_demand, {MARKET_LABEL: "spot"}) == ""


def test_a_changed_line_surges_onto_the_spare_nodes_of_its_type_only() -> None:
    from quantplan.agent.cluster.endpoint import surge_percents

    plan = default_model_plan()
    line = plan.fleet[0].model_copy(update={"replicas": 4, "instances": 4})
    kind = line.instance.name
    one_line = plan.model_copy(update={"fleet": (line,)})
    nodes = [NodeOffer(instance_type=kind)] * 5
    assert surge_percents(one_line, nodes) == [25]  # one spare node: one of four replicas
    assert surge_percents(one_line, nodes * 2) == [100]  # as many spare as replicas
    assert surge_percents(one_line, nodes[:4]) == [0]  # none spare: an old one stops first
    spot_nodes = [NodeOffer(instance_type=kind, spot=True)] * 3
    assert surge_percents(one_line, nodes[:4] + spot_nodes) == [0]  # on-demand never on spot
    spot_line = line.model_copy(update={"pricing": "spot"})
    spot_plan = plan.model_copy(update={"fleet": (spot_line,)})
    assert surge_percents(spot_plan, nodes[:4] + spot_nodes) == [75]
    # Two lines of one type share the spare nodes.
    two = plan.model_copy(update={"fleet": (line, line)})
    assert surge_percents(two, [NodeOffer(instance_type=kind)] * 10) == [25, 25]
