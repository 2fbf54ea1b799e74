"""Closing the loop: when measurements miss the plan's predictions, plan again with them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from quantplan.agent.cluster import deployment_state as states
from quantplan.agent.cluster.measure import MetricComparison
from quantplan.planner.plan import Plan, save_plan


class ReplanProposal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str
    current: list[str]
    proposed: list[str]
    path: str | None = None
    applied: bool = False


def misses(comparisons: list[MetricComparison], threshold_pct: float) -> list[MetricComparison]:
    """The predictions that measurements missed by more than ``threshold_pct``."""
    return [c for c in comparisons if c.off_by > threshold_pct]


def propose_replan(
    plan: Plan, missed: list[MetricComparison], database_url: str, name: str
) -> tuple[ReplanProposal, Plan | None]:
    """Plan the same targets on the catalog as it is now (with this apply's profiles in).

    Returns the proposal and the new plan, or None when planning again changes nothing.
    A different plan is saved next to the deployment state as ``<name>.proposed.yaml``.
    """
    from quantplan.catalog.db import current_revision, open_catalog
    from quantplan.catalog.snapshot import load_snapshot
    from quantplan.planner.decide import make_plan

    reason = "; ".join(
        f"{c.deployment} {c.metric}: predicted {c.predicted:g}, measured {c.measured:g} "
        f"({c.error_pct:+.0f}%)"
        for c in missed
    )
    engine = open_catalog(database_url)
    new_plan = make_plan(
        plan.targets, load_snapshot(engine), catalog_revision=current_revision(engine)
    )
    current = [d.label for d in plan.fleet]
    proposed = [d.label for d in new_plan.fleet]
    if states.plan_hash(new_plan) == states.plan_hash(plan) or proposed == current:
        return ReplanProposal(reason=reason, current=current, proposed=proposed), None
    path = Path(states.states_dir()) / f"{name}.proposed.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_plan(new_plan, path)
    return ReplanProposal(
        reason=reason, current=current, proposed=proposed, path=str(path)
    ), new_plan
