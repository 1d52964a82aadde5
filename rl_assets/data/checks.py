"""Data-quality checks on prices: pandera schemas as blocking checks, oddities as warnings."""

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa

from rl_assets.data.resources import DEFAULT_DATA_QUALITY, DataQualityResource
from rl_assets.data.schemas import (
    RawPrices,
    TrainPrices,
    ValidationPrices,
    describe_failures,
    failure_summary,
)
from rl_assets.instruments import partitioned_check

SHOWN = 10  # rows listed in check metadata
_QUALITY = {"data_quality": DEFAULT_DATA_QUALITY}


def schema_result(
    model: type[pa.DataFrameModel], df: pd.DataFrame, asset: str
) -> dg.AssetCheckResult:
    """Validate lazily; on failure list every failing rule with counts and the first rows."""
    try:
        model.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        summary = failure_summary(err)
        return dg.AssetCheckResult(
            passed=False,
            description=describe_failures(summary, asset),
            metadata={
                "observed": f"{summary['failure_count']} failing cells",
                "threshold": "0 failing cells",
                "rows": len(df),
                "failing_rules": dg.MetadataValue.json(summary["rules"]),
                "first_failing_rows": dg.MetadataValue.json(summary["first_failing_rows"]),
            },
        )
    return dg.AssetCheckResult(
        passed=True,
        metadata={
            "observed": f"{len(df)} rows valid",
            "threshold": "0 failing cells",
            "rows": len(df),
        },
    )


@partitioned_check(asset="raw_prices", blocking=True)
def raw_prices_schema_valid(raw_prices: pd.DataFrame) -> dg.AssetCheckResult:
    """Every row satisfies the RawPrices schema (lazy: all failures are listed)."""
    return schema_result(RawPrices, raw_prices, "raw_prices")


@partitioned_check(asset="train_prices", blocking=True)
def train_prices_schema_valid(train_prices: pd.DataFrame) -> dg.AssetCheckResult:
    """Every row satisfies the TrainPrices schema, with enough rows for training."""
    return schema_result(TrainPrices, train_prices, "train_prices")


@partitioned_check(asset="validation_prices", blocking=True)
def validation_prices_schema_valid(validation_prices: pd.DataFrame) -> dg.AssetCheckResult:
    """Every row satisfies the ValidationPrices schema, with enough rows for a Sharpe ratio."""
    return schema_result(ValidationPrices, validation_prices, "validation_prices")


@partitioned_check(
    asset="validation_prices",
    blocking=True,
    additional_ins={"train_prices": dg.AssetIn("train_prices")},
)
def validation_prices_after_train(
    validation_prices: pd.DataFrame, train_prices: pd.DataFrame
) -> dg.AssetCheckResult:
    """Validation starts strictly after the last train day: no shared rows, no look-ahead."""
    last_train, first_validation = train_prices.index.max(), validation_prices.index.min()
    shared = train_prices.index.intersection(validation_prices.index)
    passed = bool(first_validation > last_train) and len(shared) == 0
    return dg.AssetCheckResult(
        passed=passed,
        description=None
        if passed
        else (
            f"validation starts {first_validation.date()} but train ends {last_train.date()} "
            f"({len(shared)} shared dates); set validation_start after train_end"
        ),
        metadata={
            "observed": f"train ends {last_train.date()}, validation starts "
            f"{first_validation.date()}",
            "threshold": "validation starts after train ends",
            "shared_dates": len(shared),
        },
    )


def business_day_gaps(index: pd.DatetimeIndex) -> pd.DataFrame:
    """Missing business days between consecutive rows (weekends do not count)."""
    days = index.values.astype("datetime64[D]")
    if len(days) < 2:
        return pd.DataFrame(columns=["after", "before", "missing_business_days"])
    missing = np.busday_count(days[:-1] + np.timedelta64(1, "D"), days[1:])
    return pd.DataFrame(
        {"after": index[:-1].date, "before": index[1:].date, "missing_business_days": missing}
    )


def unchanged_close_runs(close: pd.Series) -> pd.DataFrame:
    """Runs of consecutive days whose close equals the previous close."""
    same = (close.diff() == 0).to_numpy()
    runs, start = [], None
    for i, flag in enumerate([*same, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((close.index[start].date(), close.index[i - 1].date(), i - start))
            start = None
    return pd.DataFrame(runs, columns=["first", "last", "unchanged_days"])


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: str(v) for k, v in row.items()} for row in df.head(SHOWN).to_dict("records")]


@partitioned_check(asset="raw_prices", resource_defs=_QUALITY)
def raw_prices_no_long_gaps(
    data_quality: DataQualityResource, raw_prices: pd.DataFrame
) -> dg.AssetCheckResult:
    """No more than max_gap_business_days business days are missing between two rows (warning)."""
    gaps = business_day_gaps(raw_prices.index)
    threshold = data_quality.max_gap_business_days
    long = gaps[gaps["missing_business_days"] > threshold]
    largest = int(gaps["missing_business_days"].max()) if len(gaps) else 0
    return dg.AssetCheckResult(
        passed=long.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if long.empty
        else (
            f"{len(long)} gap(s) longer than {threshold} business days, the longest "
            f"{largest} days; fill the missing days in the source or accept the gaps "
            "(the env treats the move across a gap as one day's return)"
        ),
        metadata={
            "observed": largest,
            "threshold": threshold,
            "gaps": dg.MetadataValue.json(_records(long)),
        },
    )


@partitioned_check(asset="raw_prices", resource_defs=_QUALITY)
def raw_prices_no_stale_closes(
    data_quality: DataQualityResource, raw_prices: pd.DataFrame
) -> dg.AssetCheckResult:
    """The close does not stay exactly unchanged for more than max_unchanged_closes days (warning)."""
    runs = unchanged_close_runs(raw_prices["close"])
    threshold = data_quality.max_unchanged_closes
    stale = runs[runs["unchanged_days"] > threshold]
    longest = int(runs["unchanged_days"].max()) if len(runs) else 0
    return dg.AssetCheckResult(
        passed=stale.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if stale.empty
        else (
            f"{len(stale)} run(s) of more than {threshold} unchanged closes, the longest "
            f"{longest} days: a stale or forward-filled feed? Check these dates in the source"
        ),
        metadata={
            "observed": longest,
            "threshold": threshold,
            "runs": dg.MetadataValue.json(_records(stale)),
        },
    )


@partitioned_check(asset="raw_prices", resource_defs=_QUALITY)
def raw_prices_no_extreme_moves(
    data_quality: DataQualityResource, raw_prices: pd.DataFrame
) -> dg.AssetCheckResult:
    """No close-to-close move exceeds max_abs_daily_return in size (warning)."""
    moves = raw_prices["close"].pct_change()
    moves = moves[np.isfinite(moves.to_numpy(dtype=float))]
    threshold = data_quality.max_abs_daily_return
    extreme = moves[moves.abs() > threshold]
    largest = float(moves.abs().max()) if len(moves) else 0.0
    table = pd.DataFrame({"date": extreme.index.date, "return": extreme.round(4).to_numpy()})
    return dg.AssetCheckResult(
        passed=extreme.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if extreme.empty
        else (
            f"{len(extreme)} daily move(s) beyond {threshold:.0%}, the largest "
            f"{largest:.1%}: unadjusted splits? use raw_prices price_column adj_close, or "
            "check these dates in the source"
        ),
        metadata={
            "observed": largest,
            "threshold": threshold,
            "moves": dg.MetadataValue.json(_records(table)),
        },
    )
