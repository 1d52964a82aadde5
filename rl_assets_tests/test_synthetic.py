"""The price generator: determinism, prefix stability, and the statistics each structure plants."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rl_assets.data.synthetic import EDGE_STRUCTURES, STRUCTURES, generate_prices

# Forty years of business days: long enough that sample autocorrelations of the fixed
# seeds sit within about 0.03 of the planted value (standard error about 0.01-0.02).
LONG = ("1990-01-01", "2029-12-31")
SEEDS = (1, 2, 3)


def returns(df: pd.DataFrame) -> np.ndarray:
    return df["close"].pct_change().dropna().to_numpy()


def lag1(x: np.ndarray) -> float:
    return float(np.corrcoef(x[1:], x[:-1])[0, 1])


@pytest.mark.parametrize("structure", STRUCTURES)
def test_same_arguments_give_the_same_bars(structure):
    a = generate_prices("2019-01-01", "2023-12-31", seed=11, structure=structure)
    b = generate_prices("2019-01-01", "2023-12-31", seed=11, structure=structure)
    pd.testing.assert_frame_equal(a, b)
    other = generate_prices("2019-01-01", "2023-12-31", seed=12, structure=structure)
    assert not np.allclose(a["close"], other["close"])


@pytest.mark.parametrize("structure", STRUCTURES)
def test_a_later_end_never_changes_the_earlier_bars(structure):
    edge = {"edge_until": "2021-03-31"} if structure in EDGE_STRUCTURES else {}
    short = generate_prices("2019-01-01", "2021-06-30", seed=5, structure=structure, **edge)
    long = generate_prices("2019-01-01", "2023-12-31", seed=5, structure=structure, **edge)
    assert len(long) > len(short)
    pd.testing.assert_frame_equal(long.loc[short.index], short)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_bars_are_consistent_ohlc(structure):
    for seed in SEEDS:
        df = generate_prices(*LONG, seed=seed, structure=structure)
        assert (df[["open", "high", "low", "close", "volume"]] > 0).all().all()
        assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
        assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_garch_null_clusters_volatility_with_fat_tails_and_no_predictable_mean(seed):
    r = returns(generate_prices(*LONG, seed=seed, structure="garch_null"))
    assert abs(lag1(r)) < 0.05
    assert lag1(np.abs(r)) > 0.08
    assert lag1(r**2) > 0.05
    assert stats.kurtosis(r) > 1.0  # excess kurtosis
    assert 0.13 < r.std(ddof=1) * np.sqrt(252) < 0.20  # annual volatility near 16%


@pytest.mark.parametrize("seed", SEEDS)
def test_random_walk_has_neither_clustering_nor_fat_tails(seed):
    # The contrast that makes the garch_null test meaningful: the same statistics on
    # Gaussian returns with constant volatility stay near zero.
    r = returns(generate_prices(*LONG, seed=seed, structure="random_walk"))
    assert abs(lag1(r)) < 0.05
    assert abs(lag1(np.abs(r))) < 0.03
    assert abs(stats.kurtosis(r)) < 0.3


@pytest.mark.parametrize("structure", EDGE_STRUCTURES)
@pytest.mark.parametrize("phi", [0.1, 0.4])
def test_momentum_has_the_planted_lag_one_autocorrelation(structure, phi):
    for seed in SEEDS:
        r = returns(generate_prices(*LONG, seed=seed, structure=structure, autocorrelation=phi))
        assert lag1(r) == pytest.approx(phi, abs=0.04)


def test_garch_momentum_keeps_the_garch_volatility():
    r = returns(generate_prices(*LONG, seed=1, structure="garch_momentum", autocorrelation=0.2))
    assert lag1(np.abs(r)) > 0.08
    assert stats.kurtosis(r) > 1.0


def test_garch_momentum_without_an_edge_is_the_garch_null():
    null = generate_prices("2019-01-01", "2023-12-31", seed=4, structure="garch_null")
    zero = generate_prices(
        "2019-01-01", "2023-12-31", seed=4, structure="garch_momentum", autocorrelation=0.0
    )
    pd.testing.assert_frame_equal(null, zero)


@pytest.mark.parametrize("structure", EDGE_STRUCTURES)
def test_edge_until_switches_the_planted_edge_off_after_that_date(structure):
    cut = "2009-12-31"
    for seed in SEEDS:
        df = generate_prices(*LONG, seed=seed, structure=structure, edge_until=cut)
        r = df["close"].pct_change()
        before = r.loc[:cut].dropna().to_numpy()
        after = r.loc[cut:].to_numpy()  # from the last edge day: lag pairs start after it
        assert lag1(before) == pytest.approx(0.4, abs=0.04)
        assert abs(lag1(after)) < 0.05
        # The bars up to the cut are those of the edge that never stops.
        always = generate_prices(*LONG, seed=seed, structure=structure)
        pd.testing.assert_frame_equal(df.loc[:cut], always.loc[:cut])


def test_bad_arguments_fail_with_the_value_and_the_fix():
    with pytest.raises(ValueError, match="structure='trend'"):
        generate_prices("2020-01-01", "2020-12-31", structure="trend")
    with pytest.raises(ValueError, match="autocorrelation=1.0"):
        generate_prices("2020-01-01", "2020-12-31", autocorrelation=1.0)
    with pytest.raises(ValueError, match="has none"):
        generate_prices("2020-01-01", "2020-12-31", structure="garch_null", edge_until="2020-06-30")
    with pytest.raises(ValueError, match="sum below 1"):
        generate_prices(
            "2020-01-01", "2020-12-31", structure="garch_null", garch_alpha=0.1, garch_beta=0.9
        )
    with pytest.raises(ValueError, match="tail_df=2"):
        generate_prices("2020-01-01", "2020-12-31", structure="garch_null", tail_df=2)
