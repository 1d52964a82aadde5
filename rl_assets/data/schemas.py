"""Pandera models for daily prices: raw data and each split."""

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Index, Series

from rl_assets import constants

PRICES = ("open", "high", "low", "close")


class RawPrices(pa.DataFrameModel):
    """Daily OHLCV bars, one row per trading day, indexed by date: what every stage reads."""

    date: Index[pa.DateTime] = pa.Field(
        unique=True,
        check_name=True,
        description="Trading day (naive, midnight); unique and strictly increasing.",
    )
    open: Series[float] = pa.Field(
        gt=0, nullable=False, description="Opening price; finite and > 0, never missing."
    )
    high: Series[float] = pa.Field(
        gt=0,
        nullable=False,
        description="Day's highest price; finite, > 0 and >= max(open, close).",
    )
    low: Series[float] = pa.Field(
        gt=0,
        nullable=False,
        description="Day's lowest price; finite, > 0 and <= min(open, close).",
    )
    close: Series[float] = pa.Field(
        gt=0,
        nullable=False,
        description=(
            "Closing price (the adjusted close when raw_prices price_column is adj_close); "
            "finite and > 0; its daily change is the return the policy trades."
        ),
    )
    volume: Series[float] = pa.Field(
        ge=0, nullable=False, description="Shares traded; finite and >= 0 (0 when unknown)."
    )

    @pa.check("date", name="dates_strictly_increasing")
    def dates_strictly_increasing(cls, date: pd.Series) -> pd.Series:
        step = pd.Series(date).diff()
        return step.isna() | (step > pd.Timedelta(0))

    @pa.check("open", "high", "low", "close", "volume", name="finite")
    def finite(cls, values: pd.Series) -> pd.Series:
        return pd.Series(np.isfinite(values.to_numpy(dtype=float)), index=values.index)

    # A missing price is reported once, by not_nullable, not again by the checks below.
    @pa.dataframe_check(ignore_na=False, name="high_is_highest")
    def high_is_highest(cls, df: pd.DataFrame) -> pd.Series:
        return (df["high"] >= df[["open", "close"]].max(axis=1)) | df[list(PRICES)].isna().any(
            axis=1
        )

    @pa.dataframe_check(ignore_na=False, name="low_is_lowest")
    def low_is_lowest(cls, df: pd.DataFrame) -> pd.Series:
        return (df["low"] <= df[["open", "close"]].min(axis=1)) | df[list(PRICES)].isna().any(
            axis=1
        )

    class Config:
        strict = True
        coerce = True


class TrainPrices(RawPrices):
    """The train split: the rows the policy learns from, all before validation starts."""

    @pa.dataframe_check(name="at_least_min_train_rows")
    def at_least_min_train_rows(cls, df: pd.DataFrame) -> bool:
        return len(df) >= constants.MIN_TRAIN_ROWS


class ValidationPrices(RawPrices):
    """The validation split: strictly after train; drives early stopping and the gate."""

    @pa.dataframe_check(name="at_least_min_validation_rows")
    def at_least_min_validation_rows(cls, df: pd.DataFrame) -> bool:
        return len(df) >= constants.MIN_VALIDATION_ROWS


def failure_summary(err: pa.errors.SchemaErrors, limit: int = 10) -> dict:
    """Failing rules with counts, and the first failing rows, for check metadata."""
    cases = err.failure_cases.copy()
    # Whole-frame checks report one row per column per bad row: count rows once.
    cases["column"] = cases["column"].where(cases["schema_context"] != "DataFrameSchema", "*")
    cases = cases.drop_duplicates(["check", "column", "index"])
    # Earliest rows first (ISO dates sort as text); rules without a row last.
    order = cases["index"].map(lambda v: (v is None or v != v, _label(v)))
    cases = cases.iloc[sorted(range(len(cases)), key=lambda i: order.iloc[i])]
    by_rule = cases.groupby(["column", "check"], dropna=False).size().reset_index(name="rows")
    rules = [
        {"column": str(r.column), "check": str(r.check), "rows": int(r.rows)}
        for r in by_rule.itertuples()
    ]
    data = getattr(err, "data", None)
    rows = [
        {
            "index": _label(r.index),
            "column": str(r.column),
            "check": str(r.check),
            "value": _row_values(data, r.index) if r.column == "*" else str(r.failure_case),
        }
        for r in cases.head(limit).itertuples()
    ]
    return {"rules": rules, "first_failing_rows": rows, "failure_count": int(len(cases))}


def _row_values(data: object, label: object) -> str:
    """For a whole-row rule, the row's prices (the failing cell alone says little)."""
    if not isinstance(data, pd.DataFrame) or label is None or label not in data.index:
        return ""
    row = data.loc[[label]].iloc[0]
    return ", ".join(f"{c}={row[c]:.6g}" for c in PRICES if c in row.index)


def _label(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else str(value)
    return str(value)


def describe_failures(summary: dict, asset: str) -> str:
    """One line a user can act on: which rules failed, how often, and the first rows."""
    rules = ", ".join(
        f"{r['check']}"
        + ("" if r["column"] == "*" else f" on {r['column']}")
        + f" ({r['rows']} rows)"
        for r in summary["rules"]
    )
    first = "; ".join(
        f"{r['index']} "
        + (f"({r['value']})" if r["column"] == "*" else f"{r['column']}={r['value']}")
        + f": {r['check']}"
        for r in summary["first_failing_rows"][:5]
    )
    return (
        f"{asset} breaks {rules}. First failures: {first}. Fix or remove these rows in the "
        "source file and materialize raw_prices again"
    )
