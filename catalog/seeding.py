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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from quantplan import __version__
from quantplan.catalog.models import InstanceType, SeedState
from quantplan.catalog.price_history import PRICE_FIELDS, supersede
from quantplan.catalog.records import KIND_ORDER, InstanceRecord, Record
from quantplan.catalog.sessions import CatalogBusyError, CatalogDamagedError, session_scope
from quantplan.catalog.store import ConflictError, write_record
from quantplan.catalog.transfer import parse

SEED_DIR = Path(__file__).parent / "seed"
SEED_VERSION = 15


def seed_records() -> list[tuple[str, list[Record]]]:
    """Every seed file's records, in dependency order."""
    loaded: dict[str, list[Record]] = {}
    for path in sorted(SEED_DIR.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        kind, records = parse(text, "yaml", None, path.name, shipped=True)
        loaded.setdefault(kind, []).extend(records)
    return [(kind, loaded[kind]) for kind in KIND_ORDER if kind in loaded]


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
    seed_rows: dict[str, int] = field(default_factory=dict)  # the seed's rows per kind, read


def _write_seed(session: Session, *, mode: str, now: datetime) -> SeedReport:
    """Write the seed rows. ``mode``: ``fresh`` (empty catalog), ``upgrade`` or ``reseed``."""
    report = SeedReport()
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
                    outcome = write_record(session, kind, record, replace=mode == "reseed")
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
