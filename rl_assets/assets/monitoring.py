"""Watching the champion after promotion: a CUSUM of its skill returns on every bar after the data it was promoted on."""

import math
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from rl_assets import constants, display, plots
from rl_assets.data.versions import content_hash
from rl_assets.deployment import FALSE_ALARM_RATE, MIN_LIVE_DAYS
from rl_assets.failures import DATA, INTEGRITY, NO_CHAMPION, failure
from rl_assets.instruments import instrument_partitions, partitioned_check
from rl_assets.promotion.gate import CostModel, judging_spec
from rl_assets.registry import ChampionUnusable
from rl_assets.resources import ArtifactStoreResource, GateResource
from rl_assets.rl.env import bars
from rl_assets.rl.metrics import performance
from rl_assets.rl.sequential import NO_EDGE, cusum_monitor, skill_at_exposure
from rl_assets.rl.training import load_policy
from rl_assets.rl.walk_forward import Fold, fold_test_series


class MonitoringConfig(dg.Config):
    """Not set by a run: how often a champion whose edge persists may be flagged in a year
    ($RL_ASSETS_MONITORING_FALSE_ALARM_RATE_PER_YEAR) and how many live days the first flag
    needs ($RL_ASSETS_MONITORING_MIN_LIVE_DAYS) are the deployment's. A decayed champion is
    skipped by the next candidate's comparison, so a run could abuse either direction; a
    value here stops the run, naming the variable."""

    false_alarm_rate_per_year: float | None = None
    min_live_days: int | None = None


def promoted_through(champion: dict[str, Any]) -> pd.Timestamp:
    """The last date of the data the champion was promoted on (records written before
    ``data_through`` existed: the last day of its validation window)."""
    through = champion.get("data_through") or (
        champion.get("splits", {}).get("validation", {}).get("last_date")
    )
    if not through:
        raise failure(
            DATA,
            f"champion {champion['version']} records neither data_through nor its validation "
            "window (promoted before either was recorded): promote a new candidate",
        )
    return pd.Timestamp(through)


def span_series(policy, prices: pd.DataFrame, span: tuple[int, int], spec, cost: CostModel):
    """The policy traded on the rows ``span`` of ``prices`` as ``fold_test_series`` trades a
    fold's test days (the bars before it as history, the deployment's costs, execution and
    risk-free rate): a test-only fold."""
    dates = prices.index
    days = (str(dates[span[0]].date()), str(dates[span[1] - 1].date()))
    fold = Fold(-1, (0, 0), (0, 0), span, ("", ""), ("", ""), days)
    return fold_test_series(
        policy, bars(prices), dates, fold, spec.env_config(), spec.window, cost.risk_free_rate
    )


def evidence_skill_returns(
    champion, policy, prices, spec, cost, exposure
) -> tuple[np.ndarray, str]:
    """The champion's pooled walk-forward test skill returns, as promoted; records written
    before they were kept: the champion's own validation window, at the same fixed exposure."""
    kept = (champion.get("skill_returns") or {}).get("values")
    if kept:
        return np.asarray(kept, dtype=np.float64), "pooled walk-forward test days"
    window = champion.get("splits", {}).get("validation", {})
    if not window.get("first_date") or not window.get("last_date"):
        raise failure(
            DATA,
            f"champion {champion['version']} records neither its skill returns nor its "
            "validation window: promote a new candidate",
        )
    index = prices.index
    span = (
        int(index.searchsorted(pd.Timestamp(window["first_date"]))),
        int(index.searchsorted(pd.Timestamp(window["last_date"]), side="right")),
    )
    series = span_series(policy, prices, span, spec, cost)
    skill = skill_at_exposure(
        series["policy_returns"], series["unit_returns"], exposure, cost.risk_free_rate
    )
    return skill, "validation window (the record keeps no pooled skill returns)"


def verdict_reason(monitor: dict[str, Any], pooled: dict[str, Any], through: str | None) -> str:
    """The monitor's result in one sentence."""
    days, m = monitor["days"], monitor["expected_sharpe"]
    live = monitor["live_skill_sharpe"]
    if not monitor["edge"]:
        return (
            f"{NO_EDGE}: expected skill Sharpe {m:.2f} (pooled {pooled['skill_sharpe']:.2f} "
            f"less the selection benchmark {pooled.get('benchmark_sharpe', 0.0):.2f}), so there "
            "is no edge to lose and nothing to flag"
        )
    if monitor["alarm"]:
        return (
            f"CUSUM of the skill returns crossed h = {monitor['h']:.2f} on "
            f"{monitor['first_alarm_date']} after {monitor['first_alarm_day']} live days (live "
            f"skill Sharpe {live:.2f} over {days} days against {m:.2f} expected): the edge has "
            "decayed"
        )
    if days < monitor["min_live_days"]:
        return (
            f"{days} live days: too few to raise an alarm (needs {monitor['min_live_days']}); "
            f"CUSUM {monitor['statistic']:.2f}, h = {monitor['h']:.2f}"
        )
    return (
        f"CUSUM of the skill returns stayed below h = {monitor['h']:.2f} (now "
        f"{monitor['statistic']:.2f}, highest {monitor['statistic_max']:.2f}) over {days} live "
        f"days through {through}: live skill Sharpe {live:.2f} against {m:.2f} expected, no "
        f"sign the edge has stopped ({monitor['false_alarm_rate_per_year']:.0%} false alarms "
        "a year)"
    )


def _round(value: float | None) -> float | None:
    return None if value is None else display.ratio(value)


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.MONITORING_GROUP,
    deps=["promoted_policy"],
    kinds={"pytorch"},
    code_version="2",
)
def champion_performance(
    context: dg.AssetExecutionContext,
    config: MonitoringConfig,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    raw_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """The champion's skill returns on every bar after the data it was promoted on, net of the gate's costs, watched by a CUSUM for the edge stopping."""
    instrument = context.partition_key
    where = "ops.champion_performance.config"
    false_alarm_rate = FALSE_ALARM_RATE.for_run(config.false_alarm_rate_per_year, where)
    min_live_days = int(MIN_LIVE_DAYS.for_run(config.min_live_days, where))
    registry = artifacts.registry(instrument)
    champion = registry.champion()
    if champion is None:
        raise failure(NO_CHAMPION, f"{instrument} has no champion yet: nothing to watch")
    pooled = champion.get("walk_forward", {}).get("pooled")
    if not pooled:
        raise failure(
            DATA,
            f"{instrument}: champion {champion['version']} records no walk-forward evidence "
            "(promoted before the gate judged the procedure): promote a new candidate",
        )
    data_through = promoted_through(champion)
    prices = raw_prices[["open", "close"]]
    start, stop = int(prices.index.searchsorted(data_through, side="right")), len(prices)
    cost = gate_thresholds.cost_model()
    spec = judging_spec(champion["spec"], cost)
    try:
        folder = registry.verified(champion)
    except ChampionUnusable as err:
        raise failure(INTEGRITY, str(err)) from None
    policy = load_policy(artifacts.trusted(folder))
    # A fixed exposure, known at promotion: the live benchmark uses no later position.
    exposure = float(pooled["exposure"])
    evidence, evidence_basis = evidence_skill_returns(
        champion, policy, prices, spec, cost, exposure
    )
    live = span_series(policy, prices, (start, stop), spec, cost) if stop > start else None
    skill = (
        skill_at_exposure(
            live["policy_returns"], live["unit_returns"], exposure, cost.risk_free_rate
        )
        if live is not None
        else np.zeros(0)
    )
    dates = prices.index[start:stop]
    monitor = cusum_monitor(
        skill,
        evidence,
        float(pooled["skill_sharpe"]) - float(pooled.get("benchmark_sharpe", 0.0)),
        float(pooled["skill_sharpe_se"]),
        false_alarm_rate,
        min_live_days,
        dates=dates,
        paths=constants.CUSUM_CALIBRATION_PATHS,
        seed=constants.CUSUM_CALIBRATION_SEED,
    )
    days = monitor["days"]
    since = str(dates[0].date()) if days else None
    through = str(dates[-1].date()) if days else None
    reason = verdict_reason(monitor, pooled, through)
    decayed = bool(monitor["alarm"])
    data_version = content_hash(raw_prices)
    perf = (
        performance(
            live["policy_returns"].to_numpy(), live["position"].to_numpy(), cost.risk_free_rate
        )
        if days
        else {}
    )
    path = monitor.pop("statistic_path")
    value = {
        "instrument": instrument,
        "champion_version": champion["version"],
        "data_version": data_version,
        "data_through": str(data_through.date()),
        "since": since,
        "through": through,
        "days": days,
        "exposure": exposure,
        "evidence_basis": evidence_basis,
        "decayed": decayed,
        "reason": reason,
        "monitor": monitor,
        "performance": perf,
    }
    registry.record_monitoring(
        {
            "champion_version": champion["version"],
            "decayed": decayed,
            "through": through,
            "data_version": data_version,
            "data_through": value["data_through"],
            "days": days,
            "first_alarm_date": monitor["first_alarm_date"],
            "statistic": monitor["statistic"],
            "h": monitor["h"],
            "expected_skill_sharpe": monitor["expected_sharpe"],
            "live_skill_sharpe": monitor["live_skill_sharpe"],
            "false_alarm_rate_per_year": monitor["false_alarm_rate_per_year"],
            "reason": reason,
        }
    )
    metadata: dict[str, Any] = {
        "instrument": instrument,
        "champion_version": champion["version"],
        "data_version": data_version,
        "data_through": value["data_through"],
        "since": since,
        "through": through,
        "days": days,
        "live_sharpe": display.ratio(perf["sharpe"]) if days else None,
        "live_skill_sharpe": display.ratio(monitor["live_skill_sharpe"]),
        "expected_skill_sharpe": display.ratio(monitor["expected_sharpe"]),
        "cusum": display.ratio(monitor["statistic"]),
        "cusum_max": display.ratio(monitor["statistic_max"]),
        "h": _round(monitor["h"]),
        "first_alarm_date": monitor["first_alarm_date"],
        "false_alarm_rate_per_year": monitor["false_alarm_rate_per_year"],
        "decayed": decayed,
        "reason": reason,
        "result": dg.MetadataValue.json(value),
    }
    if days:
        metadata |= {
            "total_return": display.fraction(perf["total_return"]),
            "max_drawdown": display.fraction(perf["max_drawdown"]),
        }
    if days and monitor["edge"]:
        b64 = plots.cusum_figure(
            dates,
            skill,
            monitor["expected_daily"] * monitor["noise_sd"],
            np.asarray(path),
            monitor["h"],
            monitor["first_alarm_day"],
            min_live_days,
            artifacts.run_dir(context.run_id) / "monitoring.png",
        )
        metadata["picture"] = dg.MetadataValue.md(plots.markdown_image(b64, "since promotion"))
    context.log.info(f"{instrument}: champion {champion['version']}: {reason}")
    return dg.Output(value, metadata=metadata)


DECAY_CHECK = "champion_performance_within_expected_band"


@partitioned_check(asset="champion_performance", name=DECAY_CHECK)
def champion_performance_within_expected_band(
    champion_performance: dict[str, Any],
) -> dg.AssetCheckResult:
    """The CUSUM of the champion's live skill returns has not crossed its threshold: its edge has not stopped (warning)."""
    monitor = champion_performance["monitor"]
    observed, h = monitor["statistic_max"], monitor["h"]
    return dg.AssetCheckResult(
        passed=not champion_performance["decayed"],
        severity=dg.AssetCheckSeverity.WARN,
        description=champion_performance["reason"],
        metadata={
            "observed": display.ratio(observed) if math.isfinite(observed) else None,
            "threshold": _round(h),
            "reason": champion_performance["reason"],
            "days": champion_performance["days"],
            "through": champion_performance["through"],
            "first_alarm_date": monitor["first_alarm_date"],
            "champion_version": champion_performance["champion_version"],
            "data_version": champion_performance["data_version"],
        },
    )
