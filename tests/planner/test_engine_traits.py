"""Engine and method traits are catalog rows the planner reads; a missing row gets a visible
default, and changing a row through a catalog import changes the plan."""

from __future__ import annotations

from pathlib import Path

import yaml

from quantplan.catalog.records import EngineTraitRecord, MethodTraitRecord
from quantplan.catalog.registry import ENGINES, METHODS
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.targets import Constraints, Targets, Workload
from quantplan.planner.traits import describe_engine_traits, engine_traits, method_traits

# Methods whose checkpoints and kernels are the planner's default (the scheme's bits per weight
# cover the whole model, BF16 math): no method_traits row. A new method needs a row or a place
# here, so that the choice is made, not defaulted into.
METHODS_WITHOUT_RULES = {"baseline", "gguf"}


def test_seed_rows_cover_every_engine_on_both_device_kinds(shipped: CatalogSnapshot) -> None:
    keys = set(shipped.engine_trait_by_key)
    for engine in ENGINES.names():
        for kind in ("gpu", "cpu"):
            assert (engine, kind) in keys, f"{engine} on {kind} would use the generic default"
    assert len(keys) == len(shipped.engine_traits)  # one row per key
    assert all(row.source and row.basis for row in shipped.engine_traits)
    assert engine_traits(shipped, "llama.cpp", "gpu").max_concurrency == 64
    assert engine_traits(shipped, "llama.cpp", "gpu").batching == "slots"
    assert engine_traits(shipped, "vllm", "gpu").tensor_parallel


def test_seed_rows_cover_every_method_with_a_rule(shipped: CatalogSnapshot) -> None:
    with_rows = set(shipped.method_trait_by_name)
    assert with_rows | METHODS_WITHOUT_RULES == set(METHODS.names())
    assert not with_rows & METHODS_WITHOUT_RULES
    assert method_traits(shipped, "awq").slow_kernel_below_capability == 8.0
    assert method_traits(shipped, "fp8").w8a8 and method_traits(shipped, "int8").w8a8


def test_a_missing_row_gives_the_visible_modeled_default(shipped: CatalogSnapshot) -> None:
    without = shipped.model_copy(
        update={
            "engine_traits": tuple(t for t in shipped.engine_traits if t.engine != "vllm"),
            "method_traits": (),
        }
    )
    traits = engine_traits(without, "vllm", "cpu")
    assert traits.basis == "modeled" and "no engine_traits row for vllm on cpu" in traits.source
    assert (traits.bandwidth_efficiency, traits.max_concurrency) == (0.5, 256)
    assert not engine_traits(without, "vllm", "gpu").tensor_parallel  # the generic default
    method = method_traits(without, "gptq")
    assert method.basis == "modeled" and "no method_traits row for gptq" in method.source
    assert not method.embeddings_in_16_bit
    assert method_traits(shipped, "gguf") == method_traits(without, "gguf")
    # The plan is still made, on the defaults, and says so.
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=2),
        constraints=Constraints(engines=("vllm",), families=("gptq",), device="gpu"),
    )
    plan = make_plan(targets, without)
    assert plan.feasible
    assert any(
        line.startswith("engine traits, vllm on gpu (modeled)") and "no engine_traits row" in line
        for line in plan.assumptions
    )
    assert any("method traits, gptq" in line and "no method_traits row" in line
               for line in plan.assumptions)  # fmt: skip


def _vllm_only() -> Targets:
    return Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=2),
        constraints=Constraints(engines=("vllm",), device="gpu"),
    )


def test_an_imported_trait_row_changes_the_plan(seeded_sqlite_url: str, tmp_path: Path) -> None:
    from quantplan.catalog.db import make_engine
    from quantplan.catalog.snapshot import load_snapshot
    from quantplan.catalog.sqlite_read import read_snapshot
    from quantplan.catalog.transfer import import_file

    engine = make_engine(seeded_sqlite_url)
    before = make_plan(_vllm_only(), load_snapshot(engine))
    shipped_row = load_snapshot(engine).engine_trait_by_key[("vllm", "gpu")]
    changed = shipped_row.model_copy(
        update={"max_concurrency": 1, "source": "a one-sequence vLLM, for this test"}
    )
    path = tmp_path / "traits.yaml"
    rows = [changed.model_dump(mode="json")]
    path.write_text(yaml.safe_dump({"kind": "engine_traits", "rows": rows}))
    assert import_file(engine, path, replace=True) == ("engine_traits", {
        "inserted": 0, "unchanged": 0, "replaced": 1,
    })  # fmt: skip
    after_full = load_snapshot(engine)
    engine.dispose()
    fast = read_snapshot(Path(seeded_sqlite_url.removeprefix("sqlite:///")))
    assert fast is not None and fast[0] == after_full
    assert after_full.engine_trait_by_key[("vllm", "gpu")] == changed
    after = make_plan(_vllm_only(), fast[0])
    assert before.choice is not None and after.choice is not None
    # One sequence per replica: far more replicas, at a higher price; the plan names the row.
    assert after.choice.usd_per_month > 2 * before.choice.usd_per_month
    assert any("a one-sequence vLLM, for this test" in line for line in after.assumptions)
    assert not any("a one-sequence vLLM" in line for line in before.assumptions)


def test_trait_records_refuse_unregistered_names_and_impossible_values() -> None:
    row = {
        "engine": "vllm",
        "device_kind": "gpu",
        "bandwidth_efficiency": 0.8,
        "compute_efficiency": 0.5,
        "runtime_overhead_gb": 1.5,
        "max_concurrency": 256,
        "tensor_parallel": True,
        "batching": "continuous",
        "basis": "modeled",
        "source": "test",
    }
    EngineTraitRecord.model_validate(row)
    for bad in ({"engine": "vlm"}, {"bandwidth_efficiency": 1.5}, {"batching": "paged"}):
        try:
            EngineTraitRecord.model_validate({**row, **bad})
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
    method = {"method": "awq", "embeddings_in_16_bit": True, "w8a8": False}
    MethodTraitRecord.model_validate({**method, "basis": "modeled", "source": "test"})


def test_a_plans_trait_line_says_how_fast_the_kv_cache_is_read(shipped: CatalogSnapshot) -> None:
    """The assumption line names the KV cache's own rate where the row has one, and says
    nothing of it where the cache is read at the weights' rate."""
    llamacpp = describe_engine_traits(engine_traits(shipped, "llama.cpp", "cpu"))
    assert "0.6 of spec bandwidth (the KV cache at 0.14, 0.27 without flash attention)" in llamacpp
    assert "KV cache" not in describe_engine_traits(engine_traits(shipped, "vllm", "gpu"))
