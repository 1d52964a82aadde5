"""Evaluation: out-of-sample metrics of the best checkpoint against buy-and-hold."""

from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from rl_assets import constants, plots
from rl_assets.resources import ArtifactStoreResource
from rl_assets.rl.metrics import max_drawdown, sharpe_ratio, total_return
from rl_assets.rl.training import TrainingSpec, buy_and_hold, evaluate, load_policy, with_history


def summarize(returns: np.ndarray, risk_free_rate: float) -> dict[str, float]:
    return {
        "sharpe": sharpe_ratio(returns, risk_free_rate),
        "total_return": total_return(returns),
        "max_drawdown": max_drawdown(returns),
    }


def _table(metrics: dict[str, dict[str, float]]) -> str:
    out = "| | Sharpe | total return | max drawdown |\n|---|---:|---:|---:|\n"
    for name, m in metrics.items():
        out += (
            f"| {name} | {m['sharpe']:.3f} | {m['total_return']:.2%} | {m['max_drawdown']:.2%} |\n"
        )
    return out


@dg.asset(group_name=constants.EVALUATION_GROUP, kinds={"pytorch"})
def validation_report(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    trained_policy: dict[str, Any],
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """Out-of-sample metrics of the best checkpoint vs buy-and-hold, and the train/validation gap."""
    spec = TrainingSpec(**trained_policy["spec"])
    policy = load_policy(Path(trained_policy["checkpoint"]))
    train = train_prices["close"].to_numpy()
    val = with_history(train, validation_prices["close"].to_numpy(), spec.window)
    policy_val = evaluate(policy, val, spec)
    policy_train = evaluate(policy, train, spec)
    bh_val = buy_and_hold(val, spec)
    rf = spec.risk_free_rate
    validation = {
        "policy": summarize(policy_val["returns"], rf),
        "buy_and_hold": summarize(bh_val["returns"], rf),
    }
    train_sharpe = sharpe_ratio(policy_train["returns"], rf)
    report = {
        "validation": validation,
        "train_sharpe": train_sharpe,
        "validation_sharpe": validation["policy"]["sharpe"],
        "sharpe_gap": train_sharpe - validation["policy"]["sharpe"],
        "checkpoint": trained_policy["checkpoint"],
    }
    out_dir = artifacts.run_dir(context.run_id) / "report"
    b64 = plots.report_figure(
        validation_prices.index,
        {"policy": policy_val["returns"], "buy-and-hold": bh_val["returns"]},
        policy_val["positions"],
        out_dir / "validation.png",
    )
    table = _table(validation)
    gap = (
        f"Train Sharpe {train_sharpe:.3f}, validation Sharpe {report['validation_sharpe']:.3f} "
        f"(gap {report['sharpe_gap']:.3f})."
    )
    (out_dir / "report.md").write_text(
        f"# Validation report\n\nCheckpoint: `{trained_policy['checkpoint']}`\n\n{table}\n{gap}\n\n"
        "![validation](validation.png)\n"
    )
    context.log.info(f"validation report: {gap}")
    return dg.Output(
        report,
        metadata={
            "validation_sharpe": report["validation_sharpe"],
            "buy_and_hold_sharpe": validation["buy_and_hold"]["sharpe"],
            "train_sharpe": train_sharpe,
            "sharpe_gap": report["sharpe_gap"],
            "total_return": validation["policy"]["total_return"],
            "max_drawdown": validation["policy"]["max_drawdown"],
            "metrics": dg.MetadataValue.md(table + "\n" + gap),
            "picture": dg.MetadataValue.md(plots.markdown_image(b64, "validation")),
            "report_file": dg.MetadataValue.path(str(out_dir / "report.md")),
        },
    )
