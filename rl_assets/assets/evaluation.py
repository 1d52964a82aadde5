"""Evaluation: every candidate's out-of-sample report, its gates, against baselines, honestly."""

import dataclasses
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from rl_assets import constants, display, plots
from rl_assets.assets.prices import refuse_long_gap
from rl_assets.failures import CONFIG, failure
from rl_assets.instruments import instrument_partitions
from rl_assets.promotion.gate import (
    baseline_spec,
    gates_table,
    judging_spec,
    skill_over_buy_and_hold,
    verdict,
)
from rl_assets.promotion.judging import gather_evidence, judge_candidate
from rl_assets.resources import ArtifactStoreResource, GateResource
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
    max_gap_business_days: int = constants.MAX_SPLIT_GAP_BUSINESS_DAYS


def _random_policy(rng: np.random.Generator, n_actions: int):
    return lambda obs: int(rng.integers(n_actions))


def random_policy_performance(closes, spec: TrainingSpec, seeds: int) -> dict[str, float]:
    """Metrics of a uniformly random policy over ``spec``'s action set, averaged over seeds."""
    n_actions = len(ACTION_SETS[spec.action_set])
    runs = []
    for seed in range(seeds):
        policy = _random_policy(np.random.default_rng(seed), n_actions)
        rets, pos = rollout(policy, closes, spec.env_config())
        runs.append(performance(rets, pos, spec.risk_free_rate))
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def period_metrics(
    policy,
    closes,
    policy_spec: TrainingSpec,
    base: TrainingSpec,
    random_seeds: int,
    champion: tuple[str, Any, TrainingSpec] | None = None,
) -> dict[str, Any]:
    """Policy, champion and baselines (buy-and-hold, flat, random) on one period, all charged
    the same costs: the policy trades its own action set, baselines the deployment's."""
    rf = base.risk_free_rate
    env_cfg = base.env_config()
    series = {
        "policy": rollout(policy, closes, policy_spec.env_config()),
        "buy-and-hold": rollout(constant_policy(env_cfg, 1.0), closes, env_cfg),
        "flat": rollout(constant_policy(env_cfg, 0.0), closes, env_cfg),
    }
    if champion is not None:
        name, champ_policy, champ_spec = champion
        series[f"champion {name}"] = rollout(champ_policy, closes, champ_spec.env_config())
    metrics = {key.replace("-", "_"): performance(*series[key], rf) for key in series}
    metrics[f"random (mean of {random_seeds})"] = random_policy_performance(
        closes, base, random_seeds
    )
    return {"series": series, "metrics": metrics}


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    head = "| | " + " | ".join(label for _, label, _ in METRIC_COLUMNS) + " |\n"
    head += "|---|" + "---:|" * len(METRIC_COLUMNS) + "\n"
    rows = "".join(
        f"| {name} | " + " | ".join(fmt.format(m[k]) for k, _, fmt in METRIC_COLUMNS) + " |\n"
        for name, m in metrics.items()
    )
    return head + rows


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.EVALUATION_GROUP,
    kinds={"pytorch"},
    code_version="2",
)
def validation_report(
    context: dg.AssetExecutionContext,
    config: ReportConfig,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    trained_policy: dict[str, Any],
    raw_prices: pd.DataFrame,
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """Every candidate's report: out-of-sample metrics vs baselines and the champion, and each gate's verdict."""
    instrument = context.partition_key
    evidence = gather_evidence(
        trained_policy, train_prices, validation_prices, gate_thresholds, artifacts, instrument
    )
    measured, gates = judge_candidate(evidence)
    cost, thresholds = evidence.cost, evidence.thresholds
    report: dict[str, Any] = {
        "instrument": instrument,
        "checkpoint": trained_policy["checkpoint"],
        "candidate_run_id": trained_policy.get("provenance", {}).get("run_id", context.run_id),
        "gates": [g.as_dict() for g in gates],
        "verdict": verdict(gates),
        "passed": all(g.passed for g in gates),
        "cost_model": dataclasses.asdict(cost),
        "thresholds": dataclasses.asdict(thresholds),
    }
    out_dir = artifacts.run_dir(context.run_id) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    gate_md = gates_table(gates)
    header = (
        f"# Validation report: {instrument}\n\nCheckpoint: `{trained_policy['checkpoint']}`\n\n"
        f"**Verdict: {report['verdict']}.** Judged under the deployment's cost model "
        f"(transaction cost {cost.transaction_cost}, risk-free rate {cost.risk_free_rate}, "
        f"action set {cost.action_set}).\n\n## Gates\n\n{gate_md}\n"
    )
    if not measured.measured:
        (out_dir / "report.md").write_text(header + f"\nNot measured: {measured.restore_error}\n")
        context.log.warning(f"validation report {instrument}: {report['verdict']}")
        return dg.Output(
            report,
            metadata={
                "instrument": instrument,
                "verdict": report["verdict"],
                "gates": dg.MetadataValue.md(gate_md),
                "report_file": dg.MetadataValue.path(str(out_dir / "report.md")),
                "report": dg.MetadataValue.json(report),
            },
        )

    spec = judging_spec(trained_policy["spec"], cost)
    base = baseline_spec(spec.window, cost)
    policy = load_policy(artifacts.trusted(trained_policy["checkpoint"]))
    champion = None
    if evidence.champion is not None:
        champ_spec = judging_spec(evidence.champion["spec"], cost)
        champion = (
            evidence.champion["version"],
            load_policy(artifacts.trusted(evidence.champion["checkpoint"])),
            champ_spec,
        )
    train = evidence.train_closes
    val_closes = evidence.validation_closes
    val = period_metrics(
        policy,
        with_history(train, val_closes, spec.window),
        spec,
        base,
        config.random_policy_seeds,
        champion,
    )
    train_perf = performance(*rollout(policy, train, spec.env_config()), cost.risk_free_rate)
    policy_returns = val["series"]["policy"][0]
    dsr = skill_over_buy_and_hold(measured)  # the gate's own figure
    psr = deflated_sharpe_ratio(policy_returns, measured.trial_sharpes)["psr"]
    ci = bootstrap_sharpe_difference(
        policy_returns, val["series"]["buy-and-hold"][0], n_resamples=config.bootstrap_resamples
    )
    report |= {
        "validation": val["metrics"],
        "train": train_perf,
        "train_sharpe": train_perf["sharpe"],
        "validation_sharpe": val["metrics"]["policy"]["sharpe"],
        "sharpe_gap": train_perf["sharpe"] - val["metrics"]["policy"]["sharpe"],
        "deflated_sharpe": dsr,
        "sharpe_difference_vs_buy_and_hold": ci,
    }
    test_section = ""
    if config.test_start or config.test_end:
        test = raw_prices.loc[config.test_start or None : config.test_end or None]
        if len(test) == 0 or test.index[0] <= validation_prices.index[-1]:
            raise failure(
                CONFIG,
                f"test window {config.test_start}..{config.test_end} must hold rows strictly "
                f"after validation ends ({validation_prices.index[-1].date()}); the data ends "
                f"{raw_prices.index[-1].date()}",
            )
        try:
            refuse_long_gap(
                validation_prices,
                test,
                ("validation", "the test window"),
                config.max_gap_business_days,
                "validation_report config max_gap_business_days",
            )
        except ValueError as err:
            raise failure(CONFIG, str(err)) from None
        history = np.concatenate([train, val_closes])
        test_metrics = period_metrics(
            policy,
            with_history(history, test["close"].to_numpy(), spec.window),
            spec,
            base,
            config.random_policy_seeds,
            champion,
        )["metrics"]
        report["test"] = test_metrics
        test_section = (
            f"\n## Untouched test window {test.index[0].date()}..{test.index[-1].date()}\n\n"
            "Played no part in early stopping or checkpoint choice.\n\n"
            + metrics_table(test_metrics)
        )

    series = val["series"]
    b64 = plots.report_figure(
        validation_prices.index,
        {name: rets for name, (rets, _) in series.items() if name != "flat"},
        series["policy"][1],
        out_dir / "validation.png",
        title=f"{instrument} validation: candidate vs baselines",
    )
    table = metrics_table(report["validation"])
    honesty = (
        f"Train Sharpe {train_perf['sharpe']:.3f}, validation Sharpe "
        f"{report['validation_sharpe']:.3f} (gap {report['sharpe_gap']:.3f}).\n\n"
        f"Probabilistic Sharpe (vs 0): {psr:.3f}. Deflated Sharpe of the returns over "
        f"buy-and-hold: {dsr['dsr']:.3f} (vs {dsr['benchmark_sharpe']:.2f}, the expected best "
        f"of {dsr['trials']:.1f} effective unskilled iterations).\n\nSharpe difference vs buy-and-hold: {ci['difference']:.3f}, "
        f"{ci['confidence']:.0%} block-bootstrap CI [{ci['low']:.3f}, {ci['high']:.3f}]."
    )
    (out_dir / "report.md").write_text(
        header
        + f"\n## Validation {validation_prices.index[0].date()}..{validation_prices.index[-1].date()}"
        f"\n\n{table}\n{honesty}\n\n![validation](validation.png)\n{test_section}"
    )
    context.log.info(f"validation report {instrument}: {report['verdict']}. {honesty}")
    metadata = {
        "instrument": instrument,
        "verdict": report["verdict"],
        "validation_sharpe": display.ratio(report["validation_sharpe"]),
        "buy_and_hold_sharpe": display.ratio(report["validation"]["buy_and_hold"]["sharpe"]),
        "train_sharpe": display.ratio(train_perf["sharpe"]),
        "sharpe_gap": display.ratio(report["sharpe_gap"]),
        "deflated_sharpe": display.ratio(dsr["dsr"]),
        "probabilistic_sharpe": display.ratio(psr),
        "sharpe_diff_ci_low": display.ratio(ci["low"]),
        "sharpe_diff_ci_high": display.ratio(ci["high"]),
        "total_return": display.fraction(report["validation"]["policy"]["total_return"]),
        "max_drawdown": display.fraction(report["validation"]["policy"]["max_drawdown"]),
        "gates": dg.MetadataValue.md(gate_md),
        "metrics": dg.MetadataValue.md(table + "\n" + honesty + test_section),
        "picture": dg.MetadataValue.md(plots.markdown_image(b64, "validation")),
        "report_file": dg.MetadataValue.path(str(out_dir / "report.md")),
        "report": dg.MetadataValue.json(report),
    }
    return dg.Output(report, metadata=metadata)
