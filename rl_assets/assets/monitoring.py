"""Watching the champion after promotion: paper trading on every bar after its validation window."""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from rl_assets import constants, display, plots
from rl_assets.data.versions import content_hash
from rl_assets.failures import DATA, NO_CHAMPION, failure
from rl_assets.instruments import instrument_partitions, partitioned_check
from rl_assets.promotion.gate import judging_spec
from rl_assets.resources import ArtifactStoreResource, GateResource
from rl_assets.rl.env import bars
from rl_assets.rl.metrics import performance
from rl_assets.rl.stats import sharpe_decay_test
from rl_assets.rl.training import evaluate, load_policy, with_history


class MonitoringConfig(dg.Config):
    """How sure the decay check must be, and how many live days it needs to say anything."""

    confidence: float = constants.DECAY_CONFIDENCE
    min_live_days: int = constants.MIN_LIVE_DAYS


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.MONITORING_GROUP,
    deps=["promoted_policy"],
    kinds={"pytorch"},
    code_version="1",
)
def champion_performance(
    context: dg.AssetExecutionContext,
    config: MonitoringConfig,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    raw_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """The champion's realised result on every bar after its validation window, net of costs, against the band its validation implied."""
    instrument = context.partition_key
    champion = artifacts.registry(instrument).champion()
    if champion is None:
        raise failure(NO_CHAMPION, f"{instrument} has no champion yet: nothing to watch")
    window = champion.get("splits", {}).get("validation", {})
    if not window.get("first_date") or not window.get("last_date"):
        raise failure(
            DATA,
            f"{instrument}: champion {champion['version']} does not record its validation "
            "window (promoted before windows were recorded); promote a new candidate",
        )
    first, last = pd.Timestamp(window["first_date"]), pd.Timestamp(window["last_date"])
    prices = raw_prices[["open", "close"]]
    before = bars(prices.loc[: first - pd.Timedelta(days=1)])
    validation = bars(prices.loc[first:last])
    after = prices.loc[last + pd.Timedelta(days=1) :]
    spec = judging_spec(champion["spec"], gate_thresholds.cost_model())
    policy = load_policy(artifacts.trusted(champion["checkpoint"]))
    val = evaluate(policy, with_history(before, validation, spec.window), spec)
    if len(after):
        history = np.concatenate([before, validation])
        live = evaluate(policy, with_history(history, bars(after), spec.window), spec)
    else:
        live = {"returns": np.zeros(0), "positions": np.zeros(0), "sharpe": 0.0}
    test = sharpe_decay_test(
        live["returns"], val["returns"], config.confidence, len(champion.get("trial_sharpes", []))
    )
    days = len(live["returns"])
    enough = days >= config.min_live_days
    decayed = bool(enough and test["decayed"])
    perf = performance(live["returns"], live["positions"], spec.risk_free_rate) if days else {}
    data_version = content_hash(raw_prices)
    value = {
        "instrument": instrument,
        "champion_version": champion["version"],
        "data_version": data_version,
        "since": str(after.index[0].date()) if days else None,
        "through": str(after.index[-1].date()) if days else None,
        "days": days,
        "enough_days": enough,
        "decayed": decayed,
        "test": test,
        "performance": perf,
    }
    metadata: dict[str, Any] = {
        "instrument": instrument,
        "champion_version": champion["version"],
        "days": days,
        "live_sharpe": display.ratio(test["live_sharpe"]),
        "validation_sharpe": display.ratio(test["validation_sharpe"]),
        "expected_sharpe": display.ratio(test["expected_sharpe"]),
        "lower_bound": display.ratio(test["lower_bound"]),
        "decayed": decayed,
        "data_version": data_version,
        "result": dg.MetadataValue.json(value),
    }
    if days:
        metadata |= {
            "total_return": display.fraction(perf["total_return"]),
            "max_drawdown": display.fraction(perf["max_drawdown"]),
        }
        out = artifacts.run_dir(context.run_id) / "monitoring.png"
        from scipy import stats

        b64 = plots.champion_figure(
            after.index,
            live["returns"],
            float(np.mean(np.log1p(val["returns"]))),
            float(np.std(np.log1p(val["returns"]), ddof=1)),
            float(stats.norm.ppf(config.confidence)),
            out,
        )
        metadata["picture"] = dg.MetadataValue.md(plots.markdown_image(b64, "since validation"))
    context.log.info(
        f"{instrument}: champion {champion['version']} over {days} live days: Sharpe "
        f"{test['live_sharpe']:.3f} vs validation {test['validation_sharpe']:.3f} (lower bound "
        f"{test['lower_bound']:.3f}){'; DECAYED' if decayed else ''}"
    )
    return dg.Output(value, metadata=metadata)


DECAY_CHECK = "champion_performance_within_expected_band"


@partitioned_check(asset="champion_performance", name=DECAY_CHECK)
def champion_performance_within_expected_band(
    champion_performance: dict[str, Any],
) -> dg.AssetCheckResult:
    """The champion's live Sharpe is not significantly below its validation Sharpe (warning)."""
    test, days = champion_performance["test"], champion_performance["days"]
    if not champion_performance["enough_days"]:
        reason = f"{days} live days: too few to tell (needs {constants.MIN_LIVE_DAYS})"
    elif champion_performance["decayed"]:
        reason = (
            f"live Sharpe {test['live_sharpe']:.3f} over {days} days is below "
            f"{test['lower_bound']:.3f}, the lower bound its validation Sharpe "
            f"{test['validation_sharpe']:.3f} implies (expected {test['expected_sharpe']:.3f} "
            f"after selection; z {test['z']:.2f}): the edge has decayed"
        )
    else:
        reason = "within the band its validation implied"
    return dg.AssetCheckResult(
        passed=not champion_performance["decayed"],
        severity=dg.AssetCheckSeverity.WARN,
        description=reason,
        metadata={
            "observed": round(test["live_sharpe"], 3),
            "threshold": round(test["lower_bound"], 3),
            "reason": reason,
            "days": days,
            "champion_version": champion_performance["champion_version"],
            "data_version": champion_performance["data_version"],
        },
    )
