"""The targets a user left at their defaults, said out loud.

Two of them double or halve the bill without a word otherwise: peak-to-mean 2 sizes the fleet
for twice the mean rate, and the 512/256 request shape sets every latency and token count.
Each plan lists the defaults it used (``Plan.assumed``), with the flag that changes each.
"""

from __future__ import annotations

from quantplan.planner.targets import Constraints, Slos, Targets, Workload

INTERACTIVE_TTFT_P95_MS = 2000.0
"""p95 TTFT an interactive workload gets when none is given (a chat user waits ~2 s at most)."""
INTERACTIVE_ITL_P95_MS = 200.0
"""p95 ITL an interactive workload gets when none is given (5 tokens/s: slower than reading)."""


def _default(model: type[Workload] | type[Constraints] | type[Slos], field: str) -> object:
    return model.model_fields[field].default


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def assumed_defaults(targets: Targets) -> tuple[str, ...]:
    """One phrase per target left unset that changes the answer, naming the value and flag.

    "Unset" is pydantic's ``model_fields_set``: a value written in a targets file or passed as
    a flag counts as chosen even when it equals the default.
    """
    w, c = targets.workload, targets.constraints
    given_w, given_c = w.model_fields_set, c.model_fields_set
    out: list[str] = []
    if "input_tokens" not in given_w or "output_tokens" not in given_w:
        out.append(
            f"{w.input_tokens} input / {w.output_tokens} output tokens per request "
            "(--input-tokens/--output-tokens)"
        )
    if "peak_to_mean" not in given_w:
        out.append(
            f"peak-to-mean {_number(w.peak_to_mean)}: capacity for {_number(w.peak_to_mean)}x "
            "the mean rate (--peak-to-mean)"
        )
    if "token_accounting" not in given_w:
        out.append("$/M tokens counts input and output tokens (--count-output-only)")
    out += _assumed_slos(targets.slos)
    q = targets.quality
    if q.max_perplexity_increase_pct is None and q.max_kl_divergence is None:
        out.append("no quality limit (--max-ppl-increase)")
    if "spot_allowed" not in given_c:
        out.append("on-demand prices only (--spot)")
    if "allow_mixed_fleet" not in given_c:
        out.append("one instance type and scheme (--mixed-fleet)")
    if "max_replicas" not in given_c:
        out.append(f"at most {c.max_replicas} replicas (--max-replicas)")
    if c.allow_mixed_fleet and "max_fleet_types" not in given_c:
        out.append(f"at most {c.max_fleet_types} deployment types (--max-fleet-types)")
    if c.allow_mixed_fleet and c.spot_allowed and "max_spot_fraction" not in given_c:
        out.append(
            f"up to {c.max_spot_fraction:.0%} of peak capacity on spot (--max-spot-fraction)"
        )
    return tuple(out)


def _assumed_slos(slos: Slos) -> list[str]:
    """The interactive latency limits and the confidence, when they were not chosen."""
    given, out = slos.model_fields_set, []
    if slos.mode == "interactive":
        limits = [
            f"p95 {name} <= {value:g} ms ({flag})"
            for field, name, value, flag in (
                ("ttft_p95_ms", "TTFT", INTERACTIVE_TTFT_P95_MS, "--ttft-p95-ms"),
                ("itl_p95_ms", "ITL", INTERACTIVE_ITL_P95_MS, "--itl-p95-ms"),
            )
            if field not in given
        ]
        if limits:
            out.append(f"interactive workload: {', '.join(limits)} (--batch: no limit)")
    if "confidence" not in given:
        out.append(
            f"SLOs met at {slos.confidence:.0%} confidence: checked at the pessimistic edge "
            "of the band (--confidence)"
        )
    return out


def with_latency_defaults(targets: Targets) -> Targets:
    """``targets`` with the interactive latency limits filled in where none was given.

    The filled fields stay out of ``model_fields_set`` (so :func:`assumed_defaults` still says
    they were assumed), and later stages read plain numbers: a relaxation that drops a limit
    drops it, with no default creeping back.
    """
    slos = targets.slos
    if slos.mode != "interactive":
        return targets
    filled = {
        field: value
        for field, value in (
            ("ttft_p95_ms", INTERACTIVE_TTFT_P95_MS),
            ("itl_p95_ms", INTERACTIVE_ITL_P95_MS),
        )
        if field not in slos.model_fields_set and getattr(slos, field) is None
    }
    if not filled:
        return targets
    values = slos.model_dump() | filled
    new_slos = Slos.model_construct(_fields_set=set(slos.model_fields_set), **values)
    return targets.model_copy(update={"slos": new_slos})


DEFAULTS_HELP = {
    "input_tokens": _default(Workload, "input_tokens"),
    "output_tokens": _default(Workload, "output_tokens"),
    "peak_to_mean": _default(Workload, "peak_to_mean"),
    "max_replicas": _default(Constraints, "max_replicas"),
    "max_fleet_types": _default(Constraints, "max_fleet_types"),
    "max_spot_fraction": _default(Constraints, "max_spot_fraction"),
    "confidence": _default(Slos, "confidence"),
}
"""Schema defaults the CLI's --help quotes; a test checks the help text says these."""
