"""One set of performance metrics for the whole project: training, checks and report."""

import math

import numpy as np

TRADING_DAYS = 252


def sharpe_ratio(daily_returns, risk_free_rate: float = 0.0) -> float:
    """Annualised Sharpe ratio of daily simple returns.

    Excess returns over ``risk_free_rate`` (annual, converted to a daily rate),
    sample standard deviation (ddof=1), scaled by sqrt(252). Fewer than two
    returns or zero variance give 0.0, never inf or NaN.
    """
    r = np.asarray(daily_returns, dtype=np.float64)
    if r.size < 2:
        return 0.0
    excess = r - risk_free_rate / TRADING_DAYS
    std = excess.std(ddof=1)
    if not np.isfinite(std) or std < 1e-12:
        return 0.0
    return float(excess.mean() / std * math.sqrt(TRADING_DAYS))


def total_return(daily_returns) -> float:
    """Compounded return over the whole period."""
    r = np.asarray(daily_returns, dtype=np.float64)
    return float(np.prod(1.0 + r) - 1.0)


def equity_curve(daily_returns) -> np.ndarray:
    """Wealth path starting at 1.0 (one value per return)."""
    return np.cumprod(1.0 + np.asarray(daily_returns, dtype=np.float64))


def max_drawdown(daily_returns) -> float:
    """Largest peak-to-trough loss of the equity curve, as a positive fraction."""
    equity = np.concatenate([[1.0], equity_curve(daily_returns)])
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks))


def drawdown_curve(daily_returns) -> np.ndarray:
    """Drawdown at each day, as a non-positive fraction."""
    equity = equity_curve(daily_returns)
    peaks = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return equity / peaks - 1.0
