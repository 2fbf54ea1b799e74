"""Quantizers are found through one registry; method folders never reach back into the API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from quantplan.agent.quantize import QUANTIZERS, get_quantizer
from quantplan.agent.quantize.gguf import GgufConfig, GgufQuantizer
from quantplan.agent.toolchains import get_spec
from quantplan.catalog.registry import METHODS
from quantplan.errors import UnknownNameError

QUANTIZE_DIR = Path(__file__).resolve().parents[2] / "agent" / "quantize"


def test_every_quantizer_is_a_catalog_method_with_a_strict_config() -> None:
    assert set(QUANTIZERS.names()) == {"gptq", "awq", "gguf", "int8", "fp8"}
    for name, quantizer in QUANTIZERS.items():
        assert quantizer.method == name and name in METHODS.names()
        assert get_spec(quantizer.toolchain).name == quantizer.toolchain
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            quantizer.config_type.model_validate({"no_such_option": 1})
    assert get_quantizer("GPTQ") is QUANTIZERS.get("gptq")


def test_a_catalog_method_without_a_quantizer_is_refused_with_near_misses() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_quantizer("baseline")  # a catalog method, but nothing here makes it
    assert str(caught.value).startswith("unknown quantization method 'baseline'")
    with pytest.raises(UnknownNameError) as near:
        get_quantizer("gtpq")
    assert near.value.hint == "did you mean gptq?"


def test_gguf_types_other_than_f16_are_made_from_the_f16_artifact() -> None:
    gguf = GgufQuantizer()
    assert gguf.prerequisite(GgufConfig(type="Q8_0")) == ("gguf", {"type": "F16"})
    assert gguf.prerequisite(GgufConfig(type="F16")) is None


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):  # function-level imports count too: they close a circle as well
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_method_folders_do_not_import_the_quantize_api() -> None:
    folders = [p for p in QUANTIZE_DIR.iterdir() if (p / "__init__.py").is_file()]
    assert {p.name for p in folders} >= {"gptq", "awq", "gguf"}
    below = [QUANTIZE_DIR / name for name in ("base.py", "registry.py", "llmcompressor_common.py")]
    for path in [*below, *(f for folder in folders for f in folder.glob("*.py"))]:
        imported = _imported_modules(path)
        assert "quantplan.agent.quantize.api" not in imported, f"{path} imports the API"
        assert "quantplan.agent.quantize" not in imported, f"{path} imports the package"
