"""The catalog: hardware, prices, models, schemes, support matrix and measurements."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantplan.api import Catalog


def open(url: str | None = None) -> Catalog:
    """Open the catalog at ``url`` for the Python API (see :func:`quantplan.api.open_catalog`)."""
    from quantplan.api import open_catalog

    return open_catalog(url)
