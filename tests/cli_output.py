"""Reading the CLI's stderr in tests: the one warning that every `plan` on the shipped seed prints.

`quantplan plan` (and anything that plans) warns when the catalog's prices are undated or stale
(planner/price_age.py, since f48e004). The shipped seed's prices carry no date, so on a seeded
test catalog that warning is always there. Tests that want a clean stderr drop exactly that line
and nothing else, so any other warning still fails them.
"""

from __future__ import annotations

import re

# Both shapes of planner.price_age.stale_prices_warning, as the CLI prints it.
PRICE_AGE_WARNING = re.compile(
    r"warning: (the catalog's \d+ prices carry no date \(|of the catalog's \d+ prices, )"
)


def is_price_age_warning(line: str) -> bool:
    return PRICE_AGE_WARNING.match(line.strip()) is not None


def without_price_age_warning(stderr: str) -> str:
    """``stderr`` less the price-age warning line, if there is one."""
    return "".join(
        line for line in stderr.splitlines(keepends=True) if not is_price_age_warning(line)
    )
