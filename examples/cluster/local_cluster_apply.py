"""Plan the default model, bring up a local 3-node Ray cluster, apply the plan, read the costs.

    python examples/cluster/local_cluster_apply.py [--keep] [--engine both|vllm|llama.cpp|planned]

What happens:
1. the planner picks CPU deployments for SmolLM2-135M-Instruct on AWS instance types; by
   default (`both`) the targets of `local-demo-targets.yaml`, which ask the fleet for one vLLM
   and one llama.cpp replica;
2. a local cluster starts: a head plus one worker per instance the plan needs (each worker
   declares the instance type it stands for; all on 127.0.0.1, token auth on);
3. `apply` quantizes once if needed, starts the replicas on matching nodes, benchmarks them,
   prints cost per token, compares with the prediction and proposes a re-plan when off;
4. without --keep, the replicas and the cluster are stopped at the end.

The local machine only stands in for the instance types: the measured speed is this machine's,
the price is the instance's catalog price, and the report says so.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from quantplan.agent.cluster.apply import ApplyOptions, apply_plan
from quantplan.agent.cluster.fleet_ops import destroy
from quantplan.agent.cluster.local import cluster_down, cluster_up, load_state
from quantplan.catalog.db import open_catalog
from quantplan.catalog.snapshot import load_snapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.plan import Plan, save_plan
from quantplan.planner.targets import Targets, load_targets

DEMO_TARGETS = Path(__file__).with_name("local-demo-targets.yaml")


def plan_default_model(engine: str) -> Plan:
    snapshot = load_snapshot(open_catalog())
    if engine == "both":
        plan = make_plan(load_targets(DEMO_TARGETS), snapshot)
        if not plan.feasible:
            raise SystemExit(f"no plan: {plan.summary}")
        return plan
    targets = Targets.model_validate(
        {
            "model": "SmolLM2-135M-Instruct",
            "workload": {"input_tokens": 64, "output_tokens": 32, "requests_per_s": 1},
            "constraints": {"device": "cpu", "clouds": ["aws"], "allow_mixed_fleet": False},
        }
    )
    plan = make_plan(targets, snapshot)
    if engine == "planned":
        return plan
    # Take the best option of the asked engine, on one replica (this machine has 2 cores).
    options = [d for d in (plan.choice, *plan.alternatives) if d is not None and d.engine == engine]
    chosen = options[0].model_copy(update={"replicas": 1})
    return plan.model_copy(update={"choice": chosen, "fleet": (chosen,)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument(
        "--engine", default="both", choices=["both", "vllm", "llama.cpp", "planned"]
    )
    args = parser.parse_args()

    plan = plan_default_model(args.engine)
    plan_path = Path(tempfile.gettempdir()) / "quantplan-example-plan.yaml"
    save_plan(plan, plan_path)
    print(f"plan: {' + '.join(d.label for d in plan.fleet)} -> {plan_path}")

    started_here = load_state() is None
    if started_here:
        types = {}
        for deployment in plan.fleet:
            types[deployment.instance.name] = types.get(deployment.instance.name, 0) + 1
        # One spare node of the first type: a job can move there if a node is lost.
        first = plan.fleet[0].instance.name
        types[first] += 1
        spec = ",".join(f"{name}:{count}" for name, count in types.items())
        state = cluster_up(spec)
        print(f"local cluster at {state.address}: {spec}")
    try:
        outcome = apply_plan(plan_path, options=ApplyOptions(name="example"))
        print(outcome)
        for replica_id, url in outcome.endpoints.items():
            print(f"  {replica_id}: {url}/v1 (OpenAI-compatible)")
        for m in outcome.measurements:
            print(
                f"  {m.replica_id}: {m.output_tokens_per_s:.1f} output tok/s at concurrency "
                f"{m.concurrency}, ${m.usd_per_million_tokens or 0:.4f}/M tokens "
                f"at ${m.usd_per_hour}/h"
            )
        for c in outcome.comparisons:
            print(
                f"  {c.metric}: predicted {c.predicted:g} (c={c.predicted_concurrency}), "
                f"measured {c.measured:g} (c={c.measured_concurrency}), {c.error_pct:+.0f}%"
            )
        if outcome.replan and outcome.replan.path:
            print(f"re-plan proposed: {' + '.join(outcome.replan.proposed)}")
    finally:
        if not args.keep:
            destroy("example")
            if started_here:
                cluster_down()


if __name__ == "__main__":
    main()
