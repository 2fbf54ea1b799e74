"""``quantplan mcp`` and ``quantplan api``: the services for other tools.

Nothing here imports the MCP SDK, FastAPI or uvicorn until one of the commands runs, so
``quantplan --help`` does not pay for them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel, ConfigDict

from quantplan.cli_options import DbOption
from quantplan.errors import QuantplanError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from quantplan.services import Services

API_KEY_ENV = "QUANTPLAN_API_KEY"
SNAPSHOT_MAX_AGE_S = 5.0
"""How long a server reuses a loaded catalog snapshot: catalog changes show within 5 s."""

AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster for fleet status (and apply): auto, or ray://host:port.",
        show_default=False,
    ),
]
AllowChangesOption = Annotated[
    bool,
    typer.Option(
        "--allow-changes",
        help="Offer apply and destroy (each call must still confirm). Off: read-only.",
    ),
]
MCP_EPILOG = (
    "Examples:\n\n"
    "  quantplan mcp                      (stdio: for Claude Desktop, Cursor, ...)\n\n"
    "  quantplan mcp --http --port 8765   (streamable HTTP at http://127.0.0.1:8765/mcp)"
)
API_EPILOG = (
    "Examples:\n\n"
    "  quantplan api --port 8000\n\n"
    "  curl -s localhost:8000/v1/plan -H 'content-type: application/json' "
    """-d '{"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}'\n\n"""
    f"  {API_KEY_ENV}=... quantplan api --host 0.0.0.0   (a key is required off loopback)"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _services(db: str | None, address: str | None, plan_directory: Path | None = None) -> Services:
    from quantplan.services import (
        ApplyService,
        CatalogService,
        FleetService,
        PlanStore,
        Services,
    )

    catalog = CatalogService(db, max_age_s=SNAPSHOT_MAX_AGE_S)
    catalog.engine()  # a wrong --db fails now, in one line, not at the first request
    return Services(
        catalog=catalog,
        apply_service=ApplyService(address),
        fleet=FleetService(address),
        plans=PlanStore(directory=plan_directory),
    )


SETTINGS_ENV = "QUANTPLAN_API_SETTINGS"
"""How `quantplan api --workers N` hands its options to the worker processes uvicorn starts."""


class WorkerSettings(BaseModel):
    """What each worker of `quantplan api --workers N` needs to build the same app. The API
    key itself is never written here: workers read it from the key file or the environment,
    as the parent did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db: str | None
    address: str | None
    api_key_file: Path | None
    allow_changes: bool
    plan_directory: Path


def app_from_environment() -> FastAPI:
    """The app of one worker process, built from the parent's WorkerSettings (uvicorn calls
    this factory in every worker it starts)."""
    from quantplan.http_api import create_app

    settings = WorkerSettings.model_validate_json(os.environ[SETTINGS_ENV])
    return create_app(
        _services(settings.db, settings.address, settings.plan_directory),
        api_key=read_api_key(settings.api_key_file),
        allow_changes=settings.allow_changes,
    )


def read_api_key(key_file: Path | None) -> str | None:
    """The API key from ``key_file`` (first line) or the environment; None when neither."""
    if key_file is not None:
        from quantplan.inputs import read_text

        key = next(iter(read_text(key_file, "API key file").splitlines()), "").strip()
        if not key:
            raise QuantplanError(f"API key file {str(key_file)!r} is empty")
        return key
    return os.environ.get(API_KEY_ENV) or None


def mcp_command(
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio.")
    ] = False,
    host: Annotated[str, typer.Option(help="HTTP: address to bind (loopback only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="HTTP: port.", min=1, max=65535)] = 8765,
    allow_changes: AllowChangesOption = False,
    db: DbOption = None,
    address: AddressOption = None,
) -> None:
    """Serve quantplan to AI assistants over MCP: plan, compare, explain, catalog, fleet."""
    if http and not is_loopback(host):
        raise QuantplanError(
            f"the MCP server binds loopback addresses only, not {host!r}",
            hint="serve other machines with `quantplan api` (which requires an API key), or "
            "put an authenticating proxy in front of a loopback MCP server",
        )
    from quantplan.mcp_server import run

    run(
        _services(db, address),
        transport="streamable-http" if http else "stdio",
        host=host,
        port=port,
        allow_changes=allow_changes,
    )


def api_command(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    api_key_file: Annotated[
        Path | None,
        typer.Option(help=f"File holding the API key (else ${API_KEY_ENV})."),
    ] = None,
    allow_changes: AllowChangesOption = False,
    print_openapi: Annotated[
        bool, typer.Option("--print-openapi", help="Print the OpenAPI schema and exit.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            help="Server processes, each planning on one thread (a plan takes a core for "
            "~6 ms): about one per core left free of clients; they share the plans they make.",
            min=1,
            max=64,
        ),
    ] = 1,
    db: DbOption = None,
    address: AddressOption = None,
) -> None:
    """Serve quantplan over HTTP (OpenAPI): plan, compare, explain, catalog, fleet."""
    from quantplan.http_api import create_app

    if print_openapi:
        import json

        from quantplan.services import Services

        typer.echo(json.dumps(create_app(Services()).openapi(), indent=2))
        return
    key = read_api_key(api_key_file)
    if key is None and not is_loopback(host):
        raise QuantplanError(
            f"binding {host!r} serves other machines, so an API key is required",
            hint=f"set {API_KEY_ENV} or pass --api-key-file FILE (never the key itself)",
        )
    import uvicorn

    services = _services(db, address)  # opens (and on first use seeds) the catalog once
    typer.echo(f"quantplan api on http://{host}:{port} (docs at /docs)", err=True)
    if workers == 1:
        app = create_app(services, api_key=key, allow_changes=allow_changes)
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="quantplan-api-plans-") as plans:
        settings = WorkerSettings(
            db=db,
            address=address,
            api_key_file=api_key_file,
            allow_changes=allow_changes,
            plan_directory=Path(plans),
        )
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run(
            "quantplan.api_cli:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
        )


def register(app: typer.Typer) -> None:
    """Add ``mcp`` and ``api`` to the root app."""
    app.command("mcp", epilog=MCP_EPILOG)(mcp_command)
    app.command("api", epilog=API_EPILOG)(api_command)
