"""Statistical honesty for Sharpe ratios: PSR, DSR (Bailey and Lopez de Prado), bootstrap CI.

scipy is imported inside the functions: importing it costs over a second, and this
module is on the import path of the code location.
"""

import math

import numpy as np

from rl_assets.rl.metrics import TRADING_DAYS, sharpe_ratio

EULER_GAMMA = 0.5772156649015329


def _moments(returns, risk_free_rate: float = 0.0) -> tuple[float, int, float, float] | None:
    """(annual Sharpe, observations, skewness, non-excess kurtosis), or None when the
    series is too short or flat for a Sharpe."""
    from scipy import stats

    r = np.asarray(returns, dtype=np.float64)
    if r.size < 3 or r.std(ddof=1) < 1e-12:
        return None
    return (
        sharpe_ratio(r, risk_free_rate),
        int(r.size),
        float(stats.skew(r)),
        float(stats.kurtosis(r, fisher=False)),
    )


def probabilistic_sharpe_from_moments(
    sharpe: float, benchmark: float, observations: int, skewness: float, kurtosis: float
) -> float:
    """P(true Sharpe > ``benchmark``) from the sample's Sharpe, length, skew and kurtosis.

    PSR = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)), with SR and SR*
    per period (not annualised), T observations and g4 the non-excess kurtosis (Bailey
    and Lopez de Prado 2012, eq. 11). A non-positive variance term gives 0.0.
    """
    from scipy import stats

    denom = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if observations < 2 or denom <= 0:
        return 0.0
    z = (sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(denom)
    return float(stats.norm.cdf(z))


def probabilistic_sharpe_ratio(
    returns, benchmark_daily_sharpe: float = 0.0, risk_free_rate: float = 0.0
) -> float:
    """PSR of daily returns against a daily benchmark Sharpe (0.0 for too few or flat
    returns). ``risk_free_rate`` is annual, as in ``metrics.sharpe_ratio``."""
    moments = _moments(returns, risk_free_rate)
    if moments is None:
        return 0.0
    annual, t, skew, kurt = moments
    return probabilistic_sharpe_from_moments(
        annual / math.sqrt(TRADING_DAYS), benchmark_daily_sharpe, t, skew, kurt
    )


def expected_max_sharpe_from_variance(variance: float, trials: float) -> float:
    """E[max SR] of ``trials`` unskilled trials whose Sharpes have ``variance``.

    SR* = sqrt(V[SR]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))), where
    gamma is Euler-Mascheroni (Bailey and Lopez de Prado 2014, eq. 2). In the units of
    the Sharpes whose variance is given; 0.0 for fewer than two trials.
    """
    from scipy import stats

    if trials < 2:
        return 0.0
    return float(math.sqrt(variance)) * float(
        (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1.0 / trials)
        + EULER_GAMMA * stats.norm.ppf(1 - 1.0 / (trials * math.e))
    )


def expected_max_sharpe(trial_daily_sharpes) -> float:
    """E[max SR] of N unskilled trials with the observed spread (the DSR's benchmark SR*)."""
    sr = np.asarray(trial_daily_sharpes, dtype=np.float64)
    if sr.size < 2:
        return 0.0
    return expected_max_sharpe_from_variance(float(sr.var(ddof=1)), int(sr.size))


def deflated_sharpe_from_moments(
    sharpe: float,
    trials: int,
    trial_sharpe_variance: float,
    observations: int,
    skewness: float,
    kurtosis: float,
    periods_per_year: float = TRADING_DAYS,
) -> dict[str, float]:
    """Deflated Sharpe Ratio (Bailey and Lopez de Prado 2014) from annualised moments.

    ``sharpe`` is the chosen strategy's annualised Sharpe, ``trial_sharpe_variance`` the
    variance of the annualised Sharpes of the ``trials`` it was chosen among,
    ``observations`` the number of returns (T), ``skewness`` and ``kurtosis`` (non-excess)
    those of its returns. DSR = PSR(SR*) with SR* = E[max SR] of ``trials`` unskilled trials.

    Units: the formula is per period. An annualised Sharpe becomes SR / sqrt(q) and an
    annualised variance V / q, with q = ``periods_per_year``. The paper's worked example
    (SR 2.5, T = 1250 daily returns, i.e. five years, N = 100, V = 0.5, skew -3, kurtosis
    10 gives SR* = 0.1132 per day and DSR = 0.9004) uses q = 250; the same inputs with
    q = 252 give DSR 0.8997. The result does not depend on q as long as both Sharpe and
    variance are converted with the q that annualised them: this project annualises every
    Sharpe with ``metrics.TRADING_DAYS`` (252) and ``deflated_sharpe_ratio`` converts with 252.
    """
    per_period = sharpe / math.sqrt(periods_per_year)
    benchmark = expected_max_sharpe_from_variance(
        trial_sharpe_variance / periods_per_year, int(trials)
    )
    return {
        "dsr": probabilistic_sharpe_from_moments(
            per_period, benchmark, observations, skewness, kurtosis
        ),
        "psr": probabilistic_sharpe_from_moments(per_period, 0.0, observations, skewness, kurtosis),
        "trials": int(trials),
        "benchmark_sharpe": float(benchmark * math.sqrt(periods_per_year)),
        "benchmark_sharpe_per_period": float(benchmark),
    }


def deflated_sharpe_ratio(
    returns, trial_annual_sharpes, risk_free_rate: float = 0.0
) -> dict[str, float]:
    """DSR of the chosen daily ``returns`` against the expected maximum of the trials it was
    chosen among (e.g. the validation Sharpe of every iteration early stopping looked at).

    Both sides are annualised with ``metrics.TRADING_DAYS`` and converted back with it
    (see ``deflated_sharpe_from_moments``). ``risk_free_rate`` (annual) must be the one
    the trial Sharpes were computed with.
    """
    trials = np.asarray(trial_annual_sharpes, dtype=np.float64)
    variance = float(trials.var(ddof=1)) if trials.size >= 2 else 0.0
    moments = _moments(returns, risk_free_rate)
    if moments is None:
        benchmark = expected_max_sharpe_from_variance(variance, int(trials.size))
        return {
            "dsr": 0.0,
            "psr": 0.0,
            "trials": int(trials.size),
            "benchmark_sharpe": float(benchmark),
            "benchmark_sharpe_per_period": float(benchmark / math.sqrt(TRADING_DAYS)),
        }
    sharpe, t, skew, kurt = moments
    return deflated_sharpe_from_moments(
        sharpe, int(trials.size), variance, t, skew, kurt, TRADING_DAYS
    )


def null_trial_variance(observations: int, periods_per_year: float = TRADING_DAYS) -> float:
    """Annualised variance of an unskilled strategy's Sharpe estimate over ``observations``
    returns: 1 / (T - 1) per period (Lo 2002, at a true Sharpe of 0)."""
    return periods_per_year / max(observations - 1, 1)


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


def sharpe_standard_error(returns) -> tuple[float, float, int]:
    """(daily Sharpe, its standard error, n) with skewness and kurtosis taken into account:
    sqrt((1 - g3 SR + (g4 - 1) / 4 SR^2) / (n - 1)), as in the PSR (Bailey and Lopez de
    Prado 2012; Mertens 2002)."""
    moments = _moments(returns, 0.0)
    if moments is None:
        return 0.0, math.inf, int(np.asarray(returns).size)
    annual, n, skew, kurt = moments
    sharpe = annual / math.sqrt(TRADING_DAYS)
    variance = (1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe**2) / max(n - 1, 1)
    return sharpe, math.sqrt(max(variance, 0.0)), n


def long_run_variance_ratio(returns, lags: int | None = None) -> float:
    """Long-run variance of ``returns`` over their plain variance (1 for serially
    uncorrelated returns, above 1 when they trend, below 1 when they mean-revert).

    The Bartlett-kernel long-run variance of Newey and West (1987, eq. 2), divided by the
    lag-0 autocovariance, both with the same 1 / T normalisation:
    1 + 2 sum_{k=1..L} (1 - k / (L + 1)) rho_k, rho_k the lag-k sample autocorrelation
    of the demeaned series (its 1 / T autocovariance over the lag-0 one). ``lags`` is L;
    by default floor(4 (T / 100)^(2/9)), the rule of Newey and West (1994), and at most
    T - 1. A Bartlett long-run variance is non-negative, so the result is floored at
    1e-6 against rounding. Fewer than 3 returns or a flat series give 1.0.
    """
    r = np.asarray(returns, dtype=np.float64).ravel()
    t = int(r.size)
    if lags is not None and lags < 0:
        raise ValueError(f"lags must be >= 0, got {lags}")
    if t < 3 or not np.isfinite(r).all() or r.std(ddof=1) < 1e-12:
        return 1.0
    if lags is None:
        lags = math.floor(4.0 * (t / 100.0) ** (2.0 / 9.0))
    lags = min(int(lags), t - 1)
    x = r - r.mean()
    gamma0 = float(x @ x) / t
    total = 1.0
    for k in range(1, lags + 1):
        rho = float(x[k:] @ x[:-k]) / t / gamma0
        total += 2.0 * (1.0 - k / (lags + 1.0)) * rho
    return float(max(total, 1e-6))


def sharpe_standard_error_hac(
    returns, risk_free_rate: float = 0.0, lags: int | None = None
) -> dict[str, float]:
    """Daily Sharpe ratio of excess returns and its standard error under serial
    correlation as well as skewness and kurtosis.

    se = sqrt((LRV - g3 SR + (g4 - 1) / 4 SR^2) / (T - 1)): the variance of a Sharpe
    estimate of Mertens (2002) as used in the PSR (Bailey and Lopez de Prado 2012,
    eq. 11), whose leading 1 is replaced by the long-run variance ratio LRV of the excess
    returns (``long_run_variance_ratio``, Newey and West 1987), after Lo (2002), who shows
    that serial correlation changes a Sharpe's standard error. SR is per period (sample
    std, ddof=1), g3 the skewness and g4 the non-excess kurtosis (biased, as scipy's
    defaults). ``risk_free_rate`` is annual and converted to daily as in
    ``metrics.sharpe_ratio``; ``lags`` as in ``long_run_variance_ratio`` (0 gives the
    plain PSR standard error). Fewer than 3 returns or a flat series give sharpe 0 and se
    inf (skewness and kurtosis NaN); so does a non-positive variance term (se inf).
    Annual figures are the daily ones times sqrt(``metrics.TRADING_DAYS``).
    """
    from scipy import stats

    r = np.asarray(returns, dtype=np.float64).ravel()
    t = int(r.size)
    excess = r - risk_free_rate / TRADING_DAYS
    scale = math.sqrt(TRADING_DAYS)
    if t < 3 or not np.isfinite(excess).all() or excess.std(ddof=1) < 1e-12:
        return {
            "sharpe": 0.0,
            "annual_sharpe": 0.0,
            "se": math.inf,
            "annual_se": math.inf,
            "lrv_ratio": 1.0,
            "observations": t,
            "skewness": math.nan,
            "kurtosis": math.nan,
        }
    sharpe = float(excess.mean() / excess.std(ddof=1))
    skew = float(stats.skew(excess))
    kurt = float(stats.kurtosis(excess, fisher=False))
    lrv = long_run_variance_ratio(excess, lags)
    variance = (lrv - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe**2) / (t - 1)
    se = math.sqrt(variance) if variance > 0 else math.inf
    return {
        "sharpe": sharpe,
        "annual_sharpe": sharpe * scale,
        "se": se,
        "annual_se": se * scale,
        "lrv_ratio": lrv,
        "observations": t,
        "skewness": skew,
        "kurtosis": kurt,
    }


def probabilistic_sharpe_hac(
    returns,
    benchmark_annual_sharpe: float = 0.0,
    risk_free_rate: float = 0.0,
    lags: int | None = None,
) -> float:
    """P(true Sharpe > benchmark) with a standard error that allows for serial correlation.

    PSR = Phi((SR - SR*) / se), the PSR of Bailey and Lopez de Prado (2012, eq. 11) with
    SR and se the daily Sharpe and its standard error from ``sharpe_standard_error_hac``
    (long-run variance ratio in place of the leading 1) and SR* =
    ``benchmark_annual_sharpe`` / sqrt(``metrics.TRADING_DAYS``). With ``lags=0`` it is
    ``probabilistic_sharpe_ratio``. 0.0 for fewer than 3 returns, a flat series or a
    non-positive variance term.
    """
    from scipy import stats

    est = sharpe_standard_error_hac(returns, risk_free_rate, lags)
    se = est["se"]
    if not math.isfinite(se) or se <= 0:
        return 0.0
    benchmark = benchmark_annual_sharpe / math.sqrt(TRADING_DAYS)
    return float(stats.norm.cdf((est["sharpe"] - benchmark) / se))


def minimum_track_record_years(
    annual_sharpe: float,
    confidence: float = 0.95,
    skewness: float = 0.0,
    kurtosis: float = 3.0,
    lrv_ratio: float = 1.0,
    benchmark_annual_sharpe: float = 0.0,
) -> float:
    """Years of daily returns needed before a Sharpe of ``annual_sharpe`` is above
    ``benchmark_annual_sharpe`` with probability ``confidence``.

    MinTRL = 1 + (LRV - g3 SR + (g4 - 1) / 4 SR^2) (z / (SR - SR*))^2 periods (Bailey and
    Lopez de Prado 2012, eq. 13, with the long-run variance ratio LRV in place of the
    leading 1, as in ``sharpe_standard_error_hac``), SR and SR* per period (annual over
    sqrt(``metrics.TRADING_DAYS``)), z the standard normal ``confidence`` quantile (a
    negative one counts as 0: one period is then enough), g4 non-excess kurtosis;
    divided by 252 for years. math.inf when SR <= SR*. A negative variance term (moments
    no sample can have) counts as 0.
    """
    from scipy import stats

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    scale = math.sqrt(TRADING_DAYS)
    sharpe = annual_sharpe / scale
    benchmark = benchmark_annual_sharpe / scale
    if sharpe <= benchmark:
        return math.inf
    z = max(float(stats.norm.ppf(confidence)), 0.0)
    variance = max(lrv_ratio - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2, 0.0)
    periods = 1.0 + variance * (z / (sharpe - benchmark)) ** 2
    return float(periods / TRADING_DAYS)


def expected_max_standard_normal(n: float) -> float:
    """Exact expected maximum of ``n`` iid standard normals, for real ``n`` >= 1.

    E = integral over the real line of x n phi(x) Phi(x)^(n - 1) dx (the mean of the
    largest order statistic; e.g. David and Nagaraja, Order Statistics, 2003, sec. 2.1),
    evaluated in the equivalent integrated-by-parts form
    integral_0^inf (1 - Phi(x)^n) dx - integral_-inf^0 Phi(x)^n dx, which is smooth and,
    at n = 1, two equal halves that cancel. Fractional ``n`` is allowed (an effective
    number of trials). Values: 0 at n = 1, 1 / sqrt(pi) at 2, 3 / (2 sqrt(pi)) at 3.
    This is the exact form of what ``expected_max_sharpe_from_variance`` approximates.
    """
    from scipy import integrate, special

    if not n >= 1:
        raise ValueError(f"n must be a real number >= 1, got {n!r}")
    n = float(n)
    if math.isinf(n):
        return math.inf
    if n == 1.0:
        return 0.0  # the mean of one standard normal (the quadrature leaves ~1e-16)

    def upper(x: float) -> float:
        return float(-np.expm1(n * special.log_ndtr(x)))

    def lower(x: float) -> float:
        return float(np.exp(n * special.log_ndtr(x)))

    # The upper integrand falls from 1 to 0 around sqrt(2 ln n): split there so the
    # quadrature sees the step whatever n is.
    mode = math.sqrt(2.0 * math.log(n))
    tol = {"epsabs": 1e-13, "epsrel": 1e-12, "limit": 200}
    above = (
        integrate.quad(upper, 0.0, mode, **tol)[0]
        + integrate.quad(upper, mode, mode + 10.0, **tol)[0]
        + integrate.quad(upper, mode + 10.0, np.inf, **tol)[0]
    )
    below = integrate.quad(lower, -np.inf, 0.0, **tol)[0]
    return float(above - below)


def one_sided_upper_bound(successes: int, trials: int, confidence: float = 0.95) -> float:
    """Exact (Clopper and Pearson 1934) one-sided upper confidence bound of a binomial
    proportion after ``successes`` in ``trials``.

    The p at which P(X <= k) = 1 - ``confidence``: the ``confidence`` quantile of
    Beta(k + 1, n - k); 1.0 when k = n. With no successes it is
    1 - (1 - confidence)^(1/n) (0 of 40 at 95%: 7.2%). It equals the upper limit of the
    two-sided exact interval at confidence 2 ``confidence`` - 1.
    """
    from scipy import stats

    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(
            f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if successes == trials:
        return 1.0
    return float(stats.beta.ppf(confidence, successes + 1, trials - successes))


def deflated_sharpe_hac(
    returns, trials: float = 1.0, risk_free_rate: float = 0.0, lags: int | None = None
) -> dict[str, float]:
    """Deflated Sharpe of ``returns`` chosen as the best of ``trials`` unskilled trials over
    the same days, with an autocorrelation-robust standard error.

    DSR = Phi((SR - SR0) / se) (Bailey and Lopez de Prado 2014, eq. 9), SR and se from
    ``sharpe_standard_error_hac``. The benchmark SR0 is the exact expected maximum of
    ``trials`` standard normals (``expected_max_standard_normal``: 0 at one trial, no
    cliff, fractional trials allowed) times the null standard deviation of a Sharpe
    estimate over these days, sqrt(LRV / (T - 1)) (the se at a true Sharpe of 0). With one
    trial the DSR is the PSR against zero. Too short or flat series give 0.0.
    """
    from scipy import stats

    est = sharpe_standard_error_hac(returns, risk_free_rate, lags)
    t, scale = est["observations"], math.sqrt(TRADING_DAYS)
    null_se = math.sqrt(est["lrv_ratio"] / max(t - 1, 1))
    benchmark = null_se * expected_max_standard_normal(max(float(trials), 1.0))
    se = est["se"]
    usable = math.isfinite(se) and se > 0
    return {
        **est,
        "dsr": float(stats.norm.cdf((est["sharpe"] - benchmark) / se)) if usable else 0.0,
        "psr": float(stats.norm.cdf(est["sharpe"] / se)) if usable else 0.0,
        "trials": float(trials),
        "benchmark_sharpe": benchmark * scale,
        "benchmark_sharpe_per_period": benchmark,
    }


# Correlations are shrunk towards 0 by this many of their standard errors under independence.
CORRELATION_NOISE_BANDS = 2.0
MIN_OVERLAP_DAYS = 20  # fewer shared days than this: the two trials count as unrelated


def trial_correlation(a, b, min_overlap: int = MIN_OVERLAP_DAYS) -> tuple[float, float, int]:
    """(correlation, its standard error were the two unrelated, shared days) of two trials'
    daily skill returns on the days both hold.

    ``a`` and ``b`` are pandas Series indexed by date. The standard error is
    sqrt(mean(x^2 y^2) / T) for the standardised series x, y: under independence the
    sample correlation's variance is E[x^2 y^2] / T, which is 1 / T only when the two do
    not share their volatility. Skill returns of one instrument do (both scale with the
    instrument's daily move), which inflates it by about the instrument's kurtosis.
    Two trials that never vary on those days (both flat: identical behaviour) correlate 1;
    a flat one and a varying one 0; fewer than ``min_overlap`` shared days 0 (nothing
    shows they are alike). Those cases have standard error 0.
    """
    import pandas as pd

    both = pd.concat([a, b], axis=1, join="inner").to_numpy(dtype=np.float64)
    n = int(len(both))
    if n < min_overlap:
        return 0.0, 0.0, n
    sd = both.std(axis=0, ddof=1)
    flat = sd < 1e-12
    if flat.all():
        return 1.0, 0.0, n
    if flat.any():
        return 0.0, 0.0, n
    z = (both - both.mean(axis=0)) / both.std(axis=0)
    noise = math.sqrt(float(np.mean(z[:, 0] ** 2 * z[:, 1] ** 2)) / n)
    return float(np.corrcoef(both[:, 0], both[:, 1])[0, 1]), noise, n


# The quantile of the best trial the count matches: the level the gate tests at.
TRIAL_COUNT_QUANTILE = 0.95


def effective_number_of_trials(
    correlations: np.ndarray,
    noise: np.ndarray | float = 0.0,
    bands: float = CORRELATION_NOISE_BANDS,
    quantile: float = TRIAL_COUNT_QUANTILE,
) -> float:
    """How many independent trials ``n`` correlated ones are worth, for the Deflated Sharpe.

    What the Deflated Sharpe guards against is the best of the trials by luck (Bailey and
    Lopez de Prado 2014). For n standard normal trials with a common correlation rho the
    best is sqrt(rho) Z0 + sqrt(1 - rho) (the best of n independent ones). The effective
    number N is the count of independent trials whose best has the same ``quantile`` (95%,
    the level of the gate's test): Phi(x)^N = q at the q-quantile x of the correlated best
    (``correlated_max_quantile``), so N = log q / log Phi(x), fractional allowed. This is
    the Sidak-equivalent number of tests for equicorrelated normals (the effective number
    of tests of Galwey 2009, Li and Ji 2005, matched exactly rather than by eigenvalues):
    n unrelated trials count n, n copies count 1. rho is the mean pairwise correlation.
    Matching the expected best instead (E[max of N] = sqrt(1 - rho) E[max of n]) matches the
    mean of the best, not its tail: 20 attempts at rho 0.5 counted 8.6 trials and 10.3% of
    nulls got through 20 attempts (``benchmarks/repeated_attempts.py``); the tail count is
    12.5. Sample correlations of unrelated series scatter around 0 by their standard error
    ``noise`` (``trial_correlation``); each is first shrunk towards 0 by ``bands`` of them
    (soft thresholding), so noise does not merge unrelated trials; negative ones count as 0
    (a trial that does the opposite of another is another trial). The result lies in
    [1, n].
    """
    corr = np.asarray(correlations, dtype=np.float64)
    n = corr.shape[0]
    if n <= 1:
        return float(n)
    noise = np.broadcast_to(np.asarray(noise, dtype=np.float64), corr.shape)
    shrunk = np.sign(corr) * np.maximum(np.abs(corr) - bands * noise, 0.0)
    off = ~np.eye(n, dtype=bool)
    rho = float(np.clip(np.clip(shrunk[off], 0.0, 1.0).mean(), 0.0, 1.0))
    return trials_matching_tail(n, rho, quantile)


def trials_matching_tail(n: int, rho: float, quantile: float = TRIAL_COUNT_QUANTILE) -> float:
    """The N independent standard normals whose best has the ``quantile`` of the best of
    ``n`` standard normals correlated ``rho``: log q / log Phi(x), x that quantile."""
    from scipy import special

    if rho <= 1e-12:
        return float(n)
    x = correlated_max_quantile(n, rho, quantile)
    log_cdf = float(special.log_ndtr(x))
    if log_cdf >= 0.0:
        return 1.0
    return float(min(max(math.log(quantile) / log_cdf, 1.0), n))


_GRID = np.linspace(-10.0, 14.0, 2401)  # for the integrals below (step 0.01)


def correlated_max_quantile(n: int, rho: float, quantile: float) -> float:
    """The ``quantile`` of max_i (a Z0 + b Z_i), i = 1..n, all standard normal, a =
    sqrt(rho), b = sqrt(1 - rho), solved for x (Brent) from its distribution function,
    integrated on a fine grid over the variable whose coefficient is the smaller one (so
    the other's normal distribution function, divided by at least sqrt(1/2), is smooth):
    rho <= 1/2: E_Z0[Phi((x - a Z0) / b)^n]; rho > 1/2: E_M[Phi((x - b M) / a)], M the best
    of n unrelated, of density n phi(m) Phi(m)^(n - 1)."""
    from scipy import optimize, special

    if rho >= 1.0 - 1e-12:
        return float(special.ndtri(quantile))
    a, b = math.sqrt(rho), math.sqrt(1.0 - rho)
    step = float(_GRID[1] - _GRID[0])
    log_phi = -0.5 * _GRID**2 - 0.5 * math.log(2.0 * math.pi)
    if rho <= 0.5:
        weight = np.exp(log_phi) * step

        def cdf(x: float) -> float:
            return float(weight @ np.exp(n * special.log_ndtr((x - a * _GRID) / b)))

    else:
        weight = np.exp(math.log(n) + log_phi + (n - 1) * special.log_ndtr(_GRID)) * step

        def cdf(x: float) -> float:
            return float(weight @ special.ndtr((x - b * _GRID) / a))

    # The best of n is at least any one of them, and at most the best of n unrelated ones
    # shifted by the shared part's own quantile: a bracket a few units wide.
    z = float(special.ndtri(quantile))
    low, high = z - 0.5, float(special.ndtri(quantile ** (1.0 / n))) + a * z + 1.0
    return float(optimize.brentq(lambda x: cdf(x) - quantile, low, high, xtol=1e-9))


def effective_trials_of(series, bands: float = CORRELATION_NOISE_BANDS) -> dict[str, object]:
    """``effective_number_of_trials`` of dated skill-return series (pandas Series), with the
    correlation matrix, the standard errors and the shared days it used."""
    n = len(series)
    if n > 1 and all(s.index.equals(series[0].index) for s in series[1:]):
        return _effective_trials_aligned(np.column_stack([s.to_numpy() for s in series]), bands)
    corr, noise, overlaps = np.eye(n), np.zeros((n, n)), np.zeros((n, n))
    for i in range(n):
        overlaps[i, i] = len(series[i])
        for j in range(i + 1, n):
            rho, se, days = trial_correlation(series[i], series[j])
            corr[i, j] = corr[j, i] = rho
            noise[i, j] = noise[j, i] = se
            overlaps[i, j] = overlaps[j, i] = days
    return {
        "trials": effective_number_of_trials(corr, noise, bands) if n else 0.0,
        "attempts": n,
        "correlations": corr,
        "noise": noise,
        "overlaps": overlaps,
    }


def _effective_trials_aligned(x: np.ndarray, bands: float) -> dict[str, object]:
    """``effective_trials_of`` for series on the same days (a T x n matrix), in one go:
    the same figures as ``trial_correlation`` pair by pair."""
    t, n = x.shape
    overlaps = np.full((n, n), float(t))
    if t < MIN_OVERLAP_DAYS:
        corr = np.eye(n)
        return {
            "trials": effective_number_of_trials(corr, 0.0, bands),
            "attempts": n,
            "correlations": corr,
            "noise": np.zeros((n, n)),
            "overlaps": overlaps,
        }
    sd = x.std(axis=0, ddof=1)
    flat = sd < 1e-12
    z = np.where(flat, 0.0, (x - x.mean(axis=0)) / np.where(flat, 1.0, x.std(axis=0)))
    corr = z.T @ z / t
    noise = np.sqrt(np.maximum((z**2).T @ (z**2) / t, 0.0) / t)
    both_flat = np.outer(flat, flat)
    corr = np.where(both_flat, 1.0, corr)
    noise = np.where(both_flat, 0.0, noise)
    np.fill_diagonal(corr, 1.0)
    return {
        "trials": effective_number_of_trials(corr, noise, bands),
        "attempts": n,
        "correlations": corr,
        "noise": noise,
        "overlaps": overlaps,
    }


def paired_difference_test(a, b, lags: int | None = None) -> dict[str, float]:
    """Does ``a`` earn more than ``b`` on the days both hold? A one-sided test on the mean of
    their daily difference d = a - b (pandas Series indexed by date), with the
    autocorrelation-robust (Newey and West 1987) standard error
    sqrt(var(d) LRV / T): t = mean(d) / se, ``confidence`` = Phi(t), the probability that
    the mean difference is above 0 (Diebold and Mariano 1995 for a loss differential).
    Identical series (d flat at 0), or fewer than 3 shared days, give t = 0 and confidence
    0.5: no evidence either way; a constant non-zero difference gives confidence 1 or 0. ``annual_difference`` is 252 mean(d); ``difference_sharpe``
    the annualised Sharpe of d."""
    import pandas as pd
    from scipy import stats

    both = pd.concat([a, b], axis=1, join="inner").to_numpy(dtype=np.float64)
    d = both[:, 0] - both[:, 1] if len(both) else np.zeros(0)
    t_days = int(d.size)
    out = {
        "days": t_days,
        "first_date": str(pd.concat([a, b], axis=1, join="inner").index.min().date())
        if t_days
        else "",
        "annual_difference": float(d.mean() * TRADING_DAYS) if t_days else 0.0,
        "difference_sharpe": 0.0,
        "t": 0.0,
        "confidence": 0.5,
        "lrv_ratio": 1.0,
    }
    if t_days < 3:
        return out
    if d.std(ddof=1) < 1e-15:  # a constant difference: certain, whichever way it points
        mean = float(d.mean())
        return out | {"confidence": 1.0 if mean > 1e-15 else 0.0 if mean < -1e-15 else 0.5}
    lrv = long_run_variance_ratio(d, lags)
    se = math.sqrt(d.var(ddof=1) * lrv / t_days)
    t = float(d.mean() / se)
    out |= {
        "difference_sharpe": float(d.mean() / d.std(ddof=1) * math.sqrt(TRADING_DAYS)),
        "t": t,
        "confidence": float(stats.norm.cdf(t)),
        "lrv_ratio": lrv,
    }
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg (1995) q-values: q_(i) = min over j >= i of m p_(j) / j, the
    smallest false-discovery rate at which each hypothesis would be rejected, in the
    input's order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(q, 0.0, 1.0)
    return out
