"""Engine and method constants come from one table each; a missing row gets a visible default."""

from __future__ import annotations

from quantplan.catalog.registry import ENGINES, METHODS
from quantplan.planner.hardware import (
    DEFAULT_ENGINE_TRAITS,
    DEFAULT_METHOD_TRAITS,
    ENGINE_TRAITS,
    METHOD_TRAITS,
    engine_traits,
    method_traits,
)


def test_every_catalog_engine_has_traits_on_both_device_kinds() -> None:
    for engine in ENGINES.names():
        for kind in ("gpu", "cpu"):
            assert (engine, kind) in ENGINE_TRAITS, f"{engine} on {kind} would use the default"
    assert {engine for engine, _ in ENGINE_TRAITS} <= set(ENGINES.names())


def test_an_engine_without_traits_gets_the_modeled_default_of_its_kind() -> None:
    traits = engine_traits("an-engine-not-in-the-table", "cpu")
    assert traits is DEFAULT_ENGINE_TRAITS["cpu"]
    assert traits.basis == "modeled" and "no traits for this engine" in traits.source
    assert engine_traits("llama.cpp", "gpu").max_concurrency == 64
    assert engine_traits("vllm", "gpu").tensor_parallel


def test_method_rules_name_registered_methods_and_default_visibly() -> None:
    assert set(METHOD_TRAITS) <= set(METHODS.names())
    assert method_traits("awq").slow_kernel_below_capability == 8.0
    assert method_traits("gguf") is DEFAULT_METHOD_TRAITS
    assert "whole model" in DEFAULT_METHOD_TRAITS.source
