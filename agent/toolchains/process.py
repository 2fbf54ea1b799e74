"""Child processes of long commands: started in their own group, stopped as a group.

Every engine server, step and build runs in a session of its own (``start_in_group``), so one
``killpg`` reaches the grandchildren too (vLLM's engine core, pip's compilers). A long command
wraps its work in :func:`stop_children_on_signals`: SIGTERM, SIGINT and SIGHUP then unwind the
command (its ``finally`` blocks stop what they started), every group still alive is stopped
(SIGTERM, a grace period, SIGKILL), and the command exits 128 + the signal number. Without it,
systemd, Kubernetes or Ray stopping ``quantplan serve`` left the engine running under PID 1
with its port and memory held.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from quantplan.errors import QuantplanError

TAIL_LINES = 25
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_S = 20.0
# Command-line flags whose value is a secret (--api-key, --api_key, --hf-token, --password):
# the last word of the name says so. --max-num-batched-tokens or --ssl-keyfile do not match.
_SECRET_FLAG = re.compile(r"^--?(?:\w+[-_])*(?:key|token|secret|password|passwd)$", re.IGNORECASE)
REDACTED = "***"


class ShutdownRequested(BaseException):
    """A shutdown signal arrived. A BaseException, so ``except Exception`` cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 130 if self.signum == signal.SIGINT else 128 + self.signum


def command_secrets(command: Sequence[str]) -> list[str]:
    """The values of flags named like keys or tokens (``--api-key X``, ``--hf-token=X``)."""
    secrets: list[str] = []
    for flag, value in zip(command, [*command[1:], ""], strict=True):
        name, equals, inline = flag.partition("=")
        if not _SECRET_FLAG.match(name):
            continue
        if equals:
            secrets.append(inline)
        elif not value.startswith("-"):  # a flag given no value is followed by the next flag
            secrets.append(value)
    return [secret for secret in secrets if secret]


def redact_command(command: Sequence[str], secrets: Sequence[str | None] = ()) -> str:
    """``command`` as one line for logs and errors, with :func:`command_secrets` and any of
    ``secrets`` replaced by ``***``."""
    return redact(" ".join(command), [*command_secrets(command), *secrets])


def redact(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***`` (longest first, so a secret
    that contains another is hidden whole)."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class _Children:
    """Process groups started by this process and not yet stopped, for the shutdown path.

    While a signal handler is installed, a signal that lands between ``Popen`` returning and
    the group being recorded is held back until the record is made, so no group slips through.
    """

    def __init__(self) -> None:
        self.groups: dict[int, subprocess.Popen[Any]] = {}
        self.starting = False
        self.pending: int | None = None

    def stop_all(self, grace_s: float) -> None:
        for process in list(self.groups.values()):
            stop_group(process, grace_s)


_children = _Children()


def start_in_group(command: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` in a new session, recorded so a shutdown signal stops its group."""
    held = threading.current_thread() is threading.main_thread()
    if held:
        _children.starting = True
    try:
        process = subprocess.Popen(list(command), start_new_session=True, **popen_kwargs)
        _children.groups[process.pid] = process
    finally:
        if held:
            _children.starting = False
            if _children.pending is not None:  # held back above; also when Popen failed
                raise ShutdownRequested(_children.pending)
    return process


def forget_group(process: subprocess.Popen[Any]) -> None:
    """``process`` ended and was waited for: a shutdown no longer needs to stop its group."""
    _children.groups.pop(process.pid, None)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_group(process: subprocess.Popen[Any], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM ``process``'s group, wait up to ``grace_s`` for it, SIGKILL what is left."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    # Children (vLLM's engine core, a compiler under pip) may outlive a leader that exited.
    _signal_group(process.pid, signal.SIGKILL)
    forget_group(process)


def _report(line: str) -> None:
    # After SIGHUP the terminal may be gone; the exit code still tells what happened.
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_children_on_signals(grace_s: float = STOP_GRACE_S) -> Iterator[None]:
    """Run a long command so that SIGTERM, SIGINT and SIGHUP stop it and all its children.

    The signal becomes :class:`ShutdownRequested` raised in the main thread, which unwinds the
    command through its own cleanup; then any child group still alive is stopped, one line goes
    to stderr, and the process exits 128 + signum (130 for SIGINT). Signals that arrive during
    that shutdown are ignored: it is bounded by ``grace_s`` per child. A signal that was already
    ignored stays ignored: ``nohup`` (SIGHUP) and shells' background jobs (SIGINT) ask for that.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be installed from the main thread
        return
    previous = {
        sig: handler
        for sig in SHUTDOWN_SIGNALS
        if (handler := signal.getsignal(sig)) is not signal.SIG_IGN
    }

    def shut_down(signum: int, _frame: object) -> None:
        for sig in SHUTDOWN_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if _children.starting:
            _children.pending = signum
            return
        raise ShutdownRequested(signum)

    for sig in previous:
        signal.signal(sig, shut_down)
    try:
        yield
    except ShutdownRequested as stop:
        for sig in SHUTDOWN_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        _children.stop_all(grace_s)
        _report(f"quantplan: {stop}; child processes stopped")
        raise SystemExit(stop.exit_code) from None
    finally:
        _children.pending = None
        for sig, handler in previous.items():
            # None: a handler installed outside Python; the default is the closest we can put back.
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


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
        log.write(f"$ {redact_command(command)}\n")
        log.flush()
        process = start_in_group(
            command,
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
            stop_group(process, grace_s=5.0)
            raise
        forget_group(process)
    if returncode != 0:
        raise ToolchainBuildError(
            f"{what} (exit code {returncode})", log_path, "\n".join(tail), hint=hint
        )
