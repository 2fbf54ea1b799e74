"""What the planner's quality figures rest on, before and after the quality-evidence work, and how
far off a borrowed figure is when the model's own figure is held out.

1. For every (catalog model, quantized scheme) the planner can choose, the kind of evidence its
   perplexity figure rests on (same model measured / published, borrowed from a same-family or
   other-family model or a sibling scheme, or a bits-per-weight prior), with the seed as it was
   before the quality-evidence commits (``git show BEFORE:catalog/seed/...``) and as shipped now;
   the same for task-accuracy recovery on OpenLLM v1.
2. The share of (catalog model, common scheme) pairs with a figure for that very model (issue 14
   asks for 80 %), before and after (``catalog.gaps``).
3. Hold-out: each (model, scheme) that has its own figure (perplexity delta, KL divergence,
   recovery on a named benchmark) is removed from the catalog in turn; the planner's borrowed
   estimate for it is compared with the removed figure: error, and whether the band covers it.

    .venv/bin/python bench/quality_evidence.py   # -> bench/results/quality_evidence.{json,md}
"""

from __future__ import annotations

import json
import statistics
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantplan.catalog.gaps import COMMON_SCHEMES, makeable, quality_gaps, same_model_share
from quantplan.catalog.records import ModelRecord, QualityRecord, SchemeRecord
from quantplan.catalog.seeding import seed_records
from quantplan.catalog.transfer import parse
from quantplan.planner.hardware import model_shape_from_record
from quantplan.planner.quality import Metric, QualityIndex

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# The last commit before the quality-evidence work (c6f0817 shipped the measured quality seed).
BEFORE = "c6f0817^"
DEFAULT_MODEL = "SmolLM2-135M-Instruct"
RECOVERY_BENCHMARKS = ("openllm-v1", "mmlu", "gsm8k")


def seed_at(commit: str) -> dict[str, list[Any]]:
    """The seed records of ``commit``, parsed with today's record types."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{commit}:catalog/seed"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    loaded: dict[str, list[Any]] = {}
    for name in sorted(n for n in names if n.endswith(".yaml")):
        text = subprocess.run(
            ["git", "show", f"{commit}:catalog/seed/{name}"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        kind, records = parse(text, "yaml", None, name)
        loaded.setdefault(kind, []).extend(records)
    return loaded


def evidence_kinds(
    models: Sequence[ModelRecord],
    schemes: Sequence[SchemeRecord],
    quality: Sequence[QualityRecord],
    metric: Metric,
    benchmark: str | None = None,
) -> dict[tuple[str, str], str]:
    """(model, scheme) -> what the planner's figure rests on (``none``: no figure at all)."""
    index = QualityIndex(quality, models, schemes)
    kinds: dict[tuple[str, str], str] = {}
    for model in models:
        shape = model_shape_from_record(model)
        for scheme in schemes:
            if scheme.family == "baseline":
                continue
            estimate = index.evidence(shape, scheme, metric, benchmark)
            if estimate is None:
                kinds[(model.name, scheme.name)] = "none"
            elif estimate.evidence == "same-model":
                kinds[(model.name, scheme.name)] = f"same model {estimate.basis}"
            elif estimate.evidence == "same-family" and estimate.evidence_model == model.name:
                kinds[(model.name, scheme.name)] = "sibling scheme, same model"
            else:
                kinds[(model.name, scheme.name)] = str(estimate.evidence)
    return kinds


def _value(row: QualityRecord, metric: Metric) -> float | None:
    if metric == "ppl":
        return row.perplexity_delta_pct
    if metric == "kl":
        return row.kl_divergence
    return row.recovery_pct


def hold_out(
    models: Sequence[ModelRecord],
    schemes: Sequence[SchemeRecord],
    quality: Sequence[QualityRecord],
) -> list[dict[str, Any]]:
    """Remove each pair's own figures in turn and compare the borrowed estimate with them."""
    by_model = {m.name: m for m in models}
    by_scheme = {s.name: s for s in schemes}
    full = QualityIndex(quality, models, schemes)
    cases: list[dict[str, Any]] = []
    metrics: list[tuple[Metric, str | None]] = [("ppl", None), ("kl", None)]
    metrics += [("recovery", b) for b in RECOVERY_BENCHMARKS]
    pairs = sorted({(r.model, r.scheme) for r in quality})
    for model_name, scheme_name in pairs:
        model, scheme = by_model.get(model_name), by_scheme.get(scheme_name)
        if model is None or scheme is None or scheme.family == "baseline":
            continue
        shape = model_shape_from_record(model)
        rest = [r for r in quality if (r.model, r.scheme) != (model_name, scheme_name)]
        held = QualityIndex(rest, models, schemes)
        for metric, benchmark in metrics:
            truth = full.direct(model_name, scheme_name, metric, benchmark)
            if truth is None:
                continue
            estimate = held.evidence(shape, scheme, metric, benchmark)
            case: dict[str, Any] = {
                "model": model_name,
                "scheme": scheme_name,
                "metric": metric if benchmark is None else f"recovery:{benchmark}",
                "held_out": round(truth.value, 6),
                "held_out_basis": truth.basis,
            }
            if estimate is None:
                cases.append({**case, "evidence": "none", "covered": False})
                continue
            sibling = estimate.evidence == "same-family" and estimate.evidence_model == model_name
            cases.append(
                {
                    **case,
                    "evidence": "sibling scheme, same model" if sibling else estimate.evidence,
                    "source": f"{estimate.evidence_scheme} on {estimate.evidence_model}"
                    if estimate.evidence_model
                    else "prior",
                    "estimate": round(estimate.value, 6),
                    "low": round(estimate.low, 6),
                    "high": round(estimate.high, 6),
                    "error": round(estimate.value - truth.value, 6),
                    "covered": estimate.low - 1e-9 <= truth.value <= estimate.high + 1e-9,
                    # The cap is checked at the pessimistic end: is the held-out figure no worse?
                    "pessimistic_end_safe": (
                        truth.value >= estimate.low - 1e-9
                        if metric == "recovery"
                        else truth.value <= estimate.high + 1e-9
                    ),
                }
            )
    return cases


def summarise_holdout(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per metric and evidence kind: count, median |error|, band coverage, safe at the cap."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for case in cases:
        metric = case["metric"] if not case["metric"].startswith("recovery") else "recovery"
        groups.setdefault((metric, case["evidence"]), []).append(case)
    rows = []
    for (metric, evidence), group in sorted(groups.items()):
        errors = [abs(c["error"]) for c in group if "error" in c]
        rows.append(
            {
                "metric": metric,
                "evidence": evidence,
                "cases": len(group),
                "median_abs_error": round(statistics.median(errors), 4) if errors else None,
                "max_abs_error": round(max(errors), 4) if errors else None,
                "covered": sum(c["covered"] for c in group),
                "pessimistic_end_safe": sum(c.get("pessimistic_end_safe", False) for c in group),
            }
        )
    return rows


def survey(seed: dict[str, list[Any]], label: str) -> dict[str, Any]:
    models, schemes, quality = seed["models"], seed["schemes"], seed.get("quality", [])
    ppl = evidence_kinds(models, schemes, quality, "ppl")
    recovery = evidence_kinds(models, schemes, quality, "recovery", "openllm-v1")
    gaps = quality_gaps(models, schemes, quality)
    return {
        "seed": label,
        "models": len(models),
        "quantized_schemes": sum(s.family != "baseline" for s in schemes),
        "quality_rows": len(quality),
        "ppl_evidence": dict(Counter(ppl.values()).most_common()),
        "recovery_openllm_v1_evidence": dict(Counter(recovery.values()).most_common()),
        # Pairs a plan can hold: a scheme whose groups do not tile the model is left out.
        "common_pairs": len(makeable(gaps)),
        "common_pairs_same_model": sum(g.evidence in ("measured", "published") for g in gaps),
        "common_same_model_share": round(same_model_share(gaps), 4),
        "common_by_evidence": dict(Counter(g.evidence for g in gaps).most_common()),
        "pairs": {f"{m} | {s}": k for (m, s), k in sorted(ppl.items())},
    }


def _md_counts(before: dict[str, int], after: dict[str, int]) -> list[str]:
    lines = ["| evidence | before | after |", "|---|---:|---:|"]
    for kind in sorted(set(before) | set(after), key=lambda k: -after.get(k, 0)):
        lines.append(f"| {kind} | {before.get(kind, 0)} | {after.get(kind, 0)} |")
    return lines


def _md_holdout(summary: Sequence[dict[str, Any]]) -> list[str]:
    def shown(error: float | None) -> str:  # None: nothing to borrow, so no error to show
        return "-" if error is None else str(error)

    return [
        f"| {row['metric']} | {row['evidence']} | {row['cases']} | "
        f"{shown(row['median_abs_error'])} | {shown(row['max_abs_error'])} | "
        f"{row['covered']}/{row['cases']} | {row['pessimistic_end_safe']}/{row['cases']} |"
        for row in summary
    ]


def render(result: dict[str, Any]) -> str:
    before, after = result["before"], result["after"]
    out = [
        "# Quality evidence: what each quality figure rests on",
        "",
        f"Seeds compared: before = `{BEFORE}` (the seed before the quality-evidence commits), "
        "after = the shipped seed now. Generated by `bench/quality_evidence.py`.",
        "",
        "## Every (model, scheme) the planner can choose: perplexity figure",
        "",
        f"Before: {before['models']} models x {before['quantized_schemes']} quantized schemes, "
        f"{before['quality_rows']} quality rows. After: {after['models']} x "
        f"{after['quantized_schemes']}, {after['quality_rows']} rows (FP8 and INT8 W8A8 are new "
        "schemes: their pairs did not exist before).",
        "",
        *_md_counts(before["ppl_evidence"], after["ppl_evidence"]),
        "",
        "Task-accuracy recovery on OpenLLM v1 (`--recovery-benchmark openllm-v1`); `none` means "
        "no figure (a benchmark score is never invented):",
        "",
        *_md_counts(before["recovery_openllm_v1_evidence"], after["recovery_openllm_v1_evidence"]),
        "",
        "## (catalog model, common scheme) pairs with the model's own figure",
        "",
        f"Common schemes: {', '.join(COMMON_SCHEMES)} (BF16 is the reference itself). Any "
        "metric counts (perplexity, KL or recovery).",
        "",
        "| seed | pairs | own figure | share | target |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in (before, after):
        out.append(
            f"| {s['seed']} | {s['common_pairs']} | {s['common_pairs_same_model']} | "
            f"{s['common_same_model_share']:.0%} | 80 % |"
        )
    out += [
        "",
        *_md_counts(before["common_by_evidence"], after["common_by_evidence"]),
        "",
        "The 80 % target is not met: no published figure was found for the rest (GGUF of "
        "Qwen2.5-7B other than Q3_K_M and Q2_K, every GGUF type of Qwen2.5-14B and -72B, which "
        "borrow Qwen2.5-32B's; GGUF of "
        "Llama-3.2-1B below Q8_0, of Qwen3-14B other than Q8_0 and Q4_K_M, of Llama-3.1-70B "
        "other than Q6_K (a ratio only), of Llama-3.3-70B and Llama-2-13B; Qwen2.5-14B's 4- and "
        "8-bit weight-only schemes). Six searches of model cards, llama.cpp and ik_llama.cpp "
        "threads, papers and GGUF releases (seed version 31) found perplexity tables whose "
        "16-bit row was cut off or never published (ThomasBaruzier's Qwen2.5-7B and -14B "
        "releases), figures against an FP32 or Q8_0 reference, or other methods at the same "
        "bits (RTN and AutoRound for GPTQ): none is taken as the pair's own figure. Seed "
        "version 36 reads Qwen2.5-7B's Q3_K_M and Q2_K from the same cut-off table: its "
        "accuracy column is F16 over quant perplexity, and its fourteen stored rows agree on "
        "the F16 perplexity it implies (7.896). "
        "`quantplan catalog gaps --kind quality` lists them; each is borrowed (with "
        "its source shown and the cap checked at the band's pessimistic end) or refused under "
        "`--quality-evidence same-model`. Seed version 20 covers ten Qwen2.5 pairs with task "
        "recovery on four long-context tasks only (Mekala et al.): they satisfy a "
        "`--min-recovery` cap on those tasks, not a perplexity cap, which still borrows.",
        "",
        "## Hold-out: each pair's own figure removed in turn",
        "",
        "Error = borrowed estimate - held-out figure (perplexity delta in points of %, KL in "
        "nats, recovery in points of %). Covered: the held-out figure lies inside the band. "
        "Safe: it is no worse than the band's pessimistic end, where a cap is checked. "
        "Borrowed from `none`: no other figure to borrow, so a cap on it is refused.",
        "",
        "| metric | borrowed from | cases | median abs error | max abs error | covered | safe |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    out += _md_holdout(result["holdout_summary"])
    out += [
        "",
        f"Without the default model ({DEFAULT_MODEL}: 135 M parameters, base weights dequantized "
        "from Q4_1, perplexity on Python reference prose; far from the 7-70 B models it borrows "
        "from):",
        "",
        "| metric | borrowed from | cases | median abs error | max abs error | covered | safe |",
        "|---|---|---:|---:|---:|---:|---:|",
        *_md_holdout(result["holdout_summary_without_default_model"]),
    ]
    out += [
        "",
        "Reading (seed of 2026-12-02): a same-family borrowed perplexity or KL figure is often "
        "outside its x2 band, and mostly on the optimistic side: Llama-3-8B loses 3-6x what "
        "LLaMA-7B (the nearest model by size, so the one borrowed from) loses at the same GGUF "
        "format, and LLaMA-7B GPTQ loses 2.4x what Llama-2-7B does. A cap checked at the band's "
        "pessimistic end is still passed by a borrowed figure in these cases, so a "
        "same-family figure is weaker evidence than its band says; only the model's own figure "
        "(or `--quality-evidence same-model`) is safe. Borrowed recovery stays within about 3.5 "
        "points; a borrowed 100 % recovery now keeps a noise floor (0.25 points lost) so its "
        "band is not zero-width. Seed version 17 adds two cases where a small or different "
        "model loses far more than the one borrowed from: Llama-3.2-1B keeps 88 % of its "
        "OpenLLM v1 average under AWQ, where Llama-3.1-8B's figure says 97 %, and Qwen3-14B's "
        "AWQ perplexity rises 9.7 % (WikiText2) and 10.8 % (C4), where LLaMA-13B's says 2 %.",
    ]
    misses = [c for c in result["holdout"] if "error" in c and not c["pessimistic_end_safe"]]
    out += ["", f"Held-out figures worse than the pessimistic end ({len(misses)}):", ""]
    out += ["| model | scheme | metric | held out | borrowed from | estimate | band |"]
    out += ["|---|---|---|---:|---|---:|---|"]
    for c in sorted(misses, key=lambda c: -abs(c["error"])):
        out.append(
            f"| {c['model']} | {c['scheme']} | {c['metric']} | {c['held_out']:.4g} | "
            f"{c['source']} ({c['evidence']}) | {c['estimate']:.4g} | "
            f"{c['low']:.4g} - {c['high']:.4g} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    before_seed = seed_at(BEFORE)
    after_seed = {kind: list(records) for kind, records in seed_records()}
    after = survey(after_seed, "after (shipped)")
    cases = hold_out(after_seed["models"], after_seed["schemes"], after_seed["quality"])
    result = {
        "before_commit": BEFORE,
        "before": survey(before_seed, f"before ({BEFORE})"),
        "after": after,
        "holdout": cases,
        "holdout_summary": summarise_holdout(cases),
        "holdout_summary_without_default_model": summarise_holdout(
            [c for c in cases if c["model"] != DEFAULT_MODEL]
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality_evidence.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "quality_evidence.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
