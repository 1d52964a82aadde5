"""The promotion gate as blocking asset checks on trained_policy, one property each."""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from rl_assets import gate
from rl_assets.assets.training import trained_policy
from rl_assets.resources import GateResource
from rl_assets.rl.training import with_history

_SPLITS = {
    "train_prices": dg.AssetIn("train_prices"),
    "validation_prices": dg.AssetIn("validation_prices"),
}


def validation_closes(
    candidate: dict[str, Any], train_prices: pd.DataFrame, validation_prices: pd.DataFrame
) -> np.ndarray:
    return with_history(
        train_prices["close"].to_numpy(),
        validation_prices["close"].to_numpy(),
        candidate["spec"]["window"],
    )


def _result(r: gate.GateResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=bool(r.passed), metadata=r.metadata())


@dg.asset_check(asset=trained_policy, blocking=True, additional_ins=_SPLITS)
def trained_policy_restores_and_acts(
    trained_policy: dict[str, Any], train_prices: pd.DataFrame, validation_prices: pd.DataFrame
) -> dg.AssetCheckResult:
    """The best checkpoint restores and acts deterministically on every validation day."""
    closes = validation_closes(trained_policy, train_prices, validation_prices)
    return _result(gate.restores_and_acts(trained_policy, closes))


@dg.asset_check(asset=trained_policy, blocking=True, additional_ins=_SPLITS)
def trained_policy_beats_buy_and_hold(
    gate_thresholds: GateResource,
    trained_policy: dict[str, Any],
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
) -> dg.AssetCheckResult:
    """The restored policy's validation Sharpe beats buy-and-hold's by the configured margin."""
    closes = validation_closes(trained_policy, train_prices, validation_prices)
    return _result(
        gate.beats_buy_and_hold(
            trained_policy, closes, gate_thresholds.min_margin_over_buy_and_hold
        )
    )


@dg.asset_check(asset=trained_policy, blocking=True, additional_ins=_SPLITS)
def trained_policy_validation_sharpe_at_least_minimum(
    gate_thresholds: GateResource,
    trained_policy: dict[str, Any],
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
) -> dg.AssetCheckResult:
    """The restored policy's validation Sharpe is at least the configured minimum."""
    closes = validation_closes(trained_policy, train_prices, validation_prices)
    return _result(
        gate.validation_sharpe_at_least(
            trained_policy, closes, gate_thresholds.min_validation_sharpe
        )
    )
