"""The promotion gate: properties a candidate must have, shared by the checks and promotion.

Every function restores the candidate from its checkpoint and measures again; nothing is
taken on trust from the training summary.
"""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_assets import constants
from rl_assets.rl.stats import deflated_sharpe_ratio
from rl_assets.rl.training import (
    RL_MODULE_SUBDIR,
    TrainingSpec,
    buy_and_hold,
    evaluate,
    load_policy,
    with_history,
)


@dataclass
class GateThresholds:
    min_validation_sharpe: float = constants.MIN_VALIDATION_SHARPE
    min_margin_over_buy_and_hold: float = constants.MIN_SHARPE_MARGIN_OVER_BUY_AND_HOLD
    min_deflated_sharpe: float = constants.MIN_DEFLATED_SHARPE
    max_sharpe_gap: float = constants.MAX_SHARPE_GAP
    min_margin_over_champion: float = constants.MIN_SHARPE_MARGIN_OVER_CHAMPION


@dataclass
class GateResult:
    name: str
    passed: bool
    observed: Any
    threshold: Any
    reason: str

    def metadata(self) -> dict[str, Any]:
        return {"observed": self.observed, "threshold": self.threshold, "reason": self.reason}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spec(candidate: dict[str, Any]) -> TrainingSpec:
    return TrainingSpec(**candidate["spec"])


def _validation(candidate: dict[str, Any], validation_closes: np.ndarray) -> dict[str, Any]:
    return evaluate(load_policy(Path(candidate["checkpoint"])), validation_closes, _spec(candidate))


def restores_and_acts(candidate: dict[str, Any], validation_closes: np.ndarray) -> GateResult:
    """The checkpoint restores and its greedy policy acts the same way twice."""
    name = "restores_and_acts"
    try:
        first = _validation(candidate, validation_closes)
        second = _validation(candidate, validation_closes)
    except Exception as exc:  # the check reports any restore failure as its result
        return GateResult(name, False, f"{type(exc).__name__}: {exc}", "restores", "restore failed")
    same = bool(np.array_equal(first["positions"], second["positions"]))
    days = len(first["positions"])
    return GateResult(
        name,
        same and days > 0,
        f"{days} validation days acted, deterministic={same}",
        "deterministic actions on every validation day",
        "ok" if same else "two restores of the same checkpoint acted differently",
    )


def weights_finite(candidate: dict[str, Any]) -> GateResult:
    """Every parameter of the policy network is finite."""
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(str(Path(candidate["checkpoint"]) / RL_MODULE_SUBDIR))
    total = bad = 0
    for p in module.parameters():
        total += p.numel()
        bad += int((~torch.isfinite(p)).sum())
    return GateResult(
        "weights_finite",
        bad == 0 and total > 0,
        f"{bad} non-finite of {total} parameters",
        "0 non-finite",
        "ok" if bad == 0 else "NaN or inf weights: training diverged",
    )


def beats_buy_and_hold(
    candidate: dict[str, Any], validation_closes: np.ndarray, margin: float
) -> GateResult:
    """Validation Sharpe of the restored policy exceeds buy-and-hold's by more than ``margin``."""
    policy = _validation(candidate, validation_closes)["sharpe"]
    baseline = buy_and_hold(validation_closes, _spec(candidate))["sharpe"]
    return GateResult(
        "beats_buy_and_hold",
        policy - baseline > margin,
        round(policy - baseline, 4),
        margin,
        f"policy Sharpe {policy:.3f} vs buy-and-hold {baseline:.3f}",
    )


def validation_sharpe_at_least(
    candidate: dict[str, Any], validation_closes: np.ndarray, minimum: float
) -> GateResult:
    """Validation Sharpe of the restored policy is at least ``minimum``."""
    sharpe = _validation(candidate, validation_closes)["sharpe"]
    return GateResult(
        "validation_sharpe_at_least_minimum",
        sharpe >= minimum,
        round(sharpe, 4),
        minimum,
        f"validation Sharpe {sharpe:.3f}, minimum {minimum}",
    )


def deflated_sharpe_at_least(
    candidate: dict[str, Any], validation_closes: np.ndarray, minimum: float
) -> GateResult:
    """The Deflated Sharpe Ratio, deflated by every iteration early stopping chose among."""
    returns = _validation(candidate, validation_closes)["returns"]
    trials = [row["validation/sharpe"] for row in candidate["history"]]
    dsr = deflated_sharpe_ratio(returns, trials)
    return GateResult(
        "deflated_sharpe_at_least_confidence",
        dsr["dsr"] >= minimum,
        round(dsr["dsr"], 4),
        minimum,
        f"P(true Sharpe > {dsr['benchmark_sharpe']:.2f}, the expected best of "
        f"{dsr['trials']} unskilled iterations) = {dsr['dsr']:.3f}; PSR vs 0 = {dsr['psr']:.3f}",
    )


def sharpe_gap_within(
    candidate: dict[str, Any],
    train_closes: np.ndarray,
    validation_closes: np.ndarray,
    limit: float,
) -> GateResult:
    """Train Sharpe minus validation Sharpe (overfitting) is at most ``limit``."""
    spec = _spec(candidate)
    policy = load_policy(Path(candidate["checkpoint"]))
    train = evaluate(policy, train_closes, spec)["sharpe"]
    val = evaluate(policy, validation_closes, spec)["sharpe"]
    return GateResult(
        "train_validation_gap_within_limit",
        train - val <= limit,
        round(train - val, 4),
        limit,
        f"train Sharpe {train:.3f}, validation Sharpe {val:.3f}",
    )


def beats_champion(
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    train_closes: np.ndarray,
    validation_closes_raw: np.ndarray,
    margin: float,
) -> GateResult:
    """On the same validation window, the candidate's Sharpe beats the champion's by more
    than ``margin``; passes when there is no champion yet."""
    name = "beats_champion"
    if champion is None:
        return GateResult(name, True, "no champion yet", margin, "first promotion")
    cand_spec = _spec(candidate)
    champ_spec = TrainingSpec(**champion["spec"])
    cand = evaluate(
        load_policy(Path(candidate["checkpoint"])),
        with_history(train_closes, validation_closes_raw, cand_spec.window),
        cand_spec,
    )["sharpe"]
    champ = evaluate(
        load_policy(Path(champion["checkpoint"])),
        with_history(train_closes, validation_closes_raw, champ_spec.window),
        champ_spec,
    )["sharpe"]
    return GateResult(
        name,
        cand - champ > margin,
        round(cand - champ, 4),
        margin,
        f"candidate Sharpe {cand:.3f} vs champion {champion['version']} {champ:.3f}",
    )


@dataclass
class GateInputs:
    """What every gate may look at: the candidate, the data, the thresholds, the champion."""

    candidate: dict[str, Any]
    train_closes: np.ndarray
    validation_closes_raw: np.ndarray
    thresholds: GateThresholds
    champion: dict[str, Any] | None

    @property
    def validation_closes(self) -> np.ndarray:
        return with_history(
            self.train_closes, self.validation_closes_raw, self.candidate["spec"]["window"]
        )


# Check name (without the asset prefix) -> (one-sentence description, how to evaluate it).
GATES = {
    "restores_and_acts": (
        "The best checkpoint restores and acts deterministically on every validation day.",
        lambda g: restores_and_acts(g.candidate, g.validation_closes),
    ),
    "weights_finite": (
        "Every weight of the policy network is finite.",
        lambda g: weights_finite(g.candidate),
    ),
    "validation_sharpe_at_least_minimum": (
        "The restored policy's validation Sharpe is at least the configured minimum.",
        lambda g: validation_sharpe_at_least(
            g.candidate, g.validation_closes, g.thresholds.min_validation_sharpe
        ),
    ),
    "beats_buy_and_hold": (
        "The restored policy's validation Sharpe beats buy-and-hold's by the configured margin.",
        lambda g: beats_buy_and_hold(
            g.candidate, g.validation_closes, g.thresholds.min_margin_over_buy_and_hold
        ),
    ),
    "deflated_sharpe_at_least_confidence": (
        "The Deflated Sharpe Ratio, deflated by the iterations early stopping chose among, "
        "reaches the configured confidence.",
        lambda g: deflated_sharpe_at_least(
            g.candidate, g.validation_closes, g.thresholds.min_deflated_sharpe
        ),
    ),
    "train_validation_gap_within_limit": (
        "Train Sharpe minus validation Sharpe stays within the configured limit.",
        lambda g: sharpe_gap_within(
            g.candidate, g.train_closes, g.validation_closes, g.thresholds.max_sharpe_gap
        ),
    ),
    "beats_champion": (
        "The candidate beats the current champion on the same validation window.",
        lambda g: beats_champion(
            g.candidate,
            g.champion,
            g.train_closes,
            g.validation_closes_raw,
            g.thresholds.min_margin_over_champion,
        ),
    ),
}


def evaluate_all(inputs: GateInputs) -> list[GateResult]:
    """Every gate, in the order of the checks."""
    return [evaluate(inputs) for _, evaluate in GATES.values()]
