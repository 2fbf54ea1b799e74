"""``quantplan catalog gaps``: where the catalog has no evidence of its own, said out loud.

For every (catalog model, common scheme) pair this names the best evidence the catalog holds for
that very model: its own measurement, a published figure, a figure of a sibling scheme (same
family, bits and variant, e.g. GPTQ g64 for GPTQ g128) on the same model, or none. "None" is
where the planner must borrow another model's figure or fall back on a prior, so it is the list
of what to measure or look up next. Pure functions over records; the command only reads.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from quantplan.catalog.records import (
    ModelRecord,
    QualityRecord,
    SchemeRecord,
    group_tiling_problem,
)
from quantplan.cli_options import DbOption
from quantplan.errors import QuantplanError, did_you_mean

COMMON_SCHEMES: tuple[str, ...] = (
    "gptq-w4a16-g128",
    "awq-w4a16-g128",
    "gptq-w8a16-ch",
    "fp8-w8a8",
    "int8-w8a8",
    "gguf-q8_0",
    "gguf-q6_k",
    "gguf-q5_k_m",
    "gguf-q4_k_m",
    "gguf-q3_k_m",
    "gguf-q2_k",
)
"""The schemes users pick (issue 14's list). The BF16 baseline is the reference itself and needs
no evidence; W8A16 is represented by llm-compressor's per-channel preset."""

_LABELS = {
    "gptq-w4a16-g128": "gptq4",
    "awq-w4a16-g128": "awq4",
    "gptq-w8a16-ch": "w8a16",
    "fp8-w8a8": "fp8",
    "int8-w8a8": "int8",
}
"""Short column heads: the matrix has a column per scheme and must fit a terminal."""

GapEvidence = Literal["measured", "published", "sibling", "none", "cannot be made"]
_MARKS: dict[GapEvidence, str] = {
    "measured": "M",
    "published": "P",
    "sibling": "s",
    "none": "-",
    "cannot be made": "x",
}
_OWN = ("measured", "published")
GAP_KINDS = ("quality",)


class QualityGap(BaseModel):
    """The evidence the catalog holds for one (model, scheme) pair."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Catalog model name")
    scheme: str = Field(description="Quantization scheme name")
    evidence: GapEvidence = Field(
        description="measured or published (this model and scheme), sibling (this model, a "
        "sibling scheme), none (the planner borrows another model's figure or a prior), cannot "
        "be made (the scheme's weight groups do not tile this model's layers: no plan holds the "
        "pair, so it needs no figure and is not counted)"
    )
    source_scheme: str | None = Field(
        default=None, description="The scheme the figure is for (a sibling when evidence=sibling)"
    )
    metrics: tuple[str, ...] = Field(
        default=(), description="Kinds of figure held: ppl, kl, recovery:<benchmark>"
    )
    rows: int = Field(default=0, description="Quality rows behind this evidence")


def _metrics(rows: Iterable[QualityRecord]) -> tuple[str, ...]:
    kinds: set[str] = set()
    for row in rows:
        if row.perplexity_delta_pct is not None:
            kinds.add("ppl")
        if row.kl_divergence is not None:
            kinds.add("kl")
        if row.recovery_pct is not None:
            kinds.add(f"recovery:{row.eval_set}")
    return tuple(sorted(kinds))


def quality_gaps(
    models: Sequence[ModelRecord],
    schemes: Sequence[SchemeRecord],
    quality: Iterable[QualityRecord],
    scheme_names: Sequence[str] = COMMON_SCHEMES,
) -> list[QualityGap]:
    """One :class:`QualityGap` per (model, scheme), models in catalog order."""
    by_pair: dict[tuple[str, str], list[QualityRecord]] = defaultdict(list)
    for row in quality:
        by_pair[(row.model, row.scheme)].append(row)
    by_name = {s.name: s for s in schemes}
    gaps: list[QualityGap] = []
    for model in models:
        for name in scheme_names:
            scheme = by_name.get(name)
            if scheme is None:
                continue  # a catalog without this scheme has no gap to report for it
            tiling = group_tiling_problem(model, scheme)
            if tiling is not None:  # on one GPU: more GPUs only add constraints
                gaps.append(QualityGap(model=model.name, scheme=name, evidence="cannot be made"))
                continue
            gaps.append(_gap(model.name, scheme, by_pair, by_name.values()))
    return gaps


def _gap(
    model: str,
    scheme: SchemeRecord,
    by_pair: dict[tuple[str, str], list[QualityRecord]],
    schemes: Iterable[SchemeRecord],
) -> QualityGap:
    own = by_pair.get((model, scheme.name), [])
    for basis in ("measured", "published"):
        rows = [r for r in own if r.basis == basis]
        if rows:
            return QualityGap(
                model=model, scheme=scheme.name, evidence=basis, source_scheme=scheme.name,
                metrics=_metrics(rows), rows=len(rows),
            )  # fmt: skip
    siblings = sorted(
        s.name
        for s in schemes
        if (s.family, s.bits, s.variant) == (scheme.family, scheme.bits, scheme.variant)
        and s.name != scheme.name
    )
    for sibling in siblings:
        rows = [r for r in by_pair.get((model, sibling), []) if r.basis != "modeled"]
        if rows:
            return QualityGap(
                model=model, scheme=scheme.name, evidence="sibling", source_scheme=sibling,
                metrics=_metrics(rows), rows=len(rows),
            )  # fmt: skip
    return QualityGap(model=model, scheme=scheme.name, evidence="none")


def makeable(gaps: Sequence[QualityGap]) -> list[QualityGap]:
    """The pairs a plan can hold: those whose scheme can be made for the model."""
    return [g for g in gaps if g.evidence != "cannot be made"]


def same_model_share(gaps: Sequence[QualityGap]) -> float:
    """The share of the pairs a plan can hold with a figure for that model and scheme
    (measured or published)."""
    pairs = makeable(gaps)
    if not pairs:
        return 0.0
    return sum(g.evidence in _OWN for g in pairs) / len(pairs)


def _print_matrix(gaps: Sequence[QualityGap], console: Console) -> None:
    schemes = list(dict.fromkeys(g.scheme for g in gaps))
    models = list(dict.fromkeys(g.model for g in gaps))
    cell = {(g.model, g.scheme): g for g in gaps}
    table = Table(
        title="quality evidence per (model, scheme): M measured, P published, "
        "s sibling scheme on this model, - none (borrowed or prior), x cannot be made",
        title_justify="left",
        padding=(0, 1),
    )
    table.add_column("model", no_wrap=True)
    for scheme in schemes:
        table.add_column(_LABELS.get(scheme, scheme.removeprefix("gguf-")), justify="center")
    table.add_column("own", justify="right")
    for model in models:
        row = makeable([cell[(model, s)] for s in schemes if (model, s) in cell])
        own = sum(g.evidence in _OWN for g in row)
        marks = [_MARKS[cell[(model, s)].evidence] if (model, s) in cell else "" for s in schemes]
        table.add_row(model, *marks, f"{own}/{len(row)}")
    console.print(table)


def gaps(
    kind: Annotated[
        str, typer.Option("--kind", "-k", help="What to check: quality (the only kind so far).")
    ] = "quality",
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")
    ] = None,
    missing: Annotated[
        bool, typer.Option("--missing", help="List only pairs without same-model evidence.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    db: DbOption = None,
) -> None:
    """Where the catalog has no evidence of its own: for every (catalog model, common scheme)
    pair, whether a measured or published figure exists for that very model, a sibling
    scheme's, or none (the planner then borrows another model's figure or a prior).

    Examples:\n
      quantplan catalog gaps --kind quality\n
      quantplan catalog gaps --kind quality --missing --json
    """
    from sqlmodel import Session

    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.reading import read_catalog

    if kind not in GAP_KINDS:
        raise QuantplanError(
            f"no gap report for kind {kind!r}",
            hint=did_you_mean(kind, GAP_KINDS) or f"kinds: {', '.join(GAP_KINDS)}",
        )
    with Session(open_catalog(db)) as session:
        read = read_catalog(session, ("models", "schemes", "quality"))
    models = [m for m in read.records("models") if isinstance(m, ModelRecord)]
    if model:
        known = [m.name for m in models]
        for name in model:
            if name not in known:
                raise QuantplanError(
                    f"no catalog model named {name!r}",
                    hint=did_you_mean(name, known) or "see: quantplan catalog list --kind models",
                )
        models = [m for m in models if m.name in model]
    schemes = [s for s in read.records("schemes") if isinstance(s, SchemeRecord)]
    quality = [q for q in read.records("quality") if isinstance(q, QualityRecord)]
    found = quality_gaps(models, schemes, quality)
    pairs = makeable(found)
    share = same_model_share(found)
    shown = [g for g in pairs if g.evidence not in _OWN] if missing else found
    if as_json:
        payload = {
            "kind": kind,
            "schemes": [s for s in COMMON_SCHEMES if any(g.scheme == s for g in found)],
            "pairs": len(pairs),
            "same_model_share": round(share, 4),
            "rows": [g.model_dump(mode="json") for g in shown],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    # Piped output keeps every column (rich would cut the table to 80 characters).
    console = Console(width=None if sys.stdout.isatty() else 132)
    _print_matrix(shown, console)
    own = sum(g.evidence in _OWN for g in pairs)
    unmade = len(found) - len(pairs)
    console.print(
        f"{own} of {len(pairs)} (model, scheme) pairs have a figure for that model and scheme "
        f"({share:.0%}); the others borrow a sibling scheme's, another model's or a prior"
        + (
            f"; {unmade} more cannot be made (x: the scheme's groups do not tile the model)"
            if unmade
            else ""
        ),
        highlight=False,
    )
