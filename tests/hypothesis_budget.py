"""How many examples a property test generates: all of them in `make test`, a few in test-fast.

`make test-fast` sets QUANTPLAN_HYPOTHESIS_PROFILE=fast (tests/conftest.py loads the profile it
names). A test's own ``@settings(max_examples=N)`` overrides any profile, so the tests whose
examples are expensive (each fuzz case starts the CLI) write ``max_examples=examples(N)``: N in
the full suite, at most FAST_MAX_EXAMPLES in the fast loop. Explicit ``@example``s always run.
"""

from __future__ import annotations

import os

from hypothesis import settings

PROFILE_VARIABLE = "QUANTPLAN_HYPOTHESIS_PROFILE"
FAST_MAX_EXAMPLES = 5

settings.register_profile("fast", max_examples=FAST_MAX_EXAMPLES)


def fast_profile() -> bool:
    return os.environ.get(PROFILE_VARIABLE) == "fast"


def examples(full: int) -> int:
    """``full`` examples, or at most FAST_MAX_EXAMPLES under the fast profile."""
    return min(full, FAST_MAX_EXAMPLES) if fast_profile() else full
