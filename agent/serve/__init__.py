"""Serving engines behind one interface, and a manager that starts, watches and stops them.

Each engine is a folder here (``vllm/``, ``llamacpp/``) that registers its server class in
``registry.SERVERS``; importing this package imports every engine folder it finds, so a new
engine is its folder and nothing here. The servers named below are re-exported for callers.
"""

from __future__ import annotations

import importlib
import pkgutil

from quantplan.agent.serve.engine import EngineServer
from quantplan.agent.serve.llamacpp import LlamaCppServer, LlamaServer
from quantplan.agent.serve.registry import SERVERS
from quantplan.agent.serve.vllm import VllmServer

for _folder in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg):
    importlib.import_module(f"{__name__}.{_folder}")  # each engine folder registers itself


def engine_names() -> tuple[str, ...]:
    """The servers ``get_engine`` starts, by canonical name."""
    return SERVERS.names()


def get_engine(name: str, *, cuda: bool = False) -> EngineServer:
    """The engine called ``name`` or one of its aliases (``vllm``, ``llama.cpp`` =
    llama-server, ``llama-cpp-python``, ...); an unknown name is refused with near misses."""
    return SERVERS.get(name)(cuda=cuda)


def engine_for_artifact(path: object, *, cuda: bool = False) -> EngineServer:
    """The default engine for the artifact's format: llama.cpp's llama-server for GGUF files,
    vLLM for Hugging Face checkpoints."""
    from pathlib import Path

    from quantplan.agent.serve.engine import inspect_artifact
    from quantplan.agent.serve.errors import InvalidArtifactError

    info = inspect_artifact(Path(str(path)))
    for _, server in SERVERS.items():
        if info.format in server.default_for_formats:
            return server(cuda=cuda)
    raise InvalidArtifactError(f"no engine serves {info.format} artifacts by default")


__all__ = [
    "EngineServer",
    "LlamaCppServer",
    "LlamaServer",
    "VllmServer",
    "engine_for_artifact",
    "engine_names",
    "get_engine",
]
