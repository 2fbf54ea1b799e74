"""``quantplan dashboard``: open the Textual dashboard on the catalog (and a cluster, if any)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from quantplan.cli_options import DbOption


def dashboard(
    db: DbOption = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster for the fleet screen: auto, or ray://host:port.",
            show_default=False,
        ),
    ] = None,
    screen: Annotated[
        str,
        typer.Option("--screen", help="Screen to open on: advisor, fleet or catalog."),
    ] = "advisor",
    light: Annotated[bool, typer.Option("--light", help="Start in the light theme.")] = False,
    simulated_nodes: Annotated[
        int,
        typer.Option(
            "--simulated-fleet",
            min=0,
            help="Show a simulated fleet of N nodes instead of a cluster (a demo; its numbers "
            "are random and labelled SIMULATED).",
        ),
    ] = 0,
) -> None:
    """Open the dashboard: the advisor, the live fleet and the catalog."""
    from quantplan.errors import QuantplanError, did_you_mean

    screens = ("advisor", "fleet", "catalog")
    if screen not in screens:
        raise QuantplanError(
            f"unknown screen {screen!r}; screens are {', '.join(screens)}",
            hint=did_you_mean(screen, screens),
        )
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Textual needs a terminal both ways; without one it fails deep inside its driver.
        raise QuantplanError(
            "the dashboard needs an interactive terminal (standard input and output are not "
            "a terminal here)",
            hint="run it in a terminal; from scripts use `quantplan plan`, `report` or `api`",
        )
    from quantplan.tui.app import DARK_THEME, LIGHT_THEME, QuantplanApp
    from quantplan.tui.fleet.simulated import SimulatedFleet, SimulatedFleetSource
    from quantplan.tui.fleet.sources import connect_fleet_source
    from quantplan.tui.services import ApplyService, CatalogService, DashboardServices

    fleet = (
        SimulatedFleetSource(SimulatedFleet(nodes=simulated_nodes))
        if simulated_nodes
        else connect_fleet_source(address)
    )
    services = DashboardServices(
        catalog=CatalogService(db), apply=ApplyService(address), fleet=fleet
    )
    QuantplanApp(services, initial_mode=screen, theme=LIGHT_THEME if light else DARK_THEME).run()


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` to the root app."""
    app.command("dashboard")(dashboard)
