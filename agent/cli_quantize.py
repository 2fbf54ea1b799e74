"""CLI: ``quantplan toolchain install|list|doctor``, ``quantplan quantize``, ``quantplan evaluate``.

Imports stay light here; heavy work happens in the functions these commands call, and heavy
libraries only inside toolchain subprocesses.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from quantplan.agent.cli_serve import stops_children_on_signals

toolchain_app = typer.Typer(
    name="toolchain",
    help="Managed environments for quantizers and engines (built once, cached by content hash).",
    no_args_is_help=True,
)


def _console() -> Console:
    return Console(stderr=True)


@toolchain_app.command("install")
@stops_children_on_signals
def toolchain_install(
    names: Annotated[list[str] | None, typer.Argument(help="Toolchains to build.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Build every toolchain.")] = False,
) -> None:
    """Build toolchains (all of them when none is named). Reuses anything already built."""
    from rich.status import Status

    from quantplan.agent.toolchains import ensure_toolchain, find_toolchain, known_toolchains
    from quantplan.agent.toolchains.specs import get_spec

    if all_ and names:
        raise typer.BadParameter("name toolchains or pass --all, not both", param_hint="--all")
    selected = known_toolchains() if all_ or not names else names
    for name in selected:
        get_spec(name)  # unknown names fail before anything is built
    console = _console()
    for name in selected:
        if find_toolchain(name) is not None:
            console.print(f"[green]✓[/] {name} already installed")
        else:
            with Status(f"{name}: starting", console=console) as status:

                def show(line: str, name: str = name, status: Status = status) -> None:
                    if not line.startswith("WARNING: Location"):
                        status.update(f"[bold]{name}[/]: {line[:110]}")

                toolchain = ensure_toolchain(name, progress=show)
            console.print(f"[green]✓[/] {name} built in {toolchain.build_seconds:.0f} s")
        if name == "llama-cpp":
            _install_llama_server(console)


def _install_llama_server(console: Console) -> None:
    """llama.cpp's own server, compiled from the same pinned source (CUDA where a GPU is)."""
    from rich.status import Status

    from quantplan.agent.toolchains.llama_server import (
        detect_cuda_architecture,
        ensure_llama_server,
        find_llama_server,
    )

    architecture = detect_cuda_architecture()
    if find_llama_server(architecture) is not None:
        console.print("[green]✓[/] llama-server already built")
        return
    with Status("llama-server: starting", console=console) as status:

        def show(line: str) -> None:
            status.update(f"[bold]llama-server[/]: {line[:100]}")

        build = ensure_llama_server(architecture, progress=show)
    seconds = f"{build.build_seconds:.0f} s"
    console.print(f"[green]✓[/] llama-server ({build.backend}) built in {seconds}")


@toolchain_app.command("list")
def toolchain_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each toolchain, whether it is built for the current lock file, and its versions."""
    from quantplan.agent.toolchains import TOOLCHAINS, find_toolchain

    rows = []
    for name, spec in TOOLCHAINS.items():
        toolchain = find_toolchain(name)
        rows.append(
            {
                "name": name,
                "installed": toolchain is not None,
                "path": str(toolchain.root) if toolchain else None,
                "versions": toolchain.versions if toolchain else {},
                "summary": spec.summary,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="toolchains")
    for column in ("name", "installed", "versions", "what runs there"):
        table.add_column(column)
    for row in rows:
        versions = ", ".join(f"{k} {v}" for k, v in row["versions"].items())
        table.add_row(row["name"], "yes" if row["installed"] else "no", versions, row["summary"])
    Console().print(table)


@toolchain_app.command("doctor")
def toolchain_doctor(
    names: Annotated[list[str] | None, typer.Argument(help="Toolchains to check.")] = None,
) -> None:
    """Check this machine and the installed toolchains; exit 1 when something would fail."""
    from quantplan.agent.toolchains.doctor import run_doctor

    checks = run_doctor(names or None)
    table = Table(title="toolchain doctor")
    for column in ("check", "status", "detail"):
        table.add_column(column)
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for check in checks:
        table.add_row(check.name, f"[{colours[check.status]}]{check.status}[/]", check.detail)
    Console().print(table)
    if any(check.status == "fail" for check in checks):
        raise typer.Exit(1)


def register_quantize(app: typer.Typer) -> None:
    """Attach the toolchain, quantize and evaluate commands to the root app."""
    app.add_typer(toolchain_app, name="toolchain")
    try:
        from quantplan.agent.cli_quantize_commands import register_commands
    except ModuleNotFoundError as missing:  # only while the quantize commands are being built
        if missing.name != "quantplan.agent.cli_quantize_commands":
            raise
        return
    register_commands(app)
