"""The catalog's small vocabularies, kept free of database imports so that light modules
(records, the planner) can use them without loading SQLAlchemy."""

from typing import Literal

DeviceKind = Literal["gpu", "cpu"]
SchemeFamily = Literal["baseline", "gptq", "awq", "gguf"]
Engine = Literal["vllm", "llama.cpp"]
Basis = Literal["measured", "published", "modeled"]
RunStatus = Literal["running", "succeeded", "failed"]
