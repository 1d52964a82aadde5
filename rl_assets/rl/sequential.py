"""Sequential monitoring of a champion: a one-sided CUSUM on its daily skill returns, calibrated to a false-alarm rate per year.

The gate promotes a champion on its pooled walk-forward skill returns (``rl_assets.rl.
walk_forward.exposure_matched``); what it promises is a mean daily skill return above zero
(an annual skill Sharpe ``m`` after the gate's selection benchmark). The monitor asks, each
day, whether that mean has fallen to zero: Page's (1954) CUSUM for a downward shift of the
mean of the standardized skill returns, from ``m / sqrt(252)`` to 0. Looking every day is
part of the design, not a multiple-testing problem: the threshold ``h`` is set so that a
champion whose edge persists raises a false alarm in its first two years of daily looks
with the probability ``false_alarm_rate_per_year`` compounds to (9.75% for 5% a year), so
at most about that rate in its first year, counting the error in ``m`` itself.
"""

import math
from typing import Any

import numpy as np

from rl_assets.rl.metrics import TRADING_DAYS, sharpe_ratio

# A calibration needs this many evidence days to resample its noise from.
MIN_EVIDENCE_DAYS = 20
# The threshold is calibrated over this many years of daily looks, at the false-alarm
# probability the yearly rate compounds to over them: over one year the first year alone
# would be held, and the CUSUM's later (steady-state) years alarm faster than its first.
CALIBRATION_YEARS = 2
NO_EDGE = "the evidence implies no edge after its trials"
NOISE_MODEL = (
    "i.i.d. bootstrap of the evidence's demeaned, standardized daily skill returns "
    "(keeps their fat tails and skew, not their serial dependence)"
)


def average_run_length(
    false_alarm_rate_per_year: float, days_per_year: int = TRADING_DAYS
) -> float:
    """The mean days to a false alarm of a monitor whose run length is geometric with this
    probability of an alarm within one year: -days / ln(1 - rate) (0.05 -> 4,913 days)."""
    if not 0.0 < false_alarm_rate_per_year < 1.0:
        raise ValueError(
            f"false_alarm_rate_per_year must be in (0, 1), got {false_alarm_rate_per_year}"
        )
    return float(-days_per_year / math.log1p(-false_alarm_rate_per_year))


def siegmund_arl(k: float, h: float) -> float:
    """Siegmund's (1985, p. 27) approximation of the in-control average run length of a
    CUSUM S_t = max(0, S_{t-1} + X_t - k) of N(0, 1) observations, reference ``k`` > 0,
    threshold ``h``: (exp(2 k b) - 2 k b - 1) / (2 k^2), b = h + 1.166."""
    b = h + 1.166
    return float((math.exp(2.0 * k * b) - 2.0 * k * b - 1.0) / (2.0 * k * k))


def cusum_path(standardized, expected_daily: float, k: float) -> np.ndarray:
    """Page's (1954) one-sided CUSUM for a fall of the mean below ``expected_daily``:
    S_0 = 0, S_t = max(0, S_{t-1} + (expected_daily - k) - z_t), one value per observation.

    ``standardized``: the daily returns over their noise scale (so unit variance), ``k`` the
    reference value. While the mean is ``expected_daily`` S drifts down by ``k`` a day and
    sits near 0; once the mean is ``expected_daily - 2k`` it climbs by ``k`` a day.
    """
    z = np.asarray(standardized, dtype=np.float64).ravel()
    out = np.empty_like(z)
    s, step = 0.0, expected_daily - k
    for t, x in enumerate(z):
        s = max(0.0, s + step - x)
        out[t] = s
    return out


def calibrate_threshold(
    expected_daily: float,
    expected_daily_se: float,
    residuals,
    k: float,
    false_alarm_rate_per_year: float,
    min_live_days: int,
    paths: int,
    seed: int,
    horizon: int = TRADING_DAYS,
) -> float:
    """The CUSUM threshold h with P(alarm on some day in [min_live_days, horizon]) =
    ``false_alarm_rate_per_year`` for a champion whose edge persists, by Monte Carlo.

    Each of ``paths`` paths draws its true daily level from N(``expected_daily``,
    ``expected_daily_se``^2) (the expected level is itself an estimate), adds noise resampled
    i.i.d. from ``residuals`` (demeaned, unit variance), and runs the CUSUM with the
    reference ``expected_daily`` for ``horizon`` days; h is the (1 - rate) quantile of each
    path's maximum over the days an alarm may be raised. Deterministic given ``seed``.
    """
    if min_live_days < 1 or min_live_days > horizon:
        raise ValueError(f"min_live_days must be in [1, {horizon}], got {min_live_days}")
    residuals = np.asarray(residuals, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    level = rng.normal(expected_daily, expected_daily_se, size=paths)
    step = expected_daily - k
    s = np.zeros(paths)
    peak = np.zeros(paths)
    for day in range(1, horizon + 1):
        noise = residuals[rng.integers(0, residuals.size, size=paths)]
        s = np.maximum(0.0, s + step - (level + noise))
        if day >= min_live_days:
            np.maximum(peak, s, out=peak)
    return float(np.quantile(peak, 1.0 - false_alarm_rate_per_year))


def cusum_monitor(
    live_skill_returns,
    evidence_skill_returns,
    expected_sharpe: float,
    expected_sharpe_se: float,
    false_alarm_rate_per_year: float = 0.05,
    min_live_days: int = 20,
    dates=None,
    paths: int = 20_000,
    seed: int = 1954,
) -> dict[str, Any]:
    """Has the champion's edge stopped? A one-sided CUSUM (Page 1954) of its live daily skill
    returns for a fall of their mean from the expected level to zero; JSON-safe result.

    ``expected_sharpe``: the annual skill Sharpe the evidence implies after its trials (the
    pooled skill Sharpe less the gate's selection benchmark), ``expected_sharpe_se`` its
    annual standard error. The live returns are standardized by the evidence's daily skill
    standard deviation: the expected level is mu = ``expected_sharpe`` / sqrt(252) and the
    reference value k = mu / 2 (half the shift from mu to 0). The threshold h comes from
    ``calibrate_threshold`` (true level ~ N(mu, se^2), noise bootstrapped from the
    evidence, ``CALIBRATION_YEARS`` years of daily looks at the probability
    1 - (1 - rate)^years). ``alarm`` when the statistic exceeds h on a day at or after
    ``min_live_days``; an alarm stands once raised. If the expected level is not above
    zero there is no edge to lose: no alarm, and the reason says so.

    Calibrated over one year, the rate would hold for the first year only (the statistic
    starts at 0); later the CUSUM runs in its steady state, whose false alarms come faster
    for the small k of a daily Sharpe (k about 0.03-0.06). Calibrating over two years holds
    the first two together and the first with room to spare; ``steady_state_run_length``
    is Siegmund's ARL at (k, h) (normal noise, level known), what the later years approach.
    """
    live = np.asarray(live_skill_returns, dtype=np.float64).ravel()
    evidence = np.asarray(evidence_skill_returns, dtype=np.float64).ravel()
    if not (np.isfinite(live).all() and np.isfinite(evidence).all()):
        raise ValueError("skill returns must be finite")
    if evidence.size < MIN_EVIDENCE_DAYS:
        raise ValueError(
            f"the evidence has {evidence.size} skill returns; calibrating the monitor's noise "
            f"needs at least {MIN_EVIDENCE_DAYS}"
        )
    sd = float(evidence.std(ddof=1))
    if not np.isfinite(sd) or sd < 1e-12:
        raise ValueError(
            "the evidence's skill returns are constant: no noise scale to standardize by"
        )
    if not math.isfinite(expected_sharpe_se) or expected_sharpe_se < 0:
        raise ValueError(f"expected_sharpe_se must be finite and >= 0, got {expected_sharpe_se}")
    if dates is not None and len(dates) != live.size:
        raise ValueError(f"{len(dates)} dates for {live.size} live returns")
    days = int(live.size)
    arl = average_run_length(false_alarm_rate_per_year)
    horizon_rate = float(-math.expm1(CALIBRATION_YEARS * math.log1p(-false_alarm_rate_per_year)))
    result: dict[str, Any] = {
        "method": "one-sided CUSUM (Page 1954) of the standardized daily skill returns",
        "expected_sharpe": float(expected_sharpe),
        "expected_sharpe_se": float(expected_sharpe_se),
        "live_skill_sharpe": sharpe_ratio(live),
        "days": days,
        "min_live_days": int(min_live_days),
        "evidence_days": int(evidence.size),
        "noise_sd": sd,
        "false_alarm_rate_per_year": float(false_alarm_rate_per_year),
        "average_run_length": arl,
        "noise_model": NOISE_MODEL,
        "calibration": {
            "paths": int(paths),
            "seed": int(seed),
            "horizon": CALIBRATION_YEARS * TRADING_DAYS,
            "alarm_probability_over_horizon": horizon_rate,
        },
    }
    if not expected_sharpe > 0:
        return result | {
            "edge": False,
            "expected_daily": 0.0,
            "k": None,
            "h": None,
            "steady_state_run_length": None,
            "steady_state_false_alarm_rate_per_year": None,
            "statistic": 0.0,
            "statistic_max": 0.0,
            "statistic_path": [0.0] * days,
            "alarm": False,
            "first_alarm_day": None,
            "first_alarm_date": None,
            "reason": f"{NO_EDGE} (expected skill Sharpe {expected_sharpe:.2f}): nothing to lose",
        }
    scale = math.sqrt(TRADING_DAYS)
    mu, mu_se = expected_sharpe / scale, max(expected_sharpe_se, 0.0) / scale
    k = mu / 2.0
    h = calibrate_threshold(
        mu, mu_se, (evidence - evidence.mean()) / sd, k, horizon_rate,
        min_live_days, paths, seed, CALIBRATION_YEARS * TRADING_DAYS,
    )  # fmt: skip
    steady = siegmund_arl(k, h)
    path = cusum_path(live / sd, mu, k)
    eligible = path[min_live_days - 1 :]
    crossed = np.flatnonzero(eligible > h)
    first = int(crossed[0]) + min_live_days if crossed.size else None
    first_date = None
    if first is not None and dates is not None:
        first_date = _iso(dates[first - 1])
    if first is not None:
        reason = f"CUSUM crossed h on day {first}"
    elif days < min_live_days:
        reason = f"{days} live days: too few to raise an alarm (needs {min_live_days})"
    else:
        reason = "CUSUM below h"
    return result | {
        "edge": True,
        "expected_daily": mu,
        "k": k,
        "h": h,
        "statistic": float(path[-1]) if days else 0.0,
        "statistic_max": float(eligible.max()) if eligible.size else 0.0,
        "statistic_path": [float(x) for x in path],
        "steady_state_run_length": steady,
        "steady_state_false_alarm_rate_per_year": float(-math.expm1(-TRADING_DAYS / steady)),
        "alarm": first is not None,
        "first_alarm_day": first,
        "first_alarm_date": first_date,
        "reason": reason,
    }


def _iso(value) -> str:
    """An ISO date of a date-like (Timestamp, date, or 'YYYY-MM-DD...' string)."""
    if hasattr(value, "date") and callable(value.date):
        return str(value.date())
    return str(value)[:10]


def skill_at_exposure(
    policy_returns, unit_returns, exposure: float, risk_free_rate: float = 0.0
) -> np.ndarray:
    """Daily skill returns against a benchmark holding a fixed ``exposure``:
    (policy - rf) - exposure (unit - rf), rf the annual ``risk_free_rate`` / 252. The same
    formula as ``walk_forward.exposure_matched``, whose exposure is the window's own mean
    position; monitoring fixes it at the exposure known at promotion, so a live day's skill
    return uses no later position."""
    rf = risk_free_rate / TRADING_DAYS
    policy = np.asarray(policy_returns, dtype=np.float64)
    return (policy - rf) - exposure * (np.asarray(unit_returns, dtype=np.float64) - rf)
