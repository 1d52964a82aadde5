"""Instruments: keys, where their prices come from, registering them, the multi-ticker files."""

import dagster as dg
import pandas as pd
import pytest

from rl_assets import constants
from rl_assets.data.sources import PRICES_FILE_ENV_VAR, symbol_digests
from rl_assets.data.synthetic import generate_prices
from rl_assets.instruments import (
    InstrumentError,
    discover,
    instruments_in_file,
    key_from_file,
    main,
    register,
    registered,
    resolve,
    validate_key,
)


@pytest.fixture
def bars() -> pd.DataFrame:
    return generate_prices("2021-01-01", "2021-06-30", seed=3)


@pytest.fixture
def prices_dir(tmp_path, monkeypatch):
    root = tmp_path / "prices"
    root.mkdir()
    monkeypatch.setenv(constants.PRICES_DIR_ENV_VAR, str(root))
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    return root


def long_csv(path, frames: dict[str, pd.DataFrame]):
    rows = [f.reset_index().assign(symbol=s) for s, f in frames.items()]
    pd.concat(rows).to_csv(path, index=False)
    return path


def yfinance_csv(path, frames: dict[str, pd.DataFrame]):
    wide = pd.concat({s: f.rename(columns=str.title) for s, f in frames.items()}, axis=1)
    wide = wide.swaplevel(axis=1)
    wide.columns.names = ["Price", "Ticker"]
    wide.index.name = "Date"
    wide.to_csv(path)
    return path


@pytest.mark.parametrize("key", ["SPY", "BRK-B", "^GSPC", "EURUSD=X", "BTC-USD", "a.b_c"])
def test_ticker_keys_are_accepted(key):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "../etc", "a/b", "a,b", "a b", ".hidden", "-x", "x" * 33, "a[0]"]
)
def test_keys_that_dagster_or_a_file_system_cannot_take_are_refused(key):
    with pytest.raises(InstrumentError, match="cannot be used: use 1-32 characters"):
        validate_key(key)


def test_the_key_of_a_file_is_its_name_without_the_price_suffix(tmp_path):
    assert key_from_file(tmp_path / "BRK-B.csv.gz") == "BRK-B"
    assert key_from_file(tmp_path / "SPY.parquet") == "SPY"
    with pytest.raises(InstrumentError, match="file name my prices.csv"):
        key_from_file(tmp_path / "my prices.csv")


def test_one_instrument_per_file_and_one_per_symbol_of_a_multi_ticker_file(prices_dir, bars):
    bars.to_csv(prices_dir / "SPY.csv")
    long_csv(prices_dir / "universe.csv", {"AAA": bars, "BBB": bars * 2})
    yfinance_csv(prices_dir / "yf.csv", {"MSFT": bars * 3, "NVDA": bars * 4})
    found = discover()
    assert sorted(found) == ["AAA", "BBB", "MSFT", "NVDA", "SPY"]
    assert found["SPY"].symbol == "" and found["SPY"].path.endswith("SPY.csv")
    assert (found["BBB"].symbol, found["NVDA"].symbol) == ("BBB", "NVDA")
    assert resolve("NVDA") == found["NVDA"]


def test_symbol_digests_change_only_for_the_symbol_whose_rows_changed(tmp_path, bars):
    path = long_csv(tmp_path / "u.csv", {"AAA": bars, "BBB": bars * 2})
    before = symbol_digests(path)
    changed = bars.copy()
    changed.iloc[-1, changed.columns.get_loc("close")] *= 1.01
    long_csv(path, {"AAA": bars, "BBB": changed * 2})
    after = symbol_digests(path)
    assert before["AAA"] == after["AAA"] and before["BBB"] != after["BBB"]
    bars.to_csv(tmp_path / "one.csv")
    assert symbol_digests(tmp_path / "one.csv") == {}  # one instrument: no symbols


def test_the_same_instrument_in_two_files_is_an_error_naming_both(prices_dir, bars):
    bars.to_csv(prices_dir / "AAA.csv")
    long_csv(prices_dir / "universe.csv", {"AAA": bars})
    with pytest.raises(InstrumentError, match="'AAA' has prices in two files"):
        discover()


def test_resolution_order_config_file_directory_generator(prices_dir, bars, tmp_path, monkeypatch):
    bars.to_csv(prices_dir / "SYN_MOMENTUM.csv")  # a file wins over the generator
    assert resolve("SYN_MOMENTUM").kind == "file"
    assert resolve("SYN_NULL").kind == "generator"
    other = tmp_path / "elsewhere.csv"
    bars.to_csv(other)
    assert resolve("SYN_NULL", source_path=str(other)).path == str(other)  # config wins
    monkeypatch.setenv(PRICES_FILE_ENV_VAR, str(other))
    assert resolve("elsewhere").path == str(other)
    with pytest.raises(InstrumentError, match=r"'QQQ' has no prices: put QQQ.csv"):
        resolve("QQQ")


def test_source_path_with_a_multi_ticker_file_picks_the_instruments_symbol(tmp_path, bars):
    path = long_csv(tmp_path / "u.csv", {"AAA": bars, "BBB": bars * 2})
    assert resolve("BBB", source_path=str(path)).symbol == "BBB"


def test_register_adds_partitions_only_for_instruments_with_prices(prices_dir, bars, tmp_path):
    bars.to_csv(prices_dir / "SPY.csv")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert register(instance, ["SPY", "SYN_NULL"]) == ["SPY", "SYN_NULL"]
        assert register(instance, ["SPY"]) == []  # already there
        with pytest.raises(InstrumentError, match="'QQQ' has no prices"):
            register(instance, ["QQQ"])
        assert registered(instance) == ["SPY", "SYN_NULL"]


def test_the_cli_scans_lists_and_refuses_unknown_keys(
    prices_dir, bars, capsys, monkeypatch, tmp_path
):
    bars.to_csv(prices_dir / "SPY.csv")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
        assert main(["scan"]) == 0
        assert "registered SPY" in capsys.readouterr().out
        assert main(["builtin"]) == 0
        assert main(["add", "bad/key"]) == 2
        assert "cannot be used" in capsys.readouterr().out
        assert main(["list"]) == 0
        listing = capsys.readouterr().out
        assert "SPY" in listing and "SYN_MOMENTUM" in listing and "registered" in listing
        assert registered(instance) == [
            "SPY",
            "SYN_FADING",
            "SYN_MOMENTUM",
            "SYN_NULL",
            "SYN_OVERNIGHT",
        ]
        instance_keys = set(instruments_in_file(prices_dir / "SPY.csv"))
        assert instance_keys == {"SPY"}
