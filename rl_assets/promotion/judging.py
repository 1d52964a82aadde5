"""Gathering the gate's evidence for one instrument's candidate, for the report and promotion."""

from typing import Any

import pandas as pd

from rl_assets.data.versions import split_record
from rl_assets.promotion.gate import Evidence, GateResult, Measurements, judge, measure
from rl_assets.resources import ArtifactStoreResource, GateResource
from rl_assets.rl.env import bars


def gather_evidence(
    candidate: dict[str, Any],
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
    gate: GateResource,
    artifacts: ArtifactStoreResource,
    instrument: str,
    walk_forward: dict[str, Any] | None = None,
) -> Evidence:
    """The candidate (from the artifact store only), the current splits, its procedure's
    walk-forward evidence, the deployment's rules tightened by the run, and this
    instrument's champion."""
    artifacts.trusted(candidate["checkpoint"])
    champion = artifacts.registry(instrument).champion()
    if champion is not None:
        artifacts.trusted(champion["checkpoint"])
    return Evidence(
        candidate=candidate,
        train_closes=bars(train_prices),
        validation_closes=bars(validation_prices),
        splits={"train": split_record(train_prices), "validation": split_record(validation_prices)},
        thresholds=gate.thresholds(),
        cost=gate.cost_model(),
        champion=champion,
        walk_forward=walk_forward,
    )


def judge_candidate(evidence: Evidence) -> tuple[Measurements, list[GateResult]]:
    measurements = measure(evidence)
    return measurements, judge(measurements, evidence.thresholds, evidence.cost)
