"""Promotion: a candidate that passes every gate becomes its instrument's champion."""

import dataclasses
from typing import Any

import dagster as dg
import pandas as pd

from rl_assets import constants, display, run_guard
from rl_assets.failures import GATE, INTEGRITY, failure
from rl_assets.instruments import instrument_partitions
from rl_assets.outcomes import PROMOTED, REFUSED, tag_outcome
from rl_assets.promotion.gate import compare_with_champion, verdict
from rl_assets.promotion.judging import (
    candidate_key,
    gather_evidence,
    judge_candidate,
    run_origin,
)
from rl_assets.promotion.ledger import Ledger
from rl_assets.registry import ChampionUnusable, PromotionRefused
from rl_assets.resources import ArtifactStoreResource, GateResource


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.PROMOTION_GROUP,
    deps=["validation_report"],
    pool=constants.PROMOTION_POOL,
    code_version="2",
)
def promoted_policy(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    trained_policy: dict[str, Any],
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
    walk_forward_evidence: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    """The instrument's champion: the candidate, promoted only when every gate passes and it beats the champion in place."""
    run_guard.ensure(context)  # a killed run must not keep its pool slot
    instrument = context.partition_key
    # The report's blocking checks skip this asset in the same run, but a later run may
    # materialize it alone: judge the candidate again here, never trust "latest".
    evidence = gather_evidence(
        trained_policy,
        train_prices,
        validation_prices,
        gate_thresholds,
        artifacts,
        instrument,
        walk_forward_evidence,
    )
    registry = artifacts.registry(instrument)
    measured, results = judge_candidate(evidence, registry, run_origin(context))
    failed = [r for r in results if not r.passed]
    if failed:
        tag_outcome(context, REFUSED, [r.name for r in failed])
        champion = evidence.champion
        reasons = "; ".join(
            f"{r.name}: {r.reason} (observed {r.observed}, threshold {r.threshold})" for r in failed
        )
        raise failure(
            GATE,
            f"{instrument}: candidate {trained_policy['checkpoint']} refused: {reasons}. "
            f"The champion is unchanged ({champion['version'] if champion else 'none yet'}).",
            {"failed_gates": dg.MetadataValue.json([r.as_dict() for r in failed])},
        )

    def against_champion_in_place(champion: dict[str, Any] | None):
        """Compare-and-swap: judged again under the registry lock against the champion that is
        there now, which another run may have installed since the gates above ran."""
        if champion is not None:
            artifacts.trusted(champion["checkpoint"])
        return compare_with_champion(
            measured.walk_forward,
            champion,
            registry.champion_decayed(champion),
            evidence.thresholds.min_confidence_over_champion,
            evidence.thresholds.min_test_days,
        )

    record = {
        "run_id": context.run_id,
        "candidate_run_id": trained_policy.get("provenance", {}).get("run_id", ""),
        # The champion's numbers come from this checkpoint's own evaluation, just above.
        "validation_sharpe": measured.validation_sharpe,
        "buy_and_hold_sharpe": measured.buy_and_hold_sharpe,
        "train_sharpe": measured.train_sharpe,
        "best_iteration": trained_policy["best_iteration"],
        # The procedure's pooled out-of-sample evidence the promotion rests on.
        "walk_forward": {
            "pooled": measured.pooled,
            "folds": measured.walk_forward.get("folds", []),
            "plan": measured.walk_forward.get("plan", []),
            "procedure_digest": measured.walk_forward.get("procedure_digest", ""),
            "execution": measured.walk_forward.get("execution", ""),
        },
        # Its pooled test skill returns by date: a later candidate is paired with them, and
        # the monitoring expects their level (deflated by the attempts counted here).
        "skill_returns": measured.walk_forward.get("skill_returns"),
        "ledger_key": candidate_key(trained_policy),
        "attempts": measured.attempts,
        "q_value": measured.q_value,
        # The last bar the promotion saw: the monitoring's live bars come strictly after it.
        "data_through": max(
            d
            for d in (
                measured.pooled.get("last_date", ""),
                measured.recorded_splits.get("validation", {}).get("last_date", ""),
                str(validation_prices.index[-1].date()),
            )
            if d
        ),
        # Every iteration's validation Sharpe: the selection early stopping made.
        "trial_sharpes": measured.trial_sharpes,
        "data_version": trained_policy.get("data_version", ""),
        "splits": measured.recorded_splits,
        "spec": trained_policy["spec"],
        "thresholds": dataclasses.asdict(evidence.thresholds),
        "cost_model": dataclasses.asdict(evidence.cost),
        "gates": [r.as_dict() for r in results],
    }
    judged = Ledger(registry.root).trial(candidate_key(trained_policy)) or {}
    try:
        entry = registry.promote(
            trained_policy["checkpoint"],
            record,
            against_champion_in_place,
            judged_digest=judged.get("checkpoint_sha256"),
        )
    except ChampionUnusable as err:
        raise failure(INTEGRITY, str(err)) from None
    except PromotionRefused as refused:
        tag_outcome(context, REFUSED, [refused.verdict.name])
        raise failure(
            GATE,
            f"{instrument}: candidate {trained_policy['checkpoint']} refused at commit: "
            f"{refused}. The champion in place ({refused.champion['version']}) was installed "
            "after this run's gates ran, and it is at least as good; nothing changed.",
            {"failed_gates": dg.MetadataValue.json([refused.verdict.as_dict()])},
        ) from None
    tag_outcome(context, PROMOTED)
    context.log.info(
        f"{instrument}: promoted {entry['version']} ({verdict(results)}); it replaced "
        f"{entry['replaced'] or 'no champion'}"
    )
    return dg.Output(
        entry,
        metadata={
            "instrument": instrument,
            "version": entry["version"],
            "replaced": entry["replaced"] or "none",
            "checkpoint": dg.MetadataValue.path(entry["checkpoint"]),
            "champion_pointer": dg.MetadataValue.path(str(registry.pointer)),
            "validation_sharpe": display.ratio(entry["validation_sharpe"]),
            "buy_and_hold_sharpe": display.ratio(entry["buy_and_hold_sharpe"]),
            "gates": dg.MetadataValue.json(entry["gates"]),
            "cost_model": dg.MetadataValue.json(entry["cost_model"]),
            "thresholds": dg.MetadataValue.json(entry["thresholds"]),
        },
    )
