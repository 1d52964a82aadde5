"""Promotion: copy a candidate that passed every gate into the champion registry."""

from typing import Any

import dagster as dg
import pandas as pd

from rl_assets import constants
from rl_assets.promotion import gate
from rl_assets.promotion.checks import gate_inputs
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
    inputs = gate_inputs(
        trained_policy, train_prices, validation_prices, gate_thresholds, artifacts
    )
    results = gate.evaluate_all(inputs)
    failed = [r for r in results if not r.passed]
    registry = artifacts.registry()
    if failed:
        champion = inputs.champion
        reasons = "; ".join(
            f"{r.name}: {r.reason} (observed {r.observed}, threshold {r.threshold})" for r in failed
        )
        raise dg.Failure(
            description=f"candidate {trained_policy['checkpoint']} refused: {reasons}. "
            f"The champion is unchanged ({champion['version'] if champion else 'none yet'}).",
            metadata={"failed_gates": dg.MetadataValue.json([r.as_dict() for r in failed])},
        )
    entry = registry.promote(
        trained_policy["checkpoint"],
        {
            "run_id": context.run_id,
            "validation_sharpe": validation_report["validation_sharpe"],
            "buy_and_hold_sharpe": validation_report["validation"]["buy_and_hold"]["sharpe"],
            "train_sharpe": validation_report["train_sharpe"],
            "best_iteration": trained_policy["best_iteration"],
            "data_version": trained_policy.get("data_version", ""),
            "spec": trained_policy["spec"],
            "gates": [r.as_dict() for r in results],
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
            "gates": dg.MetadataValue.json([r.as_dict() for r in results]),
        },
    )
