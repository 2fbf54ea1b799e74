"""The cluster modules import in one direction: names and bookkeeping below the node agent."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["quantplan.agent.cluster.replicas", "quantplan.agent.cluster.naming"],
)
def test_replica_bookkeeping_needs_neither_the_node_agent_nor_ray(module: str) -> None:
    # node_agent imports replicas; replicas used to import node_agent back (for the agent's
    # name), a circle held together by a function-level import.
    probe = (
        f"import sys, {module}\n"
        "print(sorted(m for m in ('quantplan.agent.cluster.node_agent', 'ray') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
