"""The small set of serving failures, each with a stable ``kind`` for the catalog's run rows.

Engines fail in many ways; users need to know which of a few things happened and what to do.
:func:`classify_engine_log` maps an engine's log to one of these kinds from known messages
(the strings come from vLLM and llama.cpp sources and user reports, see the tests).
"""

from __future__ import annotations

import re
from pathlib import Path

from quantplan.errors import QuantplanError


class ServeError(QuantplanError):
    """A server could not be started or kept running.

    ``kind`` is one of the catalog's run error kinds (``quantplan.catalog.reports.ErrorKind``).
    """

    kind = "internal"

    def __init__(self, message: str, *, hint: str | None = None, log_path: Path | None = None):
        if log_path is not None:
            message = f"{message} (log: {log_path})"
        super().__init__(message, hint=hint)
        self.log_path = log_path


class UnsupportedHardwareError(ServeError):
    kind = "unsupported_hardware"


class KernelMissingError(ServeError):
    kind = "kernel_missing"


class OutOfMemoryAtLoadError(ServeError):
    kind = "out_of_memory"


class EngineDiedError(ServeError):
    kind = "engine_died"


class PortInUseError(ServeError):
    kind = "port_in_use"


class NeverHealthyError(ServeError):
    kind = "never_healthy"


class InvalidArtifactError(ServeError):
    """The artifact is missing, or not in a format this engine serves."""

    kind = "bad_input"


# Ordered: the first pattern that matches a log decides. Out of memory is checked before the
# generic kernel messages because an OOM inside kernel setup mentions both.
_LOG_PATTERNS: tuple[tuple[type[ServeError], re.Pattern[str]], ...] = (
    (
        OutOfMemoryAtLoadError,
        re.compile(
            r"CUDA out of memory|OutOfMemoryError|torch\.OutOfMemoryError|"
            r"larger than the maximum number of tokens that can be stored in KV cache|"
            r"No available memory for the cache blocks|Insufficient memory|"
            r"failed to allocate .* buffer|ggml_backend_.*alloc.*failed|"
            r"Cannot allocate memory|std::bad_alloc|MemoryError",
            re.IGNORECASE,
        ),
    ),
    (
        UnsupportedHardwareError,
        re.compile(
            r"is not supported for the current GPU|Minimum capability: \d+|"
            r"not supported on CPU|asym quant is not supported|Illegal instruction|SIGILL|"
            r"is not supported for quantization method",
            re.IGNORECASE,
        ),
    ),
    (
        KernelMissingError,
        re.compile(
            r"Failed to find a kernel that can implement|no kernel image is available|"
            r"undefined symbol|operator \S+ does not exist|No module named 'vllm\._C'",
            re.IGNORECASE,
        ),
    ),
    (
        InvalidArtifactError,
        re.compile(
            r"failed to load model|invalid magic|not a valid GGUF|gguf_init_from_file.*failed|"
            r"Unrecognized model|does not appear to have a file named|Can't load the configuration",
            re.IGNORECASE,
        ),
    ),
)


def classify_engine_log(log_text: str) -> type[ServeError] | None:
    """The failure kind a log shows, or None when no known message is in it."""
    for error_class, pattern in _LOG_PATTERNS:
        if pattern.search(log_text):
            return error_class
    return None


def last_lines(log_text: str, count: int = 8) -> str:
    lines = [line for line in log_text.splitlines() if line.strip()]
    return "\n".join(lines[-count:])
