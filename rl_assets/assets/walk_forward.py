"""Walk-forward evidence: the fold plan, the folds trained in parallel on Ray, their test days, the pooled evidence."""

from typing import Any

import dagster as dg
import pandas as pd

from rl_assets import constants, display, plots, run_guard
from rl_assets.data.versions import content_hash, split_record
from rl_assets.failures import CONFIG, DATA, failure
from rl_assets.instruments import instrument_partitions
from rl_assets.promotion.evidence import (
    evidence_record,
    evidence_sentence,
    evidence_table,
    folds_test_series,
)
from rl_assets.resources import ArtifactStoreResource, GateResource, RayResource
from rl_assets.rl.env import bars
from rl_assets.rl.walk_forward import (
    Fold,
    FoldPlanError,
    folds_table,
    plan_one_fold,
    plan_rolling_folds,
    procedure_digest,
    train_folds,
)


class WalkForwardConfig(dg.Config):
    """How long each fold's test window is, and how many of the most recent folds to keep.

    The folds' train and validation lengths are the deployed candidate's (price_splits). When
    its validation ends at the last bar (the default, rolling layout), test windows of
    ``test_days`` tile the data backwards from the last bar; when it ends earlier (a fixed
    dates layout), there is one fold, the candidate's own windows, tested on every later bar.
    """

    test_days: int = constants.TEST_DAYS
    max_folds: int = 0  # 0: every fold the data holds


def _rows(raw: pd.DataFrame, part: pd.DataFrame) -> tuple[int, int]:
    start = int(raw.index.get_loc(part.index[0]))
    return start, start + len(part)


@dg.asset(partitions_def=instrument_partitions, group_name=constants.EVALUATION_GROUP)
def walk_forward(
    context: dg.AssetExecutionContext,
    config: WalkForwardConfig,
    raw_prices: pd.DataFrame,
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """The split plan: each fold's train, validation and untouched test dates."""
    train, validation = _rows(raw_prices, train_prices), _rows(raw_prices, validation_prices)
    try:
        if validation[1] == len(raw_prices):
            layout = "rolling"
            folds = plan_rolling_folds(
                raw_prices.index,
                train[1] - train[0],
                validation[1] - validation[0],
                config.test_days,
                config.max_folds,
            )
        else:
            layout = "dates"
            folds = plan_one_fold(raw_prices.index, train, validation)
    except FoldPlanError as err:
        raise failure(DATA, f"{context.partition_key}: walk_forward: {err}") from None
    test_days = sum(f.test_days for f in folds)
    plan = {
        "layout": layout,
        "folds": [f.as_dict() for f in folds],
        "test_days": test_days,
        "data_version": content_hash(raw_prices),
        "deploy_splits": {
            "train": split_record(train_prices),
            "validation": split_record(validation_prices),
        },
    }
    context.log.info(
        f"{context.partition_key}: {len(folds)} walk-forward fold(s), {layout} layout, "
        f"{test_days} test days ({test_days / 252:.1f} years)"
    )
    return dg.Output(
        plan,
        metadata={
            "layout": layout,
            "folds": len(folds),
            "test_days": test_days,
            "test_years": round(test_days / 252, 2),
            "plan": dg.MetadataValue.md(folds_table(folds)),
        },
    )


def _plan_folds(plan: dict[str, Any]) -> list[Fold]:
    return [Fold.from_dict(f) for f in plan["folds"]]


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.TRAINING_GROUP,
    kinds={"ray", "pytorch"},
    pool=constants.TRAINING_POOL,
)
def fold_policies(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    ray: RayResource,
    walk_forward: dict[str, Any],
    trained_policy: dict[str, Any],
    raw_prices: pd.DataFrame,
) -> dg.Output[list[dict[str, Any]]]:
    """Every fold trained by the candidate's own procedure, concurrently as Ray tasks."""
    from rl_assets.rl.training import ray_session

    run_guard.ensure(context)
    folds = _plan_folds(walk_forward)
    deploy = walk_forward["deploy_splits"]
    # In the fixed-dates layout the one fold is the candidate itself: same windows, same
    # procedure and seed give the same weights, so it is not trained twice.
    reused = [
        f
        for f in folds
        if f.train_dates == (deploy["train"]["first_date"], deploy["train"]["last_date"])
        and f.validation_dates
        == (deploy["validation"]["first_date"], deploy["validation"]["last_date"])
    ]
    to_train = [f for f in folds if f not in reused]
    results: dict[int, dict[str, Any]] = {
        f.index: {**trained_policy, "fold": f.as_dict(), "reused": "trained_policy"} for f in reused
    }
    if to_train:
        with ray_session(ray.address or None, ray.num_cpus or None) as ray_mode:
            trained = train_folds(
                trained_policy["spec"],
                bars(raw_prices),
                to_train,
                artifacts.run_dir(context.run_id) / "folds",
                data_version=walk_forward["data_version"],
                provenance={"instrument": context.partition_key, "run_id": context.run_id},
                log=context.log.info,
            )
        for f, result in zip(to_train, trained, strict=True):
            results[f.index] = {**result, "ray": ray_mode}
    ordered = [results[f.index] for f in folds]
    spans = [(r["started_at"], r["finished_at"]) for r in ordered if "started_at" in r]
    wall = max(e for _, e in spans) - min(s for s, _ in spans) if spans else 0.0
    busy = sum(e - s for s, e in spans)
    table = "| fold | best iteration | iterations | best validation Sharpe | s | node |\n"
    table += "|---:|---:|---:|---:|---:|---|\n" + "".join(
        f"| {r['fold']['index']} | {r['best_iteration']} | {r['iterations']} | "
        f"{r['best_validation_sharpe']:.3f} | "
        f"{r.get('finished_at', 0) - r.get('started_at', 0):.1f} | "
        f"{r.get('node_id', '')[:8] or r.get('reused', '')} |\n"
        for r in ordered
    )
    return dg.Output(
        ordered,
        metadata={
            "folds": len(ordered),
            "trained": len(to_train),
            "wall_seconds": display.seconds(wall),
            "fold_seconds_total": display.seconds(busy),
            "parallelism": display.ratio(busy / wall) if wall > 0 else 0.0,
            "procedure": procedure_digest(trained_policy["spec"]),
            "folds_table": dg.MetadataValue.md(table),
        },
    )


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.EVALUATION_GROUP,
    kinds={"pytorch"},
)
def fold_test_returns(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    walk_forward: dict[str, Any],
    fold_policies: list[dict[str, Any]],
    raw_prices: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Each fold's checkpoint traded on its untouched test days, under the deployment's costs and execution."""
    from rl_assets.rl.training import load_policy

    cost = gate_thresholds.cost_model()

    def load(fold: Fold, result: dict[str, Any]):
        try:
            return load_policy(artifacts.trusted(result["checkpoint"]))
        except (FileNotFoundError, ValueError) as err:
            raise failure(CONFIG, f"fold {fold.index}: {err}") from None

    series = folds_test_series(
        _plan_folds(walk_forward), fold_policies, bars(raw_prices), raw_prices.index, cost, load
    )
    return dg.Output(
        series,
        metadata={
            "days": len(series),
            "first_date": str(series.index[0].date()),
            "last_date": str(series.index[-1].date()),
            "execution": cost.execution,
            "columns": ", ".join(series.columns),
        },
    )


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.EVALUATION_GROUP,
)
def walk_forward_evidence(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    walk_forward: dict[str, Any],
    fold_test_returns: pd.DataFrame,
    trained_policy: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    """The procedure's pooled out-of-sample evidence: skill over the exposure-matched benchmark on every fold's test days."""
    cost = gate_thresholds.cost_model()
    thresholds = gate_thresholds.thresholds()
    instrument = context.partition_key
    evidence = evidence_record(
        fold_test_returns,
        cost,
        thresholds.min_deflated_sharpe,
        trained_policy["spec"],
        walk_forward["folds"],
        walk_forward["deploy_splits"],
    )
    value = {
        **evidence,
        "instrument": instrument,
        "layout": walk_forward["layout"],
        "data_version": walk_forward["data_version"],
    }
    sentence = evidence_sentence(value)
    b64 = plots.walk_forward_figure(
        fold_test_returns,
        artifacts.run_dir(context.run_id) / "report" / "walk_forward.png",
        title=f"{instrument}: {len(evidence['folds'])} folds out of sample, "
        f"executed at the {cost.execution.replace('_', ' ')}",
    )
    context.log.info(f"{instrument}: {sentence}")
    p = value["pooled"]
    return dg.Output(
        value,
        metadata={
            "instrument": instrument,
            "test_years": round(p["years"], 2),
            "test_days": p["days"],
            "folds": len(evidence["folds"]),
            "skill_sharpe": display.ratio(p["skill_sharpe"]),
            "policy_sharpe": display.ratio(p["policy_sharpe"]),
            "buy_and_hold_sharpe": display.ratio(p["buy_and_hold_sharpe"]),
            # One procedure, before the instrument's other attempts are counted (the report
            # and the gate deflate it by the trial ledger).
            "probabilistic_sharpe": display.ratio(p["dsr"]),
            "years_needed": display.ratio(p["min_track_record_years"]),
            "summary": sentence,
            "evidence": dg.MetadataValue.md(evidence_table(value)),
            "picture": dg.MetadataValue.md(plots.markdown_image(b64, "walk-forward")),
        },
    )
