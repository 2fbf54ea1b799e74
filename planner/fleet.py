"""Mixed fleets: how many replicas of which deployments, solved as a MILP (SciPy's HiGHS).

Variables: ``x_t`` units (instances) of each deployment type ``t`` (integer; a unit holds one
or more replicas), and ``y_t`` (binary, only
when the number of distinct types is capped). Minimise the hourly price subject to: capacity
covers peak requests/s (and the output-throughput floor); on-demand replicas alone cover
``1 - max_spot_fraction`` of peak; at most ``max_replicas`` replicas; at most ``max_types``
types; at least one unit on each required engine; an optional hourly budget. Types dominated
on (price, capacity) are dropped first -- replacing a dominated type by its dominator (of the
same engine, when engines are required) never costs more nor breaks a constraint -- so the
pruning keeps the optimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quantplan.planner.cost import CAPACITY_TOLERANCE


@dataclass(frozen=True)
class FleetType:
    """One deployment type the fleet may use."""

    key: tuple[int, int, int]
    usd_per_hour: float  # one unit (instance)
    requests_per_s: float  # one unit, all its replicas
    spot: bool
    replicas: int = 1  # replicas one unit holds
    engine: str = ""  # serving engine, for fleets that must include given engines


@dataclass(frozen=True)
class FleetSolution:
    """Replicas per type (only types with replicas), and the hourly price."""

    counts: tuple[tuple[FleetType, int], ...]
    usd_per_hour: float

    @property
    def replicas(self) -> int:
        return sum(n * t.replicas for t, n in self.counts)

    @property
    def requests_per_s(self) -> float:
        return sum(t.requests_per_s * n for t, n in self.counts)


def prune_dominated(types: Sequence[FleetType], *, per_engine: bool = False) -> list[FleetType]:
    """Drop types another with the same replicas per unit beats on price and capacity
    (on-demand types only by on-demand ones). With ``per_engine`` only a type of the same
    engine may dominate: a fleet that must include an engine keeps that engine's best types."""
    kept: list[FleetType] = []
    groups = sorted({(t.replicas, t.engine if per_engine else "") for t in types})
    for size, engine in groups:
        kept += _prune_same_size(
            [t for t in types if t.replicas == size and (not per_engine or t.engine == engine)]
        )
    order = {t.key: k for k, t in enumerate(types)}
    return sorted(kept, key=lambda t: order[t.key])


def _prune_same_size(types: Sequence[FleetType]) -> list[FleetType]:
    def sweep(pool: Sequence[FleetType]) -> set[tuple[int, int, int]]:
        kept: set[tuple[int, int, int]] = set()
        best = -np.inf
        for t in sorted(pool, key=lambda t: (t.usd_per_hour, -t.requests_per_s, t.key)):
            if t.requests_per_s > best:
                kept.add(t.key)
                best = t.requests_per_s
        return kept

    on_demand = [t for t in types if not t.spot]
    spot_keys = {t.key for t in types if t.spot}
    keep = sweep(on_demand) | (sweep(types) & spot_keys)
    return [t for t in types if t.key in keep]


def _satisfies(
    counts: np.ndarray, types: Sequence[FleetType], demand: float, on_demand_demand: float
) -> bool:
    capacity = sum(n * t.requests_per_s for n, t in zip(counts, types, strict=True))
    od = sum(n * t.requests_per_s for n, t in zip(counts, types, strict=True) if not t.spot)
    slack = 1 - CAPACITY_TOLERANCE
    return capacity >= demand * slack and od >= on_demand_demand * slack


def solve_mixed_fleet(
    types: Sequence[FleetType],
    demand_requests_per_s: float,
    *,
    max_replicas: int,
    max_types: int,
    max_spot_fraction: float = 1.0,
    max_usd_per_hour: float | None = None,
    required_engines: Sequence[str] = (),
    time_limit_s: float = 10.0,
) -> FleetSolution | None:
    """The cheapest integer fleet over ``types`` meeting the demand, or None if none exists."""
    # SciPy's optimizer package takes about a second to import: only when a fleet is solved.
    from scipy.optimize import Bounds, LinearConstraint, milp

    types = list(types)
    n = len(types)
    if n == 0 or demand_requests_per_s <= 0:
        return None
    price = np.array([t.usd_per_hour for t in types])
    capacity = np.array([t.requests_per_s for t in types])
    on_demand = np.array([0.0 if t.spot else t.requests_per_s for t in types])
    demand = demand_requests_per_s * (1 - CAPACITY_TOLERANCE)
    od_demand = (1 - max_spot_fraction) * demand_requests_per_s
    use_binaries = max_types < n
    width = 2 * n if use_binaries else n
    cost = np.concatenate([price, np.zeros(width - n)])
    rows: list[np.ndarray] = []
    lower: list[float] = []
    upper: list[float] = []

    def add(row: np.ndarray, lo: float, hi: float) -> None:
        rows.append(row)
        lower.append(lo)
        upper.append(hi)

    pad = np.zeros(width - n)
    add(np.concatenate([capacity, pad]), demand, np.inf)
    if od_demand > 0:
        add(np.concatenate([on_demand, pad]), od_demand * (1 - CAPACITY_TOLERANCE), np.inf)
    replicas = np.array([float(t.replicas) for t in types])
    add(np.concatenate([replicas, pad]), 0, max_replicas)
    # No optimal fleet holds more units of a type than it takes to carry the demand alone:
    # one unit fewer would still cover capacity (and on-demand share) at a lower price. The
    # tight bound keeps the big-M rows below strong.
    needed_alone = np.ceil(demand_requests_per_s / capacity)
    units = np.minimum(np.floor(max_replicas / replicas), needed_alone)
    upper_bounds = np.concatenate([units, np.ones(width - n)])
    if max_usd_per_hour is not None:
        add(np.concatenate([price, pad]), -np.inf, max_usd_per_hour * (1 + 1e-12))
    for engine in sorted(set(required_engines)):
        on_engine = np.array([1.0 if t.engine == engine else 0.0 for t in types])
        if not on_engine.any():
            return None
        add(np.concatenate([on_engine, pad]), 1, np.inf)
    if use_binaries:
        for k in range(n):  # x_k <= max_replicas * y_k
            row = np.zeros(width)
            row[k], row[n + k] = 1.0, -float(upper_bounds[k])
            add(row, -np.inf, 0)
        add(np.concatenate([np.zeros(n), np.ones(n)]), 0, max_types)
    margin = 0.0
    for _ in range(3):  # tighten if HiGHS's tolerance lets capacity fall a hair short
        lower[0] = demand * (1 + margin)
        result = milp(
            c=cost,
            integrality=np.ones(width),
            bounds=Bounds(np.zeros(width), upper_bounds),
            constraints=LinearConstraint(np.array(rows), np.array(lower), np.array(upper)),
            options={"mip_rel_gap": 0.0, "time_limit": time_limit_s, "presolve": True},
        )
        if result.x is None or result.status not in (0,):
            return None
        counts = np.rint(result.x[:n]).astype(np.int64)
        if _satisfies(counts, types, demand_requests_per_s, od_demand):
            chosen = tuple((types[k], int(counts[k])) for k in range(n) if counts[k] > 0)
            return FleetSolution(chosen, float(price @ counts))
        margin += 1e-7
    return None
