"""The ``quantplan`` command: a thin shell over the packages' own functions.

Each package contributes its commands through a ``register(app)`` function in its ``cli``
module. Those modules import nothing heavy at import time, so ``quantplan --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from quantplan.errors import QuantplanError

COMMAND_MODULES = (
    "quantplan.catalog.cli",
    "quantplan.planner.cli",
    "quantplan.agent.cli",
    "quantplan.tui.cli",
)

app = typer.Typer(
    name="quantplan",
    help=(
        "Decide which quantized LLM deployment to run -- method, engine, instance, replicas -- "
        "from measured profiles and prices, then run it.\n\n"
        "Start with `quantplan catalog list` to see what the catalog knows, "
        "and `quantplan plan --model Llama-3.1-8B --rps 5` to get a plan."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

_registered = False


def register_commands() -> typer.Typer:
    """Attach every package's commands to the root app (once)."""
    global _registered
    if not _registered:
        for module_name in COMMAND_MODULES:
            importlib.import_module(module_name).register(app)
        _registered = True
    return app


def main() -> None:
    """Console-script entry point: run the CLI, turning QuantplanError into a clean message."""
    register_commands()
    try:
        app(standalone_mode=False)
    except QuantplanError as error:
        console = Console(stderr=True)
        console.print(f"[bold red]error:[/] {error.message}", highlight=False)
        if error.hint:
            console.print(f"  [yellow]hint:[/] {error.hint}", highlight=False)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        Console(stderr=True).print("aborted")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as click_error:  # click's usage errors carry their own exit code
        import click

        if isinstance(click_error, click.ClickException):
            click_error.show()
            sys.exit(click_error.exit_code)
        raise
