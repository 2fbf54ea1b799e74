"""Run a step script inside a toolchain's interpreter: JSON request in, validated JSON out.

Protocol (see ``quantplan/agent/steps/_stepio.py``, the other half):

* the core writes the request model as JSON to a file and starts
  ``<toolchain python> agent/steps/<step>.py REQUEST.json RESPONSE.json``;
* the step prints progress lines ``@@progress {"message": ..., "completed": ..., "total": ...}``
  on stderr, and writes ``{"ok": true, "result": {...}}`` or
  ``{"ok": false, "error": {"kind", "message", "hint"}}`` to the response file;
* the core validates ``result`` against the caller's response model. Nothing is pickled.

Where steps run is one seam, as a transport is in httpx: :func:`run_step` and
:func:`ensure_toolchain` hand over to the current :class:`StepRunner`. It is the
:class:`SubprocessStepRunner` (built toolchains, step scripts as subprocesses) unless a test
installs another with :func:`use_step_runner`, such as ``toolchains.fake.FakeStepRunner``, whose
steps are Python functions: the quantize and evaluate logic around a step (content addresses,
refusals, staging, manifests) then runs in milliseconds without a toolchain.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quantplan.agent.toolchains.build import Progress, Toolchain
from quantplan.agent.toolchains.build import ensure_toolchain as find_or_build_toolchain
from quantplan.agent.toolchains.process import forget_group, start_in_group, stop_group
from quantplan.errors import QuantplanError

ResponseT = TypeVar("ResponseT", bound=BaseModel)
PROGRESS_PREFIX = "@@progress "
STDERR_TAIL_LINES = 30
# The last line of a Python traceback ("ValueError: ..."), also when a child process's output
# carries a prefix such as "(EngineCore pid=12) ".
_EXCEPTION_LINE = re.compile(r"(?:^|[\s)\]])(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception): \S")
ERRORS_KEPT = 3  # exception reports named in a crash message, most recent last
ERROR_CONTINUATION_LINES = 2  # lines after an exception line that often carry its details
STDERR_TAIL_MARKER = "\n--- last lines of the step's stderr ---\n"
# A step asked to stop (timeout, Ctrl-C, SIGTERM) gets this long to exit before SIGKILL.
STEP_STOP_GRACE_S = 5.0


def without_stderr_tail(message: str) -> str:
    """A step error's message without the stderr tail: the reasons, not the traceback."""
    return message.split(STDERR_TAIL_MARKER)[0].strip()


class StepProgress(BaseModel):
    """One progress report from a running step."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="What the step is doing now.")
    completed: float | None = Field(default=None, description="Units done so far, if countable.")
    total: float | None = Field(default=None, description="Units in all, if known.")


class StepError(QuantplanError):
    """A step failed: refused its input (``kind`` names why) or crashed (stderr tail attached)."""

    def __init__(
        self, step: str, kind: str, message: str, *, hint: str | None = None, stderr_tail: str = ""
    ) -> None:
        text = f"{step}: {message}"
        if stderr_tail:
            text += f"{STDERR_TAIL_MARKER}{stderr_tail}"
        super().__init__(text, hint=hint)
        self.step = step
        self.kind = kind
        self.stderr_tail = stderr_tail


def steps_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "steps"


def step_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for step processes: offline, no user site-packages, quiet tokenizers."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    environment.update(
        {
            "PYTHONNOUSERSITE": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    from quantplan.agent.toolchains.gpu_scope import current_gpus

    scope = current_gpus()
    if scope is not None:  # a job on leased GPUs: its steps see exactly those
        environment.update(scope.environment())
    environment.update(extra or {})
    return environment


ProgressHandler = Callable[[StepProgress], None]


class StepRunner(Protocol):
    """Where toolchains come from and steps run (:class:`SubprocessStepRunner` in production)."""

    def toolchain(self, name: str, *, install: bool, progress: Progress | None) -> Toolchain:
        """The toolchain ``name``, as :func:`ensure_toolchain` documents."""
        ...

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
        """Run ``step`` on ``request`` and return its result validated as ``response_type``,
        or raise :class:`StepError`."""
        ...


class SubprocessStepRunner:
    """The real runner: built toolchain environments, each step a subprocess of its
    interpreter speaking the JSON protocol of this module's docstring."""

    def toolchain(
        self, name: str, *, install: bool = True, progress: Progress | None = None
    ) -> Toolchain:
        return find_or_build_toolchain(name, install=install, progress=progress)

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
        return _run_in_subprocess(
            toolchain, step, request, response_type, timeout_s, on_progress, env
        )


_runner: StepRunner = SubprocessStepRunner()


def current_step_runner() -> StepRunner:
    return _runner


@contextmanager
def use_step_runner(runner: StepRunner) -> Iterator[StepRunner]:
    """Run every step and look up every toolchain through ``runner`` inside the block (in all
    threads: the seam is process-wide), then go back to the runner before it."""
    global _runner
    previous, _runner = _runner, runner
    try:
        yield runner
    finally:
        _runner = previous


def ensure_toolchain(
    name: str, *, install: bool = True, progress: Progress | None = None
) -> Toolchain:
    """Return the toolchain ``name``, building it first when needed (minutes, done once).

    With ``install=False`` a missing toolchain raises ``ToolchainMissingError`` instead. Goes
    through the current :class:`StepRunner` (see :func:`use_step_runner`).
    """
    return _runner.toolchain(name, install=install, progress=progress)


def run_step(
    toolchain: Toolchain,
    step: str,
    request: BaseModel,
    response_type: type[ResponseT],
    *,
    timeout_s: float = 3600,
    on_progress: ProgressHandler | None = None,
    env: dict[str, str] | None = None,
) -> ResponseT:
    """Run ``agent/steps/<step>.py`` in ``toolchain`` and return its validated response."""
    from quantplan.agent.toolchains.gpu_scope import refuse_step_without_gpu
    from quantplan.agent.toolchains.specs import GPU_TOOLCHAINS

    refuse_step_without_gpu(toolchain.name, toolchain.name in GPU_TOOLCHAINS)
    script = steps_dir() / f"{step}.py"
    if not script.is_file():
        raise QuantplanError(f"no step script {script}", hint="this is a packaging bug")
    return _runner.run(
        toolchain,
        step,
        request,
        response_type,
        timeout_s=timeout_s,
        on_progress=on_progress,
        env=env,
    )


def _run_in_subprocess(
    toolchain: Toolchain,
    step: str,
    request: BaseModel,
    response_type: type[ResponseT],
    timeout_s: float,
    on_progress: ProgressHandler | None,
    env: dict[str, str] | None,
) -> ResponseT:
    script = steps_dir() / f"{step}.py"
    with tempfile.TemporaryDirectory(prefix=f"quantplan-{step}-") as scratch:
        request_path = Path(scratch) / "request.json"
        response_path = Path(scratch) / "response.json"
        request_path.write_text(request.model_dump_json(), encoding="utf-8")
        # Its own process group, so a timeout or a shutdown signal stops its children too.
        process = start_in_group(
            [str(toolchain.python), str(script), str(request_path), str(response_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=step_environment(env),
            text=True,
            errors="replace",
        )
        tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        errors = _ErrorLines()
        reader = threading.Thread(
            target=_pump_stderr, args=(process, tail, errors, on_progress), daemon=True
        )
        reader.start()
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_group(process, STEP_STOP_GRACE_S)
            reader.join(5)
            raise StepError(
                step,
                "timeout",
                f"did not finish within {timeout_s:.0f} s and was stopped",
                hint="give it more time (timeout) or less work (fewer samples, shorter texts)",
                stderr_tail="\n".join(tail),
            ) from None
        except BaseException:
            stop_group(process, STEP_STOP_GRACE_S)
            raise
        forget_group(process)
        reader.join(5)
        return _read_response(
            step, response_path, returncode, "\n".join(tail), response_type, errors.summary()
        )


class _ErrorLines:
    """The last few exception reports in a step's stderr, with a line or two of detail each.

    A step's children write to the same stream. When vLLM's engine core fails to start, the
    step itself dies of a wrapper ("Engine core initialization failed. See root cause above")
    and the real cause, printed earlier by the child, has scrolled out of the tail.
    """

    def __init__(self) -> None:
        self.reports: deque[list[str]] = deque(maxlen=ERRORS_KEPT)
        self._following = 0

    def add(self, line: str) -> None:
        if _EXCEPTION_LINE.search(line):
            self.reports.append([line])
            self._following = ERROR_CONTINUATION_LINES
        elif self._following and "Traceback (most recent call last)" not in line:
            self.reports[-1].append(line)
            self._following -= 1
        else:
            self._following = 0

    def summary(self) -> str:
        return "\n".join("\n".join(report) for report in self.reports)


def _pump_stderr(
    process: subprocess.Popen[str],
    tail: deque[str],
    errors: _ErrorLines,
    on_progress: Callable[[StepProgress], None] | None,
) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        stripped = line.rstrip()
        if stripped.startswith(PROGRESS_PREFIX):
            if on_progress is not None:
                try:
                    on_progress(StepProgress.model_validate_json(stripped[len(PROGRESS_PREFIX) :]))
                except ValidationError:
                    tail.append(stripped)
        elif stripped:
            tail.append(stripped)
            errors.add(stripped)


def _read_response(
    step: str,
    path: Path,
    returncode: int,
    tail: str,
    response_type: type[ResponseT],
    errors: str = "",
) -> ResponseT:
    if not path.is_file():
        cause = f"exited with code {returncode} without writing a response"
        if returncode < 0:
            cause = f"was killed by signal {-returncode}"
        if errors:
            cause += f"; the errors it reported, last one last:\n{errors}"
        raise StepError(step, "crash", cause, stderr_tail=tail)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StepError(step, "crash", f"wrote invalid JSON: {error}", stderr_tail=tail) from None
    if not document.get("ok"):
        refusal = document.get("error") or {}
        raise StepError(
            step,
            str(refusal.get("kind", "crash")),
            str(refusal.get("message", "failed without a message")),
            hint=refusal.get("hint"),
            stderr_tail=tail if refusal.get("kind", "crash") == "crash" else "",
        )
    return validate_result(step, document["result"], response_type)


def validate_result(step: str, result: Any, response_type: type[ResponseT]) -> ResponseT:
    """A step's ``result`` as the caller's response model, or a crash naming what is wrong."""
    try:
        return response_type.model_validate(result)
    except ValidationError as error:
        raise StepError(step, "crash", f"returned a malformed result: {error}") from None
