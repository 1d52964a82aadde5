"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest

from rl_assets.rl.metrics import drawdown_curve, max_drawdown, sharpe_ratio, total_return


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
