"""llama.cpp: ``llama-server`` (engine ``llama.cpp``) and llama-cpp-python's server
(``llama-cpp-python``), both in ``server.py``."""

from quantplan.agent.serve.llamacpp.server import LlamaCppServer, LlamaServer
from quantplan.agent.serve.registry import register_server

register_server(LlamaServer, aliases=("llamacpp", "llama-cpp", "llama-server"))
register_server(LlamaCppServer)

__all__ = ["LlamaCppServer", "LlamaServer"]
