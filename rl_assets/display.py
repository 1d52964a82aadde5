"""Numbers as a person reads them in the UI: Sharpe ratios to 3 decimals, fractions to 0.01%.

Metadata floats are rounded with these; the full precision stays in the JSON metadata
(``history``, ``report``) and in the artifacts.
"""

import math


def ratio(value: float) -> float:
    """A Sharpe-like ratio to 3 decimals (6.0033407705402055 -> 6.003)."""
    return round(float(value), 3) if math.isfinite(value) else float(value)


def fraction(value: float) -> float:
    """A return or drawdown kept as a fraction, to 2 decimals of a percent (0.123456 -> 0.1235)."""
    return round(float(value), 4) if math.isfinite(value) else float(value)


def seconds(value: float) -> float:
    return round(float(value), 2)
