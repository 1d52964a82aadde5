"""Pandera quality gates: value rules fail a blocking check on raw_prices and stop the graph."""

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from rl_assets import constants
from rl_assets.data.checks import business_day_gaps, schema_result, unchanged_close_runs
from rl_assets.data.schemas import RawPrices, TrainPrices, ValidationPrices, failure_summary
from rl_assets.data.sources import PRICES_FILE_ENV_VAR
from rl_assets.data.synthetic import generate_prices
from rl_assets_tests.conftest import materialize_instrument

DOWNSTREAM = {"episodes_per_iteration", "trained_policy", "validation_report", "promoted_policy"}


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_prices("2019-01-01", "2023-12-31", seed=7)


@pytest.fixture(autouse=True)
def _no_prices_env(monkeypatch):
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)


def failures(model: type[pa.DataFrameModel], df: pd.DataFrame) -> dict:
    with pytest.raises(pa.errors.SchemaErrors) as info:
        model.validate(df, lazy=True)
    return failure_summary(info.value)


def rules(summary: dict) -> dict[tuple[str, str], int]:
    return {(r["column"], r["check"]): r["rows"] for r in summary["rules"]}


# The models ----------------------------------------------------------------------------


def test_every_column_is_described():
    schema = RawPrices.to_schema()
    assert schema.index.description
    for name in ("open", "high", "low", "close", "volume"):
        assert schema.columns[name].description, name


def test_generated_prices_satisfy_every_model(bars):
    RawPrices.validate(bars, lazy=True)
    TrainPrices.validate(bars.iloc[: constants.MIN_TRAIN_ROWS], lazy=True)
    ValidationPrices.validate(bars.iloc[-constants.MIN_VALIDATION_ROWS :], lazy=True)


def test_lazy_validation_lists_every_broken_rule_with_counts(bars):
    bad = bars.iloc[:50].copy()
    bad.iloc[3, bad.columns.get_loc("open")] = np.nan
    bad.iloc[5, bad.columns.get_loc("close")] = -1.0
    bad.iloc[6, bad.columns.get_loc("close")] = 0.0
    bad.iloc[7, bad.columns.get_loc("high")] = np.inf
    bad.iloc[8, bad.columns.get_loc("volume")] = -5.0
    bad.iloc[9, bad.columns.get_loc("high")] = bad["low"].iloc[9] * 0.5  # below open/close
    bad.iloc[10, bad.columns.get_loc("low")] = bad["high"].iloc[10] * 1.5  # above open/close
    summary = failures(RawPrices, bad)
    assert rules(summary) == {
        ("open", "not_nullable"): 1,
        ("close", "greater_than(0)"): 2,
        ("high", "finite"): 1,
        ("volume", "greater_than_or_equal_to(0)"): 1,
        ("*", "high_is_highest"): 1,  # row 9
        ("*", "low_is_lowest"): 3,  # rows 5 and 6 (close below low) and row 10
    }
    first = summary["first_failing_rows"][0]
    assert first == {
        "index": str(bars.index[3].date()),
        "column": "open",
        "check": "not_nullable",
        "value": "nan",
    }


def test_duplicate_and_unsorted_dates(bars):
    bad = bars.iloc[:20]
    bad = pd.concat([bad.iloc[:10], bad.iloc[[4]], bad.iloc[12:], bad.iloc[[11]]])
    found = rules(failures(RawPrices, bad))
    assert found[("date", "field_uniqueness")] == 1
    assert found[("date", "dates_strictly_increasing")] == 2  # the repeat and the late row


def test_index_must_be_named_date(bars):
    assert ("date", "field_name('date')") in rules(failures(RawPrices, bars.rename_axis("day")))


def test_split_models_require_enough_rows(bars):
    found = rules(failures(TrainPrices, bars.iloc[: constants.MIN_TRAIN_ROWS - 1]))
    assert found == {("*", "at_least_min_train_rows"): 1}
    found = rules(failures(ValidationPrices, bars.iloc[:3]))
    assert found == {("*", "at_least_min_validation_rows"): 1}


def test_schema_result_describes_failures_for_the_ui(bars):
    bad = bars.iloc[:30].copy()
    bad.iloc[4, bad.columns.get_loc("close")] = -2.0
    result = schema_result(RawPrices, bad, "raw_prices")
    assert not result.passed
    assert f"{bars.index[4].date()} close=-2.0: greater_than(0)" in result.description
    assert "Fix or remove these rows in the source file" in result.description
    assert result.metadata["failing_rules"].value[0]["check"] in {
        "greater_than(0)",
        "high_is_highest",
        "low_is_lowest",
    }
    assert schema_result(RawPrices, bars, "raw_prices").passed


# The checks inside a run ----------------------------------------------------------------


def yahoo_csv(tmp_path, df: pd.DataFrame) -> str:
    out = df.rename(columns=str.title).rename_axis("Date")
    out.insert(4, "Adj Close", out["Close"])
    path = tmp_path / "prices.csv"
    out.to_csv(path)
    return str(path)


def run(tmp_path, path: str, selection=None, resources_config=None) -> dg.ExecuteInProcessResult:
    run_config: dict = {"ops": {"raw_prices": {"config": {"source_path": path}}}}
    if resources_config:
        run_config["resources"] = resources_config
    return materialize_instrument(tmp_path / "a", run_config, "SPY", selection=selection)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def evaluation(result: dg.ExecuteInProcessResult, name: str):
    (found,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return found


def nan_close(df):
    df.iloc[100, df.columns.get_loc("close")] = np.nan


def zero_close(df):
    df.iloc[100, df.columns.get_loc("close")] = 0.0


def negative_open(df):
    df.iloc[100, df.columns.get_loc("open")] = -3.0


def high_below_close(df):
    df.iloc[100, df.columns.get_loc("high")] = df["close"].iloc[100] * 0.9


def negative_volume(df):
    df.iloc[100, df.columns.get_loc("volume")] = -1.0


@pytest.mark.parametrize(
    ("corrupt", "rule", "column"),
    [
        (nan_close, "not_nullable", "close"),
        (zero_close, "greater_than(0)", "close"),
        (negative_open, "greater_than(0)", "open"),
        (high_below_close, "high_is_highest", "*"),
        (negative_volume, "greater_than_or_equal_to(0)", "volume"),
    ],
)
def test_value_rule_fails_the_blocking_check_and_stops_the_graph(
    tmp_path, bars, corrupt, rule, column
):
    df = bars.copy()
    corrupt(df)
    result = run(tmp_path, yahoo_csv(tmp_path, df))
    assert not result.success
    check = evaluation(result, "raw_prices_schema_valid")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    failing = check.metadata["failing_rules"].value
    assert {"column": column, "check": rule, "rows": 1} in failing
    first = check.metadata["first_failing_rows"].value[0]
    assert first["index"] == str(bars.index[100].date())
    assert check.description.startswith("raw_prices breaks ") and rule in check.description
    # raw_prices itself is recorded; nothing after it runs, so nothing is trained or promoted.
    assert materialized(result) == {"raw_prices"}
    assert not (tmp_path / "a" / "registry").exists()


def test_duplicate_dates_fail_the_blocking_check(tmp_path, bars):
    df = pd.concat([bars.iloc[:300], bars.iloc[[150]], bars.iloc[300:]])
    result = run(
        tmp_path,
        yahoo_csv(tmp_path, df),
        selection=["raw_prices", "train_prices", "validation_prices"],
    )
    check = evaluation(result, "raw_prices_schema_valid")
    assert not check.passed
    assert {"column": "date", "check": "field_uniqueness", "rows": 1} in check.metadata[
        "failing_rules"
    ].value
    assert str(bars.index[150].date()) in check.description
    assert materialized(result) == {"raw_prices"}


def test_yahoo_null_rows_are_missing_prices(tmp_path, bars):
    """Yahoo exports write 'null' in every field of a day without data."""
    path = tmp_path / "nulls.csv"
    yahoo_csv(tmp_path, bars)
    lines = (tmp_path / "prices.csv").read_text().splitlines()
    date = lines[51].split(",")[0]
    lines[51] = ",".join([date] + ["null"] * 6)
    path.write_text("\n".join(lines) + "\n")
    result = run(tmp_path, str(path), selection=["raw_prices"])
    check = evaluation(result, "raw_prices_schema_valid")
    assert not check.passed
    missing = {r["column"] for r in check.metadata["failing_rules"].value}
    assert missing == {"open", "high", "low", "close", "volume"}
    assert check.metadata["first_failing_rows"].value[0]["index"] == date


def test_clean_data_passes_every_data_check(tmp_path, bars):
    result = run(
        tmp_path,
        yahoo_csv(tmp_path, bars),
        selection=["raw_prices", "train_prices", "validation_prices"],
    )
    assert result.success
    passed = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert passed == {
        "raw_prices_schema_valid": True,
        "raw_prices_no_long_gaps": True,
        "raw_prices_no_stale_closes": True,
        "raw_prices_no_extreme_moves": True,
        "train_prices_schema_valid": True,
        "validation_prices_schema_valid": True,
        "validation_prices_after_train": True,
    }


# Warnings: reported, never blocking ----------------------------------------------------


def test_gap_stale_run_and_extreme_move_warn_without_blocking(tmp_path, bars):
    df = bars.drop(bars.index[200:210])  # ten business days missing
    df.iloc[400:408, df.columns.get_loc("close")] = df["close"].iloc[399]  # 8 unchanged days
    df.iloc[400:408, df.columns.get_loc("open")] = df["close"].iloc[399]
    df.iloc[400:408, df.columns.get_loc("high")] = df["close"].iloc[399] * 1.001
    df.iloc[400:408, df.columns.get_loc("low")] = df["close"].iloc[399] * 0.999
    df.iloc[600:] = df.iloc[600:] * np.array([0.5, 0.5, 0.5, 0.5, 1.0])  # unadjusted 2:1 split
    result = run(
        tmp_path,
        yahoo_csv(tmp_path, df),
        selection=["raw_prices", "train_prices", "validation_prices"],
    )
    assert result.success  # warnings do not stop the run
    assert {"train_prices", "validation_prices"} <= materialized(result)
    gaps = evaluation(result, "raw_prices_no_long_gaps")
    assert not gaps.passed and gaps.severity == dg.AssetCheckSeverity.WARN
    assert gaps.metadata["observed"].value == 10
    assert gaps.metadata["gaps"].value[0]["after"] == str(bars.index[199].date())
    stale = evaluation(result, "raw_prices_no_stale_closes")
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert stale.metadata["observed"].value == 8
    moves = evaluation(result, "raw_prices_no_extreme_moves")
    assert not moves.passed and moves.severity == dg.AssetCheckSeverity.WARN
    assert moves.metadata["moves"].value[0]["date"] == str(df.index[600].date())
    assert "price_column adj_close" in moves.description
    assert evaluation(result, "raw_prices_schema_valid").passed


def test_warning_thresholds_come_from_run_config(tmp_path, bars):
    df = bars.drop(bars.index[200:210])
    loose = {"data_quality": {"config": {"max_gap_business_days": 10}}}
    result = run(tmp_path, yahoo_csv(tmp_path, df), ["raw_prices"], resources_config=loose)
    check = evaluation(result, "raw_prices_no_long_gaps")
    assert check.passed and check.metadata["threshold"].value == 10


def test_gap_and_run_helpers(bars):
    index = pd.DatetimeIndex(["2024-01-05", "2024-01-08", "2024-01-12"])  # Fri, Mon, Fri
    assert business_day_gaps(index)["missing_business_days"].tolist() == [0, 3]
    close = pd.Series([1.0, 1.0, 1.0, 2.0, 2.0, 3.0], index=bars.index[:6])
    runs = unchanged_close_runs(close)
    assert runs["unchanged_days"].tolist() == [2, 1]
    assert runs["first"].iloc[0] == bars.index[1].date()
