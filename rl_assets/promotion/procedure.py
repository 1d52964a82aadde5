"""The whole procedure outside Dagster, as the assets run it: the candidate and its walk-forward folds trained on Ray, the pooled test evidence, every gate.

For benchmarks and tests that judge many instruments (Ray must be initialised). The asset
graph (rl_assets/assets/walk_forward.py) runs the same functions step by step.
"""

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from rl_assets import constants
from rl_assets.data.versions import content_hash, split_record
from rl_assets.promotion.evidence import evidence_record, folds_test_series
from rl_assets.promotion.gate import (
    CostModel,
    GateResult,
    GateThresholds,
    judge_training_result,
)
from rl_assets.rl.env import bars
from rl_assets.rl.training import TrainingSpec, load_policy
from rl_assets.rl.walk_forward import Fold, plan_rolling_folds, train_folds


def judge_procedure(
    prices: pd.DataFrame,
    spec: TrainingSpec,
    root: Path,
    cost: CostModel | None = None,
    thresholds: GateThresholds | None = None,
    train_days: int = constants.TRAIN_DAYS,
    validation_days: int = constants.VALIDATION_DAYS,
    test_days: int = constants.TEST_DAYS,
    max_folds: int = 0,
    folds: tuple[Fold, ...] | None = None,
    registry: Any = None,
) -> dict[str, Any]:
    """Train the candidate on the most recent window and every walk-forward fold (all as
    concurrent Ray tasks), then judge: the candidate's gates and the pooled evidence.

    ``spec.execution`` is the reward's; judging uses ``cost`` (default: the deployment's).
    With a ``registry`` lane (``rl_assets.registry.Registry``) the attempt is counted in its
    trial ledger and judged against every attempt recorded there; without, it is one trial.
    """
    from rl_assets.promotion.gate import deployment_cost_model, deployment_thresholds

    cost = cost or deployment_cost_model()
    thresholds = thresholds or deployment_thresholds()
    spec_dict = dataclasses.asdict(spec)
    n = len(prices)
    folds = folds or plan_rolling_folds(
        prices.index, train_days, validation_days, test_days, max_folds
    )
    # The candidate to deploy: the same procedure on the most recent window (no test days).
    deploy = Fold(
        index=len(folds),
        train=(n - validation_days - train_days, n - validation_days),
        validation=(n - validation_days, n),
        test=(n, n),
        train_dates=("", ""),
        validation_dates=("", ""),
        test_dates=("", ""),
    )
    train_frame = prices.iloc[deploy.train[0] : deploy.train[1]]
    validation_frame = prices.iloc[deploy.validation[0] : deploy.validation[1]]
    splits = {"train": split_record(train_frame), "validation": split_record(validation_frame)}
    all_bars = bars(prices)
    results = train_folds(
        spec_dict,
        all_bars,
        [*folds, deploy],
        root,
        data_version=content_hash(prices),
        log=lambda message: None,
    )
    fold_results, candidate = results[:-1], results[-1]
    # The candidate's splits are its own: judge_training_result takes them from here (the
    # folds' checkpoints record their windows under provenance["fold"]).
    candidate["provenance"] = {**candidate["provenance"], "splits": splits}
    series = folds_test_series(
        folds,
        fold_results,
        all_bars,
        prices.index,
        cost,
        lambda fold, result: load_policy(Path(result["checkpoint"])),
    )
    evidence = evidence_record(
        series,
        cost,
        thresholds.min_deflated_sharpe,
        spec_dict,
        [f.as_dict() for f in folds],
        splits,
    )
    train_bars = bars(train_frame)
    gates: list[GateResult] = judge_training_result(
        candidate,
        train_bars,
        bars(validation_frame),
        thresholds=thresholds,
        cost=cost,
        walk_forward=evidence,
        registry=registry,
    )
    return {
        "candidate": candidate,
        "folds": fold_results,
        "series": series,
        "evidence": evidence,
        "gates": gates,
        "promoted": all(g.passed for g in gates),
    }
