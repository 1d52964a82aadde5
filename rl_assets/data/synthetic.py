"""Deterministic daily OHLCV generator: a random walk, optionally with planted momentum."""

import numpy as np
import pandas as pd

from rl_assets import constants

STRUCTURES = ("momentum", "random_walk")


def generate_prices(
    start: str,
    end: str,
    seed: int = 7,
    structure: str = "momentum",
    autocorrelation: float = constants.GENERATOR_AUTOCORRELATION,
    daily_drift: float = 0.0003,
    daily_volatility: float = 0.01,
    start_price: float = 100.0,
) -> pd.DataFrame:
    """Business-day OHLCV from ``start`` to ``end`` inclusive, the same for the same arguments.

    Close-to-close returns follow r_t = drift + phi * r_{t-1} + vol * eps_t, with
    phi = ``autocorrelation`` for ``structure="momentum"`` (learnable: yesterday's
    move predicts today's sign) and phi = 0 for ``"random_walk"`` (nothing to learn
    beyond the drift).
    """
    if structure not in STRUCTURES:
        raise ValueError(f"structure={structure!r}; choose one of {STRUCTURES}")
    if not -1.0 < autocorrelation < 1.0:
        raise ValueError(f"autocorrelation={autocorrelation}; it must lie in (-1, 1)")
    dates = pd.bdate_range(start, end, name="date")
    if len(dates) < 2:
        raise ValueError(f"{start}..{end} holds {len(dates)} business days; need at least 2")
    phi = autocorrelation if structure == "momentum" else 0.0
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(len(dates))
    # Innovation scale keeps the unconditional volatility at daily_volatility.
    innovation = daily_volatility * np.sqrt(1.0 - phi**2)
    returns = np.empty(len(dates))
    returns[0] = 0.0
    for t in range(1, len(dates)):
        returns[t] = daily_drift * (1 - phi) + phi * returns[t - 1] + innovation * eps[t]
    close = start_price * np.cumprod(1.0 + returns)
    prev_close = np.concatenate([[start_price], close[:-1]])
    open_ = prev_close * (1.0 + rng.normal(0.0, daily_volatility / 4, len(dates)))
    span = np.abs(rng.normal(0.0, daily_volatility / 2, (2, len(dates))))
    high = np.maximum(open_, close) * (1.0 + span[0])
    low = np.minimum(open_, close) * (1.0 - span[1])
    volume = rng.lognormal(mean=13.0, sigma=0.3, size=len(dates)).round()
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=dates,
    )
