"""Evaluation: out-of-sample metrics of the best checkpoint against baselines, honestly."""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from rl_assets import constants, plots
from rl_assets.resources import ArtifactStoreResource
from rl_assets.rl.env import ACTION_SETS, constant_policy, rollout
from rl_assets.rl.metrics import performance
from rl_assets.rl.stats import bootstrap_sharpe_difference, deflated_sharpe_ratio
from rl_assets.rl.training import TrainingSpec, load_policy, with_history

METRIC_COLUMNS = [
    ("sharpe", "Sharpe", "{:.3f}"),
    ("sortino", "Sortino", "{:.3f}"),
    ("total_return", "total return", "{:.2%}"),
    ("annualised_return", "annual return", "{:.2%}"),
    ("volatility", "volatility", "{:.2%}"),
    ("max_drawdown", "max drawdown", "{:.2%}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("turnover", "turnover", "{:.3f}"),
    ("trades", "trades", "{:.0f}"),
    ("exposure", "exposure", "{:.0%}"),
    ("hit_rate", "hit rate", "{:.0%}"),
]


class ReportConfig(dg.Config):
    """Baselines and the optional untouched test window (dates after validation)."""

    random_policy_seeds: int = 20
    bootstrap_resamples: int = 2000
    test_start: str = ""
    test_end: str = ""


def _random_policy(rng: np.random.Generator, n_actions: int):
    return lambda obs: int(rng.integers(n_actions))


def random_policy_performance(closes, spec: TrainingSpec, seeds: int) -> dict[str, float]:
    """Metrics of a uniformly random policy, averaged over ``seeds`` seeds."""
    n_actions = len(ACTION_SETS[spec.action_set])
    runs = []
    for seed in range(seeds):
        policy = _random_policy(np.random.default_rng(seed), n_actions)
        rets, pos = rollout(policy, closes, spec.env_config())
        runs.append(performance(rets, pos, spec.risk_free_rate))
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def period_metrics(policy, closes, spec: TrainingSpec, random_seeds: int) -> dict[str, Any]:
    """Policy and baselines (buy-and-hold, flat, random) on one period."""
    env_cfg = spec.env_config()
    rf = spec.risk_free_rate
    pol = rollout(policy, closes, env_cfg)
    bh = rollout(constant_policy(env_cfg, 1.0), closes, env_cfg)
    flat = rollout(constant_policy(env_cfg, 0.0), closes, env_cfg)
    return {
        "series": {"policy": pol, "buy-and-hold": bh, "flat": flat},
        "metrics": {
            "policy": performance(*pol, rf),
            "buy_and_hold": performance(*bh, rf),
            "flat": performance(*flat, rf),
            f"random (mean of {random_seeds})": random_policy_performance(
                closes, spec, random_seeds
            ),
        },
    }


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    head = "| | " + " | ".join(label for _, label, _ in METRIC_COLUMNS) + " |\n"
    head += "|---|" + "---:|" * len(METRIC_COLUMNS) + "\n"
    rows = "".join(
        f"| {name} | " + " | ".join(fmt.format(m[k]) for k, _, fmt in METRIC_COLUMNS) + " |\n"
        for name, m in metrics.items()
    )
    return head + rows


@dg.asset(group_name=constants.EVALUATION_GROUP, kinds={"pytorch"})
def validation_report(
    context: dg.AssetExecutionContext,
    config: ReportConfig,
    artifacts: ArtifactStoreResource,
    trained_policy: dict[str, Any],
    raw_prices: pd.DataFrame,
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """Out-of-sample metrics of the best checkpoint vs baselines, its deflated Sharpe and the train/validation gap."""
    spec = TrainingSpec(**trained_policy["spec"])
    policy = load_policy(artifacts.trusted(trained_policy["checkpoint"]))
    train = train_prices["close"].to_numpy()
    val_closes = validation_prices["close"].to_numpy()
    val = period_metrics(
        policy, with_history(train, val_closes, spec.window), spec, config.random_policy_seeds
    )
    train_perf = performance(*rollout(policy, train, spec.env_config()), spec.risk_free_rate)
    policy_returns = val["series"]["policy"][0]
    trials = [row["validation/sharpe"] for row in trained_policy["history"]]
    dsr = deflated_sharpe_ratio(policy_returns, trials)
    ci = bootstrap_sharpe_difference(
        policy_returns, val["series"]["buy-and-hold"][0], n_resamples=config.bootstrap_resamples
    )
    report: dict[str, Any] = {
        "validation": val["metrics"],
        "train": train_perf,
        "train_sharpe": train_perf["sharpe"],
        "validation_sharpe": val["metrics"]["policy"]["sharpe"],
        "sharpe_gap": train_perf["sharpe"] - val["metrics"]["policy"]["sharpe"],
        "deflated_sharpe": dsr,
        "sharpe_difference_vs_buy_and_hold": ci,
        "checkpoint": trained_policy["checkpoint"],
    }
    test_section = ""
    if config.test_start or config.test_end:
        test = raw_prices.loc[config.test_start or None : config.test_end or None]
        if len(test) == 0 or test.index[0] <= validation_prices.index[-1]:
            raise ValueError(
                f"test window {config.test_start}..{config.test_end} must hold rows strictly "
                f"after validation ends ({validation_prices.index[-1].date()}); the data ends "
                f"{raw_prices.index[-1].date()}"
            )
        history = np.concatenate([train, val_closes])
        test_metrics = period_metrics(
            policy,
            with_history(history, test["close"].to_numpy(), spec.window),
            spec,
            config.random_policy_seeds,
        )["metrics"]
        report["test"] = test_metrics
        test_section = (
            f"\n## Untouched test window {test.index[0].date()}..{test.index[-1].date()}\n\n"
            "Played no part in early stopping or checkpoint choice.\n\n"
            + metrics_table(test_metrics)
        )

    out_dir = artifacts.run_dir(context.run_id) / "report"
    series = val["series"]
    b64 = plots.report_figure(
        validation_prices.index,
        {name: rets for name, (rets, _) in series.items() if name != "flat"},
        series["policy"][1],
        out_dir / "validation.png",
    )
    table = metrics_table(report["validation"])
    honesty = (
        f"Train Sharpe {train_perf['sharpe']:.3f}, validation Sharpe "
        f"{report['validation_sharpe']:.3f} (gap {report['sharpe_gap']:.3f}).\n\n"
        f"Probabilistic Sharpe (vs 0): {dsr['psr']:.3f}. Deflated Sharpe: {dsr['dsr']:.3f} "
        f"(vs {dsr['benchmark_sharpe']:.2f}, the expected best of {dsr['trials']} unskilled "
        f"iterations).\n\nSharpe difference vs buy-and-hold: {ci['difference']:.3f}, "
        f"{ci['confidence']:.0%} block-bootstrap CI [{ci['low']:.3f}, {ci['high']:.3f}]."
    )
    (out_dir / "report.md").write_text(
        f"# Validation report\n\nCheckpoint: `{trained_policy['checkpoint']}`\n\n"
        f"## Validation {validation_prices.index[0].date()}..{validation_prices.index[-1].date()}"
        f"\n\n{table}\n{honesty}\n\n![validation](validation.png)\n{test_section}"
    )
    context.log.info(f"validation report: {honesty}")
    metadata = {
        "validation_sharpe": report["validation_sharpe"],
        "buy_and_hold_sharpe": report["validation"]["buy_and_hold"]["sharpe"],
        "train_sharpe": train_perf["sharpe"],
        "sharpe_gap": report["sharpe_gap"],
        "deflated_sharpe": dsr["dsr"],
        "probabilistic_sharpe": dsr["psr"],
        "sharpe_diff_ci_low": ci["low"],
        "sharpe_diff_ci_high": ci["high"],
        "total_return": report["validation"]["policy"]["total_return"],
        "max_drawdown": report["validation"]["policy"]["max_drawdown"],
        "metrics": dg.MetadataValue.md(table + "\n" + honesty + test_section),
        "picture": dg.MetadataValue.md(plots.markdown_image(b64, "validation")),
        "report_file": dg.MetadataValue.path(str(out_dir / "report.md")),
        "report": dg.MetadataValue.json(report),
    }
    return dg.Output(report, metadata=metadata)
