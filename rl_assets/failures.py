"""Deliberate failures: bad data, bad config, a refused candidate. Anything else is infrastructure.

The sensor retries a run that failed for an infrastructure reason (Ray did not start, the run
was killed) and never one that failed here on purpose: these failures carry their kind.
"""

from typing import Any

import dagster as dg

KIND_KEY = "rl_assets/failure"
DATA = "data"
CONFIG = "config"
GATE = "gate"
NO_CHAMPION = "no_champion"
# A checkpoint's bytes are not those recorded (altered or removed after promotion).
INTEGRITY = "integrity"
DELIBERATE = (DATA, CONFIG, GATE, NO_CHAMPION, INTEGRITY)


def failure(kind: str, description: str, metadata: dict[str, Any] | None = None) -> dg.Failure:
    """A failure that names what went wrong and the fix; never retried (it would fail again)."""
    assert kind in DELIBERATE, kind
    return dg.Failure(
        description=description,
        metadata={KIND_KEY: kind, **(metadata or {})},
        allow_retries=False,
    )
