"""Serving engines behind one interface, and a manager that starts, watches and stops them."""

from __future__ import annotations

from quantplan.agent.serve.engine import EngineServer
from quantplan.agent.serve.llamacpp import LlamaCppServer, LlamaServer
from quantplan.agent.serve.vllm import VllmServer

ENGINE_NAMES = ("vllm", "llama.cpp", "llama-cpp-python")


def get_engine(name: str, *, cuda: bool = False) -> EngineServer:
    """The engine called ``name``: ``vllm``, ``llama.cpp`` (llama-server) or
    ``llama-cpp-python`` (the Python bindings' one-request-at-a-time server)."""
    from quantplan.errors import UnknownNameError

    if name == "vllm":
        return VllmServer()
    if name in ("llama.cpp", "llamacpp", "llama-cpp", "llama-server"):
        return LlamaServer(cuda=cuda)
    if name == "llama-cpp-python":
        return LlamaCppServer(cuda=cuda)
    raise UnknownNameError("engine", name, ENGINE_NAMES)


def engine_for_artifact(path: object, *, cuda: bool = False) -> EngineServer:
    """llama.cpp's llama-server for GGUF files, vLLM for Hugging Face checkpoints."""
    from pathlib import Path

    from quantplan.agent.serve.engine import inspect_artifact

    info = inspect_artifact(Path(str(path)))
    return LlamaServer(cuda=cuda) if info.format == "gguf" else VllmServer()


__all__ = [
    "ENGINE_NAMES",
    "EngineServer",
    "LlamaCppServer",
    "LlamaServer",
    "VllmServer",
    "engine_for_artifact",
    "get_engine",
]
