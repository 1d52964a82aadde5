"""Bring your own data, end to end: a Yahoo CSV through the CLI, a Parquet file in-process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from rl_assets import constants
from rl_assets.data.sources import PRICES_FILE_ENV_VAR
from rl_assets.data.synthetic import generate_prices, latest_business_day
from rl_assets_tests.conftest import materialize_command, materialize_instrument

REPO = Path(__file__).resolve().parents[1]


def generated():
    """A user's file is current: bars up to the latest business day, so the champion's
    signal is not refused as stale (the training and validation bars are the same whatever
    the end: the generator is prefix-stable)."""
    return generate_prices(constants.GENERATOR_START, latest_business_day(), seed=7)


def with_source(run_config: dict, **raw_config) -> dict:
    return {**run_config, "ops": {**run_config["ops"], "raw_prices": {"config": raw_config}}}


@pytest.mark.e2e
@pytest.mark.slow
def test_a_yahoo_csv_in_the_prices_directory_through_the_cli(tmp_path, tiny_run_config):
    """A user's file named after its ticker in $RL_ASSETS_PRICES_DIR: scanned into an
    instrument, then trained, gated and promoted through the CLI."""
    prices = generated()
    yahoo = prices.rename(columns=str.title).rename_axis("Date")
    yahoo.insert(4, "Adj Close", yahoo["Close"])  # no dividends: adjusted equals close
    prices_dir = tmp_path / "prices"
    prices_dir.mkdir()
    csv = prices_dir / "SPY.csv"
    yahoo[["Open", "High", "Low", "Close", "Adj Close", "Volume"]].to_csv(csv)
    assert csv.read_text().startswith("Date,Open,High,Low,Close,Adj Close,Volume\n")

    config = with_source(tiny_run_config, price_column="adj_close")
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump(config))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RL_ASSETS_ARTIFACTS": str(tmp_path / "artifacts"),
        constants.PRICES_DIR_ENV_VAR: str(prices_dir),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop(PRICES_FILE_ENV_VAR, None)
    # "local": start a private Ray even if a `ray start` cluster runs on this machine
    # (without it, ray.init joins the cluster recorded in /tmp/ray/ray_current_cluster).
    env["RAY_ADDRESS"] = "local"
    scan = subprocess.run(
        [sys.executable, "-m", "rl_assets.instruments", "scan"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert scan.returncode == 0 and "registered SPY" in scan.stdout, scan.stdout + scan.stderr
    proc = subprocess.run(
        materialize_command("run_config.yaml", partition="SPY"),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "RUN_SUCCESS" in log, log[-4000:]

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        raw = instance.get_latest_materialization_event(dg.AssetKey("raw_prices"))
        meta = raw.asset_materialization.metadata
        assert meta["source"].value == str(csv)
        assert meta["instrument"].value == "SPY"
        assert meta["price_column"].value == "adj_close"
        assert meta["rows"].value == len(prices)
        assert instance.get_latest_materialization_event(dg.AssetKey("promoted_policy"))
    finally:
        instance.dispose()
    assert (tmp_path / "artifacts" / "registry" / "SPY" / "champion.json").exists()
    assert (tmp_path / "artifacts" / "signals" / "SPY" / "latest.json").exists()


@pytest.mark.slow
def test_parquet_through_the_whole_graph(tmp_path, tiny_run_config, monkeypatch):
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    parquet = tmp_path / "prices.parquet"
    generated().to_parquet(parquet)  # dates in a DatetimeIndex
    result = materialize_instrument(
        tmp_path / "artifacts",
        with_source(tiny_run_config, source_path=str(parquet)),
        instrument="MYFUND",
    )
    assert result.success
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw_prices", "trained_policy", "promoted_policy", "trading_signal"} <= done
    raw = result.asset_materializations_for_node("raw_prices")[0]
    assert raw.metadata["source"].value == str(parquet)
    assert raw.metadata["date_source"].value == "index"
    assert all(e.passed for e in result.get_asset_check_evaluations())


@pytest.mark.slow
def test_a_twenty_year_file_needs_no_split_configuration(tmp_path, tiny_run_config, monkeypatch):
    """Twenty years of a user's daily bars and no split config: the candidate trains on the
    most recent window, the folds tile the rest, and the report says how many years of
    pooled test evidence judged it."""
    from rl_assets.rl.walk_forward import expected_fold_count

    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    end = latest_business_day()
    prices = generate_prices(str((pd.Timestamp(end) - pd.DateOffset(years=20)).date()), end, seed=3)
    csv = tmp_path / "LONG.csv"
    prices.rename(columns=str.title).rename_axis("Date").to_csv(csv)
    config = with_source(tiny_run_config, source_path=str(csv))
    config["ops"]["walk_forward"] = {"config": {"max_folds": 0}}  # every fold (the default)
    result = materialize_instrument(tmp_path / "artifacts", config, "LONG")
    assert result.success
    plan = result.output_for_node("walk_forward")
    folds = expected_fold_count(
        len(prices), constants.TRAIN_DAYS, constants.VALIDATION_DAYS, constants.TEST_DAYS
    )
    assert len(plan["folds"]) == folds >= 16 and plan["layout"] == "rolling"
    evidence = result.output_for_node("walk_forward_evidence")
    years = evidence["pooled"]["years"]
    assert years > 15
    report = tmp_path / "artifacts" / "runs" / result.run_id / "report" / "report.md"
    text = report.read_text()
    assert f"{years:.1f} years of pooled test evidence" in text
    first, last = plan["folds"][0], plan["folds"][-1]
    assert f"{first['test_dates'][0]}..{first['test_dates'][1]}" in text
    assert last["test_dates"][1] == str(prices.index[-1].date())
