"""A step runner whose steps are Python functions: the logic around steps, tested in milliseconds.

The counterpart of httpx's ``MockTransport``. Production code keeps calling
:func:`~quantplan.agent.toolchains.run_step` and
:func:`~quantplan.agent.toolchains.ensure_toolchain`; a test installs a :class:`FakeStepRunner`
and each step is answered by a handler that plays the step script::

    def convert(call: StepCall) -> dict[str, Any]:
        Path(call.request["output_path"]).write_bytes(b"GGUF")
        return {"seconds": 0.1, "peak_rss_mb": 10.0, "bits_per_weight": {...}}

    runner = FakeStepRunner({"gguf_convert": convert})
    with use_step_runner(runner):
        manifest = quantize(model_dir, "gguf", {"type": "F16"}, store=store)
    assert [call.step for call in runner.calls] == ["gguf_convert"]

What the protocol does still happens: the request reaches the handler as the JSON the step
script would read, the result is validated against the caller's response model (a malformed one
is a ``crash`` :class:`StepError`, as from a real step), and the step must exist in
``agent/steps/``. Every toolchain is "installed" at once, with the versions given.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from quantplan.agent.toolchains.build import Progress, Toolchain
from quantplan.agent.toolchains.specs import get_spec
from quantplan.agent.toolchains.steps import (
    ProgressHandler,
    StepError,
    StepProgress,
    validate_result,
)

ResponseT = TypeVar("ResponseT", bound=BaseModel)
FAKE_ROOT = Path("/nonexistent/quantplan-fake-toolchains")
"""Where fake toolchains claim to live: nothing may run from there."""


@dataclass
class StepCall:
    """One step the code under test ran: what it asked, and the means to answer like a step."""

    step: str
    toolchain: Toolchain
    request: dict[str, Any]
    """The request as the step script reads it: the request model's JSON, decoded."""
    timeout_s: float
    env: dict[str, str]
    on_progress: ProgressHandler | None = field(default=None, repr=False)

    def progress(
        self, message: str, completed: float | None = None, total: float | None = None
    ) -> None:
        """Report progress, as a step's ``@@progress`` line does."""
        if self.on_progress is not None:
            self.on_progress(StepProgress(message=message, completed=completed, total=total))

    def refuse(self, kind: str, message: str, *, hint: str | None = None) -> StepError:
        """The error a step's ``StepRefusal`` becomes (raise it from the handler)."""
        return StepError(self.step, kind, message, hint=hint)

    def crash(self, message: str, *, stderr_tail: str = "") -> StepError:
        """The error a step that died becomes (raise it from the handler)."""
        return StepError(self.step, "crash", message, stderr_tail=stderr_tail)


StepHandler = Callable[[StepCall], Mapping[str, Any] | BaseModel]


class FakeStepRunner:
    """Answers steps with ``handlers`` (one function for all, or one per step name).

    ``versions`` gives a toolchain's package versions (default: ``{name: "0+fake"}``), which
    artifacts record as their tool versions. ``calls`` lists every step run, in order.
    """

    def __init__(
        self,
        handlers: StepHandler | Mapping[str, StepHandler],
        *,
        versions: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.handlers = handlers
        self.versions = {name: dict(found) for name, found in (versions or {}).items()}
        self.calls: list[StepCall] = []

    def steps(self) -> list[str]:
        """The names of the steps run so far, in order."""
        return [call.step for call in self.calls]

    def toolchain(
        self, name: str, *, install: bool = True, progress: Progress | None = None
    ) -> Toolchain:
        del install, progress  # every fake toolchain is installed
        spec = get_spec(name)  # an unknown name is refused as the real runner refuses it
        return Toolchain(
            name=spec.name,
            key=f"fake-{spec.name}",
            root=FAKE_ROOT / spec.name,
            python_version=platform.python_version(),
            versions=self.versions.get(spec.name, {spec.name: "0+fake"}),
            built_at=datetime(2026, 1, 1, tzinfo=UTC),
            build_seconds=0.0,
        )

    def run(
        self,
        toolchain: Toolchain,
        step: str,
        request: BaseModel,
        response_type: type[ResponseT],
        *,
        timeout_s: float,
        on_progress: ProgressHandler | None,
        env: dict[str, str] | None,
    ) -> ResponseT:
        call = StepCall(
            step=step,
            toolchain=toolchain,
            request=json.loads(request.model_dump_json()),
            timeout_s=timeout_s,
            env=dict(env or {}),
            on_progress=on_progress,
        )
        self.calls.append(call)
        answer = self._handler(step)(call)
        result = (
            json.loads(answer.model_dump_json())
            if isinstance(answer, BaseModel)
            else json.loads(json.dumps(answer))  # what survives the response file
        )
        return validate_result(step, result, response_type)

    def _handler(self, step: str) -> StepHandler:
        if not isinstance(self.handlers, Mapping):
            return self.handlers
        try:
            return self.handlers[step]
        except KeyError:
            raise LookupError(
                f"FakeStepRunner has no handler for step {step!r} "
                f"(it has {', '.join(sorted(self.handlers)) or 'none'})"
            ) from None
