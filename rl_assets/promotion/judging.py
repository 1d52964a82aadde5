"""Gathering the gate's evidence for one instrument's candidate, judging it, and recording
the attempt in the instrument's trial ledger, for the report and promotion alike."""

import os
import time
from typing import Any

import pandas as pd

from rl_assets import constants
from rl_assets.data.versions import split_record
from rl_assets.promotion.gate import (
    Evidence,
    GateResult,
    Measurements,
    account_for_attempts,
    judge,
    measure,
    skill_series,
)
from rl_assets.promotion.ledger import Ledger, skill_record, trial_count, universe_q_values
from rl_assets.registry import Registry
from rl_assets.resources import ArtifactStoreResource, GateResource
from rl_assets.rl import checkpoints
from rl_assets.rl.env import bars

Q_PERIOD_ENV_VAR = "RL_ASSETS_Q_VALUE_PERIOD_DAYS"


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
    instrument's champion with its latest monitoring verdict."""
    artifacts.trusted(candidate["checkpoint"])
    registry = artifacts.registry(instrument)
    champion = registry.champion()
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
        champion_decayed=registry.champion_decayed(champion),
    )


def q_value_period_days() -> float:
    raw = os.environ.get(Q_PERIOD_ENV_VAR, "").strip()
    if not raw:
        return float(constants.Q_VALUE_PERIOD_DAYS)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(
            f"${Q_PERIOD_ENV_VAR}={raw!r} is not a positive number of days; set it to e.g. "
            f"{constants.Q_VALUE_PERIOD_DAYS} or unset it"
        )
    return value


def candidate_key(candidate: dict[str, Any]) -> str:
    """A candidate is its checkpoint: the report and promoted_policy judge the same one."""
    return str(candidate["checkpoint"])


def ledger_entry(
    evidence: Evidence, m: Measurements, origin: dict[str, Any] | None
) -> dict[str, Any]:
    """What the ledger keeps of one attempt (before its verdict)."""
    candidate, wf = evidence.candidate, m.walk_forward
    return {
        "key": candidate_key(candidate),
        # The bytes judged: promotion copies only a candidate that still hashes so.
        "checkpoint_sha256": checkpoints.policy_digest(candidate["checkpoint"]),
        "run_id": candidate.get("provenance", {}).get("run_id", ""),
        "data_version": candidate.get("data_version", ""),
        "procedure_digest": m.candidate_procedure,
        "seed": candidate.get("spec", {}).get("seed"),
        "spec": candidate.get("spec", {}),
        "execution": wf.get("execution", evidence.cost.execution),
        "folds": len(wf.get("folds", [])),
        "plan": wf.get("plan", []),
        "skill_returns": skill_record(skill_series(wf)) if wf else {"dates": [], "values": []},
        "origin": dict(origin or {}),
    }


def judge_candidate(
    evidence: Evidence,
    registry: Registry | None = None,
    origin: dict[str, Any] | None = None,
) -> tuple[Measurements, list[GateResult]]:
    """Measure the candidate (the expensive part), then, holding the instrument's trial
    ledger, count the attempts judged for it (this one included), deflate by them, judge
    every gate and record the attempt once with its verdict. Without ``registry`` no ledger
    is consulted (one trial)."""
    m = measure(evidence)
    if registry is None:
        return m, judge(m, evidence.thresholds, evidence.cost)
    return m, judge_and_record(m, evidence, registry, origin)


def judge_and_record(
    m: Measurements,
    evidence: Evidence,
    registry: Registry,
    origin: dict[str, Any] | None = None,
) -> list[GateResult]:
    """Holding the instrument's ledger: count the attempts (this one included), deflate
    ``m``'s evidence by them, take the q-value across the universe, judge every gate and
    record the attempt once, with its verdict."""
    ledger = Ledger(registry.root)
    with ledger.locked():
        entry = ledger_entry(evidence, m, origin)
        entries = ledger.entries()
        others = [e for e in entries if e["key"] != entry["key"]]
        if m.pooled:
            count = trial_count([*others, entry])
            account_for_attempts(m, count["trials"], count["attempts"])
            since = time.time() - q_value_period_days() * 86400.0
            m.universe = universe_q_values(
                registry.root.parent, since, (registry.instrument, 1.0 - m.pooled["dsr"])
            )
            m.q_value = m.universe[registry.instrument]["q"]
        results = judge(m, evidence.thresholds, evidence.cost)
        pooled = m.pooled
        ledger.record(
            {
                **entry,
                "skill_sharpe": pooled.get("skill_sharpe"),
                "dsr": pooled.get("dsr", 0.0),
                "trials": pooled.get("trials"),
                "attempts": pooled.get("attempts"),
                "q_value": m.q_value,
                "passed": all(r.passed for r in results),
                "failed": [r.name for r in results if not r.passed],
            },
            entries,
        )
    return results


def run_origin(context: Any) -> dict[str, Any]:
    """What started the run judging a candidate: a sensor, a schedule, a run key, or a
    person (UI or CLI), as the ledger records it."""
    tags = dict(context.run.tags)
    started_by = (
        f"sensor {tags['dagster/sensor_name']}"
        if "dagster/sensor_name" in tags
        else f"schedule {tags['dagster/schedule_name']}"
        if "dagster/schedule_name" in tags
        else f"backfill {tags['dagster/backfill']}"
        if "dagster/backfill" in tags
        else "manual"
    )
    return {
        "judged_by_run": context.run_id,
        "started_by": started_by,
        "run_key": tags.get("dagster/run_key", ""),
    }
