"""CLI: ``quantplan toolchain install|adopt|list|doctor``, ``quantize`` and ``evaluate``.

Imports stay light here; heavy work happens in the functions these commands call, and heavy
libraries only inside toolchain subprocesses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, TypedDict

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


class _ToolchainRow(TypedDict):
    """One toolchain as ``toolchain list`` shows it (and prints it with ``--json``)."""

    name: str
    installed: bool
    path: str | None
    adopted: bool
    versions: dict[str, str]
    summary: str


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


@toolchain_app.command("adopt")
def toolchain_adopt(
    name: Annotated[
        str, typer.Argument(help="Toolchain to stand in for, e.g. llmcompressor-cuda.")
    ],
    python: Annotated[
        Path,
        typer.Option(
            "--python",
            help="Interpreter of the existing environment (e.g. a CUDA PyTorch image's python "
            "with the toolchain's packages added).",
        ),
    ],
) -> None:
    """Use an environment already on this host as a toolchain, for hosts that cannot install
    the pinned lock (offline GPU images). Its imports are checked and its real versions
    recorded; artifacts it makes get their own content address and name those versions.

    Example: quantplan toolchain adopt llmcompressor-cuda --python /opt/venv/bin/python
    """
    from quantplan.agent.toolchains.adopt import adopt_toolchain

    console = _console()
    toolchain = adopt_toolchain(name, python)
    versions = ", ".join(f"{k} {v}" for k, v in toolchain.versions.items())
    console.print(f"[green]✓[/] {toolchain.name} adopted: {toolchain.python} ({versions})")
    for difference in toolchain.lock_differences:
        console.print(f"[yellow]differs from the lock:[/] {difference}")


@toolchain_app.command("list")
def toolchain_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each toolchain, whether it is built for the current lock file, and its versions."""
    from quantplan.agent.toolchains import TOOLCHAINS, find_toolchain
    from quantplan.agent.toolchains.specs import GPU_TOOLCHAINS

    rows: list[_ToolchainRow] = []
    # CUDA toolchains are listed where they are built or adopted (GPU hosts).
    gpu_here = {name: spec for name, spec in GPU_TOOLCHAINS.items() if find_toolchain(name)}
    for name, spec in {**TOOLCHAINS, **gpu_here}.items():
        toolchain = find_toolchain(name)
        rows.append(
            {
                "name": name,
                "installed": toolchain is not None,
                "path": str(toolchain.python if toolchain.adopted else toolchain.root)
                if toolchain
                else None,
                "adopted": bool(toolchain and toolchain.adopted),
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
        installed = "adopted" if row["adopted"] else "yes" if row["installed"] else "no"
        table.add_row(row["name"], installed, versions, row["summary"])
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


def register(app: typer.Typer) -> None:
    """Add the ``toolchain`` group to the root app."""
    app.add_typer(toolchain_app, name="toolchain")
