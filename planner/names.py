"""Names in targets matched against the catalog: case-insensitively, with "did you mean".

A typo in a filter (``--instance G6.xlarge``, ``--hardware l4``) used to rule out every candidate
and come back as an "infeasible" plan. Names are resolved here, before planning: an exact match
in another case is replaced by the catalog's spelling, anything else is an error with the
nearest names. Clouds and regions are matched where the prices are read (candidates.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.errors import UnknownNameError, near_misses
from quantplan.planner.targets import Targets

FLAG_OF_LIST = {
    "instance_allow": "--instance",
    "instance_deny": "--exclude-instance",
    "accelerator_allow": "--hardware",
    "accelerator_deny": "--exclude-hardware",
    "engines": "--engine",
    "required_engines": "--require-engine",
}
"""The constraint lists holding catalog names, and the flag that fills each."""


def canonical_name(what: str, name: str, known: Iterable[str]) -> str:
    """``name`` as the catalog spells it (case-insensitive), or UnknownNameError with hints."""
    spelled = {k.lower(): k for k in known}
    if name in spelled.values():
        return name
    try:
        return spelled[name.lower()]
    except KeyError:
        raise UnknownNameError(what, name, spelled.values()) from None


def canonical_targets(targets: Targets, snapshot: CatalogSnapshot) -> Targets:
    """``targets`` with the model and every name filter spelled as the catalog spells them."""
    update: dict[str, object] = {}
    if isinstance(targets.model, str):
        model = canonical_name("model", targets.model, snapshot.model_by_name)
        if model != targets.model:
            update["model"] = model
    known = {
        "instance_allow": ("instance type", {i.name for i in snapshot.instances}),
        "instance_deny": ("instance type", {i.name for i in snapshot.instances}),
        "accelerator_allow": ("hardware", snapshot.hardware_by_name),
        "accelerator_deny": ("hardware", snapshot.hardware_by_name),
        "engines": ("engine", _engines(snapshot)),
        "required_engines": ("engine", _engines(snapshot)),
    }
    constraints = targets.constraints
    changed: dict[str, tuple[str, ...]] = {}
    for field, (what, names) in known.items():
        listed: tuple[str, ...] = getattr(constraints, field)
        if not listed or not names:
            continue
        spelled = tuple(canonical_name(f"{what} ({FLAG_OF_LIST[field]})", n, names) for n in listed)
        if spelled != listed:
            changed[field] = spelled
    if changed:
        # Validated again: the constraints' own checks (required_engines among engines) hold
        # for the catalog's spelling.
        data = constraints.model_dump() | changed
        update["constraints"] = type(constraints).model_validate(data)
    benchmark = targets.quality.recovery_benchmark
    if benchmark is not None:
        as_spelled = canonical_benchmark(benchmark, recovery_benchmarks(snapshot))
        if as_spelled != benchmark:
            quality = {"recovery_benchmark": as_spelled}
            update["quality"] = targets.quality.model_copy(update=quality)
    return targets.model_copy(update=update) if update else targets


def recovery_benchmarks(snapshot: CatalogSnapshot) -> set[str]:
    """The benchmarks the catalog's task-recovery figures are on (their eval_set)."""
    return {q.eval_set for q in snapshot.quality if q.recovery_pct is not None}


def canonical_benchmark(name: str, known: set[str]) -> str:
    """``name`` as the catalog spells the benchmark, else UnknownNameError naming the close ones.

    A benchmark no figure is on would reject every quantized option for want of a figure and
    leave a baseline-only plan that looks like a quality verdict. Benchmark names often carry
    their source in brackets ("ruler (Mekala et al. 2025)"), so names that begin with what was
    typed count as close too."""
    try:
        return canonical_name("recovery benchmark (--recovery-benchmark)", name, known)
    except UnknownNameError as error:
        typed = name.strip().lower()
        starting = sorted(k for k in known if typed and k.lower().startswith(typed))
        close = list(dict.fromkeys([*starting, *near_misses(name, known)]))[:4]
        if close:
            error.hint = "did you mean " + " or ".join(repr(k) for k in close) + "?"
        elif known:
            error.hint = "the catalog's recovery figures are on: " + ", ".join(sorted(known))
        else:
            error.hint = (
                "no quality row in the catalog has a task score; import some "
                "(quantplan catalog import) or cap perplexity with --max-ppl-increase"
            )
        raise


def _engines(snapshot: CatalogSnapshot) -> set[str]:
    engines = {e.strip() for s in snapshot.schemes for e in s.engines.split(",") if e.strip()}
    return engines | {s.engine for s in snapshot.support}
