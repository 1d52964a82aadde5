"""The price generator: determinism, prefix stability, and the statistics each structure plants."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rl_assets.data.schemas import RawPrices
from rl_assets.data.synthetic import (
    EDGE_STRUCTURES,
    MOMENTUM_STRUCTURES,
    STRUCTURES,
    autocorrelation_for_annual_sharpe,
    generate_prices,
)

# Forty years of business days: long enough that sample autocorrelations of the fixed
# seeds sit within about 0.03 of the planted value (standard error about 0.01-0.02).
LONG = ("1990-01-01", "2029-12-31")
SEEDS = (1, 2, 3)


def returns(df: pd.DataFrame) -> np.ndarray:
    return df["close"].pct_change().dropna().to_numpy()


def lag1(x: np.ndarray) -> float:
    return float(np.corrcoef(x[1:], x[:-1])[0, 1])


def annual_sharpe(daily: np.ndarray) -> float:
    return float(daily.mean() / daily.std(ddof=1) * np.sqrt(252))


def sessions_and_nights(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each day's open-to-close move d_t, and each night's gap open_t / close_{t-1} - 1
    (from the second day: night[i] is the gap before day i + 1)."""
    open_, close = df["open"].to_numpy(), df["close"].to_numpy()
    return close / open_ - 1, open_[1:] / close[:-1] - 1


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


@pytest.mark.parametrize("structure", MOMENTUM_STRUCTURES)
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


@pytest.mark.parametrize("structure", MOMENTUM_STRUCTURES)
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


def test_overnight_momentum_is_deterministic_prefix_stable_and_valid_ohlc():
    def bars(end: str, **kw) -> pd.DataFrame:
        return generate_prices("2019-01-01", end, seed=5, structure="overnight_momentum", **kw)

    pd.testing.assert_frame_equal(bars("2023-12-31"), bars("2023-12-31"))
    assert not np.allclose(
        bars("2023-12-31")["close"],
        generate_prices("2019-01-01", "2023-12-31", seed=6, structure="overnight_momentum")[
            "close"
        ],
    )
    for kw in ({}, {"edge_until": "2021-03-31"}):
        short, long = bars("2021-06-30", **kw), bars("2023-12-31", **kw)
        assert len(long) > len(short)
        pd.testing.assert_frame_equal(long.loc[short.index], short)
    # Its own streams: its sessions and nights are uncorrelated with the returns and the
    # open gaps that every other structure draws from the same seed.
    day, night = sessions_and_nights(generate_prices(*LONG, seed=5, structure="overnight_momentum"))
    for other in STRUCTURES:
        if other != "overnight_momentum":
            df = generate_prices(*LONG, seed=5, structure=other, autocorrelation=0.0)
            other_day, other_night = sessions_and_nights(df)
            for mine in (day[1:], night):
                for theirs in (returns(df), other_day[1:], other_night):
                    assert abs(float(np.corrcoef(mine, theirs)[0, 1])) < 0.05, other
    for seed in SEEDS:
        df = generate_prices(*LONG, seed=seed, structure="overnight_momentum")
        RawPrices.validate(df, lazy=True)
        assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
        assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
        assert (df["high"] > df[["open", "close"]].max(axis=1)).mean() > 0.99
        assert (df["low"] < df[["open", "close"]].min(axis=1)).mean() > 0.99


@pytest.mark.parametrize("phi", [0.1, 0.4])
def test_overnight_momentum_plants_the_gap_on_iid_sessions(phi):
    drift, vol = 0.0003, 0.01
    for seed in SEEDS:
        df = generate_prices(*LONG, seed=seed, structure="overnight_momentum", autocorrelation=phi)
        day, night = sessions_and_nights(df)
        # Sessions: iid Gaussian with the drift and volatility, unpredictable from the past.
        assert day.mean() == pytest.approx(drift, abs=0.0003)
        assert day.std(ddof=1) == pytest.approx(vol, rel=0.03)
        assert abs(lag1(day)) < 0.04
        assert abs(float(np.corrcoef(night[:-1], day[1:-1])[0, 1])) < 0.04  # gap t -> day t
        # Nights: phi times the session before, plus noise of a quarter of the volatility.
        slope, intercept = np.polyfit(day[:-1] - drift, night, 1)
        assert slope == pytest.approx(phi, abs=0.03)
        assert abs(intercept) < 0.0002
        assert (night - phi * (day[:-1] - drift)).std(ddof=1) == pytest.approx(vol / 4, rel=0.05)
        # Close to close: r_{t+1} = g_{t+1} + d_{t+1} (to first order) shares phi * d_t with r_t.
        assert lag1(returns(df)) == pytest.approx(phi / (1 + phi**2 + 1 / 16), abs=0.04)


@pytest.mark.parametrize("seed", SEEDS)
def test_overnight_momentum_pays_at_the_same_close_and_not_at_the_next_open(seed):
    df = generate_prices("2000-01-01", "2019-12-31", seed=seed, structure="overnight_momentum")
    day, night = sessions_and_nights(df)
    r = returns(df)  # r[i] is the close-to-close return of day i + 1
    position = np.sign(day)  # decided at close t from today's session
    # Same close: held from close t to close t + 1.
    same_close = position[:-1] * r
    assert annual_sharpe(same_close) > 2.0
    # The plain close-to-close rule, sign(r_t) on r_{t+1}, also sees the gap.
    assert annual_sharpe(np.sign(r[:-1]) * r[1:]) > 2.0
    # Next open: position p_t entered at the open of t + 1 and held to the open of t + 2;
    # day t + 1 marked to closes earns p_{t-1} * night_{t+1} + p_t * day_{t+1}.
    next_open = position[:-2] * night[1:] + position[1:-1] * day[2:]
    assert abs(annual_sharpe(next_open)) < 0.5


def test_overnight_momentum_edge_until_switches_the_gap_off_after_that_date():
    cut = "2009-12-31"
    for seed in SEEDS:
        df = generate_prices(*LONG, seed=seed, structure="overnight_momentum", edge_until=cut)
        day, _ = sessions_and_nights(df)
        same_close = pd.Series(np.sign(day[:-1]) * returns(df), index=df.index[1:])
        assert annual_sharpe(same_close.loc[:cut].to_numpy()) > 2.0
        after = same_close.loc[cut:].iloc[1:].to_numpy()  # positions taken after the cut
        assert len(after) > 4 * 252
        assert abs(annual_sharpe(after)) < 0.6
        always = generate_prices(*LONG, seed=seed, structure="overnight_momentum")
        pd.testing.assert_frame_equal(df.loc[:cut], always.loc[:cut])


def test_autocorrelation_for_annual_sharpe_gives_that_sharpe_to_the_sign_rule():
    phi = autocorrelation_for_annual_sharpe(1.5)
    assert phi == pytest.approx(1.5 / (math.sqrt(2 / math.pi) * math.sqrt(252)), rel=1e-12)
    assert phi == pytest.approx(0.1184, abs=1e-4)
    assert autocorrelation_for_annual_sharpe(-1.5) == pytest.approx(-phi)
    assert autocorrelation_for_annual_sharpe(0.0) == 0.0
    # The drift adds about drift^2 / sigma^2 * sqrt(2 / pi) * sqrt(252) * (1 - phi) = 0.01 to
    # the Sharpe, and the rule's std is sigma * sqrt(1 + drift^2 / sigma^2 - mean^2 / sigma^2),
    # 0.4% below sigma: about 1.52 expected; one 40-year sample has a standard error of 0.16.
    sharpes = []
    for seed in SEEDS:
        r = returns(generate_prices(*LONG, seed=seed, structure="momentum", autocorrelation=phi))
        sharpes.append(annual_sharpe(np.sign(r[:-1]) * r[1:]))
        assert sharpes[-1] == pytest.approx(1.5, abs=0.35)
    assert np.mean(sharpes) == pytest.approx(1.5, abs=0.2)
    with pytest.raises(ValueError, match="annual_sharpe=100"):
        autocorrelation_for_annual_sharpe(100)
    with pytest.raises(ValueError, match="annual_sharpe=-13"):
        autocorrelation_for_annual_sharpe(-13)


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
