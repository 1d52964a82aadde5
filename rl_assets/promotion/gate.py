"""The promotion gate: what a candidate must show, judged by the deployment's rules.

The deployment owns the gate. Thresholds and the cost model come from code defaults
(``rl_assets/constants.py``), overridden by ``RL_ASSETS_GATE_*`` environment variables that
the daemon, the webserver and the CLI all see. A run's config may tighten a threshold,
never loosen it, and cannot change the cost model. Candidate, champion and every baseline
are judged under that one cost model, whatever the candidate trained with.

Two kinds of gates. The deployed checkpoint itself is judged on what only it can show:
the data it was trained on, that it restores and acts, finite weights, allowed positions,
its train/validation gap. Whether it has skill is judged on the procedure that produced it:
the pooled test returns of its walk-forward folds (``walk_forward_evidence``), days that no
training, early stopping or checkpoint choice has seen, traded as the signal is traded
(``CostModel.execution``), as skill over the exposure-matched benchmark.

Judging is two steps: ``measure`` restores the checkpoint and rolls it out on the
candidate's own windows (the expensive part, done once), and each gate is a small function
of those measurements and one threshold.
"""

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rl_assets import constants
from rl_assets.data.versions import describe_split
from rl_assets.rl import checkpoints
from rl_assets.rl.env import ACTION_SETS, EXECUTIONS, TRADABLE_EXECUTIONS
from rl_assets.rl.stats import deflated_sharpe_hac, paired_difference_test
from rl_assets.rl.training import (
    RL_MODULE_SUBDIR,
    TrainingSpec,
    buy_and_hold,
    evaluate,
    load_policy,
    with_history,
)
from rl_assets.rl.walk_forward import procedure_digest

ENV_PREFIX = "RL_ASSETS_GATE_"


class GateConfigError(ValueError):
    """A deployment setting or a run config the gate cannot accept; the message says the fix."""


@dataclass(frozen=True)
class GateThresholds:
    min_test_days: float = constants.MIN_TEST_DAYS
    min_test_sharpe: float = constants.MIN_TEST_SHARPE
    min_margin_over_buy_and_hold: float = constants.MIN_SHARPE_MARGIN_OVER_BUY_AND_HOLD
    min_deflated_sharpe: float = constants.MIN_DEFLATED_SHARPE
    max_sharpe_gap: float = constants.MAX_SHARPE_GAP
    min_confidence_over_champion: float = constants.MIN_CONFIDENCE_OVER_CHAMPION
    max_q_value: float = constants.MAX_Q_VALUE


# Which way is stricter: a run may raise a "min" threshold and lower a "max" one.
TIGHTER = {
    f.name: ("max" if f.name.startswith("max_") else "min")
    for f in dataclasses.fields(GateThresholds)
}


@dataclass(frozen=True)
class CostModel:
    """How every policy and baseline is charged when judged: per unit of position change,
    the annual risk-free rate of the Sharpe ratio, the positions a policy may take, and
    when a decision made after a close is executed (``rl_assets.rl.env.EXECUTIONS``)."""

    transaction_cost: float = constants.GATE_TRANSACTION_COST
    risk_free_rate: float = constants.GATE_RISK_FREE_RATE
    action_set: str = constants.GATE_ACTION_SET
    execution: str = constants.GATE_EXECUTION

    @property
    def allowed_positions(self) -> tuple[float, ...]:
        return ACTION_SETS[self.action_set]


# The settings that are names, and the names each may take.
CHOICES: dict[str, tuple[str, ...]] = {
    "action_set": tuple(ACTION_SETS),
    "execution": EXECUTIONS,
}


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _from_env(cls, environ: Mapping[str, str]):
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        raw = environ.get(env_var(f.name), "").strip()
        if not raw:
            continue
        if f.type in (str, "str"):
            if raw not in CHOICES[f.name]:
                raise GateConfigError(
                    f"${env_var(f.name)}={raw!r} is not a valid {f.name}; use one of "
                    f"{sorted(CHOICES[f.name])}"
                )
            values[f.name] = raw
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise GateConfigError(
                f"${env_var(f.name)}={raw!r} is not a finite number; set it to e.g. "
                f"{getattr(cls(), f.name)} or unset it for the default"
            )
        values[f.name] = value
    return cls(**values)


def deployment_thresholds(environ: Mapping[str, str] | None = None) -> GateThresholds:
    """Code defaults overridden by $RL_ASSETS_GATE_<THRESHOLD>."""
    return _from_env(GateThresholds, os.environ if environ is None else environ)


def deployment_cost_model(environ: Mapping[str, str] | None = None) -> CostModel:
    """Code defaults overridden by $RL_ASSETS_GATE_TRANSACTION_COST, _RISK_FREE_RATE, _ACTION_SET."""
    cost = _from_env(CostModel, os.environ if environ is None else environ)
    if cost.transaction_cost < 0:
        raise GateConfigError(
            f"${env_var('transaction_cost')}={cost.transaction_cost} is negative; costs are >= 0"
        )
    return cost


def tighten(deployment: GateThresholds, overrides: Mapping[str, float | None]) -> GateThresholds:
    """The deployment's thresholds with a run's overrides, each of which may only tighten."""
    values = asdict(deployment)
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in values:
            raise GateConfigError(f"unknown gate threshold {name!r}; known: {sorted(values)}")
        floor = values[name]
        looser = value < floor if TIGHTER[name] == "min" else value > floor
        if looser:
            way = "at least" if TIGHTER[name] == "min" else "at most"
            raise GateConfigError(
                f"run config gate_thresholds.{name}={value} would loosen the deployment's "
                f"{name}={floor}: a run may only tighten the gate (use a value {way} {floor}). "
                f"To change the deployment's value, set ${env_var(name)} in the environment of "
                "the Dagster daemon, webserver and CLI, then restart them"
            )
        values[name] = float(value)
    return GateThresholds(**values)


@dataclass
class GateResult:
    name: str
    passed: bool
    observed: Any
    threshold: Any
    reason: str

    def __post_init__(self) -> None:
        self.passed = bool(self.passed)  # numpy booleans are not JSON
        if isinstance(self.observed, np.floating):
            self.observed = float(self.observed)

    def metadata(self) -> dict[str, Any]:
        return {"observed": self.observed, "threshold": self.threshold, "reason": self.reason}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evidence:
    """What the gate looks at: the candidate, the splits it is judged on, the procedure's
    walk-forward evidence, the rules, the champion."""

    candidate: dict[str, Any]  # the trained_policy value
    train_closes: np.ndarray  # (open, close) bars of the train split
    validation_closes: np.ndarray  # the validation split alone (history is prepended here)
    splits: dict[str, dict]  # split_record() of the current train and validation splits
    thresholds: GateThresholds
    cost: CostModel
    champion: dict[str, Any] | None
    walk_forward: dict[str, Any] | None = None  # the walk_forward_evidence value
    champion_decayed: bool = False  # the champion's latest monitoring found its edge gone


@dataclass
class Measurements:
    """The candidate measured once under the deployment's cost model."""

    restore_error: str = ""
    deterministic: bool = False
    days: int = 0
    parameters: int = 0
    nonfinite: int = 0
    positions: tuple[float, ...] = ()
    validation_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    validation_positions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    buy_and_hold_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    validation_sharpe: float = math.nan
    train_sharpe: float = math.nan
    buy_and_hold_sharpe: float = math.nan
    trial_sharpes: list[float] = field(default_factory=list)
    recorded_splits: dict[str, dict] = field(default_factory=dict)
    current_splits: dict[str, dict] = field(default_factory=dict)
    champion_version: str | None = None
    champion: dict[str, Any] | None = None
    champion_decayed: bool = False
    candidate_procedure: str = ""
    walk_forward: dict[str, Any] = field(default_factory=dict)
    # The trial ledger's account (``rl_assets.promotion.ledger``): attempts judged for the
    # instrument and what they are worth as independent trials; None: no ledger consulted.
    attempts: int | None = None
    q_value: float | None = None
    universe: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def pooled(self) -> dict[str, Any]:
        return self.walk_forward.get("pooled", {})

    @property
    def measured(self) -> bool:
        return not self.restore_error


def judging_spec(spec: dict[str, Any] | TrainingSpec, cost: CostModel) -> TrainingSpec:
    """The policy's own observation window and action meanings, charged the deployment's
    costs and executed as the deployment trades."""
    spec = spec if isinstance(spec, TrainingSpec) else TrainingSpec(**spec)
    return dataclasses.replace(
        spec,
        transaction_cost=cost.transaction_cost,
        risk_free_rate=cost.risk_free_rate,
        execution=cost.execution,
    )


def baseline_spec(window: int, cost: CostModel) -> TrainingSpec:
    """Baselines trade the deployment's action set under its costs."""
    return TrainingSpec(
        window=window,
        transaction_cost=cost.transaction_cost,
        risk_free_rate=cost.risk_free_rate,
        action_set=cost.action_set,
        execution=cost.execution,
    )


def measure(evidence: Evidence) -> Measurements:
    """Restore the candidate and measure everything the gates judge (once)."""
    candidate = evidence.candidate
    m = Measurements(current_splits=dict(evidence.splits))
    checkpoint = Path(candidate["checkpoint"])
    try:
        manifest = checkpoints.read_manifest(checkpoint)
        m.recorded_splits = dict(manifest.get("provenance", {}).get("splits", {}))
        spec = judging_spec(manifest.get("spec", candidate["spec"]), evidence.cost)
        m.positions = ACTION_SETS[spec.action_set]
        validation = with_history(evidence.train_closes, evidence.validation_closes, spec.window)
        first = evaluate(load_policy(checkpoint), validation, spec)
        second = evaluate(load_policy(checkpoint), validation, spec)
        m.parameters, m.nonfinite = _count_weights(checkpoint)
    except Exception as exc:  # any restore failure is the gate's finding, not a crash
        m.restore_error = f"{type(exc).__name__}: {exc}"
        return m
    m.deterministic = bool(np.array_equal(first["positions"], second["positions"]))
    m.days = len(first["positions"])
    m.validation_returns = first["returns"]
    m.validation_positions = first["positions"]
    m.validation_sharpe = first["sharpe"]
    m.train_sharpe = evaluate(load_policy(checkpoint), evidence.train_closes, spec)["sharpe"]
    baseline = baseline_spec(spec.window, evidence.cost)
    held = buy_and_hold(validation, baseline)
    m.buy_and_hold_sharpe = held["sharpe"]
    m.buy_and_hold_returns = held["returns"]
    m.trial_sharpes = [float(row["validation/sharpe"]) for row in candidate["history"]]
    m.candidate_procedure = procedure_digest(candidate["spec"])
    m.walk_forward = dict(evidence.walk_forward or {})
    if evidence.champion is not None:
        m.champion_version = evidence.champion["version"]
        m.champion = evidence.champion
        m.champion_decayed = evidence.champion_decayed
    return m


def skill_series(walk_forward: dict[str, Any]) -> pd.Series:
    """The pooled test skill returns of a walk_forward_evidence value or champion record."""
    from rl_assets.promotion.ledger import series_of

    return series_of(walk_forward)


def account_for_attempts(m: Measurements, trials: float, attempts: int) -> None:
    """Deflate the pooled evidence by the ledger's count: ``attempts`` candidates judged for
    the instrument, worth ``trials`` independent ones (this candidate included)."""
    if not m.pooled:
        return
    skill = skill_series(m.walk_forward).to_numpy()
    dsr = deflated_sharpe_hac(skill, trials)
    m.walk_forward = {
        **m.walk_forward,
        "pooled": {
            **m.pooled,
            "dsr": dsr["dsr"],
            "trials": float(trials),
            "attempts": int(attempts),
            "benchmark_sharpe": dsr["benchmark_sharpe"],
        },
    }
    m.attempts = int(attempts)


def _count_weights(checkpoint: Path) -> tuple[int, int]:
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(str(checkpoint / RL_MODULE_SUBDIR))
    total = bad = 0
    for p in module.parameters():
        total += p.numel()
        bad += int((~torch.isfinite(p)).sum())
    return total, bad


def _not_measured(name: str, m: Measurements, threshold: Any) -> GateResult:
    return GateResult(name, False, m.restore_error, threshold, "restore failed: not measured")


def trained_on_these_splits(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "trained_on_these_splits"
    recorded = {
        k: m.recorded_splits.get(k, {}).get("content_hash") for k in ("train", "validation")
    }
    current = {k: m.current_splits.get(k, {}).get("content_hash") for k in ("train", "validation")}
    if not m.measured:
        return _not_measured(name, m, "the splits recorded with the checkpoint")
    same = recorded == current and None not in recorded.values()

    def show(splits: dict) -> str:
        return "; ".join(
            f"{k} {describe_split(splits.get(k, {}))}" for k in ("train", "validation")
        )

    return GateResult(
        name,
        same,
        f"current splits: {show(m.current_splits)}",
        f"recorded with the checkpoint: {show(m.recorded_splits)}",
        "ok"
        if same
        else "the splits changed since training (re-split or new data): judge a candidate only "
        "on the data it was trained and selected on; retrain on the current splits",
    )


def restores_and_acts(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "restores_and_acts"
    if not m.measured:
        return GateResult(name, False, m.restore_error, "restores", "restore failed")
    return GateResult(
        name,
        m.deterministic and m.days > 0,
        f"{m.days} validation days acted, deterministic={m.deterministic}",
        "deterministic actions on every validation day",
        "ok" if m.deterministic else "two restores of the same checkpoint acted differently",
    )


def weights_finite(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "weights_finite"
    if not m.measured:
        return _not_measured(name, m, "0 non-finite")
    ok = m.nonfinite == 0 and m.parameters > 0
    return GateResult(
        name,
        ok,
        f"{m.nonfinite} non-finite of {m.parameters} parameters",
        "0 non-finite",
        "ok" if ok else "NaN or inf weights: training diverged",
    )


def positions_allowed(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "positions_allowed"
    allowed = cost.allowed_positions
    if not m.measured:
        return _not_measured(name, m, list(allowed))
    extra = sorted(set(m.positions) - set(allowed))
    return GateResult(
        name,
        not extra,
        list(m.positions),
        list(allowed),
        "ok"
        if not extra
        else f"the policy can take positions {extra}, which the deployment's action set "
        f"{cost.action_set!r} does not allow; train with action_set {cost.action_set!r}",
    )


def _no_evidence(name: str, m: Measurements, threshold: Any) -> GateResult | None:
    if not m.pooled:
        return GateResult(
            name,
            False,
            "no walk-forward evidence",
            threshold,
            "the procedure has no pooled test evidence: materialize walk_forward_evidence "
            "for this instrument in the same run as the candidate",
        )
    return None


def execution_tradable(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "execution_tradable"
    trained = m.walk_forward.get("execution", cost.execution)
    ok = cost.execution in TRADABLE_EXECUTIONS and trained == cost.execution
    if cost.execution not in TRADABLE_EXECUTIONS:
        reason = (
            f"the deployment judges with execution {cost.execution!r}, which nobody can "
            "trade (the signal is written after the close it would trade at); set "
            f"${env_var('execution')} to one of {list(TRADABLE_EXECUTIONS)}"
        )
    elif trained != cost.execution:
        reason = (
            f"the evidence was measured with execution {trained!r}, the deployment trades "
            f"{cost.execution!r}: materialize walk_forward_evidence again"
        )
    else:
        reason = f"decisions after a close are executed at the {cost.execution.replace('_', ' ')}"
    return GateResult(name, ok, trained, list(TRADABLE_EXECUTIONS), reason)


def evidence_from_this_procedure(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "evidence_from_this_procedure"
    missing = _no_evidence(name, m, m.candidate_procedure)
    if missing is not None:
        return missing
    folds = m.walk_forward.get("procedure_digest", "")
    splits = m.walk_forward.get("deploy_splits", {})
    same_data = all(
        splits.get(k, {}).get("content_hash") == m.current_splits.get(k, {}).get("content_hash")
        for k in ("train", "validation")
    )
    ok = folds == m.candidate_procedure and same_data
    return GateResult(
        name,
        ok,
        f"folds trained by procedure {folds}",
        f"the candidate's procedure {m.candidate_procedure}",
        "ok"
        if ok
        else "the walk-forward folds were trained with another procedure or on other data "
        "than this candidate: materialize the folds and the evidence with the candidate",
    )


def test_evidence_sufficient(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "test_evidence_sufficient"
    missing = _no_evidence(name, m, t.min_test_days)
    if missing is not None:
        return missing
    days = int(m.pooled["days"])
    return GateResult(
        name,
        days >= t.min_test_days,
        days,
        t.min_test_days,
        f"{days} test days ({m.pooled['years']:.1f} years) over "
        f"{len(m.walk_forward.get('folds', []))} folds",
    )


def test_sharpe_at_least_minimum(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "test_sharpe_at_least_minimum"
    missing = _no_evidence(name, m, t.min_test_sharpe)
    if missing is not None:
        return missing
    sharpe = float(m.pooled["policy_sharpe"])
    return GateResult(
        name,
        sharpe >= t.min_test_sharpe,
        round(sharpe, 4),
        t.min_test_sharpe,
        f"pooled test Sharpe {sharpe:.3f}, minimum {t.min_test_sharpe}",
    )


def beats_buy_and_hold(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "beats_buy_and_hold"
    missing = _no_evidence(name, m, t.min_margin_over_buy_and_hold)
    if missing is not None:
        return missing
    policy, held = float(m.pooled["policy_sharpe"]), float(m.pooled["buy_and_hold_sharpe"])
    margin = policy - held
    return GateResult(
        name,
        margin > t.min_margin_over_buy_and_hold,
        round(margin, 4),
        t.min_margin_over_buy_and_hold,
        f"pooled test Sharpe {policy:.3f} vs buy-and-hold {held:.3f}",
    )


def deflated_sharpe_at_least_confidence(
    m: Measurements, t: GateThresholds, cost: CostModel
) -> GateResult:
    name = "deflated_sharpe_at_least_confidence"
    missing = _no_evidence(name, m, t.min_deflated_sharpe)
    if missing is not None:
        return missing
    p = m.pooled
    return GateResult(
        name,
        p["dsr"] >= t.min_deflated_sharpe,
        round(p["dsr"], 4),
        t.min_deflated_sharpe,
        f"P(skill Sharpe over the exposure-matched benchmark > {p['benchmark_sharpe']:.2f}, "
        f"the expected best of {p['trials']:.2f} unskilled trial(s)"
        + (
            f", what the {p['attempts']} attempts in the ledger are worth"
            if "attempts" in p
            else ""
        )
        + f") = {p['dsr']:.3f} on "
        f"{p['days']} pooled test days (skill Sharpe {p['skill_sharpe']:.2f} +/- "
        f"{p['skill_sharpe_se']:.2f}, autocorrelation-robust)",
    )


def train_validation_gap_within_limit(
    m: Measurements, t: GateThresholds, cost: CostModel
) -> GateResult:
    name = "train_validation_gap_within_limit"
    if not m.measured:
        return _not_measured(name, m, t.max_sharpe_gap)
    gap = m.train_sharpe - m.validation_sharpe
    return GateResult(
        name,
        gap <= t.max_sharpe_gap,
        round(gap, 4),
        t.max_sharpe_gap,
        f"train Sharpe {m.train_sharpe:.3f}, validation Sharpe {m.validation_sharpe:.3f}",
    )


def compare_with_champion(
    candidate_walk_forward: dict[str, Any],
    champion: dict[str, Any] | None,
    decayed: bool,
    confidence: float,
    min_shared_days: float,
) -> GateResult:
    """The candidate's procedure against the champion's, paired on the test days their
    walk-forward folds share, under the same costs and execution: the candidate's daily
    skill returns minus the champion's must be above zero at ``confidence``
    (``stats.paired_difference_test``, autocorrelation-robust). A champion whose edge the
    monitoring found gone no longer blocks; one recorded before test evidence was kept
    with champions cannot be compared and does not block either (both say so)."""
    name = "beats_champion"
    if champion is None:
        return GateResult(name, True, "no champion yet", confidence, "first promotion")
    version = champion.get("version")
    if decayed:
        return GateResult(
            name,
            True,
            f"champion {version} has decayed",
            confidence,
            f"the monitoring found champion {version}'s edge gone: it no longer blocks a "
            "candidate that passes every other gate",
        )
    if not champion.get("skill_returns"):
        return GateResult(
            name,
            True,
            f"champion {version} has no recorded test evidence",
            confidence,
            f"champion {version} was promoted before champions kept their test evidence: "
            "nothing to pair with; the candidate stands on its own evidence",
        )
    test = paired_difference_test(skill_series(candidate_walk_forward), skill_series(champion))
    if test["days"] < min_shared_days:
        return GateResult(
            name,
            False,
            f"{test['days']} shared test days",
            f">= {min_shared_days:g} shared test days",
            f"the candidate's and champion {version}'s walk-forward folds share only "
            f"{test['days']} test days: too few to show the candidate is better. Roll the "
            "champion back or wait for its monitoring to find it decayed",
        )
    return GateResult(
        name,
        test["confidence"] >= confidence,
        round(test["confidence"], 4),
        confidence,
        f"on {test['days']} shared test days from {test['first_date']}, the candidate's "
        f"daily skill returns minus champion {version}'s: "
        f"{test['annual_difference']:+.2%} a year (t {test['t']:.2f}, autocorrelation-"
        f"robust); P(candidate better) {test['confidence']:.3f}",
    )


def beats_champion(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    missing = _no_evidence("beats_champion", m, t.min_confidence_over_champion)
    if missing is not None and m.champion is not None:
        return missing
    return compare_with_champion(
        m.walk_forward,
        m.champion,
        m.champion_decayed,
        t.min_confidence_over_champion,
        t.min_test_days,
    )


def q_value_within_limit(m: Measurements, t: GateThresholds, cost: CostModel) -> GateResult:
    name = "q_value_within_limit"
    if m.q_value is None:
        return GateResult(
            name,
            t.max_q_value >= 1.0,
            "not computed (no ledger)",
            t.max_q_value,
            "no trial ledger was consulted",
        )
    judged = len(m.universe)
    return GateResult(
        name,
        m.q_value <= t.max_q_value,
        round(m.q_value, 4),
        t.max_q_value,
        f"Benjamini-Hochberg q-value among the {judged} instrument(s) judged in the period"
        + (" (not gated: the deployment's maximum is 1)" if t.max_q_value >= 1.0 else ""),
    )


Gate = Callable[[Measurements, GateThresholds, CostModel], GateResult]

# Check name -> (one-sentence description, the gate). The order is the order of the report.
GATES: dict[str, tuple[str, Gate]] = {
    # The deployed checkpoint itself.
    "trained_on_these_splits": (
        "The candidate is judged on the very train and validation data it was trained and "
        "selected on (content hashes recorded with the checkpoint).",
        trained_on_these_splits,
    ),
    "restores_and_acts": (
        "The best checkpoint restores and acts deterministically on every validation day.",
        restores_and_acts,
    ),
    "weights_finite": ("Every weight of the policy network is finite.", weights_finite),
    "positions_allowed": (
        "The policy takes only positions the deployment's action set allows.",
        positions_allowed,
    ),
    "train_validation_gap_within_limit": (
        "Train Sharpe minus validation Sharpe (overfitting) stays within the limit.",
        train_validation_gap_within_limit,
    ),
    # The procedure that produced it: pooled walk-forward test evidence.
    "execution_tradable": (
        "Every figure assumes an execution the signal can be traded at (next open or next "
        "close), the deployment's.",
        execution_tradable,
    ),
    "evidence_from_this_procedure": (
        "The walk-forward folds were trained by the candidate's own procedure on the data "
        "it was trained on.",
        evidence_from_this_procedure,
    ),
    "test_evidence_sufficient": (
        "The folds' pooled test windows, which no training or selection saw, hold at least "
        "the minimum number of days.",
        test_evidence_sufficient,
    ),
    "test_sharpe_at_least_minimum": (
        "The pooled test Sharpe, under the deployment's costs and execution, is at least "
        "the minimum.",
        test_sharpe_at_least_minimum,
    ),
    "beats_buy_and_hold": (
        "The pooled test Sharpe beats buy-and-hold's on the same days, costs and execution.",
        beats_buy_and_hold,
    ),
    "deflated_sharpe_at_least_confidence": (
        "The Deflated Sharpe of the pooled test skill returns (over the exposure-matched "
        "benchmark, autocorrelation-robust) reaches the confidence.",
        deflated_sharpe_at_least_confidence,
    ),
    "beats_champion": (
        "The candidate's procedure beats the champion's on the test days their folds share: "
        "the daily difference of their skill returns is above zero at the deployment's "
        "confidence (paired, autocorrelation-robust). A decayed champion does not block.",
        beats_champion,
    ),
    "q_value_within_limit": (
        "The candidate's Benjamini-Hochberg q-value across the instruments judged in the "
        "period is within the deployment's maximum (1 by default: reported, not gated).",
        q_value_within_limit,
    ),
}


def judge(m: Measurements, thresholds: GateThresholds, cost: CostModel) -> list[GateResult]:
    """Every gate, in order."""
    return [fn(m, thresholds, cost) for _, fn in GATES.values()]


def verdict(results: list[GateResult]) -> str:
    failed = [r.name for r in results if not r.passed]
    return "passes every gate" if not failed else f"refused by {', '.join(failed)}"


def gates_table(results: list[GateResult]) -> str:
    """Markdown: gate, observed, threshold, verdict."""
    rows = "".join(
        f"| {r.name} | {_cell(r.observed)} | {_cell(r.threshold)} | "
        f"{'pass' if r.passed else '**FAIL**'} | {r.reason} |\n"
        for r in results
    )
    return "| gate | observed | threshold | verdict | reason |\n|---|---|---|---|---|\n" + rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "/")


def judge_training_result(
    result: dict[str, Any],
    train_closes: np.ndarray,
    validation_closes: np.ndarray,
    thresholds: GateThresholds | None = None,
    cost: CostModel | None = None,
    champion: dict[str, Any] | None = None,
    walk_forward: dict[str, Any] | None = None,
    registry: Any = None,
) -> list[GateResult]:
    """Every gate for a ``train_ppo`` result judged on the bars it was trained on and its
    procedure's walk-forward evidence (``rl_assets.promotion.evidence``), outside Dagster
    (benchmarks, tests). The splits are taken as the ones recorded with it. With a
    ``registry`` lane the attempt is counted in, and deflated by, its trial ledger."""
    recorded = result.get("provenance", {}).get("splits") or {
        "train": {"content_hash": "unrecorded"},
        "validation": {"content_hash": "unrecorded"},
    }
    evidence = Evidence(
        candidate=result,
        train_closes=np.asarray(train_closes),
        validation_closes=np.asarray(validation_closes),
        splits=recorded,
        thresholds=thresholds or deployment_thresholds(),
        cost=cost or deployment_cost_model(),
        champion=champion,
        walk_forward=walk_forward,
    )
    m = measure(evidence)
    if not m.recorded_splits:
        m.recorded_splits = recorded
    if registry is not None:
        from rl_assets.promotion.judging import judge_and_record

        return judge_and_record(m, evidence, registry, {"started_by": "judge_procedure"})
    return judge(m, evidence.thresholds, evidence.cost)
