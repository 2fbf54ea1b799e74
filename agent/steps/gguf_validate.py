"""Step (any interpreter with ``gguf``): check that a file is a complete, readable GGUF.

Runs in a child process so that a malformed file, whatever it does to the reader, cannot take
the agent down with it.
"""

from __future__ import annotations

from typing import Any

from _gguf_facts import architecture, bits_per_weight, open_gguf
from _stepio import run_step_main


def main(request: dict[str, Any]) -> dict[str, Any]:
    reader = open_gguf(request["path"])
    return {
        "architecture": architecture(reader),
        "tensors": len(reader.tensors),
        "bits_per_weight": bits_per_weight(reader.tensors)["matrices"],
    }


if __name__ == "__main__":
    run_step_main(main)
