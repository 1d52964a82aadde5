"""The champion's monitor: the CUSUM recursion by hand, its calibrated threshold against
Siegmund's approximation and an independent simulation, determinism, and no edge to lose."""

import math

import numpy as np
import pytest
from scipy import stats

from rl_assets.rl.sequential import (
    NO_EDGE,
    average_run_length,
    calibrate_threshold,
    cusum_monitor,
    cusum_path,
    siegmund_arl,
    skill_at_exposure,
)

# A normal sample with no sampling error: the standard normal quantiles of n equal steps.
NORMAL = stats.norm.ppf((np.arange(20_000) + 0.5) / 20_000)


def brute_force_alarm_rate(mu, mu_se, k, h, min_live_days, seed, paths=20_000, days=252):
    """Fraction of edge-persists paths (true level ~ N(mu, mu_se^2), normal noise) whose
    CUSUM exceeds h on some day >= min_live_days: written apart from the module's code."""
    rng = np.random.default_rng(seed)
    z = rng.normal(mu, mu_se, size=(paths, 1)) + rng.standard_normal((paths, days))
    s, alarmed = np.zeros(paths), np.zeros(paths, dtype=bool)
    for t in range(days):
        s = np.maximum(0.0, s + mu - k - z[:, t])
        if t + 1 >= min_live_days:
            alarmed |= s > h
    return float(alarmed.mean())


def test_the_cusum_recursion_by_hand():
    # S_t = max(0, S_{t-1} + (0.5 - 0.25) - z_t)
    path = cusum_path([0.0, 1.0, -1.0, 0.25, -0.5], expected_daily=0.5, k=0.25)
    np.testing.assert_allclose(path, [0.25, 0.0, 1.25, 1.25, 2.0])
    assert cusum_path([], 0.5, 0.25).size == 0


def test_average_run_length_of_a_yearly_false_alarm_rate():
    assert average_run_length(0.05) == pytest.approx(252 / -math.log(0.95))
    assert 4_900 < average_run_length(0.05) < 4_920
    with pytest.raises(ValueError, match="false_alarm_rate_per_year"):
        average_run_length(1.0)


def test_siegmund_approximation_reference_value():
    # k = 0.5, h = 4: b = 5.166, (e^5.166 - 5.166 - 1) / 0.5 = 338.8 (the textbook ~336
    # of the exact ARL for this chart).
    assert siegmund_arl(0.5, 4.0) == pytest.approx((math.exp(5.166) - 6.166) / 0.5)
    assert 330 < siegmund_arl(0.5, 4.0) < 345


@pytest.mark.parametrize("annual_sharpe", [1.0, 2.0, 4.0])
def test_the_calibrated_threshold_gives_the_stated_false_alarm_rate(annual_sharpe):
    """Normal noise, expected level known exactly: an independent simulation at the
    calibrated h raises a false alarm within a year at the target rate."""
    mu = annual_sharpe / math.sqrt(252)
    k = mu / 2
    h = calibrate_threshold(mu, 0.0, NORMAL, k, 0.05, 1, 20_000, seed=3)
    rate = brute_force_alarm_rate(mu, 0.0, k, h, 1, seed=99)
    assert rate == pytest.approx(0.05, abs=0.008)  # 5 binomial sd at 20,000 paths
    # The first year starts at S = 0: with k this small the steady state alarms faster
    # (Siegmund's ARL at this h is under the 4,913 days a geometric 5% year would mean).
    assert siegmund_arl(k, h) < average_run_length(0.05)


@pytest.mark.parametrize(("mu", "rate"), [(1.0, 0.5), (0.6, 0.3), (1.0, 0.2)])
def test_the_calibrated_threshold_agrees_with_siegmund_where_run_lengths_are_geometric(mu, rate):
    """Larger k (k = 0.3-0.5, h 4-7): the in-control run length is nearly geometric, so the
    calibrated h's P(alarm within 252 days) is 1 - exp(-252 / ARL) with Siegmund's ARL."""
    h = calibrate_threshold(mu, 0.0, NORMAL, mu / 2, rate, 1, 20_000, seed=3)
    assert 1 - math.exp(-252 / siegmund_arl(mu / 2, h)) == pytest.approx(rate, rel=0.05)


def test_the_threshold_counts_the_error_in_the_expected_level():
    mu = 1.5 / math.sqrt(252)
    se = 0.5 / math.sqrt(252)
    exact = calibrate_threshold(mu, 0.0, NORMAL, mu / 2, 0.05, 20, 20_000, seed=3)
    h = calibrate_threshold(mu, se, NORMAL, mu / 2, 0.05, 20, 20_000, seed=3)
    assert h > exact
    # Paths whose true level is below the estimate are part of the 5%.
    assert brute_force_alarm_rate(mu, se, mu / 2, h, 20, seed=7) == pytest.approx(0.05, abs=0.008)
    assert brute_force_alarm_rate(mu, se, mu / 2, exact, 20, seed=7) > 0.06


def test_the_monitor_is_deterministic_and_alarms_only_after_min_live_days():
    rng = np.random.default_rng(0)
    evidence = 0.01 * rng.standard_t(5, 1000) + 0.001
    # A fall from the first day, large enough to cross h within the first week.
    live = np.full(60, -0.05)
    dates = [f"2025-01-{d:02d}" for d in range(1, 32)] + [f"2025-02-{d:02d}" for d in range(1, 30)]
    args = (live, evidence, 2.0, 0.4, 0.05, 20)
    a = cusum_monitor(*args, dates=dates, paths=4000, seed=5)
    b = cusum_monitor(*args, dates=dates, paths=4000, seed=5)
    assert a == b
    assert a["edge"] and a["alarm"]
    early = np.flatnonzero(np.asarray(a["statistic_path"]) > a["h"])[0] + 1
    assert early < 20 and a["first_alarm_day"] == 20
    assert a["first_alarm_date"] == "2025-01-20"
    sd = evidence.std(ddof=1)
    assert a["k"] == pytest.approx(2.0 / math.sqrt(252) / 2)
    assert a["statistic_path"][0] == pytest.approx(max(0.0, a["k"] + 0.05 / sd))
    assert a["average_run_length"] == pytest.approx(average_run_length(0.05))


def test_a_persisting_edge_is_not_flagged_and_too_few_days_never_are():
    rng = np.random.default_rng(1)
    evidence = 0.01 * rng.standard_normal(1000) + 0.01 * 2.0 / math.sqrt(252)
    live = 0.01 * rng.standard_normal(252) + 0.01 * 2.0 / math.sqrt(252)
    out = cusum_monitor(live, evidence, 2.0, 0.4, paths=4000)
    assert not out["alarm"] and out["first_alarm_day"] is None
    assert out["statistic_max"] <= out["h"]
    few = cusum_monitor(np.full(19, -0.05), evidence, 2.0, 0.4, paths=4000)
    assert not few["alarm"] and "too few" in few["reason"]


@pytest.mark.parametrize("expected", [0.0, -0.3])
def test_no_edge_after_its_trials_means_nothing_to_lose(expected):
    evidence = np.random.default_rng(2).standard_normal(300) * 0.01
    out = cusum_monitor(np.full(100, -0.05), evidence, expected, 0.5)
    assert not out["edge"] and not out["alarm"]
    assert out["h"] is None and NO_EDGE in out["reason"]
    assert out["days"] == 100


def test_the_monitor_refuses_too_little_evidence():
    with pytest.raises(ValueError, match="at least 20"):
        cusum_monitor(np.zeros(5), np.ones(10), 1.0, 0.5)


def test_skill_at_a_fixed_exposure():
    policy, unit = np.array([0.01, -0.02]), np.array([0.02, -0.01])
    np.testing.assert_allclose(skill_at_exposure(policy, unit, 0.5), [0.0, -0.015])
    rf = 0.0252 / 252
    np.testing.assert_allclose(
        skill_at_exposure(policy, unit, 0.5, 0.0252), (policy - rf) - 0.5 * (unit - rf)
    )
