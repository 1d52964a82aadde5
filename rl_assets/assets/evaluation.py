"""Evaluation: every candidate's report: its procedure's walk-forward evidence, its own validation, its gates."""

import dataclasses
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from rl_assets import constants, display, plots
from rl_assets.instruments import instrument_partitions
from rl_assets.outcomes import REFUSED, tag_outcome
from rl_assets.promotion.evidence import evidence_sentence, evidence_table
from rl_assets.promotion.gate import (
    baseline_spec,
    gates_table,
    judging_spec,
    verdict,
)
from rl_assets.promotion.judging import gather_evidence, judge_candidate, run_origin
from rl_assets.resources import ArtifactStoreResource, GateResource
from rl_assets.rl.env import ACTION_SETS, constant_policy, rollout
from rl_assets.rl.metrics import performance
from rl_assets.rl.stats import bootstrap_sharpe_difference
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
    """Baselines of the candidate's validation section."""

    random_policy_seeds: int = 20
    bootstrap_resamples: int = 2000


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


def attempts_paragraph(measured: Any, thresholds: Any) -> str:
    """The ledger's account and the champion rule, in words, for the report."""
    p = measured.pooled
    if not p or measured.attempts is None:
        return "No trial ledger was consulted."
    universe = measured.universe
    promoted = [n for n, u in universe.items() if u.get("promoted")]
    worst_q = max((universe[n]["q"] for n in promoted), default=0.0)
    # Benjamini-Hochberg: taking every instrument with q <= worst_q as a discovery (the
    # promoted ones among them), the expected share of false ones is at most worst_q.
    discoveries = sum(1 for u in universe.values() if u["q"] <= worst_q)
    return (
        f"This is attempt {measured.attempts} judged for the instrument since its ledger "
        f"began (or was last reset); by the correlation of their test skill returns on "
        f"shared days the attempts are worth {p['trials']:.2f} independent trials, so the "
        f"Deflated Sharpe's benchmark is {p['benchmark_sharpe']:.2f} (the expected best "
        f"skill Sharpe of that many unskilled trials) and every further attempt raises it. "
        f"Across the {len(universe)} instrument(s) judged in the period this candidate's "
        f"Benjamini-Hochberg q-value is {measured.q_value:.3f}; "
        + (
            f"{len(promoted)} passed on their latest attempt; by Benjamini-Hochberg at "
            f"most {worst_q * discoveries:.2f} of the {discoveries} instrument(s) with a "
            f"q-value up to theirs ({worst_q:.3f}) are expected to be false champions. "
            if promoted
            else "none of them passed on its latest attempt. "
        )
        + "The champion rule: a candidate replaces the champion only when its procedure's "
        "daily skill returns beat the champion's on the test days their walk-forward folds "
        f"share at {thresholds.min_confidence_over_champion:.0%} confidence (a paired, "
        "autocorrelation-robust test), unless the champion's monitoring found it decayed."
    )


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
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
    walk_forward_evidence: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    """Every candidate's report: its procedure's out-of-sample evidence, its validation vs baselines and the champion, each gate's verdict."""
    instrument = context.partition_key
    evidence = gather_evidence(
        trained_policy,
        train_prices,
        validation_prices,
        gate_thresholds,
        artifacts,
        instrument,
        walk_forward_evidence,
    )
    measured, gates = judge_candidate(evidence, artifacts.registry(instrument), run_origin(context))
    failed_gates = [g.name for g in gates if not g.passed]
    if failed_gates:  # the verdict is known: the blocking checks will fail this run on it
        tag_outcome(context, REFUSED, failed_gates)
    cost, thresholds = evidence.cost, evidence.thresholds
    # The evidence as the gate judged it: deflated by every attempt in the instrument's ledger.
    walk_forward_evidence = {**walk_forward_evidence, **measured.walk_forward}
    report: dict[str, Any] = {
        "instrument": instrument,
        "checkpoint": trained_policy["checkpoint"],
        "candidate_run_id": trained_policy.get("provenance", {}).get("run_id", context.run_id),
        "gates": [g.as_dict() for g in gates],
        "verdict": verdict(gates),
        "passed": all(g.passed for g in gates),
        "cost_model": dataclasses.asdict(cost),
        "thresholds": dataclasses.asdict(thresholds),
        "walk_forward": {
            k: walk_forward_evidence[k] for k in ("folds", "pooled", "plan", "layout", "execution")
        },
        "attempts": measured.attempts,
        "q_value": measured.q_value,
    }
    out_dir = artifacts.run_dir(context.run_id) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    gate_md = gates_table(gates)
    sentence = evidence_sentence(walk_forward_evidence)
    header = (
        f"# Validation report: {instrument}\n\nCheckpoint: `{trained_policy['checkpoint']}`\n\n"
        f"**Verdict: {report['verdict']}.** Judged under the deployment's cost model "
        f"(transaction cost {cost.transaction_cost}, risk-free rate {cost.risk_free_rate}, "
        f"action set {cost.action_set}), every trade executed at the "
        f"{cost.execution.replace('_', ' ')} after the decision.\n\n## Gates\n\n{gate_md}\n"
        f"\n## The procedure out of sample (walk-forward)\n\n{sentence}\n\n"
        "Each fold trained, early-stopped and chose its checkpoint on its own train and "
        "validation windows, then traded its test window, which none of that saw. Skill is "
        "the return over the exposure-matched benchmark (the fold's mean position held all "
        "along), so a policy that is merely long, flat or short on average shows none.\n\n"
        f"{evidence_table(walk_forward_evidence)}\n![walk-forward](walk_forward.png)\n"
        f"\n## Every attempt counted\n\n{attempts_paragraph(measured, thresholds)}\n"
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
    ci = bootstrap_sharpe_difference(
        policy_returns, val["series"]["buy-and-hold"][0], n_resamples=config.bootstrap_resamples
    )
    report |= {
        "validation": val["metrics"],
        "train": train_perf,
        "train_sharpe": train_perf["sharpe"],
        "validation_sharpe": val["metrics"]["policy"]["sharpe"],
        "sharpe_gap": train_perf["sharpe"] - val["metrics"]["policy"]["sharpe"],
        "sharpe_difference_vs_buy_and_hold": ci,
    }
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
        f"{report['validation_sharpe']:.3f} (gap {report['sharpe_gap']:.3f}). The validation "
        f"window chose this checkpoint among {len(measured.trial_sharpes)} iterations, so its "
        "figures are biased upward: the gate's skill figures come from the walk-forward "
        f"test days above.\n\nSharpe difference vs buy-and-hold: {ci['difference']:.3f}, "
        f"{ci['confidence']:.0%} block-bootstrap CI [{ci['low']:.3f}, {ci['high']:.3f}]."
    )
    (out_dir / "report.md").write_text(
        header + "\n## The candidate to deploy on its own validation window "
        f"{validation_prices.index[0].date()}..{validation_prices.index[-1].date()}"
        f"\n\n{table}\n{honesty}\n\n![validation](validation.png)\n"
    )
    context.log.info(f"validation report {instrument}: {report['verdict']}. {sentence}")
    metadata = {
        "instrument": instrument,
        "verdict": report["verdict"],
        "validation_sharpe": display.ratio(report["validation_sharpe"]),
        "buy_and_hold_sharpe": display.ratio(report["validation"]["buy_and_hold"]["sharpe"]),
        "train_sharpe": display.ratio(train_perf["sharpe"]),
        "sharpe_gap": display.ratio(report["sharpe_gap"]),
        "deflated_sharpe": display.ratio(walk_forward_evidence["pooled"]["dsr"]),
        "test_years": round(walk_forward_evidence["pooled"]["years"], 2),
        "test_skill_sharpe": display.ratio(walk_forward_evidence["pooled"]["skill_sharpe"]),
        "walk_forward": sentence,
        "sharpe_diff_ci_low": display.ratio(ci["low"]),
        "sharpe_diff_ci_high": display.ratio(ci["high"]),
        "total_return": display.fraction(report["validation"]["policy"]["total_return"]),
        "max_drawdown": display.fraction(report["validation"]["policy"]["max_drawdown"]),
        "gates": dg.MetadataValue.md(gate_md),
        "evidence": dg.MetadataValue.md(evidence_table(walk_forward_evidence)),
        "metrics": dg.MetadataValue.md(table + "\n" + honesty),
        "picture": dg.MetadataValue.md(plots.markdown_image(b64, "validation")),
        "report_file": dg.MetadataValue.path(str(out_dir / "report.md")),
        "report": dg.MetadataValue.json(report),
    }
    return dg.Output(report, metadata=metadata)
