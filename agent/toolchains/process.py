"""Run a build command with its output streamed to a log file and to a progress callback."""

from __future__ import annotations

import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from quantplan.errors import QuantplanError

TAIL_LINES = 25


class ToolchainBuildError(QuantplanError):
    """A toolchain build step failed; carries the log path and the last lines of output."""

    def __init__(self, what: str, log_path: Path, tail: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"{what} failed (full log: {log_path})\n--- last lines ---\n{tail}",
            hint=hint
            or "read the log above; fix the cause and run the install again "
            "(nothing half-built was kept)",
        )
        self.log_path = log_path
        self.tail = tail


def run_logged(
    command: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    what: str,
    hint: str | None = None,
) -> None:
    """Run ``command``, appending its output to ``log_path``; raise with a tail on failure."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                log.write(line)
                stripped = line.rstrip()
                if stripped:
                    tail.append(stripped)
                    if on_line is not None:
                        on_line(stripped)
            returncode = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
    if returncode != 0:
        raise ToolchainBuildError(
            f"{what} (exit code {returncode})", log_path, "\n".join(tail), hint=hint
        )
