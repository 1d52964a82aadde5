"""Statistical honesty for Sharpe ratios: PSR, DSR (Bailey and Lopez de Prado), bootstrap CI.

scipy is imported inside the functions: importing it costs over a second, and this
module is on the import path of the code location.
"""

import math

import numpy as np

from rl_assets.rl.metrics import TRADING_DAYS, sharpe_ratio

EULER_GAMMA = 0.5772156649015329


def _daily_sharpe(returns: np.ndarray) -> float:
    return sharpe_ratio(returns) / math.sqrt(TRADING_DAYS)


def probabilistic_sharpe_ratio(returns, benchmark_daily_sharpe: float = 0.0) -> float:
    """P(true Sharpe > benchmark) given the sample's length, skewness and kurtosis.

    PSR = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)), with SR and SR*
    in per-period (daily) units and g4 the non-excess kurtosis (Bailey and Lopez de
    Prado 2012, eq. 11).
    """
    from scipy import stats

    r = np.asarray(returns, dtype=np.float64)
    if r.size < 3 or r.std(ddof=1) < 1e-12:
        return 0.0
    sr = _daily_sharpe(r)
    skew = float(stats.skew(r))
    kurt = float(stats.kurtosis(r, fisher=False))
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    if denom <= 0:
        return 0.0
    z = (sr - benchmark_daily_sharpe) * math.sqrt(r.size - 1) / math.sqrt(denom)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(trial_daily_sharpes) -> float:
    """E[max SR] of N unskilled trials with the observed spread (the DSR's benchmark SR*).

    SR* = sqrt(V[SR]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))), where
    gamma is Euler-Mascheroni (Bailey and Lopez de Prado 2014, eq. 2).
    """
    from scipy import stats

    sr = np.asarray(trial_daily_sharpes, dtype=np.float64)
    n = sr.size
    if n < 2:
        return 0.0
    spread = float(sr.std(ddof=1))
    return spread * (
        (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1.0 / n)
        + EULER_GAMMA * stats.norm.ppf(1 - 1.0 / (n * math.e))
    )


def deflated_sharpe_ratio(returns, trial_annual_sharpes) -> dict[str, float]:
    """PSR of the chosen series against the expected maximum of the trials it was chosen
    among (e.g. the validation Sharpe of every iteration early stopping looked at)."""
    trials = np.asarray(trial_annual_sharpes, dtype=np.float64) / math.sqrt(TRADING_DAYS)
    benchmark = expected_max_sharpe(trials)
    return {
        "dsr": probabilistic_sharpe_ratio(returns, benchmark),
        "psr": probabilistic_sharpe_ratio(returns, 0.0),
        "trials": int(trials.size),
        "benchmark_sharpe": benchmark * math.sqrt(TRADING_DAYS),
    }


def bootstrap_sharpe_difference(
    a, b, n_resamples: int = 2000, block: int = 10, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Moving-block bootstrap CI of Sharpe(a) - Sharpe(b) over the same days.

    Days are resampled in blocks (pairs kept together) so autocorrelation and the
    correlation between the two series survive resampling.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size < 2 * block:
        raise ValueError(
            f"bootstrap needs two series of equal length >= {2 * block}; got {a.size} and {b.size}"
        )
    rng = np.random.default_rng(seed)
    n = a.size
    starts = rng.integers(0, n - block + 1, size=(n_resamples, math.ceil(n / block)))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_resamples, -1)[:, :n]
    ra, rb = a[idx], b[idx]

    def sharpe_rows(x):
        sd = x.std(axis=1, ddof=1)
        return np.where(sd > 1e-12, x.mean(axis=1) / np.where(sd > 1e-12, sd, 1), 0.0)

    diffs = (sharpe_rows(ra) - sharpe_rows(rb)) * math.sqrt(TRADING_DAYS)
    alpha = (1 - confidence) / 2
    return {
        "difference": sharpe_ratio(a) - sharpe_ratio(b),
        "low": float(np.quantile(diffs, alpha)),
        "high": float(np.quantile(diffs, 1 - alpha)),
        "confidence": confidence,
    }
