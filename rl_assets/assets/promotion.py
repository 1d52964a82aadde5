"""Promotion: copy a candidate that passed every gate into the champion registry."""

from typing import Any

import dagster as dg
import pandas as pd

from rl_assets import constants, gate
from rl_assets.checks import validation_closes
from rl_assets.resources import ArtifactStoreResource, GateResource


@dg.asset(group_name=constants.PROMOTION_GROUP)
def promoted_policy(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    trained_policy: dict[str, Any],
    validation_report: dict[str, Any],
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """The champion: the best checkpoint, promoted only when every gate passes."""
    # Blocking checks skip this asset in the same run, but a later run may materialize it
    # alone against a candidate that failed: re-evaluate every gate here, never trust "latest".
    closes = validation_closes(trained_policy, train_prices, validation_prices)
    results = [
        gate.restores_and_acts(trained_policy, closes),
        gate.beats_buy_and_hold(
            trained_policy, closes, gate_thresholds.min_margin_over_buy_and_hold
        ),
        gate.validation_sharpe_at_least(
            trained_policy, closes, gate_thresholds.min_validation_sharpe
        ),
    ]
    failed = [r for r in results if not r.passed]
    registry = artifacts.registry()
    if failed:
        champion = registry.champion()
        reasons = "; ".join(
            f"{r.name}: {r.reason} (observed {r.observed}, threshold {r.threshold})" for r in failed
        )
        raise dg.Failure(
            description=f"candidate {trained_policy['checkpoint']} refused: {reasons}. "
            f"The champion is unchanged ({champion['version'] if champion else 'none yet'}).",
            metadata={"failed_gates": dg.MetadataValue.json([r.__dict__ for r in failed])},
        )
    entry = registry.promote(
        trained_policy["checkpoint"],
        {
            "run_id": context.run_id,
            "validation_sharpe": validation_report["validation_sharpe"],
            "buy_and_hold_sharpe": validation_report["validation"]["buy_and_hold"]["sharpe"],
            "train_sharpe": validation_report["train_sharpe"],
            "best_iteration": trained_policy["best_iteration"],
            "spec": trained_policy["spec"],
        },
    )
    context.log.info(f"promoted {entry['version']} to {entry['checkpoint']}")
    return dg.Output(
        entry,
        metadata={
            "version": entry["version"],
            "checkpoint": dg.MetadataValue.path(entry["checkpoint"]),
            "champion_pointer": dg.MetadataValue.path(str(registry.pointer)),
            "validation_sharpe": entry["validation_sharpe"],
            "gates": dg.MetadataValue.json([r.__dict__ for r in results]),
        },
    )
