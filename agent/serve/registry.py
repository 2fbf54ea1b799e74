"""The engine servers the agent can start, by name (one folder under ``agent/serve/`` each).

Each engine folder registers its :class:`EngineServer` class here when it is imported
(``serve/__init__.py`` imports them all). Server names are the agent's: ``llama-cpp-python``
is a second server for the catalog engine ``llama.cpp``; ``catalog_engine`` on each class
says which catalog engine its measurements belong to.
"""

from __future__ import annotations

from collections.abc import Iterable

from quantplan.agent.serve.engine import EngineServer
from quantplan.catalog.registry import ENGINES, Registry

SERVERS: Registry[type[EngineServer]] = Registry("engine")


def register_server(server: type[EngineServer], *, aliases: Iterable[str] = ()) -> None:
    """Make ``server`` startable by its name (and aliases), checking it names a catalog engine."""
    if ENGINES.find(server.catalog_engine) != server.catalog_engine:
        raise ValueError(
            f"{server.__name__}.catalog_engine {server.catalog_engine!r} is not a canonical "
            "engine name of catalog/registry.py"
        )
    SERVERS.register(server.name, server, aliases=aliases)
