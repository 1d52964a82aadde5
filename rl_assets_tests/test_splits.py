"""Leak-free splits: validation strictly after train, enough rows, and no look-ahead in rollouts."""

import numpy as np
import pandas as pd
import pytest

from rl_assets import constants
from rl_assets.assets.prices import SplitConfig, split_by_dates
from rl_assets.data.sources import PRICES_FILE_ENV_VAR
from rl_assets.data.synthetic import generate_prices
from rl_assets.rl import env as env_module
from rl_assets.rl.env import TradingEnv, rollout
from rl_assets.rl.training import with_history
from rl_assets_tests.conftest import materialize_instrument


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return generate_prices(constants.GENERATOR_START, constants.GENERATOR_END, seed=7)


def split_error(prices: pd.DataFrame, **config) -> str:
    with pytest.raises(ValueError) as info:
        split_by_dates(prices, SplitConfig(**config))
    return str(info.value)


# Splits ---------------------------------------------------------------------------------


def test_the_default_rolls_with_the_data_validating_on_its_last_bars(prices):
    train, validation = split_by_dates(prices, SplitConfig())
    assert len(validation) == constants.VALIDATION_DAYS and len(train) == constants.TRAIN_DAYS
    assert validation.index[-1] == prices.index[-1]
    assert prices.index.get_loc(validation.index[0]) == prices.index.get_loc(train.index[-1]) + 1
    assert train.index.intersection(validation.index).empty


def dates_layout(**changes) -> SplitConfig:
    """The original fixed dates (constants.TRAIN_START..VALIDATION_END), with ``changes``."""
    return SplitConfig(
        **{
            "train_start": constants.TRAIN_START,
            "train_end": constants.TRAIN_END,
            "validation_start": constants.VALIDATION_START,
            "validation_end": constants.VALIDATION_END,
            **changes,
        }
    )


def test_the_original_dates_give_disjoint_ordered_splits(prices):
    train, validation = split_by_dates(prices, dates_layout())
    assert train.index[0] >= pd.Timestamp(constants.TRAIN_START)
    assert train.index[-1] <= pd.Timestamp(constants.TRAIN_END)
    assert validation.index[0] >= pd.Timestamp(constants.VALIDATION_START)
    assert validation.index[0] > train.index[-1]
    assert train.index.intersection(validation.index).empty
    assert list(train.columns) == ["open", "high", "low", "close", "volume"]
    assert train.index.name == validation.index.name == "date"


def test_validation_fraction_takes_the_last_rows(prices):
    train, validation = split_by_dates(prices, SplitConfig(validation_fraction=0.2))
    assert len(validation) == int(np.ceil(len(prices) * 0.2))
    assert len(train) + len(validation) == len(prices)
    assert validation.index[0] > train.index[-1]
    pd.testing.assert_frame_equal(pd.concat([train, validation]), prices)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_validation_fraction_out_of_range(prices, fraction):
    message = split_error(prices, validation_fraction=fraction)
    assert f"validation_fraction={fraction}" in message and "between 0 and 1" in message


def test_train_dates_reversed(prices):
    message = split_error(prices, train_start="2022-01-01", train_end="2020-01-01")
    assert message == "train_start 2022-01-01 is after train_end 2020-01-01; swap them"


def test_validation_dates_reversed(prices):
    message = split_error(prices, validation_start="2023-12-01", validation_end="2023-03-01")
    assert "validation_start 2023-12-01 is after validation_end 2023-03-01; swap them" in message


def test_overlapping_splits(prices):
    message = split_error(prices, validation_start="2023-01-15")
    assert "validation_start 2023-01-15 is not after train_end 2023-01-31" in message
    assert "overlap" in message


def test_validation_starting_on_the_last_train_day_overlaps(prices):
    message = split_error(prices, validation_start=constants.TRAIN_END)
    assert "is not after train_end" in message


def test_dates_outside_the_data(prices):
    message = split_error(prices, train_start="2015-01-01")
    assert "requested 2015-01-01..2023-12-31" in message
    assert "the data covers 2019-01-01..2023-12-29" in message


def test_unparseable_split_date(prices):
    message = split_error(prices, train_end="2023-13-45")
    assert "train_end='2023-13-45' is not a date; write it as YYYY-MM-DD" in message


def test_too_few_train_rows(prices):
    message = split_error(prices, train_start="2022-12-01", train_end="2023-01-31")
    assert "the train split by the dates holds 44 rows (2022-12-01..2023-01-31)" in message
    assert f"at least {constants.MIN_TRAIN_ROWS} are needed" in message
    assert "window + episode_length + 1" in message


def test_too_few_validation_rows_by_fraction(prices):
    short = prices.iloc[:80]
    message = split_error(short, validation_fraction=0.2)
    assert "the validation split by validation_fraction 0.2 holds 16 rows" in message
    assert "raise validation_fraction or supply more data" in message


def test_too_few_rows_for_the_window(prices):
    """A file far too short for any window: the split names the counts and the fix."""
    message = split_error(prices.iloc[:40], validation_fraction=0.25)
    assert "the train split by validation_fraction 0.25 holds 30 rows" in message
    assert "of 40 (2019-01-01..2019-02-25)" in message


# Through the graph: config errors stop at price_splits, before any training ---------------


def test_reversed_split_dates_stop_the_graph_before_training(tmp_path, monkeypatch, prices):
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    artifacts = tmp_path / "artifacts"
    result = materialize_instrument(
        artifacts,
        {
            "ops": {
                "price_splits": {
                    "config": {"validation_start": "2023-12-01", "validation_end": "2023-02-01"}
                }
            }
        },
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "price_splits"
    assert "is after validation_end 2023-02-01; swap them" in (
        failure.step_failure_data.user_failure_data.description
    )
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert done == {"raw_prices"}
    assert not (artifacts / "registry").exists()


# No look-ahead in the validation rollout -------------------------------------------------

WINDOW = 5
# Look-ahead at the split boundary is about what the observations show; it is checked with
# the execution whose reward reaches least far (the close just observed, a research option),
# so a leak of even one bar shows. Execution models are pinned in test_walk_forward.py.
ENV_CONFIG = {
    "window": WINDOW,
    "transaction_cost": 0.001,
    "action_set": "short_flat_long",
    "execution": "same_close",
}


def follow_yesterday(obs: np.ndarray) -> int:
    """Long after an up day, short after a down day: reads the newest return it is shown."""
    newest = obs[-2]  # obs = [r[i-window+1..i], position]
    return 2 if newest > 0 else 0 if newest < 0 else 1


def validation_positions(train: np.ndarray, validation: np.ndarray):
    return rollout(follow_yesterday, with_history(train, validation, WINDOW), ENV_CONFIG)


def perturb_from(validation: np.ndarray, k: int) -> np.ndarray:
    """Reverse day k's move (and shift every later close with it)."""
    out = validation.copy()
    move = validation[k] / validation[k - 1] - 1.0
    out[k] = validation[k - 1] * (1.0 - move - np.sign(move) * 0.02)
    out[k + 1 :] = validation[k + 1 :] * out[k] / validation[k]
    return out


def decisions_before_day_ignore_day(train, validation, k) -> bool:
    """Whether the positions decided up to validation day k-1's close ignore day k onwards."""
    _, before = validation_positions(train, validation)
    _, after = validation_positions(train, perturb_from(validation, k))
    return bool(np.array_equal(before[: k + 1], after[: k + 1]))


@pytest.fixture(scope="module")
def closes(prices):
    train, validation = split_by_dates(prices, dates_layout())
    return train["close"].to_numpy(), validation["close"].to_numpy()


def test_one_position_per_validation_day_first_decided_at_the_last_train_close(closes):
    train, validation = closes
    returns, positions = validation_positions(train, validation)
    assert len(positions) == len(returns) == len(validation)
    # The first decision sees train returns only, up to the last train close ...
    last_train_move = train[-1] / train[-2] - 1.0
    assert positions[0] == np.sign(last_train_move)
    # ... and earns validation day 0's move from that close.
    first_move = validation[0] / train[-1] - 1.0
    expected = positions[0] * first_move - ENV_CONFIG["transaction_cost"] * abs(positions[0])
    assert returns[0] == pytest.approx(expected, abs=1e-15)
    # Replacing every validation price leaves that first decision unchanged.
    _, other = validation_positions(train, validation[::-1].copy())
    assert other[0] == positions[0]


@pytest.mark.parametrize("k", [1, 17, 100])
def test_positions_up_to_day_k_ignore_prices_from_day_k(closes, k):
    train, validation = closes
    assert decisions_before_day_ignore_day(train, validation, k)
    # The policy does read its observations: day k's move changes the next decision.
    _, before = validation_positions(train, validation)
    _, after = validation_positions(train, perturb_from(validation, k))
    assert after[k + 1] == -before[k + 1]


def test_the_guard_catches_a_planted_one_day_look_ahead(closes, monkeypatch):
    """If observations showed tomorrow's return, the test above would fail."""
    train, validation = closes

    def leaky_obs(self: TradingEnv) -> np.ndarray:
        obs = np.empty(self.window + 1, dtype=np.float32)
        obs[:-1] = self._features[min(self._i + 1, self.last_index)]
        obs[-1] = self._position
        return obs

    monkeypatch.setattr(env_module.TradingEnv, "_obs", leaky_obs)
    assert not decisions_before_day_ignore_day(train, validation, 17)


# Gaps between the splits --------------------------------------------------------------------


def test_a_long_gap_between_train_and_validation_is_refused_naming_both_dates(prices):
    message = split_error(prices, train_end="2022-12-30", validation_start="2023-03-01")
    assert "train ends 2022-12-30 and validation starts 2023-03-01" in message
    assert "42 business days without prices between them (limit 5)" in message
    assert "as one day" in message and "max_gap_business_days" in message


def test_a_gap_within_the_limit_is_accepted_and_its_limit_configurable(prices):
    split_by_dates(prices, SplitConfig(train_end="2023-01-25", validation_start="2023-02-01"))
    message = split_error(
        prices, train_end="2023-01-25", validation_start="2023-02-01", max_gap_business_days=2
    )
    assert "4 business days without prices between them (limit 2)" in message


def test_a_gap_inside_the_data_between_the_splits_is_refused_too(prices):
    """Dates that touch, but the data itself is missing the weeks around the boundary."""
    holed = prices.drop(prices.loc["2023-01-09":"2023-02-17"].index)
    message = split_error(holed, train_start=constants.TRAIN_START)
    assert "train ends 2023-01-06 and validation starts 2023-02-20" in message
