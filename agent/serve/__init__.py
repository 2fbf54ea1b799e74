"""Serving engines behind one interface, and a manager that starts, watches and stops them."""

from __future__ import annotations

from quantplan.agent.serve.engine import EngineServer
from quantplan.agent.serve.llamacpp import LlamaCppServer
from quantplan.agent.serve.vllm import VllmServer

ENGINE_NAMES = ("vllm", "llama.cpp")


def get_engine(name: str, *, cuda: bool = False) -> EngineServer:
    """The engine called ``name`` (``vllm`` or ``llama.cpp``)."""
    from quantplan.errors import UnknownNameError

    if name == "vllm":
        return VllmServer()
    if name in ("llama.cpp", "llamacpp", "llama-cpp"):
        return LlamaCppServer(cuda=cuda)
    raise UnknownNameError("engine", name, ENGINE_NAMES)


def engine_for_artifact(path: object, *, cuda: bool = False) -> EngineServer:
    """llama.cpp for GGUF files, vLLM for Hugging Face checkpoints."""
    from pathlib import Path

    from quantplan.agent.serve.engine import inspect_artifact

    info = inspect_artifact(Path(str(path)))
    return LlamaCppServer(cuda=cuda) if info.format == "gguf" else VllmServer()
