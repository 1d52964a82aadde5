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


def annualised_return(daily_returns) -> float:
    """Geometric annual growth rate implied by the period's compounded return."""
    r = np.asarray(daily_returns, dtype=np.float64)
    if r.size == 0:
        return 0.0
    growth = np.prod(1.0 + r)
    if growth <= 0:
        return -1.0
    return float(growth ** (TRADING_DAYS / r.size) - 1.0)


def volatility(daily_returns) -> float:
    """Annualised standard deviation of daily returns (ddof=1)."""
    r = np.asarray(daily_returns, dtype=np.float64)
    return float(r.std(ddof=1) * math.sqrt(TRADING_DAYS)) if r.size >= 2 else 0.0


def sortino_ratio(daily_returns, risk_free_rate: float = 0.0) -> float:
    """Annualised mean excess return over downside deviation (root mean square of the
    negative excess returns over all days); 0.0 when there is no downside."""
    r = np.asarray(daily_returns, dtype=np.float64)
    if r.size < 2:
        return 0.0
    excess = r - risk_free_rate / TRADING_DAYS
    downside = math.sqrt(np.mean(np.minimum(excess, 0.0) ** 2))
    if downside < 1e-12:
        return 0.0
    return float(excess.mean() / downside * math.sqrt(TRADING_DAYS))


def calmar_ratio(daily_returns) -> float:
    """Annualised return over max drawdown; 0.0 without a drawdown."""
    mdd = max_drawdown(daily_returns)
    return float(annualised_return(daily_returns) / mdd) if mdd > 1e-12 else 0.0


def trading_stats(positions) -> dict[str, float]:
    """Turnover (mean absolute position change per day, entry from flat included), number of
    trades (days the position changed), exposure (share of days not flat)."""
    p = np.asarray(positions, dtype=np.float64)
    if p.size == 0:
        return {"turnover": 0.0, "trades": 0, "exposure": 0.0}
    changes = np.abs(np.diff(np.concatenate([[0.0], p])))
    return {
        "turnover": float(changes.mean()),
        "trades": int(np.count_nonzero(changes)),
        "exposure": float(np.mean(p != 0.0)),
    }


def hit_rate(daily_returns, positions) -> float:
    """Share of days in the market that made money; 0.0 when never in the market."""
    r = np.asarray(daily_returns, dtype=np.float64)
    active = np.asarray(positions) != 0.0
    return float(np.mean(r[active] > 0.0)) if active.any() else 0.0


def performance(daily_returns, positions, risk_free_rate: float = 0.0) -> dict[str, float]:
    """Every metric of the report for one return series."""
    return {
        "sharpe": sharpe_ratio(daily_returns, risk_free_rate),
        "sortino": sortino_ratio(daily_returns, risk_free_rate),
        "total_return": total_return(daily_returns),
        "annualised_return": annualised_return(daily_returns),
        "volatility": volatility(daily_returns),
        "max_drawdown": max_drawdown(daily_returns),
        "calmar": calmar_ratio(daily_returns),
        **trading_stats(positions),
        "hit_rate": hit_rate(daily_returns, positions),
    }
