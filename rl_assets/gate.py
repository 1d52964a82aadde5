"""The promotion gate: properties a candidate must have, shared by the checks and promotion."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_assets.rl.training import TrainingSpec, buy_and_hold, evaluate, load_policy


@dataclass
class GateResult:
    name: str
    passed: bool
    observed: Any
    threshold: Any
    reason: str

    def metadata(self) -> dict[str, Any]:
        return {"observed": self.observed, "threshold": self.threshold, "reason": self.reason}


def restores_and_acts(candidate: dict[str, Any], validation_closes: np.ndarray) -> GateResult:
    """The checkpoint restores and its greedy policy acts the same way twice."""
    name = "restores_and_acts"
    spec = TrainingSpec(**candidate["spec"])
    try:
        first = evaluate(load_policy(Path(candidate["checkpoint"])), validation_closes, spec)
        second = evaluate(load_policy(Path(candidate["checkpoint"])), validation_closes, spec)
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


def beats_buy_and_hold(
    candidate: dict[str, Any], validation_closes: np.ndarray, margin: float
) -> GateResult:
    """Validation Sharpe of the restored policy exceeds buy-and-hold's by ``margin``."""
    spec = TrainingSpec(**candidate["spec"])
    policy = evaluate(load_policy(Path(candidate["checkpoint"])), validation_closes, spec)["sharpe"]
    baseline = buy_and_hold(validation_closes, spec)["sharpe"]
    passed = policy - baseline > margin
    return GateResult(
        "beats_buy_and_hold",
        passed,
        round(policy - baseline, 4),
        margin,
        f"policy Sharpe {policy:.3f} vs buy-and-hold {baseline:.3f}",
    )


def validation_sharpe_at_least(
    candidate: dict[str, Any], validation_closes: np.ndarray, minimum: float
) -> GateResult:
    """Validation Sharpe of the restored policy is at least ``minimum``."""
    spec = TrainingSpec(**candidate["spec"])
    sharpe = evaluate(load_policy(Path(candidate["checkpoint"])), validation_closes, spec)["sharpe"]
    return GateResult(
        "validation_sharpe_at_least_minimum",
        sharpe >= minimum,
        round(sharpe, 4),
        minimum,
        f"validation Sharpe {sharpe:.3f}, minimum {minimum}",
    )
