"""The ``quantplan`` command: a thin shell over the packages' own functions.

Every command module follows one pattern: its commands are module-level functions (a group of
commands is a ``typer.Typer`` of its own), options that several commands share come from
:mod:`quantplan.cli_options`, and one ``register(app)`` function attaches them to the root app.
:data:`COMMAND_MODULES` lists those modules and their commands; they import nothing heavy at
import time, so ``quantplan --help`` stays fast, and :func:`register_commands` imports only the
module of the command typed.

``main`` owns every way the process ends: usage errors print click's short usage and one line
(exit 2), a :class:`QuantplanError` prints its message and hint (exit 2), Ctrl-C exits 130, a
closed stdout exits quietly, and anything unexpected prints one line (exit 70) unless
``--debug`` or ``QUANTPLAN_DEBUG=1`` asks for the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from quantplan import __version__
from quantplan.errors import QuantplanError

# Each exposes `register(app: typer.Typer) -> None`; the order is the order of `--help`.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "quantplan.catalog.cli": ("catalog",),  # list, show, import, export, prices, gaps, ...
    "quantplan.planner.cli": ("plan", "report"),
    "quantplan.agent.cli_quantize": ("toolchain",),
    "quantplan.agent.cli_quantize_commands": ("quantize", "evaluate"),
    "quantplan.agent.cli_serve": ("serve", "bench"),
    "quantplan.agent.cli_profile": ("profile",),
    "quantplan.agent.cluster.cli": ("cluster", "apply", "status", "destroy"),
    "quantplan.tui.cli": ("dashboard",),
    "quantplan.api_cli": ("mcp", "api"),
}
"""Each command module and the top-level commands its ``register`` adds. A command's start
imports only its own module (the others cost up to 0.4 s CPU: httpx, the agent's and the
dashboard's CLIs); a bare ``quantplan``, ``--help`` or an unknown name registers all of them.
A test checks the names against what each ``register`` adds."""
MODULE_OF_COMMAND = {
    command: module for module, commands in COMMAND_MODULES.items() for command in commands
}
DEBUG_ENV = "QUANTPLAN_DEBUG"
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE (sysexits.h): a bug of ours, not a mistake of the user's
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
# click and typer leave with 1 when stdout closes under them; errors raised outside their
# handler leave the same way, so `set -o pipefail` sees one code.
EXIT_BROKEN_PIPE = 1

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
_debug = False


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"quantplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help=f"Show the traceback of an unexpected error (as does {DEBUG_ENV}=1).",
        ),
    ] = False,
) -> None:
    global _debug
    _debug = _debug or debug


def register_commands(argv: list[str] | None = None) -> typer.Typer:
    """Attach every package's commands to the root app (once); with ``argv`` naming a command,
    only the module holding it (:data:`COMMAND_MODULES`)."""
    global _registered
    if not _registered:
        command = next((a for a in argv or () if not a.startswith("-")), None)
        module = MODULE_OF_COMMAND.get(command or "")
        if module:
            modules: tuple[str, ...] = (module,)
        elif command is None and "--version" in (argv or ()):
            modules = ()  # the eager --version answers before any command is looked up
        else:
            modules = tuple(COMMAND_MODULES)
        for module_name in modules:
            importlib.import_module(module_name).register(app)
        _registered = True
    return app


def _both_flavours(name: str) -> tuple[type[BaseException], ...]:
    """typer's class ``name`` and click's, when click is installed.

    typer >= 0.20 bundles its own copy of click, whose exceptions are not click's; a command
    written against either may raise either.
    """
    classes: list[type[BaseException]] = [getattr(typer, name)]
    try:
        import click

        classes.append(getattr(click.exceptions, name))
    except ImportError:
        pass
    return tuple(classes)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _exit_code_for(error: BaseException) -> int:
    """Tell the user about ``error`` in their terms and return the process's exit code."""
    exit_code = getattr(error, "exit_code", None)
    if isinstance(error, QuantplanError):
        _stderr().print(f"[bold red]error:[/] {escape(error.message)}")
        if error.hint:
            _stderr().print(f"  [yellow]hint:[/] {escape(error.hint)}")
        return EXIT_USER_ERROR
    if isinstance(error, KeyboardInterrupt):
        _stderr().print("aborted")
        return EXIT_INTERRUPTED
    if isinstance(error, BrokenPipeError):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    # click's exceptions of either flavour (usage errors, bad files): they know how to show
    # themselves and which code to leave with. Matched by shape, not class, for the reason in
    # _both_flavours.
    if isinstance(exit_code, int) and callable(getattr(error, "show", None)):
        error.show()  # type: ignore[attr-defined]  # matched by shape: no class names show()
        return exit_code
    if isinstance(error, _both_flavours("Exit")):
        return int(exit_code or 0)
    if isinstance(error, _both_flavours("Abort")):
        _stderr().print("Aborted!")
        interrupted = isinstance(error.__context__, KeyboardInterrupt | EOFError)
        return EXIT_INTERRUPTED if interrupted else 1
    if _debug:
        traceback.print_exception(error)
        return EXIT_INTERNAL_ERROR
    kind = type(error).__qualname__
    if type(error).__module__ != "builtins":
        kind = f"{type(error).__module__}.{kind}"
    first_line = next(iter(str(error).splitlines()), "")
    _stderr().print(f"[bold red]internal error:[/] {escape(kind)}: {escape(first_line)}")
    _stderr().print(
        f"  [yellow]hint:[/] this is a bug in quantplan; re-run with --debug (or {DEBUG_ENV}=1) "
        "for the traceback and report it"
    )
    return EXIT_INTERNAL_ERROR


def main() -> None:
    """Console-script entry point: run the CLI and turn every ending into an exit code."""
    global _debug
    _debug = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    try:
        register_commands(sys.argv[1:])
        # standalone_mode=False hands every error to us instead of letting click print some
        # and exit; an Exit comes back as its code.
        result = app(standalone_mode=False)
        code = result if type(result) is int else 0
        sys.stdout.flush()  # a closed pipe shows up here, while we can still handle it
    except Exception as error:
        code = _exit_code_for(error)
    except KeyboardInterrupt as interrupt:
        code = _exit_code_for(interrupt)
    sys.exit(code)
