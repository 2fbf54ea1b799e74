"""The agent's commands for the root CLI: quantization (toolchains, quantize, evaluate) and,
when present, serving and benchmarking."""

from __future__ import annotations

import importlib

import typer


def register(app: typer.Typer) -> None:
    from quantplan.agent.cli_quantize import register_quantize

    register_quantize(app)
    try:
        serve_cli = importlib.import_module("quantplan.agent.cli_serve")
    except ModuleNotFoundError as missing:
        if missing.name != "quantplan.agent.cli_serve":
            raise
    else:
        serve_cli.register_serve(app)

    from quantplan.agent.cluster.cli import register_cluster

    register_cluster(app)
