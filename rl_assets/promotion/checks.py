"""The promotion gate as blocking asset checks on trained_policy, one property each."""

from typing import Any

import dagster as dg
import pandas as pd

from rl_assets.assets.training import trained_policy
from rl_assets.promotion import gate
from rl_assets.resources import ArtifactStoreResource, GateResource

_SPLITS = {
    "train_prices": dg.AssetIn("train_prices"),
    "validation_prices": dg.AssetIn("validation_prices"),
}


def gate_inputs(
    candidate: dict[str, Any],
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
    thresholds: GateResource,
    artifacts: ArtifactStoreResource,
) -> gate.GateInputs:
    artifacts.trusted(candidate["checkpoint"])
    champion = artifacts.registry().champion()
    if champion is not None:
        artifacts.trusted(champion["checkpoint"])
    return gate.GateInputs(
        candidate=candidate,
        train_closes=train_prices["close"].to_numpy(),
        validation_closes_raw=validation_prices["close"].to_numpy(),
        thresholds=thresholds.thresholds(),
        champion=champion,
    )


def _gate_check(name: str, description: str, evaluate) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=trained_policy,
        name=f"trained_policy_{name}",
        description=description,
        blocking=True,
        additional_ins=_SPLITS,
    )
    def _check(
        gate_thresholds: GateResource,
        artifacts: ArtifactStoreResource,
        trained_policy: dict[str, Any],
        train_prices: pd.DataFrame,
        validation_prices: pd.DataFrame,
    ) -> dg.AssetCheckResult:
        inputs = gate_inputs(
            trained_policy, train_prices, validation_prices, gate_thresholds, artifacts
        )
        result = evaluate(inputs)
        return dg.AssetCheckResult(passed=bool(result.passed), metadata=result.metadata())

    return _check


gate_checks = [_gate_check(name, desc, fn) for name, (desc, fn) in gate.GATES.items()]
