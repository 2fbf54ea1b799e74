"""The method and engine registries: canonical names, aliases, did-you-mean, strict fields."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from quantplan.catalog.records import EngineSupportRecord
from quantplan.catalog.registry import ENGINES, METHODS, EngineName, MethodName, Registry
from quantplan.errors import UnknownNameError


class _Row(BaseModel):
    method: MethodName
    engine: EngineName


def test_names_and_aliases_resolve_to_canonical_names() -> None:
    assert METHODS.names() == ("baseline", "gptq", "awq", "gguf", "fp8", "int8")
    assert ENGINES.names() == ("vllm", "llama.cpp")
    row = _Row(method="GPTQ", engine="llama-server")
    assert (row.method, row.engine) == ("gptq", "llama.cpp")


def test_unknown_name_is_refused_with_the_nearest_known_one() -> None:
    with pytest.raises(UnknownNameError) as caught:
        ENGINES.canonical("vlm")
    assert caught.value.hint == "did you mean vllm?"
    with pytest.raises(ValidationError) as invalid:
        _Row(method="gtpq", engine="vllm")
    message = invalid.value.errors()[0]["msg"]
    assert message.startswith("unknown quantization method 'gtpq' (did you mean gptq?)")
    assert "known: baseline, gptq, awq, gguf, fp8, int8" in message


def test_fields_are_strict_strings() -> None:
    with pytest.raises(ValidationError, match="valid string"):
        _Row(method=4, engine="vllm")  # type: ignore[arg-type]  # the wrong type is the test
    with pytest.raises(ValidationError, match="unknown engine"):
        EngineSupportRecord.model_validate(
            {"engine": "tgi", "family": "gptq", "device_kind": "gpu", "kernel": "k", "source": "s"}
        )


def test_json_schema_lists_the_registered_names() -> None:
    schema = _Row.model_json_schema()["properties"]
    assert schema["engine"]["enum"] == ["vllm", "llama.cpp"]
    assert schema["engine"]["type"] == "string"
    assert schema["method"]["enum"] == list(METHODS.names())


def test_a_name_is_registered_once_and_within_its_parent() -> None:
    servers: Registry[str] = Registry("server", within=ENGINES)
    servers.register("llamacpp", "llama-server")  # an alias of the parent becomes canonical
    assert servers.names() == ("llama.cpp",)
    assert servers.get("LLAMA.CPP") == "llama-server"
    with pytest.raises(ValueError, match="already registered"):
        servers.register("llama.cpp", "again")
    with pytest.raises(UnknownNameError):
        servers.register("tgi", "unknown to the catalog")
