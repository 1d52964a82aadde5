"""Reading users' price files: accepted layouts, and a clear error for each unreadable input."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rl_assets.assets.prices import RawPricesConfig, content_hash, raw_prices
from rl_assets.data.schemas import RawPrices
from rl_assets.data.sources import PRICES_FILE_ENV_VAR, PriceSourceError, load_prices
from rl_assets.data.synthetic import generate_prices
from rl_assets_tests.conftest import materialize_instrument

YAHOO_COLUMNS = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_prices("2021-01-01", "2021-06-30", seed=3)


def yahoo(bars: pd.DataFrame, adj_factor: float | np.ndarray = 0.95) -> pd.DataFrame:
    """A Yahoo Finance download: Date,Open,High,Low,Close,Adj Close,Volume."""
    out = bars.rename(columns=str.title).reset_index(names="Date")
    out["Date"] = out["Date"].dt.strftime("%Y-%m-%d")
    out["Adj Close"] = bars["close"].to_numpy() * adj_factor
    return out[YAHOO_COLUMNS]


def write_csv(tmp_path, df: pd.DataFrame, name: str = "prices.csv", **kwargs):
    path = tmp_path / name
    df.to_csv(path, index=False, **kwargs)
    return path


def error_of(path, **kwargs) -> str:
    with pytest.raises(PriceSourceError) as info:
        load_prices(path, **kwargs)
    return str(info.value)


# Accepted layouts ---------------------------------------------------------------------


def test_yahoo_csv_round_trips_exactly(tmp_path, bars):
    loaded = load_prices(write_csv(tmp_path, yahoo(bars)))
    pd.testing.assert_frame_equal(loaded.frame, bars, check_freq=False)
    assert loaded.frame.index.name == "date"
    assert content_hash(loaded.frame) == content_hash(bars)
    assert loaded.date_source == "column 'Date'"
    assert loaded.date_format == "ISO8601"
    assert loaded.ignored_columns == ["adj_close"]
    assert loaded.warnings == []
    RawPrices.validate(loaded.frame)


def test_lower_case_and_spaced_column_names(tmp_path, bars):
    df = yahoo(bars)
    df.columns = [" date", "OPEN ", "high", "Low", " close ", "ADJ  CLOSE", "volume"]
    loaded = load_prices(write_csv(tmp_path, df), price_column="adj_close")
    assert list(loaded.frame.columns) == ["open", "high", "low", "close", "volume"]
    np.testing.assert_allclose(loaded.frame["close"], bars["close"] * 0.95)


def test_date_in_unnamed_first_column(tmp_path, bars):
    path = tmp_path / "indexed.csv"
    bars.rename_axis(None).to_csv(path)  # header line starts with an empty name
    loaded = load_prices(path)
    assert loaded.date_source == "first (unnamed) column"
    pd.testing.assert_frame_equal(loaded.frame, bars, check_freq=False)


def test_parquet_with_datetime_index(tmp_path, bars):
    path = tmp_path / "prices.parquet"
    bars.rename(columns=str.title).rename_axis("Date").to_parquet(path)
    loaded = load_prices(path)
    assert loaded.file_format == "parquet"
    assert loaded.date_source == "index"
    assert content_hash(loaded.frame) == content_hash(bars)


def test_parquet_with_tz_aware_index_keeps_local_dates(tmp_path, bars):
    path = tmp_path / "tz.parquet"
    bars.tz_localize("America/New_York").to_parquet(path)
    loaded = load_prices(path)
    assert loaded.frame.index.tz is None
    assert loaded.frame.index.equals(bars.index)
    assert "America/New_York" in loaded.warnings[0]


def test_parquet_with_date_column(tmp_path, bars):
    path = tmp_path / "col.parquet"
    bars.reset_index().to_parquet(path)
    assert load_prices(path).frame.index.equals(bars.index)


def test_us_month_day_year_dates(tmp_path, bars):
    df = yahoo(bars)
    df["Date"] = bars.index.strftime("%m/%d/%Y")
    loaded = load_prices(write_csv(tmp_path, df))
    assert loaded.date_format == "%m/%d/%Y"
    assert loaded.frame.index.equals(bars.index)


def test_day_month_year_dates_when_a_day_above_12_settles_it(tmp_path, bars):
    df = yahoo(bars)
    df["Date"] = bars.index.strftime("%d.%m.%Y")
    loaded = load_prices(write_csv(tmp_path, df))
    assert loaded.date_format == "%d/%m/%Y"
    assert loaded.frame.index.equals(bars.index)


def test_compact_integer_dates(tmp_path, bars):
    df = yahoo(bars)
    df["Date"] = bars.index.strftime("%Y%m%d").astype(int)
    assert load_prices(write_csv(tmp_path, df)).frame.index.equals(bars.index)


def test_yfinance_daylight_saving_offsets_are_one_zone(tmp_path, bars):
    path = tmp_path / "yf.csv"
    bars.tz_localize("America/New_York").to_csv(path)  # -05:00 in winter, -04:00 in summer
    assert "-04:00" in path.read_text() and "-05:00" in path.read_text()
    loaded = load_prices(path)
    assert loaded.frame.index.equals(bars.index)
    assert "UTC offsets" in loaded.warnings[0]


def test_several_tickers_pick_one_by_symbol(tmp_path, bars):
    both = pd.concat([yahoo(bars).assign(Ticker="AAA"), yahoo(bars * 2).assign(Ticker="BBB")])
    path = write_csv(tmp_path, both)
    loaded = load_prices(path, symbol="bbb")  # case-insensitive when unambiguous
    assert loaded.symbol == "BBB"
    np.testing.assert_allclose(loaded.frame["close"], bars["close"] * 2)


def test_one_ticker_column_needs_no_symbol(tmp_path, bars):
    loaded = load_prices(write_csv(tmp_path, yahoo(bars).assign(symbol="SPY")))
    assert loaded.symbol == "SPY"


def test_yfinance_multi_header_csv_and_parquet(tmp_path, bars):
    titled = {"AAPL": bars.rename(columns=str.title), "MSFT": (bars * 3).rename(columns=str.title)}
    wide = pd.concat(titled, axis=1).swaplevel(axis=1)
    wide.columns.names = ["Price", "Ticker"]
    wide.index.name = "Date"
    wide.to_csv(tmp_path / "yf.csv")  # Price,... / Ticker,... / Date,,, header lines
    wide.to_parquet(tmp_path / "yf.parquet")
    for name in ("yf.csv", "yf.parquet"):
        loaded = load_prices(tmp_path / name, symbol="MSFT")
        np.testing.assert_allclose(loaded.frame["close"], bars["close"] * 3)
        assert "['AAPL', 'MSFT']" in error_of(tmp_path / name)


def test_adj_close_drives_returns_and_ohlc_relations_hold(tmp_path, bars):
    factor = np.linspace(0.8, 1.0, len(bars))  # dividends: older prices adjusted down more
    loaded = load_prices(write_csv(tmp_path, yahoo(bars, factor)), price_column="adj_close")
    frame = loaded.frame
    np.testing.assert_allclose(frame["close"], bars["close"] * factor)
    for col in ("open", "high", "low"):
        np.testing.assert_allclose(frame[col], bars[col] * factor)
    np.testing.assert_array_equal(frame["volume"], bars["volume"])
    assert loaded.price_column == "adj_close"
    RawPrices.validate(frame)  # high >= max(open, close), low <= min(open, close)


def test_unsorted_rows_are_sorted_with_a_warning(tmp_path, bars):
    """Policy: order carries no information (many exports are newest-first): sort, warn."""
    df = yahoo(bars).iloc[::-1]
    loaded = load_prices(write_csv(tmp_path, df))
    pd.testing.assert_frame_equal(loaded.frame, bars, check_freq=False)
    assert "not in date order" in loaded.warnings[0]
    assert "line 3" in loaded.warnings[0]


def test_explicit_date_format_settles_ambiguous_dates(tmp_path, bars):
    df = yahoo(bars.loc["2021-01-01":"2021-01-12"])
    df["Date"] = pd.to_datetime(df["Date"]).dt.strftime("%d/%m/%Y")
    loaded = load_prices(write_csv(tmp_path, df), date_format="%d/%m/%Y")
    assert loaded.frame.index[0] == pd.Timestamp("2021-01-01")


# Bad input catalogue: unreadable or unparseable files raise in the loader -------------


def test_missing_file(tmp_path):
    message = error_of(tmp_path / "nope.csv")
    assert "nope.csv does not exist" in message
    assert "source_path" in message and PRICES_FILE_ENV_VAR in message


def test_directory_instead_of_file(tmp_path):
    assert "is not a file" in error_of(tmp_path)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "prices.xlsx"
    path.write_bytes(b"PK\x03\x04")
    message = error_of(path)
    assert "'.xlsx'" in message and ".csv" in message and ".parquet" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert "empty.csv is empty (0 bytes)" in error_of(path)


def test_blank_file(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n\n")
    assert "holds no columns" in error_of(path)


def test_header_without_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(YAHOO_COLUMNS) + "\n")
    assert "has a header but no data rows" in error_of(path)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"this is not parquet at all" * 10)
    message = error_of(path)
    assert "corrupt.parquet cannot be read as Parquet" in message
    assert "write it again" in message


def test_truncated_parquet(tmp_path, bars):
    path = tmp_path / "truncated.parquet"
    bars.to_parquet(path)
    path.write_bytes(path.read_bytes()[:200])
    assert "cannot be read as Parquet" in error_of(path)


def test_binary_file_named_csv(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(bytes(range(128, 256)) * 4)
    message = error_of(path)
    assert "binary.csv is not UTF-8 text" in message and "save it as CSV" in message


def test_missing_required_column(tmp_path, bars):
    message = error_of(write_csv(tmp_path, yahoo(bars).drop(columns="Volume")))
    assert "lacks required column(s) ['volume']" in message
    assert "'Adj Close'" in message  # lists the columns it found
    assert "add a volume column of zeros" in message


def test_adj_close_requested_but_absent(tmp_path, bars):
    message = error_of(
        write_csv(tmp_path, yahoo(bars).drop(columns="Adj Close")), price_column="adj_close"
    )
    assert "['adj_close']" in message and "price_column: close" in message


def test_semicolon_separated_file(tmp_path, bars):
    message = error_of(write_csv(tmp_path, yahoo(bars), sep=";"))
    assert "save the file with ',' as the separator" in message


def test_two_columns_with_the_same_meaning(tmp_path, bars):
    df = yahoo(bars).assign(close=1.0)
    assert "columns 'Close' and 'close' both mean 'close'" in error_of(write_csv(tmp_path, df))


def test_non_numeric_value_names_line_date_and_column(tmp_path, bars):
    df = yahoo(bars).astype({"Close": object})
    df.loc[5, "Close"] = "12,5x"
    message = error_of(write_csv(tmp_path, df))
    # Data row 5 is line 7 of the file (line 1 is the header).
    assert f"line 7 ({bars.index[5].date()}) column 'close': '12,5x'" in message
    assert "1 value(s) are not numbers" in message


def test_unparseable_date_names_the_line(tmp_path, bars):
    df = yahoo(bars)
    df.loc[3, "Date"] = "next tuesday"
    message = error_of(write_csv(tmp_path, df))
    assert "line 5: 'next tuesday'" in message and "YYYY-MM-DD" in message


def test_impossible_date_names_the_line(tmp_path, bars):
    df = yahoo(bars)
    df.loc[2, "Date"] = "2021-02-30"
    assert "line 4: '2021-02-30'" in error_of(write_csv(tmp_path, df))


def test_missing_date(tmp_path, bars):
    df = yahoo(bars)
    df.loc[4, "Date"] = None
    assert "1 row(s) have no date (line 6)" in error_of(write_csv(tmp_path, df))


def test_ambiguous_day_month_dates(tmp_path, bars):
    df = yahoo(bars.loc["2021-01-01":"2021-01-12"])
    df["Date"] = pd.to_datetime(df["Date"]).dt.strftime("%m/%d/%Y")
    message = error_of(write_csv(tmp_path, df))
    assert "ambiguous dates" in message and "'01/01/2021'" in message
    assert "date_format" in message and "'%m/%d/%Y'" in message


def test_dates_in_two_formats(tmp_path, bars):
    df = yahoo(bars)
    df.loc[10, "Date"] = bars.index[10].strftime("%m/%d/%Y")
    message = error_of(write_csv(tmp_path, df))
    assert "dates mix formats" in message and "line 12" in message


def test_dates_with_mixed_time_zones(tmp_path, bars):
    df = yahoo(bars)
    df["Date"] = df["Date"] + " 00:00:00+00:00"
    df.loc[7, "Date"] = f"{bars.index[7].date()} 00:00:00+09:00"
    message = error_of(write_csv(tmp_path, df))
    assert "mixed time zones" in message and "+09:00" in message and "line 9" in message


def test_dates_with_and_without_a_zone(tmp_path, bars):
    df = yahoo(bars)
    df.loc[7, "Date"] = f"{bars.index[7].date()}T00:00:00Z"
    message = error_of(write_csv(tmp_path, df))
    assert "mixed time zones" in message and "line 2" in message and "line 9" in message


def test_no_date_column(tmp_path, bars):
    message = error_of(write_csv(tmp_path, yahoo(bars).rename(columns={"Date": "When"})))
    assert "has no date column" in message and "'When'" in message


def test_several_tickers_without_a_symbol(tmp_path, bars):
    both = pd.concat([yahoo(bars).assign(symbol="AAA"), yahoo(bars).assign(symbol="BBB")])
    message = error_of(write_csv(tmp_path, both))
    assert "holds 2 symbols ['AAA', 'BBB']" in message and "config symbol" in message


def test_unknown_symbol_lists_the_available_ones(tmp_path, bars):
    both = pd.concat([yahoo(bars).assign(symbol="AAA"), yahoo(bars).assign(symbol="BBB")])
    message = error_of(write_csv(tmp_path, both), symbol="ZZZ")
    assert "symbol 'ZZZ' is not in" in message and "['AAA', 'BBB']" in message


def test_symbol_for_a_single_instrument_file(tmp_path, bars):
    message = error_of(write_csv(tmp_path, yahoo(bars)), symbol="AAA")
    assert "has no symbol/ticker column" in message


def test_unknown_price_column(tmp_path, bars):
    message = error_of(write_csv(tmp_path, yahoo(bars)), price_column="mid")
    assert "price_column='mid'" in message and "'adj_close'" in message


def test_adj_close_with_non_positive_close(tmp_path, bars):
    df = yahoo(bars)
    df.loc[3, "Close"] = 0.0
    message = error_of(write_csv(tmp_path, df), price_column="adj_close")
    assert f"line 5 ({bars.index[3].date()}): close 0.0" in message


# The asset: config, environment variable, metadata, and failures that stop the run ------


def run_raw_prices(config: RawPricesConfig, instrument: str = "SPY") -> dg.Output:
    return raw_prices(dg.build_asset_context(partition_key=instrument), config)


def test_asset_records_source_range_rows_and_hash(tmp_path, bars, monkeypatch):
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    path = write_csv(tmp_path, yahoo(bars))
    out = run_raw_prices(RawPricesConfig(source_path=str(path), price_column="adj_close"))
    meta = {key: value.value for key, value in out.metadata.items()}
    assert meta["rows"] == len(bars)
    assert meta["first_date"] == "2021-01-01" and meta["last_date"] == "2021-06-30"
    assert meta["source"] == str(path) and meta["source_via"] == "config source_path"
    assert meta["price_column"] == "adj_close"
    assert out.data_version.value == meta["content_hash"] == content_hash(out.value)


def test_environment_variable_names_the_file(tmp_path, bars, monkeypatch):
    path = tmp_path / "env.parquet"
    bars.to_parquet(path)
    monkeypatch.setenv(PRICES_FILE_ENV_VAR, str(path))
    out = run_raw_prices(RawPricesConfig(), instrument="env")  # the instrument is the file's name
    assert out.metadata["source_via"].value == "instrument file"
    assert out.metadata["source"].value == str(path)
    assert content_hash(out.value) == content_hash(bars)


def test_config_path_wins_over_the_environment_variable(tmp_path, bars, monkeypatch):
    monkeypatch.setenv(PRICES_FILE_ENV_VAR, str(tmp_path / "missing.csv"))
    path = write_csv(tmp_path, yahoo(bars))
    out = run_raw_prices(RawPricesConfig(source_path=str(path)))
    assert out.metadata["source"].value == str(path)


def test_asset_turns_a_data_problem_into_a_failure(tmp_path, monkeypatch):
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    with pytest.raises(dg.Failure) as info:
        run_raw_prices(RawPricesConfig(source_path=str(tmp_path / "nope.csv")))
    assert "nope.csv does not exist" in info.value.description


def materialize_all(tmp_path, raw_config: dict) -> dg.ExecuteInProcessResult:
    """The whole graph, as `dagster asset materialize --select '*'` would run it."""
    return materialize_instrument(
        tmp_path / "a", {"ops": {"raw_prices": {"config": raw_config}}}, "SPY"
    )


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text(""), "is empty (0 bytes)"),
        (lambda p: p.write_bytes(bytes(range(128, 256))), "is not UTF-8 text"),
        (lambda p: p.write_text("Date,Open,High,Low,Close\n2021-01-04,1,1,1,1\n"), "['volume']"),
    ],
    ids=["missing", "empty", "corrupt", "missing-column"],
)
def test_unreadable_input_stops_the_whole_graph_at_raw_prices(
    tmp_path, monkeypatch, write, expected
):
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    path = tmp_path / "prices.csv"
    write(path)
    result = materialize_all(tmp_path, {"source_path": str(path)})
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "raw_prices"
    assert expected in failure.step_failure_data.user_failure_data.description
    assert materialized(result) == set()  # nothing downstream: no training, no promotion
    assert not (tmp_path / "a" / "registry").exists()
