"""vLLM: its OpenAI-compatible server (``server.py``), registered as engine ``vllm``."""

from quantplan.agent.serve.registry import register_server
from quantplan.agent.serve.vllm.server import VllmServer

register_server(VllmServer)

__all__ = ["VllmServer"]
