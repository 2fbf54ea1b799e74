"""``quantplan catalog prices refresh`` and ``quantplan catalog reseed``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from quantplan.cli_options import DbOption
from quantplan.errors import QuantplanError

if TYPE_CHECKING:  # imported where used: `quantplan catalog list` has no use for an HTTP client
    import httpx

prices_app = typer.Typer(
    help="Keep prices current: refresh them from SkyPilot's public catalog or a price CSV.",
    no_args_is_help=True,
)

MAX_PRICE_FILE_BYTES = 64 * 2**20
"""SkyPilot's largest vms.csv (AWS) is about 2.5 MB; 64 MiB leaves room and bounds a bad URL."""
FETCH_TIMEOUT_S = 30.0


def fetch_price_text(
    url: str, *, transport: httpx.BaseTransport | None = None, max_bytes: int = MAX_PRICE_FILE_BYTES
) -> str:
    """A price file's text over HTTP(S), bounded in size and time (``transport``: tests)."""
    import httpx

    try:
        with (
            httpx.Client(
                timeout=FETCH_TIMEOUT_S, follow_redirects=True, transport=transport
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise QuantplanError(
                    f"fetching {url} answered HTTP {response.status_code}",
                    hint="check the URL (a raw file URL, e.g. raw.githubusercontent.com/...)",
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise QuantplanError(
                        f"{url} is larger than {max_bytes // 2**20} MiB",
                        hint="a price file is a few MB; check the URL",
                    )
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise QuantplanError(
            f"cannot fetch {url}: {type(error).__name__}: {str(error)[:120]}",
            hint="check the network and the URL, or download the file and pass its path",
        ) from None
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise QuantplanError(f"{url} is not UTF-8 text", hint="point at a CSV file") from None


def _check_date(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise QuantplanError(f"--date {value[:40]!r} is not YYYY-MM-DD", hint="e.g. 2026-12-01")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise QuantplanError(
            f"--date {value!r} is not a real date", hint="e.g. 2026-12-01"
        ) from None
    return value


@prices_app.command("refresh")
def refresh(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="A SkyPilot vms.csv (AWS, GCP or Azure) or a quantplan price CSV: a path or an "
            "http(s) URL.",
        ),
    ],
    price_date: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="Date the file's prices were true, YYYY-MM-DD (default: today; SkyPilot's "
            "files carry no date, so pass the date of the snapshot you fetched).",
        ),
    ] = None,
    add_regions: Annotated[
        bool,
        typer.Option(
            "--add-regions", help="Also add regions of known instance types the catalog lacks."
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Append the file's prices to the catalog; the rows they replace are kept as history.

    Only instance types the catalog already knows are priced (add new types with `catalog
    import`). Every new row records the file, the date and how its spot price was reduced
    from zones (the median); suspicious rows are flagged and skipped by `plan` unless
    --allow-flagged-prices.
    """
    from quantplan.catalog.db import open_catalog, session_scope
    from quantplan.catalog.price_history import apply_quotes
    from quantplan.catalog.prices import parse_price_csv
    from quantplan.inputs import read_text

    when = _check_date(price_date) if price_date else datetime.now(UTC).date().isoformat()
    is_url = source.startswith(("http://", "https://"))
    text = (
        fetch_price_text(source)
        if is_url
        else read_text(source, "price file", max_bytes=MAX_PRICE_FILE_BYTES)
    )
    fmt, quotes = parse_price_csv(text, where=source)
    with session_scope(open_catalog(db)) as session:
        report = apply_quotes(
            session, fmt, quotes, source=source, price_date=when, add_regions=add_regions
        )
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        escape(
            f"{source} ({fmt}, prices of {when}): {len(report.appended)} price rows appended, "
            f"{report.unchanged} unchanged, {report.not_in_file} catalog rows not in the file, "
            f"{report.unknown_types} instance types in the file the catalog does not know"
            + (f", {len(report.new_regions)} new regions" if report.new_regions else "")
        )
    )
    for line in report.flagged:
        console.print(escape(f"flagged {line}"))


def reseed(
    db: DbOption = None,
) -> None:
    """Put the shipped seed data back: seeded prices become current again (refreshed prices
    stay in the history), seeded reference rows are restored, missing seed measurements are
    added. Measurements of your own are never touched."""
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.seeding import SEED_VERSION, reseed_catalog

    report = reseed_catalog(open_catalog(db))
    added = ", ".join(f"{n} {kind}" for kind, n in sorted(report.added.items())) or "nothing"
    taken_back = (
        f"; {report.retracted} shipped measurement(s) found wrong since taken back "
        "(`quantplan catalog list --kind quality --include-retracted` shows why)"
        if report.retracted
        else ""
    )
    Console(highlight=False).print(
        f"seed version {SEED_VERSION}: added or restored {added}; "
        f"{report.prices_superseded} prices put back to the shipped ones{taken_back}"
    )
