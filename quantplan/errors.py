"""Errors that teach: what is wrong, why, and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class QuantplanError(Exception):
    """An error a user can act on. The CLI prints it without a traceback.

    ``hint`` says how to fix it; keep ``str(error)`` to what went wrong.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters with a note of the rest: a name a user typed is
    echoed in errors, and a 5,000-character one would bury the message."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


def near_misses(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Known names closest to ``name`` (case-insensitive), best first."""
    known_list = list(known)
    lowered = {k.lower(): k for k in known_list}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.6)
    return [lowered[m] for m in matches]


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """A ``did you mean ...?`` hint for an unknown name, or None when nothing is close."""
    close = near_misses(name, known)
    if not close:
        return None
    return "did you mean " + " or ".join(close) + "?"


class UnknownNameError(QuantplanError):
    """A name (instance type, model, scheme, ...) that the catalog does not know."""

    def __init__(self, what: str, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown {what} {shorten(name)!r}", hint=did_you_mean(name, known))
        self.what = what
        self.name = name
