"""Evidence statistics of rl_assets.rl.stats against hand-computed values.

Long-run variance ratio (Newey-West), HAC Sharpe standard error and PSR, minimum track
record length, the exact expected maximum of n standard normals and the one-sided
Clopper-Pearson bound. Every expected value is written here from an independent formula
or by hand, never taken from the function under test.
"""

import math

import numpy as np
import pytest
from scipy import signal, stats

from rl_assets.rl.metrics import sharpe_ratio
from rl_assets.rl.stats import (
    expected_max_standard_normal,
    long_run_variance_ratio,
    minimum_track_record_years,
    one_sided_upper_bound,
    probabilistic_sharpe_from_moments,
    probabilistic_sharpe_hac,
    probabilistic_sharpe_ratio,
    sharpe_standard_error,
    sharpe_standard_error_hac,
)

Z95 = 1.6448536269514722  # standard normal 95% quantile
SQRT_Q = math.sqrt(252)


def _biased_moments(x):
    """(skewness, non-excess kurtosis) from the 1/T central moments, without scipy."""
    d = np.asarray(x, dtype=np.float64) - np.mean(x)
    m2, m3, m4 = (d**2).mean(), (d**3).mean(), (d**4).mean()
    return m3 / m2**1.5, m4 / m2**2


def _bartlett_reference(x, lags):
    """Newey-West ratio by explicit double loop (1/T autocovariances, Bartlett weights)."""
    t = len(x)
    mean = sum(x) / t
    d = [v - mean for v in x]
    gamma = [sum(d[i] * d[i - k] for i in range(k, t)) / t for k in range(lags + 1)]
    return 1 + 2 * sum((1 - k / (lags + 1)) * gamma[k] / gamma[0] for k in range(1, lags + 1))


def _ar1(phi, n, seed, mean=0.0, sd=1.0):
    e = np.random.default_rng(seed).standard_normal(n) * sd
    return signal.lfilter([1.0], [1.0, -phi], e) + mean


# --- long_run_variance_ratio ---------------------------------------------------------------


def test_lrv_ratio_tiny_series_by_hand():
    x = [1, -1, 2, 0, -2, 1]
    # mean 1/6; demeaned in sixths: 5, -7, 11, -1, -13, 5
    sum_sq = 5 * 5 + 7 * 7 + 11 * 11 + 1 * 1 + 13 * 13 + 5 * 5  # 390 (/36, /T cancel)
    lag1 = 5 * -7 + -7 * 11 + 11 * -1 + -1 * -13 + -13 * 5  # -175
    lag2 = 5 * 11 + -7 * -1 + 11 * -13 + -1 * 5  # -86
    assert sum_sq == 390 and lag1 == -175 and lag2 == -86
    by_hand_l1 = 1 + 2 * (1 - 1 / 2) * (lag1 / sum_sq)  # 43/78
    by_hand_l2 = 1 + 2 * ((1 - 1 / 3) * lag1 / sum_sq + (1 - 2 / 3) * lag2 / sum_sq)
    assert long_run_variance_ratio(x, lags=1) == pytest.approx(by_hand_l1, abs=1e-12)
    assert long_run_variance_ratio(x, lags=1) == pytest.approx(43 / 78, abs=1e-12)
    assert long_run_variance_ratio(x, lags=2) == pytest.approx(by_hand_l2, abs=1e-12)
    assert long_run_variance_ratio(x, lags=2) == pytest.approx(298 / 1170, abs=1e-12)
    assert long_run_variance_ratio(x, lags=0) == 1.0
    # scale and shift do not matter
    assert long_run_variance_ratio(np.array(x) * 0.003 + 0.01, lags=2) == pytest.approx(
        298 / 1170, abs=1e-9
    )


def test_lrv_ratio_alternating_series_is_one_over_t():
    # x = +1, -1, ...: mean 0, rho_1 = -(T - 1) / T, so 1 + 2 (1/2) rho_1 = 1 / T
    x = [1.0, -1.0] * 10
    assert long_run_variance_ratio(x, lags=1) == pytest.approx(1 / 20, abs=1e-12)


def test_lrv_ratio_default_lags_is_newey_west_1994_rule():
    x = list(np.random.default_rng(3).standard_normal(60) + 0.3 * np.arange(60) % 2)
    lags = math.floor(4 * (60 / 100) ** (2 / 9))
    assert lags == 3
    expected = _bartlett_reference(x, 3)
    assert long_run_variance_ratio(x) == pytest.approx(expected, abs=1e-12)
    assert long_run_variance_ratio(x) != pytest.approx(_bartlett_reference(x, 2), abs=1e-6)
    y = np.random.default_rng(4).standard_normal(500)
    assert math.floor(4 * 5 ** (2 / 9)) == 5
    assert long_run_variance_ratio(y) == pytest.approx(_bartlett_reference(list(y), 5), abs=1e-10)
    w = _ar1(0.4, 2000, seed=13)
    assert math.floor(4 * 20 ** (2 / 9)) == 7  # 7.78
    expected = _bartlett_reference(list(w), 7)
    assert long_run_variance_ratio(w) == pytest.approx(expected, abs=1e-10)
    assert long_run_variance_ratio(w) != pytest.approx(_bartlett_reference(list(w), 8), abs=1e-4)


def test_lrv_ratio_ar1_approaches_theory():
    phi = 0.5
    x = _ar1(phi, 200_000, seed=11)
    theory = (1 + phi) / (1 - phi)  # 3
    assert long_run_variance_ratio(x, lags=100) == pytest.approx(theory, rel=0.05)


def test_lrv_ratio_white_noise_is_about_one():
    x = np.random.default_rng(12).standard_normal(200_000)
    assert long_run_variance_ratio(x) == pytest.approx(1.0, abs=0.05)


def test_lrv_ratio_degenerate_series():
    assert long_run_variance_ratio([0.01, 0.02]) == 1.0
    assert long_run_variance_ratio([0.01] * 30) == 1.0
    assert long_run_variance_ratio([], lags=3) == 1.0
    with pytest.raises(ValueError, match="-1"):
        long_run_variance_ratio([1.0, 2.0, 0.5, 3.0], lags=-1)


# --- sharpe_standard_error_hac / probabilistic_sharpe_hac -----------------------------------


def _skewed_returns(n=500, seed=5):
    rng = np.random.default_rng(seed)
    return 0.0012 + 0.01 * (rng.standard_exponential(n) - 1.0)


def test_hac_se_with_zero_lags_is_the_psr_standard_error():
    r = _skewed_returns()
    rf = 0.02
    excess = r - rf / 252
    t = len(r)
    sr = excess.mean() / excess.std(ddof=1)
    g3, g4 = _biased_moments(excess)
    assert g3 > 1  # the skewness term matters
    se = math.sqrt((1 - g3 * sr + (g4 - 1) / 4 * sr**2) / (t - 1))

    out = sharpe_standard_error_hac(r, risk_free_rate=rf, lags=0)
    assert out["sharpe"] == pytest.approx(sr, rel=1e-12)
    assert out["sharpe"] == pytest.approx(sharpe_ratio(r, rf) / SQRT_Q, rel=1e-12)
    assert out["annual_sharpe"] == pytest.approx(sr * SQRT_Q, rel=1e-12)
    assert out["se"] == pytest.approx(se, rel=1e-12)
    assert out["annual_se"] == pytest.approx(se * SQRT_Q, rel=1e-12)
    assert out["lrv_ratio"] == 1.0
    assert out["observations"] == t
    assert out["skewness"] == pytest.approx(g3, rel=1e-10)
    assert out["kurtosis"] == pytest.approx(g4, rel=1e-10)
    # and with no risk-free rate it is the existing PSR standard error
    assert sharpe_standard_error_hac(r, lags=0)["se"] == pytest.approx(
        sharpe_standard_error(r)[1], rel=1e-12
    )


def test_hac_se_uses_lrv_of_excess_returns_with_default_lags():
    r = _ar1(0.3, 800, seed=6, mean=0.001, sd=0.01)
    t = len(r)
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = _biased_moments(r)
    lags = math.floor(4 * (t / 100) ** (2 / 9))  # 6
    lrv = _bartlett_reference(list(r), lags)
    assert lrv > 1.3
    se = math.sqrt((lrv - g3 * sr + (g4 - 1) / 4 * sr**2) / (t - 1))
    out = sharpe_standard_error_hac(r)
    assert out["lrv_ratio"] == pytest.approx(lrv, rel=1e-10)
    assert out["se"] == pytest.approx(se, rel=1e-10)


def test_autocorrelated_returns_have_larger_se_and_smaller_psr_than_shuffled():
    r = _ar1(0.6, 2000, seed=7, sd=0.01)
    r = r - r.mean() + 0.001  # a sample mean of exactly 0.1% a day
    shuffled = np.random.default_rng(8).permutation(r)
    a = sharpe_standard_error_hac(r)
    b = sharpe_standard_error_hac(shuffled)
    # same values: same mean, std, Sharpe, skewness and kurtosis
    assert a["sharpe"] == pytest.approx(b["sharpe"], rel=1e-9)
    assert a["sharpe"] > 0
    assert a["skewness"] == pytest.approx(b["skewness"], rel=1e-9, abs=1e-12)
    assert a["kurtosis"] == pytest.approx(b["kurtosis"], rel=1e-9)
    assert a["lrv_ratio"] > 2.5
    assert 0.8 < b["lrv_ratio"] < 1.2
    assert a["se"] > 1.4 * b["se"]
    psr_a, psr_b = probabilistic_sharpe_hac(r), probabilistic_sharpe_hac(shuffled)
    assert 0.5 < psr_a < psr_b < 1.0
    assert psr_a == pytest.approx(stats.norm.cdf(a["sharpe"] / a["se"]), rel=1e-12)


def test_hac_psr_is_one_half_at_the_benchmark_and_plain_psr_with_zero_lags():
    r = _skewed_returns(400, seed=9)
    rf = 0.03
    annual = sharpe_ratio(r, rf)
    assert probabilistic_sharpe_hac(r, annual, rf) == pytest.approx(0.5, abs=1e-12)
    assert probabilistic_sharpe_hac(r, annual, rf, lags=0) == pytest.approx(0.5, abs=1e-12)
    bench = 0.5
    excess = r - rf / 252
    sr = excess.mean() / excess.std(ddof=1)
    g3, g4 = _biased_moments(excess)
    z = (
        (sr - bench / SQRT_Q)
        * math.sqrt(len(r) - 1)
        / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    )
    assert probabilistic_sharpe_hac(r, bench, rf, lags=0) == pytest.approx(
        stats.norm.cdf(z), rel=1e-10
    )
    assert probabilistic_sharpe_hac(r, bench, lags=0) == pytest.approx(
        probabilistic_sharpe_ratio(r, bench / SQRT_Q), rel=1e-10
    )


def test_hac_degenerate_and_non_positive_variance():
    for r in ([0.01, 0.02], [0.004] * 50):
        out = sharpe_standard_error_hac(r)
        assert out["sharpe"] == 0.0 and out["annual_sharpe"] == 0.0
        assert out["se"] == math.inf and out["annual_se"] == math.inf
        assert out["observations"] == len(r)
        assert probabilistic_sharpe_hac(r) == 0.0
    # pattern 2, -1, -1 (times 0.01) plus a mean: lag-1 and lag-2 sums over the 300 demeaned
    # values are -298 and -299 against 600 for lag 0, so the ratio with 2 lags is
    # 1 + 2 (2/3 (-298) + 1/3 (-299)) / 600 = 10 / 1800; skewness 1/sqrt(2), kurtosis 1.5,
    # and with a daily Sharpe near 0.5 the variance term is negative.
    r = np.tile([0.02, -0.01, -0.01], 100) + 0.007
    out = sharpe_standard_error_hac(r, lags=2)
    assert out["lrv_ratio"] == pytest.approx(10 / 1800, abs=1e-12)
    assert out["skewness"] == pytest.approx(1 / math.sqrt(2), rel=1e-9)
    assert out["kurtosis"] == pytest.approx(1.5, rel=1e-9)
    term = out["lrv_ratio"] - out["skewness"] * out["sharpe"] + 0.5 / 4 * out["sharpe"] ** 2
    assert term < 0
    assert out["se"] == math.inf
    assert probabilistic_sharpe_hac(r, lags=2) == 0.0


# --- minimum_track_record_years -------------------------------------------------------------


def _mintrl_years(annual, g3=0.0, g4=3.0, lrv=1.0, bench=0.0, z=Z95):
    sr, sr_star = annual / SQRT_Q, bench / SQRT_Q
    return (1 + (lrv - g3 * sr + (g4 - 1) / 4 * sr**2) * (z / (sr - sr_star)) ** 2) / 252


@pytest.mark.parametrize("annual, approx_years", [(1.0, 2.7), (0.5, 10.8), (1.5, 1.2)])
def test_minimum_track_record_normal_returns(annual, approx_years):
    got = minimum_track_record_years(annual)
    assert got == pytest.approx(_mintrl_years(annual), rel=1e-10)
    assert got == pytest.approx(approx_years, abs=0.05)


def test_minimum_track_record_values_by_hand():
    # annual Sharpe 1: SR = 1/sqrt(252), variance term 1 + SR^2 / 2, periods 1 + term * z^2 * 252
    sr = 1 / math.sqrt(252)
    periods = 1 + (1 + 0.5 * sr**2) * Z95**2 * 252
    assert minimum_track_record_years(1.0) == pytest.approx(periods / 252, rel=1e-10)
    assert minimum_track_record_years(1.0) == pytest.approx(2.7149, abs=1e-4)
    # non-normal, serially correlated, against a benchmark
    got = minimum_track_record_years(
        2.0, skewness=-1.0, kurtosis=8.0, lrv_ratio=2.5, benchmark_annual_sharpe=0.5
    )
    assert got == pytest.approx(_mintrl_years(2.0, -1.0, 8.0, 2.5, 0.5), rel=1e-10)
    z99 = 2.3263478740408408
    assert minimum_track_record_years(1.0, confidence=0.99) == pytest.approx(
        _mintrl_years(1.0, z=z99), rel=1e-10
    )
    # the Sharpe's PSR at exactly that many daily returns is the confidence
    periods = minimum_track_record_years(1.2, skewness=-0.5, kurtosis=5.0) * 252
    psr = probabilistic_sharpe_from_moments(1.2 / SQRT_Q, 0.0, periods, -0.5, 5.0)
    assert psr == pytest.approx(0.95, abs=1e-9)


def test_minimum_track_record_infinite_at_or_below_benchmark():
    assert minimum_track_record_years(0.0) == math.inf
    assert minimum_track_record_years(-0.5) == math.inf
    assert minimum_track_record_years(1.0, benchmark_annual_sharpe=1.0) == math.inf
    assert math.isfinite(minimum_track_record_years(1.01, benchmark_annual_sharpe=1.0))
    with pytest.raises(ValueError, match="1.5"):
        minimum_track_record_years(1.0, confidence=1.5)


# --- expected_max_standard_normal -----------------------------------------------------------


@pytest.mark.parametrize(
    "n, expected",
    [
        (2, 1 / math.sqrt(math.pi)),
        (3, 3 / (2 * math.sqrt(math.pi))),
        (4, 1.0293753730),
        (5, 1.1629644736),
        (10, 1.5387527308),
        # Large N: Harter (1961) tabulates 2.50759 and 3.24144 (skfolio's
        # expected_max_sharpe_ratio uses the Bailey-Lopez de Prado approximation of these).
        (100, 2.5075936364),
        (1000, 3.2414357691),
    ],
)
def test_expected_max_standard_normal_known_values(n, expected):
    assert expected_max_standard_normal(n) == pytest.approx(expected, abs=1e-9)


def test_expected_max_standard_normal_one_and_fractional():
    assert expected_max_standard_normal(1) == pytest.approx(0.0, abs=1e-9)
    assert 1 / math.sqrt(math.pi) == pytest.approx(0.5641895835, abs=1e-10)
    # fractional n against the density form on a fine grid (trapezoid rule)
    x = np.linspace(-12.0, 12.0, 400_001)
    for n in (1.5, 2.5, 37.3):
        density = n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1)
        expected = float(np.sum((x[1:] * density[1:] + x[:-1] * density[:-1]) / 2 * np.diff(x)))
        assert expected_max_standard_normal(n) == pytest.approx(expected, abs=1e-8)
    assert (
        expected_max_standard_normal(2)
        < expected_max_standard_normal(2.5)
        < expected_max_standard_normal(3)
    )


def test_expected_max_standard_normal_rejects_n_below_one():
    with pytest.raises(ValueError, match="0.5"):
        expected_max_standard_normal(0.5)
    with pytest.raises(ValueError, match="nan"):
        expected_max_standard_normal(float("nan"))


# --- one_sided_upper_bound ------------------------------------------------------------------


def _binomial_cdf(k, n, p):
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k + 1))


def _upper_by_bisection(k, n, alpha):
    """The p with P(X <= k | n, p) = alpha (decreasing in p)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if _binomial_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def test_one_sided_upper_bound_zero_successes():
    assert one_sided_upper_bound(0, 40) == pytest.approx(1 - 0.05 ** (1 / 40), rel=1e-10)
    assert one_sided_upper_bound(0, 40) == pytest.approx(0.0722, abs=5e-5)
    assert one_sided_upper_bound(0, 60) == pytest.approx(1 - 0.05 ** (1 / 60), rel=1e-10)
    assert one_sided_upper_bound(0, 60) == pytest.approx(0.0487, abs=5e-5)
    assert one_sided_upper_bound(0, 60, confidence=0.99) == pytest.approx(
        1 - 0.01 ** (1 / 60), rel=1e-10
    )


@pytest.mark.parametrize("k, approx", [(1, 0.0766), (3, 0.1242)])
def test_one_sided_upper_bound_some_successes(k, approx):
    got = one_sided_upper_bound(k, 60)
    assert got == pytest.approx(_upper_by_bisection(k, 60, 0.05), abs=1e-9)
    two_sided_90 = stats.binomtest(k, 60).proportion_ci(confidence_level=0.90, method="exact")
    assert got == pytest.approx(two_sided_90.high, abs=1e-9)
    assert got == pytest.approx(approx, abs=5e-5)


def test_one_sided_upper_bound_edges():
    assert one_sided_upper_bound(60, 60) == 1.0
    assert one_sided_upper_bound(59, 60) == pytest.approx(
        _upper_by_bisection(59, 60, 0.05), abs=1e-9
    )
    with pytest.raises(ValueError):
        one_sided_upper_bound(61, 60)
    with pytest.raises(ValueError):
        one_sided_upper_bound(-1, 60)
