"""Gathering the gate's evidence for one instrument's candidate, for the report and promotion."""

from typing import Any

import pandas as pd

from rl_assets.data.versions import split_record
from rl_assets.promotion.gate import Evidence, GateResult, Measurements, judge, measure
from rl_assets.resources import ArtifactStoreResource, GateResource


def gather_evidence(
    candidate: dict[str, Any],
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
    gate: GateResource,
    artifacts: ArtifactStoreResource,
    instrument: str,
) -> Evidence:
    """The candidate (from the artifact store only), the current splits, the deployment's rules
    tightened by the run, and this instrument's champion."""
    artifacts.trusted(candidate["checkpoint"])
    champion = artifacts.registry(instrument).champion()
    if champion is not None:
        artifacts.trusted(champion["checkpoint"])
    return Evidence(
        candidate=candidate,
        train_closes=train_prices["close"].to_numpy(),
        validation_closes=validation_prices["close"].to_numpy(),
        splits={"train": split_record(train_prices), "validation": split_record(validation_prices)},
        thresholds=gate.thresholds(),
        cost=gate.cost_model(),
        champion=champion,
    )


def judge_candidate(evidence: Evidence) -> tuple[Measurements, list[GateResult]]:
    measurements = measure(evidence)
    return measurements, judge(measurements, evidence.thresholds, evidence.cost)
