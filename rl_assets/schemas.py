"""Pandera models for daily prices: raw data and each split."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Index, Series


class RawPrices(pa.DataFrameModel):
    """Daily OHLCV bars, one row per trading day, indexed by date."""

    date: Index[pa.DateTime] = pa.Field(
        unique=True, description="Trading day; unique and strictly increasing."
    )
    open: Series[float] = pa.Field(gt=0, nullable=False, description="Opening price, > 0.")
    high: Series[float] = pa.Field(
        gt=0, nullable=False, description="Day's high, >= open and close."
    )
    low: Series[float] = pa.Field(gt=0, nullable=False, description="Day's low, <= open and close.")
    close: Series[float] = pa.Field(
        gt=0, nullable=False, description="Closing price, > 0; drives returns."
    )
    volume: Series[float] = pa.Field(ge=0, nullable=False, description="Shares traded, >= 0.")

    @pa.dataframe_check(ignore_na=False)
    def dates_strictly_increasing(cls, df: pd.DataFrame) -> bool:
        return bool(df.index.is_monotonic_increasing and df.index.is_unique)

    @pa.dataframe_check(ignore_na=False)
    def high_is_highest(cls, df: pd.DataFrame) -> pd.Series:
        return df["high"] >= df[["open", "close"]].max(axis=1)

    @pa.dataframe_check(ignore_na=False)
    def low_is_lowest(cls, df: pd.DataFrame) -> pd.Series:
        return df["low"] <= df[["open", "close"]].min(axis=1)

    class Config:
        strict = True
        coerce = True


class TrainPrices(RawPrices):
    """The train split: the rows the policy learns from."""


class ValidationPrices(RawPrices):
    """The validation split: strictly after train; drives early stopping and the gate."""


def failure_summary(err: pa.errors.SchemaErrors, limit: int = 10) -> dict:
    """Failing rules with counts, and the first failing rows, for check metadata."""
    cases = err.failure_cases.copy()
    # Whole-frame checks report one row per column per bad row: count rows once.
    cases["column"] = cases["column"].where(cases["schema_context"] != "DataFrameSchema", "*")
    cases = cases.drop_duplicates(["check", "column", "index"])
    by_rule = cases.groupby(["column", "check"], dropna=False).size().reset_index(name="rows")
    rules = [
        {"column": str(r.column), "check": str(r.check), "rows": int(r.rows)}
        for r in by_rule.itertuples()
    ]
    rows = [
        {
            "index": str(r.index),
            "column": str(r.column),
            "check": str(r.check),
            "value": str(r.failure_case),
        }
        for r in cases.head(limit).itertuples()
    ]
    return {"rules": rules, "first_failing_rows": rows, "failure_count": int(len(cases))}
