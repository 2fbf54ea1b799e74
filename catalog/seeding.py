"""The seed catalog shipped in the package (catalog/seed/*.yaml): first use, upgrades, reseed.

Seed files use the same format as ``quantplan catalog export``; every row names its source.
Seed data is versioned (``SEED_VERSION``); the ``seed_state`` table records the versions a
catalog has received. Opening a catalog seeded by an older quantplan appends the newer seed
rows (:func:`upgrade_seed`): missing reference rows and measurements are added, a seeded price
that changed is superseded by the new one, and rows the user wrote (imports, refreshes, agent
reports) are never touched. ``catalog reseed`` (:func:`reseed_catalog`) puts the shipped
values back on request.

Seed versions:
1. The first shipped catalog (catalogs created before schema revision 0005).
2. Prices state their spot statistic and carry doubt flags (suspicious spot discounts, rows
   the source itself questions).
3. Published performance profiles with citations, the project's own measured quality of the
   default model (from its quantize benchmark), and more published quality figures.
4. FP8 and INT8 W8A8 schemes with their kernel rules, published task-accuracy recovery of
   quantized releases (model cards), and more published quality figures.
5. llama.cpp's profiles describe the engine as deployed (llama-server, which batches): the 42
   H200 llama-batched-bench rows, and llama-cpp-python's one-request-at-a-time server no longer
   seeded at concurrency > 1. Upgrades and reseeds only add rows, so a catalog seeded earlier
   keeps those 7 rows.
6. 106 more published profiles, Llama-3-70B and Llama-3.3-70B, RTX 4090/3090, more quality.
7. llama-server over HTTP on an H200 (SmolLM2-135M and Llama-3.1-8B shapes, F16, concurrency
   1-64, one row a level, ``details: {served: true}``): llama.cpp's served batching curve.
8. Engine and method traits (``engine_traits.yaml``, ``method_traits.yaml``): what the planner
   assumes of each engine per device kind and of each quantization method, as rows with a
   basis and a source; the values the planner held as constants before.
9. One H200 run measured both ways on one file (``profiles_llamacpp_served_gap.yaml``): the
   8B F16 shape through llama-batched-bench and through llama-server over HTTP, at 1/16/64.
10. The same file's Q8_0 and Q4_K_M measured both ways at 1/4/16/64 (same seed file).
11. The default model's INT8 W8A8 quality, measured (``quality_measured.yaml``).
12. Published recovery of Llama-3.3-70B (FP8, INT8), Qwen2.5-7B (INT8, GPTQ) and Mistral-7B
    (GPTQ) releases (``quality_recovery.yaml``).
13. llama-server on this project's 2-core CPU machine, default model Q4_K_M and Q8_0 at
    concurrency 1-16, measured quiet (``profiles_llamacpp_server_cpu.yaml``).
14. Published recovery of Llama-3.1-70B (GPTQ W8A16, INT8 W8A8) and Qwen2.5-14B (INT8 W8A8)
    releases (``quality_recovery.yaml``).
15. 43 published vLLM runs: its performance CI on H200, an AWQ pull request on an A100, BF16 and
    FP8 W8A8 sweeps on L40S, BF16 on H100 SXM, FP16 / GPTQ / AWQ on an A100 40GB
    (``profiles_published_vllm_benchmarks.yaml``); vLLM before 0.6.0 marked superseded.
16. More published quality: FP8 releases of Mixtral-8x7B, Mistral-7B, Llama-2-7B and
    Llama-3-70B, Llama-3-70B's W8A16, a community 8-bit GPTQ card, and llama.cpp perplexity of
    Llama-3.1-8B and Llama-3-70B (Q8_0 to Q2_K) and of Mistral-7B (Q2_K to Q6_K); and the
    first seed retraction (``seed_retractions.yaml``):
    Llama-3-8B's W8A16 row had its two averages swapped, as the card's intro sentence has them.
17. Published quality from papers (a Qwen3 quantization study, "Give Me BF16", Lee et al.'s
    OpenLLM evaluations), Mixtral GGUF perplexity, and a retracted Qwen2.5-72B INT8 row (the
    base model's figures under the Instruct release) shipped again under its own model.
18. How often spot capacity is taken back (``spot_interruptions.yaml``): AWS's published
    monthly interruption bands for p5.48xlarge and p4d.24xlarge, and AWS-wide spans for GPU
    and CPU instances without a band of their own.
19. llama-server's H200 HTTP curves remeasured (``profiles_llamacpp_server_http_gpu.yaml``):
    the shipped ones came from benchmark levels that sent the same prompts to a server whose
    prompt cache was on; those 14 rows are retracted.
20. More published quality where the catalog had none for the model: Qwen2.5-7B/32B/72B GPTQ,
    AWQ, 8-bit GPTQ and FP8 on four long-context tasks (Mekala et al.'s results file), 8-bit GPTQ
    of Llama-2-7B and Mistral-7B (model cards) and of LLaMA-7B/13B, SmoothQuant W8A8 of
    LLaMA-7B/13B, FP8 of Llama-2-70B (TensorRT-LLM's blog), Q8_0 of Llama-3.2-1B.
21. The project's vLLM CPU rows counted in the family's vCPUs: the 2-vCPU machine they ran on
    shows 2 cores of one thread, so vLLM had 2 whole cores, a c7i.xlarge's 4 vCPUs (they were
    filed as 2, a c7i.large's one core); the 3 rows as shipped are retracted.
22. The README demo's apply on the local cluster, measured on the same host (vLLM BF16 and
    llama.cpp Q8_0 of the default model, ``bench/results/cluster_apply.json``).
23. vLLM CPU through its HTTP server on the same host, BF16, GPTQ and AWQ of the default model
    at concurrency 1-8 (``profiles_vllm_cpu_server.yaml``): the first vLLM CPU rows at one
    request, from which the planner fits its prefill apart from decode.
24. The README demo's apply rerun: its plan's llama.cpp replica is now Q4_K_M (at 4 requests),
    and its vLLM replica measured again.
25. A GGUF plan applied through Ray on one H200 (``bench/results/gpu_apply.json``): the default
    model's F16 on the CUDA llama-server, at 4 requests and at the plan's 64.
26. llama.cpp on A100 80GB PCIe from llama.cpp PR #6017 (batch-1 decode, one GPU F16 and
    eight GPUs Q8_0): the A100s' only llama.cpp evidence beside XiongjieDai's.
27. Hardware rows name their memory technology (``memory_type``: hbm, gddr, unified, ddr),
    which the planner calibrates by within a generation (schema revision 0010 fills it in
    for the rows shipped before).
28. Qwen2.5-32B's own GGUF perplexities, Q8_0 to Q2_K against F16 (one release's
    perplexity.md, importance-matrix quants): six pairs that borrowed before.
29. Model rows carry their MLP width (``intermediate_size``, from config.json; schema revision
    0011 fills it in for the rows shipped before), which grouped schemes must tile.
30. llama.cpp's GPU traits give the rate at which its attention reads the KV cache, with flash
    attention and without (schema revision 0012 fills them in for the row shipped before).
31. Two published GGUF quality rows (Qwen3-14B Q8_0, Llama-3.1-70B Q6_K).
32. llama.cpp on one H100 SXM, one sequence, every common GGUF type of the Llama 8B shape and
    three of the 1B shape (``profiles_llamacpp_types_gpu.yaml``, random weights: speed only).
33. llama.cpp PR #6766's tg128 rows of its CUDA-graphs code on one RTX 3090 Ti (a new
    hardware row) and one RTX 4090.
34. llama.cpp's engine loop on one H100 SXM, 1-64 sequences of the Llama 8B and 1B shapes,
    each file's first level run again warm (``profiles_llamacpp_batched_h100.yaml``, random
    weights: speed only).
35. llama-server over HTTP on one H100 SXM, 1-64 requests of the Llama 8B shape in Q8_0 and
    Q4_K_M (``profiles_llamacpp_batched_h100.yaml``, random weights: speed only).
36. Qwen2.5-7B-Instruct's published GGUF Q3_K_M and Q2_K perplexities (an imatrix release;
    the baseline from its table's accuracy column, F16 over quant).
37. llama-server over HTTP on one H100 SXM with the H200 served-gap protocol, each file's levels
    twice in a row (``profiles_llamacpp_served_twice_h100.yaml``, random weights: speed only).

A shipped measurement found wrong later is not edited in catalogs that have it (measurements
are append-only): ``seed_retractions.yaml`` names it, and an upgrade or a reseed retracts it
(readers leave it out; the corrected row is shipped beside it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, func
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from quantplan import __version__
from quantplan.catalog.models import InstanceType, SeedState
from quantplan.catalog.price_history import PRICE_FIELDS, supersede
from quantplan.catalog.records import (
    KIND_ORDER,
    RECORD_TYPES,
    HardwareRecord,
    InstanceRecord,
    Record,
)
from quantplan.catalog.retractions import RETRACTABLE_TABLES, retract
from quantplan.catalog.sessions import CatalogBusyError, CatalogDamagedError, session_scope
from quantplan.catalog.store import ConflictError, Resolver, current_row_id, write_record
from quantplan.catalog.transfer import parse
from quantplan.inputs import parse_shipped_yaml

SEED_DIR = Path(__file__).parent / "seed"
SEED_VERSION = 37
SEED_RETRACTIONS = Path(__file__).parent / "seed_retractions.yaml"


def seed_records() -> list[tuple[str, list[Record]]]:
    """Every seed file's records, in dependency order."""
    loaded: dict[str, list[Record]] = {}
    for path in sorted(SEED_DIR.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        kind, records = parse(text, "yaml", None, path.name, shipped=True)
        loaded.setdefault(kind, []).extend(records)
    return [(kind, loaded[kind]) for kind in KIND_ORDER if kind in loaded]


@lru_cache(maxsize=1)
def shipped_hardware() -> tuple[HardwareRecord, ...]:
    """The hardware rows the seed ships (its GPUs and CPU families), without the other files."""
    path = SEED_DIR / "hardware.yaml"
    _, records = parse(path.read_text(encoding="utf-8"), "yaml", None, path.name, shipped=True)
    return tuple(r for r in records if isinstance(r, HardwareRecord))


class SeedRetraction(BaseModel):
    """A measurement an earlier seed shipped, taken back by a later one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="profiles or quality")
    seed_version: int = Field(ge=1, description="The seed version that took it back")
    reason: str = Field(min_length=1, description="Why, and where the corrected figure is")
    row: dict[str, Any] = Field(description="The row as the earlier seed shipped it")

    def record(self) -> Record:
        return RECORD_TYPES[self.kind].model_validate(self.row)


class _SeedRetractions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    retractions: tuple[SeedRetraction, ...]


@lru_cache(maxsize=1)
def seed_retractions() -> tuple[SeedRetraction, ...]:
    """The shipped rows later seeds took back (``seed_retractions.yaml``)."""
    text = SEED_RETRACTIONS.read_text(encoding="utf-8")
    loaded = _SeedRetractions.model_validate(parse_shipped_yaml(text, SEED_RETRACTIONS.name))
    for entry in loaded.retractions:
        if entry.kind not in RETRACTABLE_TABLES:
            raise ValueError(f"{SEED_RETRACTIONS.name}: {entry.kind!r} rows cannot be retracted")
        entry.record()  # a row that no longer validates is a broken file, said at once
    return loaded.retractions


def _retract_shipped_mistakes(session: Session, resolver: Resolver) -> int:
    """Retract every row an earlier seed shipped and a later one took back; how many were."""
    retracted = 0
    for entry in seed_retractions():
        row_id = current_row_id(session, entry.kind, entry.record(), resolver)
        if row_id is None:
            continue  # never shipped to this catalog, or already taken back (no longer current)
        retract(
            session,
            entry.kind,
            row_id,
            entry.reason,
            retracted_by=f"quantplan seed version {entry.seed_version}",
        )
        retracted += 1
    return retracted


def _current(session: Session, record: InstanceRecord) -> InstanceType | None:
    return session.exec(
        select(InstanceType).where(
            InstanceType.cloud == record.cloud,
            InstanceType.name == record.name,
            InstanceType.region == record.region,
            col(InstanceType.superseded_at).is_(None),
        )
    ).first()


def _price_values(record: InstanceRecord) -> dict[str, object]:
    values: dict[str, object] = {name: getattr(record, name) for name in PRICE_FIELDS}
    values["seed_version"] = SEED_VERSION
    return values


@dataclass
class SeedReport:
    """What a seed run wrote, per kind, and what it left alone because the user owns it."""

    added: dict[str, int] = field(default_factory=dict)
    prices_superseded: int = 0
    kept_user_rows: int = 0
    retracted: int = 0  # shipped measurements a later seed took back (seed_retractions.yaml)
    seed_rows: dict[str, int] = field(default_factory=dict)  # the seed's rows per kind, read


def _write_seed(session: Session, *, mode: str, now: datetime) -> SeedReport:
    """Write the seed rows. ``mode``: ``fresh`` (empty catalog), ``upgrade`` or ``reseed``."""
    report = SeedReport()
    resolver = Resolver(session)  # names looked up once for the whole seed, not once a row
    if mode != "fresh":  # a fresh catalog never held a row an earlier seed shipped
        # First, so that a corrected row with the retracted one's key is appended, not refused.
        report.retracted = _retract_shipped_mistakes(session, resolver)
    for kind, records in seed_records():
        report.seed_rows[kind] = len(records)
        for number, record in enumerate(records, start=1):
            try:
                if kind == "instances" and mode != "fresh":
                    assert isinstance(record, InstanceRecord)
                    current = _current(session, record)
                    if current is not None:
                        same = all(getattr(current, f) == getattr(record, f) for f in PRICE_FIELDS)
                        if same:
                            current.seed_version = current.seed_version or SEED_VERSION
                            continue
                        if current.seed_version is None and mode == "upgrade":
                            report.kept_user_rows += 1  # the user's price stays current
                            continue
                        supersede(session, current, _price_values(record), now)
                        report.prices_superseded += 1
                        continue
                try:
                    outcome = write_record(
                        session, kind, record, replace=mode == "reseed", resolver=resolver
                    )
                except ConflictError:
                    if mode == "fresh":
                        raise
                    report.kept_user_rows += 1  # a row of the user's with the same key
                    continue
                if outcome != "unchanged":
                    report.added[kind] = report.added.get(kind, 0) + 1
                if kind == "instances":
                    assert isinstance(record, InstanceRecord)
                    row = _current(session, record)
                    if row is not None:
                        row.seed_version = SEED_VERSION
                        session.add(row)
            except (OperationalError, CatalogBusyError, CatalogDamagedError):
                raise  # the database failed, not the row: say so, not "row N is broken"
            except Exception as error:
                raise RuntimeError(f"seed {kind} row {number} is broken: {error}") from error
    if session.get(SeedState, SEED_VERSION) is None:
        session.add(SeedState(version=SEED_VERSION, applied_at=now, quantplan_version=__version__))
    session.flush()
    return report


def seed_catalog(engine: Engine) -> dict[str, int]:
    """Write the seed rows into an empty catalog in one transaction; counts per kind."""
    with session_scope(engine) as session:
        report = _write_seed(session, mode="fresh", now=datetime.now(UTC))
    return report.seed_rows  # counted while writing: the seed is parsed once


def seed_version_of(session: Session) -> int:
    """The newest seed version a catalog has received (0: none recorded)."""
    return session.exec(select(func.max(SeedState.version))).one() or 0


def upgrade_seed(engine: Engine) -> SeedReport | None:
    """Append the seed rows newer than the catalog's seed version; None when it is current."""
    with Session(engine) as session:
        if seed_version_of(session) >= SEED_VERSION:
            return None
    with session_scope(engine) as session:
        if seed_version_of(session) >= SEED_VERSION:
            return None  # another process upgraded it while this one waited for the lock
        return _write_seed(session, mode="upgrade", now=datetime.now(UTC))


def reseed_catalog(engine: Engine) -> SeedReport:
    """Put the shipped seed values back: seeded prices current again (refreshed ones stay in
    history), reference rows as shipped, missing seed measurements added."""
    with session_scope(engine) as session:
        return _write_seed(session, mode="reseed", now=datetime.now(UTC))
