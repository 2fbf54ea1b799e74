"""``quantplan plan`` and ``quantplan report``: a thin shell over the planner's pure functions.

The CLI opens the catalog, loads one immutable snapshot, builds Targets from flags (or a file),
and hands both to the planner. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from quantplan.cli_options import DbOption
from quantplan.planner.price_age import (
    DEFAULT_MAX_PRICE_AGE_DAYS,
    describe_price,
    excluded_price_notes,
    resolve_regions,
    stale_prices_warning,
)
from quantplan.planner.spot import describe_spot_risk

if TYPE_CHECKING:
    from pydantic import ValidationError

    from quantplan.catalog.snapshot import CatalogSnapshot
    from quantplan.errors import QuantplanError
    from quantplan.planner.plan import Deployment, Estimate, Plan, PredictedMetrics
    from quantplan.planner.targets import Targets

PLAN_EPILOG = (
    "Examples:\n\n"
    "  quantplan plan --model Llama-3.1-8B --rps 20 --ttft-p95-ms 500 --itl-p95-ms 50\n\n"
    "  quantplan plan --model Llama-3.2-1B --tokens-per-day 2e6 --cpu-only --json\n\n"
    "  quantplan plan --model Llama-2-7B --rps 5 --max-ppl-increase 1 --budget-month 2000 "
    "-o plan.yaml\n\n"
    "  quantplan plan --targets targets.yaml --spot --mixed-fleet\n\n"
    "Unset targets take the defaults shown per option; every plan lists the ones it used in an "
    "'assumed:' line (JSON: assumed). The targets file reference is docs/targets.md.\n\n"
    "Exit status: 0 a plan meets every target; 3 no deployment meets them (the plan, its "
    "reasons and the nearest relaxations are still printed and written); 2 bad input "
    "(unknown name, invalid value); 1 any other error."
)

INFEASIBLE_EXIT_CODE = 3
"""Exit status of `quantplan plan` when no deployment meets the targets (as solvers report
infeasibility), so scripts can tell "no plan" from a plan."""

FLAG_OF_FIELD = {
    "workload.input_tokens": "--input-tokens",
    "workload.output_tokens": "--output-tokens",
    "workload.peak_to_mean": "--peak-to-mean",
    "workload.daily_shape": "--daily-shape",
    "workload.requests_per_s": "--rps",
    "workload.tokens_per_day": "--tokens-per-day",
    "workload.token_accounting": "--count-output-only",
    "slos.ttft_p95_ms": "--ttft-p95-ms",
    "slos.itl_p95_ms": "--itl-p95-ms",
    "slos.min_output_tokens_per_s": "--min-throughput",
    "slos.confidence": "--confidence",
    "slos.mode": "--batch/--interactive",
    "quality.max_perplexity_increase_pct": "--max-ppl-increase",
    "quality.max_kl_divergence": "--max-kl",
    "quality.min_recovery_pct": "--min-recovery",
    "quality.recovery_benchmark": "--recovery-benchmark",
    "quality.evidence": "--quality-evidence",
    "budget.max_usd_per_month": "--budget-month",
    "budget.max_usd_per_million_tokens": "--budget-per-million",
    "constraints.clouds": "--cloud",
    "constraints.regions": "--region",
    "constraints.spot_allowed": "--spot",
    "constraints.max_spot_fraction": "--max-spot-fraction",
    "constraints.device": "--cpu-only/--gpu-only",
    "constraints.instance_allow": "--instance",
    "constraints.instance_deny": "--exclude-instance",
    "constraints.accelerator_allow": "--hardware",
    "constraints.accelerator_deny": "--exclude-hardware",
    "constraints.families": "--family",
    "constraints.engines": "--engine",
    "constraints.max_replicas": "--max-replicas",
    "constraints.allow_mixed_fleet": "--mixed-fleet",
    "constraints.max_fleet_types": "--max-fleet-types",
    "constraints.required_engines": "--require-engine",
    "constraints.allow_flagged_prices": "--allow-flagged-prices",
}
"""The flag that sets each targets field: messages name what the user can type."""


def flag_words(text: str) -> str:
    """``text`` with targets fields (dotted or bare) replaced by the flags that set them."""
    import re

    bare = {path.split(".", 1)[1]: flag for path, flag in FLAG_OF_FIELD.items()}
    # Bare names only where unambiguous: "engines" is also an English word in messages.
    bare = {name: flag for name, flag in bare.items() if "_" in name}
    names = sorted([*FLAG_OF_FIELD, *bare], key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])")
    text = re.sub(r"allow_mixed_fleet: true", "allow_mixed_fleet", text)
    return pattern.sub(lambda m: FLAG_OF_FIELD.get(m.group(1)) or bare[m.group(1)], text)


REPORT_EPILOG = (
    "Examples:\n\n"
    "  quantplan report plan.yaml -o report.html      (also writes report.md)\n\n"
    "  quantplan report --model Llama-3.1-8B --rps 10 --ttft-p95-ms 800 -o capacity.html"
)


def _targets_from_flags(source: Path | None, flags: dict[str, Any]) -> Targets:
    """Targets from a file (targets or plan) with flags on top, or from flags alone."""
    from pydantic import ValidationError

    from quantplan.errors import QuantplanError
    from quantplan.planner.targets import Targets, load_targets

    # exclude_unset: a file's omitted fields stay defaults, so the plan can say it assumed them.
    data: dict[str, Any] = load_targets(source).model_dump(exclude_unset=True) if source else {}
    if flags["model"]:
        data["model"] = flags["model"]
    if "model" not in data:
        raise QuantplanError(
            "no model given", hint="pass --model NAME (see `quantplan catalog list -k models`)"
        )
    workload = data.setdefault("workload", {})
    if isinstance(flags.get("daily_shape"), str):
        flags = {**flags, "daily_shape": _hourly_numbers(flags["daily_shape"])}
    if flags["rps"] is not None or flags["tokens_per_day"] is not None:
        workload["requests_per_s"] = flags["rps"]
        workload["tokens_per_day"] = flags["tokens_per_day"]
    if not workload.get("requests_per_s") and not workload.get("tokens_per_day"):
        raise QuantplanError(
            "no traffic volume given", hint="pass --rps N or --tokens-per-day N (or --targets)"
        )
    sections = {
        "workload": {
            "input_tokens": "input_tokens",
            "output_tokens": "output_tokens",
            "peak_to_mean": "peak_to_mean",
            "daily_shape": "daily_shape",
        },
        "slos": {
            "ttft_p95_ms": "ttft_p95_ms",
            "itl_p95_ms": "itl_p95_ms",
            "min_output_tokens_per_s": "min_throughput",
        },
        "quality": {
            "max_perplexity_increase_pct": "max_ppl_increase",
            "max_kl_divergence": "max_kl",
            "min_recovery_pct": "min_recovery",
            "recovery_benchmark": "recovery_benchmark",
            "evidence": "quality_evidence",
        },
        "budget": {
            "max_usd_per_month": "budget_month",
            "max_usd_per_million_tokens": "budget_per_million",
        },
        "constraints": {
            "spot_allowed": "spot",
            "max_replicas": "max_replicas",
            "allow_mixed_fleet": "mixed_fleet",
            "allow_flagged_prices": "allow_flagged_prices",
        },
    }
    if flags.get("confidence") is not None:
        data.setdefault("slos", {})["confidence"] = flags["confidence"]
    if flags.get("batch") is not None:
        data.setdefault("slos", {})["mode"] = "batch" if flags["batch"] else "interactive"
    if flags.get("output_only") is not None:
        workload["token_accounting"] = "output_only" if flags["output_only"] else "input_and_output"
    for section, fields in sections.items():
        for field, flag in fields.items():
            if flags[flag] is not None:
                data.setdefault(section, {})[field] = flags[flag]
    constraints = data.setdefault("constraints", {})
    for field, flag in (
        ("clouds", "cloud"),
        ("regions", "region"),
        ("required_engines", "require_engine"),
        ("instance_allow", "instance"),
        ("instance_deny", "exclude_instance"),
        ("accelerator_allow", "hardware"),
        ("accelerator_deny", "exclude_hardware"),
        ("engines", "engine"),
    ):
        if flags.get(flag):
            constraints[field] = tuple(flags[flag])
    if flags.get("family"):
        constraints["families"] = tuple(_family(name) for name in flags["family"])
    for field in ("max_spot_fraction", "max_fleet_types"):
        if flags.get(field) is not None:
            constraints[field] = flags[field]
    if flags["cpu_only"] and flags["gpu_only"]:
        raise QuantplanError("--cpu-only and --gpu-only exclude each other")
    if flags["cpu_only"] or flags["gpu_only"]:
        constraints["device"] = "cpu" if flags["cpu_only"] else "gpu"
    try:
        return Targets.model_validate(data)
    except ValidationError as error:
        raise _invalid_targets(error, sections, flags) from None


def _family(name: str) -> str:
    """A scheme family from --family, in any case, or an error naming the families."""
    from quantplan.catalog.registry import METHODS
    from quantplan.errors import UnknownNameError

    found = METHODS.find(name)
    if found is not None:
        return found
    raise UnknownNameError("family (--family)", name, METHODS.names())


def _hourly_numbers(text: str) -> list[float]:
    """``--daily-shape``'s 24 numbers, separated by commas or spaces."""
    from quantplan.errors import QuantplanError

    parts = [part for part in text.replace(",", " ").split() if part]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 24 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise QuantplanError(
            f"--daily-shape: give 24 numbers of 0 or more, the load hour by hour "
            f"(got {len(parts)} value(s): {text[:60]!r})",
            hint='e.g. --daily-shape "$(seq -s, 1 24)" ; any scale: their mean is the mean rate',
        )
    return values


def _invalid_targets(
    error: ValidationError, sections: dict[str, dict[str, str]], flags: dict[str, Any]
) -> QuantplanError:
    """One line naming the option (or the targets field) that is out of bounds."""
    from quantplan.catalog.records import first_problem
    from quantplan.errors import QuantplanError

    first = error.errors()[0]
    location = tuple(str(part) for part in first["loc"])
    options = {
        ("workload", "requests_per_s"): "rps",
        ("workload", "tokens_per_day"): "tokens_per_day",
        **{
            (section, field): flag
            for section, fields in sections.items()
            for field, flag in fields.items()
        },
    }
    flag = options.get((location[0], location[1])) if len(location) >= 2 else None
    if flag is not None and flags.get(flag) is not None:
        given = flags[flag]
        shown = repr(given) if len(repr(given)) <= 80 else f"{repr(given)[:77]}..."
        text = str(first["msg"]).removeprefix("Value error, ")
        message = f"--{flag.replace('_', '-')}: {flag_words(text)} (got {shown})"
    elif flags.get("targets_file") or flags.get("source"):
        message = f"invalid targets: {first_problem(error)}"  # the file's field names
    else:
        message = f"invalid targets: {flag_words(first_problem(error))}"
    return QuantplanError(
        message,
        hint="numbers must be finite and within physical bounds; see `quantplan plan --help`",
    )


def _snapshot_and_revision(db: str | None) -> tuple[CatalogSnapshot, str | None]:
    """The catalog's snapshot and schema revision, the cheapest safe way: from the snapshot
    cache when the catalog is unchanged since a command last read it; else, for a SQLite file
    that needs no migration, seeding or warning, read with the standard library
    (catalog/sqlite_read.py); else opened in full (checked, migrated, seeded). Only the last
    imports SQLAlchemy, and Alembic only when a migration is due."""
    from quantplan.catalog import snapshot_cache

    cached = snapshot_cache.load(db)
    if cached is not None:
        return cached
    database = snapshot_cache.sqlite_path(db)
    if database is not None:
        from quantplan.catalog.sqlite_read import read_snapshot

        stamp = snapshot_cache.stamp_before_reading(db)
        read = read_snapshot(database)  # None: the catalog needs the full open
        if read is not None:
            snapshot_cache.store(db, stamp, *read)
            return read
    from quantplan.catalog.db import current_revision, open_catalog
    from quantplan.catalog.snapshot import load_snapshot

    engine = open_catalog(db)  # checks, migrates and seeds first: the stamp is taken after
    stamp = snapshot_cache.stamp_before_reading(db)
    snapshot, revision = load_snapshot(engine), current_revision(engine)
    if stamp is not None:
        # Closing the connections lets SQLite fold its log into the file now, as it would at
        # exit; the snapshot is kept only if the files still match the stamp after that.
        engine.dispose()
        snapshot_cache.store(db, stamp, snapshot, revision)
    return snapshot, revision


def _snapshot(db: str | None) -> CatalogSnapshot:
    return _snapshot_and_revision(db)[0]


def _money(value: float) -> str:
    return f"${value:,.0f}" if value >= 100 else f"${value:,.2f}"


def _print_assumed(console: Any, plan: Plan) -> None:
    """The defaults the plan used, on one line, so none of them is a surprise on the bill."""
    if plan.assumed:
        console.print(f"[dim]assumed:[/] {'; '.join(plan.assumed)}", highlight=False)


def _quality_rows(m: PredictedMetrics) -> list[tuple[str, str]]:
    """The quality lines of a deployment table: each figure with what it rests on."""
    from quantplan.planner.quality import describe_quality

    rows = []
    for name, e, unit, digits in (
        ("perplexity increase", m.perplexity_increase_pct, "%", 2),
        ("KL divergence", m.kl_divergence, "", 4),
        ("task recovery", m.recovery_pct, "%", 2),
    ):
        if e is not None:
            rows.append((name, escape(describe_quality(e, unit, digits))))
    return rows


def _quality_cell(estimate: Estimate | None) -> str:
    from quantplan.planner.quality import describe_quality

    return describe_quality(estimate)


def _print_plan(
    plan: Plan, max_price_age_days: int = DEFAULT_MAX_PRICE_AGE_DAYS, today: date | None = None
) -> None:
    today = today or datetime.now(UTC).date()
    from rich.console import Console
    from rich.table import Table

    def scaling_row(d: Deployment) -> list[tuple[str, str]]:
        if d.min_replicas is None or d.min_replicas >= d.replicas:
            return []
        if d.expected_usd_per_month is not None:
            cost = f"; ${d.expected_usd_per_month:,.0f}/month over the daily shape"
        elif d.floor_usd_per_month is not None:
            cost = (
                f"; ${d.floor_usd_per_month:,.0f}/month at the mean load all day to "
                f"${d.usd_per_month:,.0f} at the peak (--daily-shape prices a day)"
            )
        else:
            cost = ""
        return [
            (
                "with the load",
                f"{d.min_replicas} replica(s) carry the mean load, {d.replicas} the peak "
                f"(`cluster endpoint` scales between them at {d.metrics.concurrency} in flight "
                f"per replica){cost}",
            )
        ]

    console = Console()
    verdict = "[bold green]feasible[/]" if plan.feasible else "[bold red]infeasible[/]"
    console.print(f"{verdict} {flag_words(plan.summary)}")
    _print_assumed(console, plan)
    for d in plan.fleet:
        m = d.metrics
        table = Table(title=f"Deploy: {d.label}", title_justify="left", show_header=False)
        table.add_column("what")
        table.add_column("value")
        split = f"{d.gpu_layers} of {d.total_layers} layers on the GPU, the others on the host"
        offload = [("GPU offload", split)] if d.gpu_layers is not None else []
        rows = [
            ("method / scheme / engine", f"{d.method} / {d.scheme} / {d.engine}"),
            (
                "instance",
                f"{d.instance} ({d.hardware}"
                + (f" x{d.accelerator_count}" if d.accelerator_count else ", CPU")
                + f"), {d.pricing}",
            ),
            *offload,
            (
                "replicas / instances",
                f"{d.replicas} on {d.instances} ({d.replicas_per_instance} per instance)",
            ),
            *scaling_row(d),
            ("cost", f"{_money(d.usd_per_month)}/month, ${d.usd_per_million_tokens:.4f}/M tokens"),
            ("price", escape(describe_price(d, max_price_age_days, today))),
            *([("spot risk", escape(describe_spot_risk(d.spot)))] if d.spot else []),
            (
                "on-demand / spot",
                f"{_money(d.on_demand_usd_per_month)} / "
                f"{_money(d.spot_usd_per_month) if d.spot_usd_per_month else 'n/a'} per month",
            ),
        ]
        for name, e in (
            ("p95 TTFT ms", m.ttft_p95_ms),
            ("p95 ITL ms", m.itl_p95_ms),
            ("output tok/s per replica", m.output_tokens_per_s),
        ):
            if e is not None:
                rows.append((name, f"{e.value:,.4g} [{e.low:,.4g} - {e.high:,.4g}] {e.basis}"))
        rests_on = m.speed_evidence or "no profile: default efficiencies, the roofline's batching"
        rows.append(("speeds rest on", escape(rests_on)))
        rows += _quality_rows(m)
        rows.append(("memory GB", f"{m.memory_gb:,.1f} of {m.memory_capacity_gb:,.1f}"))
        for row in rows:
            table.add_row(*row)
        console.print(table)
    if plan.alternatives:
        table = Table(title="Alternatives", title_justify="left")
        for column in ("deployment", "$/month", "p95 TTFT ms", "ppl +%"):
            table.add_column(column)
        for d in plan.alternatives:
            ppl = d.metrics.perplexity_increase_pct
            table.add_row(
                f"{d.label} ({d.pricing})", _money(d.usd_per_month),
                f"{d.metrics.ttft_p95_ms.value:,.0f}", escape(_quality_cell(ppl)),
            )  # fmt: skip
        console.print(table)
    for note in excluded_price_notes(plan):
        console.print(f"[yellow]prices[/] {escape(note)}")
    for rejection in plan.rejected:
        console.print(f"[yellow]rejected[/] ({rejection.stage}) {flag_words(rejection.reason)}")
    for binding in plan.binding_constraints:
        console.print(f"[cyan]binding[/] {flag_words(binding.constraint)}: {binding.detail}")
    for relax in plan.relaxations:
        console.print(
            f"[magenta]relax[/] {flag_words(relax.constraint)}: {relax.current} -> "
            f"{relax.needed} gives "
            f"{relax.deployment.label} at {_money(relax.deployment.usd_per_month)}/month"
        )


def plan_command(
    model: Annotated[str | None, typer.Option(help="Catalog model name.")] = None,
    rps: Annotated[float | None, typer.Option("--rps", help="Mean requests/s.")] = None,
    tokens_per_day: Annotated[
        float | None, typer.Option(help="Mean tokens/day (instead of --rps).")
    ] = None,
    input_tokens: Annotated[
        int | None, typer.Option(help="Mean prompt tokens per request. \\[default: 512]")
    ] = None,
    output_tokens: Annotated[
        int | None, typer.Option(help="Mean output tokens per request. \\[default: 256]")
    ] = None,
    peak_to_mean: Annotated[
        float | None,
        typer.Option(
            help="Peak over mean request rate; the fleet is sized for the peak, so 2 "
            "doubles the bill of a flat load. \\[default: 2]"
        ),
    ] = None,
    daily_shape: Annotated[
        str | None,
        typer.Option(
            help="The day's load hour by hour: 24 numbers separated by commas, any scale (their "
            "mean is the mean rate; the busiest may be at most --peak-to-mean times it). The "
            "plan then prices its fleet scaling with the load over such a day. \\[default: "
            "none: the plan gives the range from the mean load to the peak all day]"
        ),
    ] = None,
    output_only: Annotated[
        bool | None,
        typer.Option(
            "--count-output-only/--count-all-tokens",
            help="Count only output tokens for tokens/day and $/M tokens. "
            "\\[default: count-all-tokens]",
        ),
    ] = None,
    ttft_p95_ms: Annotated[
        float | None,
        typer.Option(help="p95 TTFT objective. \\[default: 2000 unless --batch]"),
    ] = None,
    itl_p95_ms: Annotated[
        float | None,
        typer.Option(help="p95 ITL objective. \\[default: 200 unless --batch]"),
    ] = None,
    confidence: Annotated[
        float | None,
        typer.Option(
            help="SLOs must hold at the pessimistic edge of the band at this confidence "
            "(bands from held-out residuals); replicas get the headroom. \\[default: 0.9]"
        ),
    ] = None,
    batch: Annotated[
        bool | None,
        typer.Option(
            "--batch/--interactive",
            help="Offline/batch workload: no default latency limits (interactive: p95 "
            "TTFT 2 s, ITL 200 ms unless given). \\[default: interactive]",
        ),
    ] = None,
    min_throughput: Annotated[
        float | None, typer.Option(help="Fleet output tokens/s floor.")
    ] = None,
    max_ppl_increase: Annotated[
        float | None, typer.Option(help="Max perplexity increase, %.")
    ] = None,
    max_kl: Annotated[float | None, typer.Option(help="Max KL divergence.")] = None,
    min_recovery: Annotated[
        float | None,
        typer.Option(help="Min task-accuracy recovery, % of the baseline's score."),
    ] = None,
    recovery_benchmark: Annotated[
        str | None,
        typer.Option(
            help="Benchmark --min-recovery is checked on, e.g. openllm-v1 (an unknown name "
            "lists the catalog's; `quantplan catalog list --kind quality` shows each figure)."
        ),
    ] = None,
    quality_evidence: Annotated[
        str | None,
        typer.Option(
            help="Quality figures a cap may rely on: same-model, same-family (default) or "
            "any. Borrowed figures are checked at the pessimistic end of their band."
        ),
    ] = None,
    budget_month: Annotated[float | None, typer.Option(help="Max $/month.")] = None,
    budget_per_million: Annotated[
        float | None, typer.Option(help="Max $ per million tokens.")
    ] = None,
    cloud: Annotated[list[str] | None, typer.Option(help="Allowed cloud (repeat).")] = None,
    region: Annotated[list[str] | None, typer.Option(help="Allowed region (repeat).")] = None,
    spot: Annotated[
        bool | None, typer.Option("--spot/--no-spot", help="Allow spot. \\[default: no-spot]")
    ] = None,
    max_spot_fraction: Annotated[
        float | None,
        typer.Option(help="Most share of peak capacity on spot (mixed fleets). \\[default: 1]"),
    ] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="CPU instances only.")] = False,
    gpu_only: Annotated[bool, typer.Option("--gpu-only", help="GPU instances only.")] = False,
    max_replicas: Annotated[
        int | None, typer.Option(help="Most replicas in the fleet. \\[default: 64]")
    ] = None,
    mixed_fleet: Annotated[
        bool | None,
        typer.Option(
            "--mixed-fleet/--single-type",
            help="Allow a fleet of several instance types/schemes. \\[default: single-type]",
        ),
    ] = None,
    max_fleet_types: Annotated[
        int | None,
        typer.Option(help="Most distinct deployments in a mixed fleet. \\[default: 3]"),
    ] = None,
    instance: Annotated[
        list[str] | None, typer.Option(help="Only this instance type, e.g. g6.xlarge (repeat).")
    ] = None,
    exclude_instance: Annotated[
        list[str] | None, typer.Option(help="Never this instance type (repeat).")
    ] = None,
    hardware: Annotated[
        list[str] | None,
        typer.Option(help="Only this GPU or CPU family, e.g. L4 (repeat)."),
    ] = None,
    exclude_hardware: Annotated[
        list[str] | None, typer.Option(help="Never this GPU or CPU family (repeat).")
    ] = None,
    family: Annotated[
        list[str] | None,
        typer.Option(help="Only this quantization family: baseline, gptq, awq, gguf (repeat)."),
    ] = None,
    engine: Annotated[
        list[str] | None, typer.Option(help="Only this serving engine, e.g. vllm (repeat).")
    ] = None,
    require_engine: Annotated[
        list[str] | None,
        typer.Option(
            help="Engine the (mixed) fleet must run at least one replica on (repeat).",
        ),
    ] = None,
    allow_flagged_prices: Annotated[
        bool | None,
        typer.Option(
            "--allow-flagged-prices",
            help="Use prices the catalog flags as doubtful (skipped by default).",
        ),
    ] = None,
    max_price_age_days: Annotated[
        int,
        typer.Option(min=1, max=36500, help="Warn about prices older than this many days."),
    ] = DEFAULT_MAX_PRICE_AGE_DAYS,
    targets_file: Annotated[
        Path | None, typer.Option("--targets", help="Targets (or plan) YAML/JSON file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the plan file (.yaml/.json).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Choose scheme, engine, instance and replicas meeting your targets at least cost."""
    from quantplan.planner.decide import make_plan
    from quantplan.planner.plan import save_plan

    flags = dict(locals())
    targets = _targets_from_flags(targets_file, flags)
    snapshot, revision = _snapshot_and_revision(db)
    targets = resolve_regions(targets, snapshot)
    today = datetime.now(UTC).date()
    warning = stale_prices_warning(snapshot, max_price_age_days, today)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    plan = make_plan(targets, snapshot, catalog_revision=revision)
    if output is not None:
        save_plan(plan, output)
    if as_json:
        typer.echo(json.dumps(plan.model_dump(mode="json"), indent=2))
    else:
        _print_plan(plan, max_price_age_days, today)
        if output is not None:
            typer.echo(f"plan written to {output}")
    if not plan.feasible:
        raise typer.Exit(INFEASIBLE_EXIT_CODE)


def report_command(
    source: Annotated[Path | None, typer.Argument(help="Targets or plan file (YAML/JSON).")] = None,
    model: Annotated[str | None, typer.Option(help="Catalog model name.")] = None,
    rps: Annotated[float | None, typer.Option("--rps", help="Mean requests/s.")] = None,
    tokens_per_day: Annotated[float | None, typer.Option(help="Mean tokens/day.")] = None,
    ttft_p95_ms: Annotated[float | None, typer.Option(help="p95 TTFT objective.")] = None,
    itl_p95_ms: Annotated[float | None, typer.Option(help="p95 ITL objective.")] = None,
    max_ppl_increase: Annotated[
        float | None, typer.Option(help="Max perplexity increase, %.")
    ] = None,
    max_price_age_days: Annotated[
        int,
        typer.Option(min=1, max=36500, help="Flag prices older than this many days."),
    ] = DEFAULT_MAX_PRICE_AGE_DAYS,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="HTML file; Markdown goes next to it.")
    ] = Path("report.html"),
    db: DbOption = None,
) -> None:
    """Capacity-planning report: cost vs traffic per family, crossovers, Pareto, headroom."""
    from quantplan.planner.capacity import capacity_report
    from quantplan.planner.decide import prepare
    from quantplan.planner.report import render_html, render_markdown

    flags: dict[str, Any] = dict.fromkeys(
        ("input_tokens", "output_tokens", "peak_to_mean", "daily_shape", "min_throughput", "max_kl",
         "budget_month", "budget_per_million", "cloud", "region", "spot", "max_replicas",
         "mixed_fleet", "require_engine", "cpu_only", "gpu_only", "allow_flagged_prices",
         "min_recovery", "recovery_benchmark", "quality_evidence"),
    )  # fmt: skip
    flags.update(
        model=model,
        rps=rps,
        tokens_per_day=tokens_per_day,
        ttft_p95_ms=ttft_p95_ms,
        itl_p95_ms=itl_p95_ms,
        max_ppl_increase=max_ppl_increase,
    )
    targets = _targets_from_flags(source, flags)
    snapshot = _snapshot(db)
    report = capacity_report(prepare(resolve_regions(targets, snapshot), snapshot))
    markdown = output.with_suffix(".md")
    today = datetime.now(UTC).date()
    try:
        days = max_price_age_days
        output.write_text(render_html(report, today=today, max_price_age_days=days))
        markdown.write_text(render_markdown(report, today=today, max_price_age_days=days))
    except OSError as error:  # a missing folder, no permission: the user's to fix
        from quantplan.errors import QuantplanError

        raise QuantplanError(
            f"cannot write the report to {str(output)!r}: {error.strerror}",
            hint="give -o a path in an existing, writable folder",
        ) from None
    typer.echo(f"report written to {output} and {markdown}")


def register(app: typer.Typer) -> None:
    """Add ``plan`` and ``report`` to the root app."""
    app.command("plan", epilog=PLAN_EPILOG)(plan_command)
    app.command("report", epilog=REPORT_EPILOG)(report_command)
