"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest
from scipy import stats

from rl_assets.rl.metrics import (
    annualised_return,
    calmar_ratio,
    drawdown_curve,
    hit_rate,
    max_drawdown,
    performance,
    sharpe_ratio,
    sortino_ratio,
    total_return,
    trading_stats,
    volatility,
)
from rl_assets.rl.stats import (
    bootstrap_sharpe_difference,
    deflated_sharpe_from_moments,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)


def test_sharpe_by_hand():
    r = [0.01, -0.005, 0.002, 0.003]
    mean = sum(r) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)
    assert sharpe_ratio(r) == pytest.approx(mean / std * math.sqrt(252))


def test_sharpe_uses_excess_returns_over_the_risk_free_rate():
    r = np.array([0.01, -0.005, 0.002, 0.003])
    daily_rf = 0.0252 / 252
    expected = (r - daily_rf).mean() / (r - daily_rf).std(ddof=1) * math.sqrt(252)
    assert sharpe_ratio(r, risk_free_rate=0.0252) == pytest.approx(expected)


@pytest.mark.parametrize("r", [[0.0] * 10, [0.001] * 10, [0.01], []])
def test_sharpe_of_zero_variance_or_too_few_returns_is_zero(r):
    assert sharpe_ratio(r) == 0.0


def test_total_return_and_drawdown_by_hand():
    r = [0.10, -0.20, 0.05]
    assert total_return(r) == pytest.approx(1.1 * 0.8 * 1.05 - 1)
    # Peak 1.1, trough 0.88: drawdown 20%.
    assert max_drawdown(r) == pytest.approx(0.2)
    np.testing.assert_allclose(drawdown_curve(r), [0.0, -0.2, 0.924 / 1.1 - 1])


def test_drawdown_counts_a_loss_from_the_start():
    assert max_drawdown([-0.1, 0.05]) == pytest.approx(0.1)


def test_sortino_by_hand():
    r = [0.02, -0.01, 0.03, -0.02]
    downside = math.sqrt((0.01**2 + 0.02**2) / 4)
    assert sortino_ratio(r) == pytest.approx(np.mean(r) / downside * math.sqrt(252))
    assert sortino_ratio([0.01, 0.02]) == 0.0  # no downside


def test_annualised_return_volatility_and_calmar_by_hand():
    r = [0.01] * 126  # half a year of +1% days
    assert annualised_return(r) == pytest.approx(1.01**252 - 1)
    assert volatility([0.01, -0.01]) == pytest.approx(
        np.std([0.01, -0.01], ddof=1) * math.sqrt(252)
    )
    r2 = [0.10, -0.20, 0.05]
    assert calmar_ratio(r2) == pytest.approx(annualised_return(r2) / 0.2)


def test_trading_stats_and_hit_rate_by_hand():
    positions = [0, 1, 1, -1, 0, 0]
    # Changes from flat: 0, 1, 0, 2, 1, 0 -> turnover 4/6, 3 trades; exposure 3/6.
    assert trading_stats(positions) == {
        "turnover": pytest.approx(4 / 6),
        "trades": 3,
        "exposure": 0.5,
    }
    returns = [0.0, 0.01, -0.02, 0.03, 0.0, 0.0]
    assert hit_rate(returns, positions) == pytest.approx(2 / 3)
    assert hit_rate([0.01], [0]) == 0.0


def test_performance_holds_every_report_metric():
    perf = performance([0.01, -0.005, 0.002, 0.003], [1, 1, 0, -1])
    assert set(perf) == {
        "sharpe",
        "sortino",
        "total_return",
        "annualised_return",
        "volatility",
        "max_drawdown",
        "calmar",
        "turnover",
        "trades",
        "exposure",
        "hit_rate",
    }


def test_psr_by_hand():
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, 250)
    sr = r.mean() / r.std(ddof=1)
    g3 = stats.skew(r)
    g4 = stats.kurtosis(r, fisher=False)
    z = sr * math.sqrt(249) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(r) == pytest.approx(stats.norm.cdf(z))
    assert probabilistic_sharpe_ratio(np.zeros(10)) == 0.0


def test_expected_max_sharpe_by_hand():
    trials = [0.0, 1.0, 2.0]  # std 1
    g = 0.5772156649015329
    expected = (1 - g) * stats.norm.ppf(1 - 1 / 3) + g * stats.norm.ppf(1 - 1 / (3 * math.e))
    assert expected_max_sharpe(trials) == pytest.approx(expected)
    assert expected_max_sharpe([0.3]) == 0.0


def test_dsr_deflates_by_the_number_and_spread_of_trials():
    rng = np.random.default_rng(2)
    r = rng.normal(0.001, 0.01, 250)
    one = deflated_sharpe_ratio(r, [1.5])
    assert one["dsr"] == pytest.approx(one["psr"])  # a single trial: nothing to deflate
    many = deflated_sharpe_ratio(r, np.linspace(-1, 2, 30))
    assert many["dsr"] < one["dsr"]
    assert many["trials"] == 30 and many["benchmark_sharpe"] > 0


# Bailey and Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example:
# annualised SR 2.5 chosen among N = 100 trials whose annualised Sharpes have variance
# 0.5, T = 1250 daily returns (five years of 250 days), skew -3, kurtosis 10.
PAPER_EXAMPLE = dict(
    sharpe=2.5,
    trials=100,
    trial_sharpe_variance=0.5,
    observations=1250,
    skewness=-3.0,
    kurtosis=10.0,
)


def test_dsr_reproduces_the_papers_worked_example():
    out = deflated_sharpe_from_moments(**PAPER_EXAMPLE, periods_per_year=250)
    assert out["benchmark_sharpe_per_period"] == pytest.approx(0.1132, abs=5e-5)
    assert out["dsr"] == pytest.approx(0.9004, abs=5e-5)


def test_dsr_example_depends_on_converting_with_the_papers_250_days():
    # The example's annual figures were annualised with 250 days a year; read with 252
    # the same figures give another DSR, so the unit convention is what the test pins.
    out = deflated_sharpe_from_moments(**PAPER_EXAMPLE, periods_per_year=252)
    assert out["dsr"] == pytest.approx(0.8997, abs=5e-5)
    assert out["dsr"] != pytest.approx(0.9004, abs=5e-5)


def test_dsr_of_returns_converts_both_sides_with_the_days_that_annualised_them():
    rng = np.random.default_rng(4)
    r = rng.standard_t(5, 1250) * 0.01 + 0.0012
    z = rng.standard_normal(100)
    trials = (z - z.mean()) / z.std(ddof=1) * math.sqrt(0.5)  # annual variance exactly 0.5
    out = deflated_sharpe_ratio(r, trials)
    # SR* of the paper's example in annual units (0.1132 a day over 250 days a year),
    # whatever the days per year: the trials side is converted back as it was annualised.
    assert out["benchmark_sharpe"] == pytest.approx(0.11317 * math.sqrt(250), abs=1e-3)
    daily = r.mean() / r.std(ddof=1)
    moments = dict(
        trials=100,
        observations=1250,
        skewness=float(stats.skew(r)),
        kurtosis=float(stats.kurtosis(r, fisher=False)),
    )
    for days in (250, 252):
        same = deflated_sharpe_from_moments(
            sharpe=daily * math.sqrt(days),
            trial_sharpe_variance=0.5 * days / 252,
            periods_per_year=days,
            **moments,
        )
        assert out["dsr"] == pytest.approx(same["dsr"], rel=1e-9)
    assert 0.05 < out["dsr"] < 0.95  # a case where a wrong benchmark would show


def test_dsr_measures_the_candidate_over_the_risk_free_rate_its_trials_used():
    rng = np.random.default_rng(5)
    r = rng.normal(0.0006, 0.01, 250)
    trials = [0.2, 0.9, 1.4, 0.6]
    with_rf = deflated_sharpe_ratio(r, trials, risk_free_rate=0.05)
    excess = deflated_sharpe_ratio(r - 0.05 / 252, trials)
    assert with_rf["dsr"] == pytest.approx(excess["dsr"])
    assert with_rf["dsr"] < deflated_sharpe_ratio(r, trials)["dsr"]


def test_bootstrap_ci_of_sharpe_difference():
    rng = np.random.default_rng(3)
    b = rng.normal(0.0, 0.01, 500)
    same = bootstrap_sharpe_difference(b, b)
    assert same["low"] == same["high"] == same["difference"] == 0.0
    better = bootstrap_sharpe_difference(b + 0.003, b)
    # A clear improvement: the interval excludes 0. (A percentile interval need not contain
    # the point estimate, so that is not asserted.)
    assert 0 < better["low"] < better["high"]
    assert better["difference"] == pytest.approx(sharpe_ratio(b + 0.003) - sharpe_ratio(b))
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_sharpe_difference(b, b[:-1])
