"""The step side of the step protocol (the core side is ``toolchains/steps.py``).

Step scripts run inside toolchain interpreters where quantplan itself is not installed, so this
module uses only the standard library. A step defines ``main(request: dict) -> dict`` and calls
``run_step_main(main)``. User-fixable problems raise :class:`StepRefusal` (kind, message, hint);
anything else is reported as a crash with its traceback on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

PROGRESS_PREFIX = "@@progress "


class StepRefusal(Exception):
    """The step refuses its input for a reason the user can fix."""

    def __init__(self, kind: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint


def progress(message: str, completed: float | None = None, total: float | None = None) -> None:
    """Report progress to the core (one JSON line on stderr)."""
    payload = {"message": message, "completed": completed, "total": total}
    sys.stderr.write(PROGRESS_PREFIX + json.dumps(payload) + "\n")
    sys.stderr.flush()


def _write_atomically(path: str, document: dict[str, Any]) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    os.replace(temporary, path)


def run_step_main(main: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Read the request file, run ``main``, write the response file; exit 0 unless crashed."""
    request_path, response_path = sys.argv[1], sys.argv[2]
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    try:
        result = main(request)
    except StepRefusal as refusal:
        error = {"kind": refusal.kind, "message": refusal.message, "hint": refusal.hint}
        _write_atomically(response_path, {"ok": False, "error": error})
        sys.exit(0)
    except MemoryError:
        error = {"kind": "out_of_memory", "message": "ran out of memory", "hint": None}
        _write_atomically(response_path, {"ok": False, "error": error})
        sys.exit(1)
    except OSError as failure:
        if failure.errno == 28:  # ENOSPC: say it plainly instead of a traceback
            error = {
                "kind": "disk_full",
                "message": f"no space left on device while writing ({failure.filename or ''})",
                "hint": "free disk space or point QUANTPLAN_CACHE_DIR at a larger disk",
            }
            _write_atomically(response_path, {"ok": False, "error": error})
            sys.exit(1)
        traceback.print_exc()
        raise
    _write_atomically(response_path, {"ok": True, "result": result})
