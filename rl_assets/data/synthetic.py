"""Deterministic daily OHLCV generator: random walks, realistic nulls and planted momentum."""

import math

import numpy as np
import pandas as pd

from rl_assets import constants

# Structures with nothing to learn beyond the drift, and structures with a planted edge:
# an AR(1) in the close-to-close returns, or an overnight gap that today's session predicts.
NULL_STRUCTURES = ("random_walk", "garch_null")
MOMENTUM_STRUCTURES = ("momentum", "garch_momentum")
OVERNIGHT_STRUCTURES = ("overnight_momentum",)
EDGE_STRUCTURES = MOMENTUM_STRUCTURES + OVERNIGHT_STRUCTURES
STRUCTURES = EDGE_STRUCTURES + NULL_STRUCTURES
GARCH_STRUCTURES = ("garch_null", "garch_momentum")

# GARCH(1,1) with Student-t innovations, in the range fitted to daily equity-index
# returns: persistence alpha + beta = 0.98 (a volatility shock halves in about 35 days),
# tails of a t with 5 degrees of freedom. alpha = 0.06 keeps the fourth moment of the
# returns finite (beta^2 + 2 alpha beta + alpha^2 * 9 < 1 for df 5), so sample kurtosis
# and the autocorrelation of squared returns settle down over long samples.
GARCH_ALPHA = 0.06
GARCH_BETA = 0.92
TAIL_DF = 5.0

# One independent random stream per quantity: a quantity's first n draws are the same
# whatever the number of dates, so the bars of a shared date never depend on `end`.
_STREAMS = {
    "garch_shocks": 1,
    "open_gap": 2,
    "high_span": 3,
    "low_span": 4,
    "volume": 5,
    "intraday": 6,
    "overnight": 7,
}


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAMS[name],)))


def _unit_garch(shocks: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) with unit unconditional variance driven by unit-variance ``shocks``.

    u_t = sqrt(h_t) z_t, h_t = (1 - alpha - beta) + alpha u_{t-1}^2 + beta h_{t-1}, h_0 = 1.
    Returns (u, sqrt(h)); each day depends only on the days before it.
    """
    omega = 1.0 - alpha - beta
    u = np.empty_like(shocks)
    h = np.empty_like(shocks)
    h[0] = 1.0
    u[0] = shocks[0]
    for t in range(1, len(shocks)):
        h[t] = omega + alpha * u[t - 1] ** 2 + beta * h[t - 1]
        u[t] = np.sqrt(h[t]) * shocks[t]
    return u, np.sqrt(h)


def autocorrelation_for_annual_sharpe(annual_sharpe: float) -> float:
    """The AR(1) coefficient phi of ``"momentum"``/``"garch_momentum"`` at which the rule
    "hold the sign of yesterday's close-to-close return" has about ``annual_sharpe``
    before costs, over 252 trading days a year.

    An approximation for Gaussian AR(1) returns with standard deviation sigma:
    E[sign(r_t) r_{t+1}] = phi sigma sqrt(2 / pi) and the rule's daily returns have a
    standard deviation of about sigma, so its annual Sharpe is about
    phi sqrt(2 / pi) sqrt(252), and phi = annual_sharpe / (sqrt(2 / pi) sqrt(252)).
    It ignores the drift (which adds about drift^2 / sigma^2 sqrt(2 / pi) sqrt(252) (1 - phi):
    0.01 at the default drift and volatility) and the fat tails and volatility
    clustering of ``"garch_momentum"``.
    """
    phi = annual_sharpe / (math.sqrt(2.0 / math.pi) * math.sqrt(252.0))
    if not -1.0 < phi < 1.0:
        raise ValueError(
            f"annual_sharpe={annual_sharpe} needs an autocorrelation of {phi:.3f}, outside "
            "(-1, 1); the sign-of-yesterday rule reaches at most about "
            f"{math.sqrt(2.0 / math.pi) * math.sqrt(252.0):.1f} a year"
        )
    return phi


def _overnight_bars(
    seed: int, phi: np.ndarray, daily_drift: float, daily_volatility: float, start_price: float
) -> tuple[np.ndarray, np.ndarray]:
    """(open, close) of ``"overnight_momentum"``: iid sessions, gaps predicted by the session before.

    d_t = daily_drift + daily_volatility e_t (open to close),
    g_t = phi_t (d_{t-1} - daily_drift) + daily_volatility / 4 u_t (close_{t-1} to open_t;
    g_0 = daily_volatility / 4 u_0), open_t = close_{t-1} (1 + g_t), close_t = open_t (1 + d_t),
    close_{-1} = start_price; e and u are Gaussian, each from its own stream.
    """
    n = len(phi)
    intraday = daily_drift + daily_volatility * _stream(seed, "intraday").standard_normal(n)
    gap = daily_volatility / 4 * _stream(seed, "overnight").standard_normal(n)
    gap[1:] += phi[1:] * (intraday[:-1] - daily_drift)
    close = start_price * np.cumprod((1.0 + gap) * (1.0 + intraday))
    open_ = np.concatenate([[start_price], close[:-1]]) * (1.0 + gap)
    return open_, close


def generate_prices(
    start: str,
    end: str,
    seed: int = 7,
    structure: str = "momentum",
    autocorrelation: float = constants.GENERATOR_AUTOCORRELATION,
    daily_drift: float = 0.0003,
    daily_volatility: float = 0.01,
    start_price: float = 100.0,
    *,
    edge_until: str | pd.Timestamp | None = None,
    garch_alpha: float = GARCH_ALPHA,
    garch_beta: float = GARCH_BETA,
    tail_df: float = TAIL_DF,
) -> pd.DataFrame:
    """Business-day OHLCV from ``start`` to ``end`` inclusive, the same for the same arguments.

    Except for ``"overnight_momentum"``, close-to-close returns follow the AR(1)
    r_t = drift + phi_t (r_{t-1} - drift) + daily_volatility sqrt(1 - phi_t^2) e_t,
    so the unconditional daily volatility is ``daily_volatility`` (0.01: about 16% a
    year) whatever phi_t, and r_0 = 0. The structure picks phi and the shocks e_t:

    - ``"random_walk"``: phi = 0, Gaussian e_t. Nothing to learn beyond the drift.
    - ``"momentum"``: phi = ``autocorrelation``, Gaussian e_t (learnable: yesterday's move
      predicts today's sign; 0.4 is a strong, unrealistic edge).
    - ``"garch_null"``: a realistic null. phi = 0; e_t is a GARCH(1,1) process with unit
      unconditional variance (``garch_alpha`` + ``garch_beta`` = 0.98) driven by Student-t
      shocks with ``tail_df`` degrees of freedom scaled to unit variance: volatility
      clusters and tails are fat, but the mean is not predictable (returns are
      uncorrelated; squared and absolute returns are not).
    - ``"garch_momentum"``: the same GARCH-t shocks with phi = ``autocorrelation``: a
      planted edge of adjustable strength on realistic volatility. With
      ``autocorrelation=0`` it gives exactly the bars of ``"garch_null"``.
    - ``"overnight_momentum"``: the whole predictable move happens overnight. The
      sessions (open to close) d_t = drift + daily_volatility e_t are iid Gaussian; the
      gap g_t = open_t / close_{t-1} - 1 = phi_t (d_{t-1} - drift) + daily_volatility / 4 u_t
      (g_0 = daily_volatility / 4 u_0, close_{-1} = ``start_price``), phi =
      ``autocorrelation``, e and u Gaussian from their own streams. A position taken at
      close t earns the gap predicted by session t; one entered at the open of t + 1 is
      exposed to d_{t+1} and g_{t+2}, neither predictable at close t: no edge. Close-to-close
      returns have a lag-1 autocorrelation of about phi / (1 + phi^2 + 1/16) (0.33 at 0.4)
      and a daily volatility of about daily_volatility sqrt(1 + phi^2 + 1/16).

    ``edge_until`` (a date, for the edge structures only): phi_t = 0 on every day after
    it, so a planted edge disappears, e.g. after a validation window.

    Open, high, low and volume are noise around the closes (the open is the gap above
    for ``"overnight_momentum"``), scaled by the day's volatility (the GARCH conditional
    volatility for the GARCH structures). Each quantity draws from its own random stream,
    one value per day, so the same seed and parameters give the same bars on every shared
    date whatever ``end`` is. The closes
    of ``"random_walk"`` and ``"momentum"`` are those of earlier versions of this
    generator.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"structure={structure!r}; choose one of {STRUCTURES}")
    if not -1.0 < autocorrelation < 1.0:
        raise ValueError(f"autocorrelation={autocorrelation}; it must lie in (-1, 1)")
    if edge_until is not None and structure not in EDGE_STRUCTURES:
        raise ValueError(
            f"edge_until={edge_until} switches off a planted edge, and structure={structure!r} "
            f"has none; use one of {EDGE_STRUCTURES} or leave edge_until unset"
        )
    if structure in GARCH_STRUCTURES:
        if garch_alpha < 0 or garch_beta < 0 or garch_alpha + garch_beta >= 1:
            raise ValueError(
                f"garch_alpha={garch_alpha}, garch_beta={garch_beta}; both must be >= 0 with "
                "a sum below 1 (a stationary variance)"
            )
        if tail_df <= 2:
            raise ValueError(f"tail_df={tail_df}; a Student-t has finite variance only above 2")
    dates = pd.bdate_range(start, end, name="date")
    n = len(dates)
    if n < 2:
        raise ValueError(f"{start}..{end} holds {n} business days; need at least 2")

    phi = np.full(n, autocorrelation if structure in EDGE_STRUCTURES else 0.0)
    if edge_until is not None:
        phi[dates > pd.Timestamp(edge_until)] = 0.0
    if structure in OVERNIGHT_STRUCTURES:
        open_, close = _overnight_bars(seed, phi, daily_drift, daily_volatility, start_price)
        day_vol = np.full(n, daily_volatility)
    else:
        if structure in GARCH_STRUCTURES:
            t_draws = _stream(seed, "garch_shocks").standard_t(tail_df, size=n)
            shocks, vol_scale = _unit_garch(
                t_draws * np.sqrt((tail_df - 2.0) / tail_df), garch_alpha, garch_beta
            )
        else:
            # The historical stream: keeps the closes of earlier versions unchanged.
            shocks, vol_scale = np.random.default_rng(seed).standard_normal(n), np.ones(n)
        innovation = daily_volatility * np.sqrt(1.0 - phi**2)
        returns = np.empty(n)
        returns[0] = 0.0
        for t in range(1, n):
            returns[t] = (
                daily_drift * (1 - phi[t]) + phi[t] * returns[t - 1] + innovation[t] * shocks[t]
            )
        close = start_price * np.cumprod(1.0 + returns)
        day_vol = daily_volatility * vol_scale
        prev_close = np.concatenate([[start_price], close[:-1]])
        open_ = prev_close * (1.0 + day_vol / 4 * _stream(seed, "open_gap").standard_normal(n))
    if not (np.all(close > 0) and np.all(open_ > 0)):
        raise ValueError(
            f"seed={seed}, structure={structure!r} drew a return of -100% or worse; lower "
            "daily_volatility or raise tail_df"
        )
    high = np.maximum(open_, close) * (
        1.0 + np.abs(day_vol / 2 * _stream(seed, "high_span").standard_normal(n))
    )
    low = np.minimum(open_, close) * (
        1.0 - np.minimum(np.abs(day_vol / 2 * _stream(seed, "low_span").standard_normal(n)), 0.5)
    )
    volume = _stream(seed, "volume").lognormal(mean=13.0, sigma=0.3, size=n).round()
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=dates,
    )


def latest_business_day(today: pd.Timestamp | None = None) -> str:
    """The last business day on or before ``today`` (default: today, UTC), as YYYY-MM-DD."""
    day = pd.Timestamp.now(tz="UTC").tz_localize(None) if today is None else pd.Timestamp(today)
    day = day.normalize()
    return str((day if day.dayofweek < 5 else day - pd.offsets.BDay(1)).date())
