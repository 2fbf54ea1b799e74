"""Cost per token of a live fleet, folded from the event log as the dashboard folds it."""

from __future__ import annotations

from quantplan.agent.cluster.events import CostEvent, EventBus, ReplicaEvent
from quantplan.services import fleet_costs


def test_costs_come_from_the_latest_cost_events() -> None:
    bus = EventBus()
    bus.publish(ReplicaEvent(plan_id="p", replica_id="r1", engine="vllm", scheme="awq",
                             node_id="n", instance_type="c7i.xlarge", state="healthy"))  # fmt: skip
    for usd in (0.9, 0.4):  # the later measurement wins
        bus.publish(CostEvent(scope="replica", key="r1", plan_id="p", output_tokens_per_s=50,
                              total_tokens_per_s=80, usd_per_hour=0.2,
                              usd_per_million_tokens=usd))  # fmt: skip
    bus.publish(CostEvent(scope="plan", key="p", plan_id="p", output_tokens_per_s=50,
                          total_tokens_per_s=80, usd_per_hour=0.2, usd_per_million_tokens=0.4,
                          predicted_usd_per_million_tokens=0.35))  # fmt: skip
    costs = {(c.scope, c.key): c for c in fleet_costs(bus, limit=2)}  # several pages
    assert costs[("replica", "r1")].usd_per_million_tokens == 0.4
    assert costs[("plan", "p")].predicted_usd_per_million_tokens == 0.35
