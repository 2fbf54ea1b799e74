"""Managed toolchain environments and the step protocol that runs code inside them.

Public API::

    toolchain = ensure_toolchain("vllm-cpu")          # builds once (minutes), then cached
    toolchain.python                                   # interpreter path for subprocesses
    response = run_step(toolchain, "step_name", request_model, ResponseModel, timeout_s=600)
"""

from quantplan.agent.toolchains.build import (
    Toolchain,
    ToolchainMissingError,
    ensure_toolchain,
    find_toolchain,
    known_toolchains,
)
from quantplan.agent.toolchains.process import ToolchainBuildError
from quantplan.agent.toolchains.specs import TOOLCHAINS, ToolchainSpec, get_spec
from quantplan.agent.toolchains.steps import StepError, StepProgress, run_step

__all__ = [
    "TOOLCHAINS",
    "StepError",
    "StepProgress",
    "Toolchain",
    "ToolchainBuildError",
    "ToolchainMissingError",
    "ToolchainSpec",
    "ensure_toolchain",
    "find_toolchain",
    "get_spec",
    "known_toolchains",
    "run_step",
]
