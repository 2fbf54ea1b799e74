"""Catalog URLs: which one to use, and how to show one without its password.

Every message, log line and screen that names a catalog goes through :func:`redact_url` or
:func:`describe_catalog`; driver messages go through :func:`scrub` before they are shown.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from quantplan.paths import default_database_url

# Everything between the scheme and the last @ of a string SQLAlchemy could not parse: without
# the parser's help, user and password are hidden together (an unencoded @ may be in either).
_USERINFO = re.compile(r"^([^:/@]*[:/]+).*@")
_PASSWORD_QUERY_KEYS = frozenset({"password", "passwd", "sslpassword"})


def resolve_database_url(url: str | None = None) -> str:
    """The URL to use: the explicit one, else ``QUANTPLAN_DB``, else the embedded SQLite file."""
    chosen = url or os.environ.get("QUANTPLAN_DB") or default_database_url()
    # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
    if chosen.startswith("postgresql://") or chosen.startswith("postgres://"):
        chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
    return chosen


def redact_url(url: str | URL) -> str:
    """``url`` as it may be shown (messages, logs, screens): the password replaced by ``***``.

    Never raises: a string SQLAlchemy cannot parse is redacted by pattern instead.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        parsed = None
    if parsed is None or "@" in (parsed.host or ""):
        # Unparsable, or an unencoded @ in the password that the parser took for the host's.
        raw = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        return _USERINFO.sub(r"\1***@", raw)
    # libpq also takes the password as a query parameter (?password=...).
    hidden = {key: "***" for key in parsed.query if key.lower() in _PASSWORD_QUERY_KEYS}
    return parsed.update_query_dict(hidden).render_as_string(hide_password=True)


def describe_catalog(url: str | URL) -> str:
    """How a message names the catalog: the file for SQLite, the redacted URL otherwise."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return f"catalog {redact_url(url)}"
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return f"catalog file {parsed.database}"
    return f"catalog {redact_url(parsed)}"


def _secrets(url: str | URL) -> list[str]:
    """The password of ``url`` (and libpq's query-string password), in every form a driver
    might echo: as given and percent-encoded."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return []
    found = [str(parsed.password)] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in _PASSWORD_QUERY_KEYS:
            found.extend([value] if isinstance(value, str) else value)
    # A password of a few characters would blank out every word that contains it; drivers
    # do not echo passwords anyway, this is a second line of defence.
    long_enough = [secret for secret in found if len(secret) >= 4]
    return [form for secret in long_enough for form in {secret, quote(secret, safe="")}]


def scrub(message: str, url: str | URL) -> str:
    """``message`` as one line, with the URL and its password taken out (drivers may echo
    either)."""
    raw = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    message = message.replace(raw, redact_url(url))
    for secret in sorted(_secrets(url), key=len, reverse=True):
        message = message.replace(secret, "***")
    return " ".join(message.split())  # drivers wrap their messages; ours are one line
