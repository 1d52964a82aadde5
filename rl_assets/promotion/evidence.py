"""The procedure's evidence: the walk-forward folds' pooled test days, as skill over the exposure-matched benchmark.

Everything here is a function of the folds' test-day series (``rl_assets.rl.walk_forward.
fold_test_series``): days no training, early stopping or checkpoint choice has seen, traded
as the deployment trades. The gate (``rl_assets.promotion.gate``) reads the result.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from rl_assets.promotion.gate import CostModel, judging_spec
from rl_assets.promotion.ledger import skill_record
from rl_assets.rl.metrics import TRADING_DAYS, performance, sharpe_ratio
from rl_assets.rl.stats import (
    deflated_sharpe_hac,
    minimum_track_record_years,
)
from rl_assets.rl.walk_forward import Fold, fold_test_series, procedure_digest

# The evidence of one procedure alone: the pooled test days were not chosen among, so its
# Deflated Sharpe is the (autocorrelation-robust) Probabilistic Sharpe against zero. The
# gate deflates it again by the instrument's trial ledger (``rl_assets.promotion.judging``).
TRIALS_WITHOUT_LEDGER = 1.0


def folds_test_series(
    folds: list[Fold],
    fold_results: list[dict[str, Any]],
    prices: np.ndarray,
    dates: pd.DatetimeIndex,
    cost: CostModel,
    load: Callable[[Fold, dict[str, Any]], Callable[[np.ndarray], int]],
) -> pd.DataFrame:
    """Every fold's checkpoint (``load(fold, result)`` gives its greedy policy) traded on its
    test days under the deployment's costs, execution and risk-free rate, in fold order."""
    parts = []
    for fold, result in zip(folds, fold_results, strict=True):
        spec = judging_spec(result["spec"], cost)
        parts.append(
            fold_test_series(
                load(fold, result),
                prices,
                dates,
                fold,
                spec.env_config(),
                spec.window,
                cost.risk_free_rate,
            )
        )
    return pd.concat(parts)


def evidence_record(
    series: pd.DataFrame,
    cost: CostModel,
    confidence: float,
    spec: dict[str, Any],
    plan: list[dict[str, Any]],
    deploy_splits: dict[str, dict],
) -> dict[str, Any]:
    """What the gate reads of a procedure's walk-forward evidence: the pooled figures, which
    procedure and execution produced them, the plan, and the candidate's own splits."""
    return {
        **pooled_evidence(series, cost.risk_free_rate, confidence),
        # The pooled daily skill returns by date: the trial ledger keeps them, the champion
        # comparison pairs them, the monitoring expects their level.
        "skill_returns": skill_record(series["skill_returns"]),
        "procedure_digest": procedure_digest(spec),
        "execution": cost.execution,
        "plan": plan,
        "deploy_splits": deploy_splits,
    }


def fold_figures(series: pd.DataFrame, risk_free_rate: float = 0.0) -> dict[str, Any]:
    """One fold's (or the pooled) test figures from its test-day series."""
    positions = series["position"].to_numpy()
    return {
        "days": int(len(series)),
        "first_date": str(series.index[0].date()) if len(series) else "",
        "last_date": str(series.index[-1].date()) if len(series) else "",
        "exposure": float(np.mean(positions)) if len(series) else 0.0,
        "policy_sharpe": sharpe_ratio(series["policy_returns"], risk_free_rate),
        "buy_and_hold_sharpe": sharpe_ratio(series["buy_and_hold_returns"], risk_free_rate),
        "skill_sharpe": sharpe_ratio(series["skill_returns"]),
        "policy_total_return": float(np.prod(1 + series["policy_returns"]) - 1),
        "buy_and_hold_total_return": float(np.prod(1 + series["buy_and_hold_returns"]) - 1),
    }


def pooled_evidence(
    series: pd.DataFrame,
    risk_free_rate: float = 0.0,
    confidence: float = 0.95,
    trials: float = TRIALS_WITHOUT_LEDGER,
) -> dict[str, Any]:
    """Per-fold and pooled figures of the folds' test days, and the gate's statistics.

    ``dsr``: the Deflated Sharpe of the pooled skill returns (``stats.deflated_sharpe_hac``)
    with ``trials`` unskilled trials; ``psr`` the same against zero. ``min_track_record_years``:
    how many years of test evidence the observed skill Sharpe would need to clear zero at
    ``confidence`` (Bailey and Lopez de Prado 2012), inf when it is not above zero.
    """
    if not series.index.is_monotonic_increasing or series.index.has_duplicates:
        raise ValueError("fold test windows overlap or are out of order; they must tile")
    folds = [
        {"fold": int(k), **fold_figures(part, risk_free_rate)}
        for k, part in series.groupby("fold", sort=True)
    ]
    skill = series["skill_returns"].to_numpy()
    dsr = deflated_sharpe_hac(skill, trials)
    policy = performance(
        series["policy_returns"].to_numpy(), series["position"].to_numpy(), risk_free_rate
    )
    pooled = {
        **fold_figures(series, risk_free_rate),
        "years": len(series) / TRADING_DAYS,
        "skill_sharpe_se": dsr["annual_se"],
        "lrv_ratio": dsr["lrv_ratio"],
        "dsr": dsr["dsr"],
        "psr": dsr["psr"],
        "trials": trials,
        "benchmark_sharpe": dsr["benchmark_sharpe"],
        "confidence": confidence,
        "min_track_record_years": minimum_track_record_years(
            dsr["annual_sharpe"],
            confidence,
            dsr["skewness"],
            dsr["kurtosis"],
            dsr["lrv_ratio"],
        ),
        "max_drawdown": policy["max_drawdown"],
        "turnover": policy["turnover"],
    }
    return {"folds": folds, "pooled": pooled}


def evidence_table(evidence: dict[str, Any]) -> str:
    """Markdown: one row per fold and the pooled row."""
    head = (
        "| fold | test days | exposure | policy Sharpe | buy-and-hold Sharpe | skill Sharpe "
        "| policy return | buy-and-hold return |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )

    def row(name: str, f: dict[str, Any]) -> str:
        return (
            f"| {name} | {f['days']} | {f['exposure']:+.2f} | {f['policy_sharpe']:.2f} | "
            f"{f['buy_and_hold_sharpe']:.2f} | {f['skill_sharpe']:.2f} | "
            f"{f['policy_total_return']:.1%} | {f['buy_and_hold_total_return']:.1%} |\n"
        )

    body = "".join(
        row(f"{f['fold']} ({f['first_date']}..{f['last_date']})", f) for f in evidence["folds"]
    )
    return head + body + row("**pooled**", evidence["pooled"])


def evidence_sentence(evidence: dict[str, Any]) -> str:
    """The pooled evidence in words, for the report, the log and the summary."""
    p = evidence["pooled"]
    years = p["min_track_record_years"]
    need = (
        "no amount of evidence would show a skill Sharpe that is not above zero"
        if not np.isfinite(years)
        else f"at this skill Sharpe, {years:.1f} years of test evidence would show it above "
        f"zero at {p['confidence']:.0%}"
    )
    trials = (
        f"{p['attempts']} attempt(s) in the ledger, worth {p['trials']:.2f} trial(s)"
        if "attempts" in p
        else "this procedure alone, before counting the instrument's attempts"
    )
    return (
        f"{p['years']:.1f} years of pooled test evidence ({p['days']} days, "
        f"{len(evidence['folds'])} folds, {p['first_date']}..{p['last_date']}): skill Sharpe "
        f"{p['skill_sharpe']:.2f} +/- {p['skill_sharpe_se']:.2f} over the exposure-matched "
        f"benchmark, Deflated Sharpe {p['dsr']:.3f} ({trials}); policy Sharpe "
        f"{p['policy_sharpe']:.2f} vs buy-and-hold {p['buy_and_hold_sharpe']:.2f}; {need}."
    )
