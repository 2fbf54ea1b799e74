"""Engine servers are found through one registry; each declares what the rest relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantplan.agent.serve import LlamaServer, VllmServer, engine_names, get_engine
from quantplan.agent.serve.engine import EngineServer
from quantplan.agent.serve.registry import SERVERS, register_server
from quantplan.agent.toolchains import get_spec
from quantplan.catalog.registry import ENGINES

REPO = Path(__file__).resolve().parents[2]


def test_every_server_names_a_catalog_engine_toolchain_and_recipe() -> None:
    assert engine_names() == ("llama.cpp", "llama-cpp-python", "vllm")
    for name, server in SERVERS.items():
        assert server.name == name
        assert server.catalog_engine in ENGINES.names()
        assert get_spec(server.toolchain).name == server.toolchain
        recipe = server.build_recipe.split(":", 1)[0]
        assert (REPO / recipe).is_file(), f"{name}: build recipe {recipe} is missing"
    # Every catalog engine can be started.
    assert {server.catalog_engine for _, server in SERVERS.items()} == set(ENGINES.names())


def test_aliases_and_cuda_reach_the_server() -> None:
    server = get_engine("LLAMA-SERVER", cuda=True)
    assert isinstance(server, LlamaServer) and server.cuda
    assert isinstance(get_engine("vllm"), VllmServer)


def test_a_server_must_name_a_catalog_engine() -> None:
    class Tgi(VllmServer):
        name = "tgi"
        catalog_engine = "text-generation-inference"

    with pytest.raises(ValueError, match="not a canonical engine name"):
        register_server(Tgi)
    assert "tgi" not in SERVERS
    assert issubclass(Tgi, EngineServer)
