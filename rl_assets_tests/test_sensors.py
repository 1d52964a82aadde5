"""new_prices_sensor and weekly_retrain_schedule evaluated directly, and the data versions they rely on."""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from rl_assets.assets import prices
from rl_assets.automation.jobs import (
    CONTENT_TAG,
    RETRAIN_RUN_CONFIG_ENV_VAR,
    SOURCE_FILE_TAG,
    TRAINING_TAG,
    retrain_job,
    weekly_retrain_schedule,
)
from rl_assets.automation.sensors import (
    DEFAULT_SENSOR_INTERVAL_SECONDS,
    LANDING_DIR_ENV_VAR,
    SETTLE_ENV_VAR,
    LandingCursor,
    new_prices_sensor,
)
from rl_assets.data.sources import PRICES_FILE_ENV_VAR
from rl_assets.data.synthetic import generate_prices
from rl_assets.definitions import defs
from rl_assets.resources import ArtifactStoreResource
from rl_assets_tests.conftest import PIPELINE_ASSETS, TINY_RUN_CONFIG


def price_csv(seed: int, structure: str = "momentum") -> bytes:
    df = generate_prices("2019-01-01", "2023-12-31", seed=seed, structure=structure)
    return df.reset_index().to_csv(index=False).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def settled(path: Path, age: float = 60.0) -> None:
    """Age a file's mtime as if it had been written ``age`` seconds ago."""
    past = time.time() - age
    os.utime(path, (past, past))


@pytest.fixture
def landing(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "landing"
    monkeypatch.setenv(LANDING_DIR_ENV_VAR, str(root))
    monkeypatch.setenv(SETTLE_ENV_VAR, "0")
    monkeypatch.delenv(RETRAIN_RUN_CONFIG_ENV_VAR, raising=False)
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    return root


@pytest.fixture
def tick(artifacts_dir):
    """Evaluate the sensor once from ``cursor``: (run requests, new cursor, skip message)."""

    def evaluate(cursor: str | None):
        context = dg.build_sensor_context(
            cursor=cursor, resources={"artifacts": ArtifactStoreResource(root=str(artifacts_dir))}
        )
        result = new_prices_sensor(context)
        assert isinstance(result, dg.SensorResult)
        skip = result.skip_reason.skip_message if result.skip_reason else None
        return list(result.run_requests or []), result.cursor, skip

    return evaluate


def drop(landing: Path, name: str, data: bytes) -> Path:
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / name
    path.write_bytes(data)
    return path


def source_of(request: dg.RunRequest) -> Path:
    return Path(request.run_config["ops"]["raw_prices"]["config"]["source_path"])


# --- the sensor, tick by tick ---------------------------------------------------------------


def test_empty_landing_dir_is_created_and_skipped(landing, tick):
    requests, cursor, skip = tick(None)
    assert requests == []
    assert landing.is_dir()
    assert "no new price file" in skip and str(landing) in skip
    assert LandingCursor.from_json(cursor) == LandingCursor()


def test_new_file_requests_one_run_on_an_immutable_copy(landing, tick, artifacts_dir):
    data = price_csv(1)
    path = drop(landing, "prices.csv", data)
    requests, cursor, skip = tick(None)
    assert skip is None
    [request] = requests
    assert request.run_key == sha(data)
    assert request.tags[CONTENT_TAG] == sha(data)
    assert request.tags[SOURCE_FILE_TAG] == str(path)
    snapshot = source_of(request)
    assert snapshot == artifacts_dir / "incoming" / sha(data) / "prices.csv"
    assert snapshot.read_bytes() == data
    # The run reads the copy: overwriting the landing file later cannot change what it trains on.
    path.write_bytes(price_csv(2))
    assert snapshot.read_bytes() == data
    assert LandingCursor.from_json(cursor).seen == {sha(data): "prices.csv"}


def test_requested_run_config_is_valid_for_the_retrain_job(landing, tick, monkeypatch, tmp_path):
    extra = tmp_path / "retrain.yaml"
    extra.write_text(yaml.safe_dump(TINY_RUN_CONFIG))
    monkeypatch.setenv(RETRAIN_RUN_CONFIG_ENV_VAR, str(extra))
    drop(landing, "prices.parquet", b"not really parquet, the sensor does not parse")
    [request], _, _ = tick(None)
    assert source_of(request).name == "prices.parquet"
    ops = request.run_config["ops"]
    assert ops["episodes_per_iteration"] == TINY_RUN_CONFIG["ops"]["episodes_per_iteration"]
    dg.validate_run_config(defs.resolve_job_def("retrain_job"), request.run_config)


def test_unchanged_file_requests_nothing(landing, tick):
    drop(landing, "prices.csv", price_csv(1))
    [_], cursor, _ = tick(None)
    requests, cursor2, skip = tick(cursor)
    assert requests == []
    assert skip == f"no new price file in {landing}"
    assert json.loads(cursor2) == json.loads(cursor)


def test_touched_file_is_rehashed_and_requests_nothing(landing, tick):
    path = drop(landing, "prices.csv", price_csv(1))
    settled(path, age=120)
    [_], cursor, _ = tick(None)
    path.touch()
    requests, cursor2, skip = tick(cursor)
    assert requests == []
    assert "prices.csv has the content of prices.csv" in skip
    # The new mtime is cached, so the next tick does not even read the file.
    assert LandingCursor.from_json(cursor2).files["prices.csv"][0] == path.stat().st_mtime_ns
    assert tick(cursor2)[0] == []


def test_changed_file_requests_a_run_for_the_new_content(landing, tick):
    path = drop(landing, "prices.csv", price_csv(1))
    [first], cursor, _ = tick(None)
    new = price_csv(2)
    path.write_bytes(new)
    [second], cursor, _ = tick(cursor)
    assert second.run_key == sha(new) != first.run_key
    assert source_of(second).read_bytes() == new


def test_same_content_under_another_name_or_reverted_never_runs_twice(landing, tick):
    a, b = price_csv(1), price_csv(2)
    path = drop(landing, "prices.csv", a)
    [_], cursor, _ = tick(None)
    drop(landing, "copy_of_prices.csv", a)
    requests, cursor, skip = tick(cursor)
    assert requests == []
    assert "copy_of_prices.csv has the content of prices.csv" in skip
    path.write_bytes(b)
    [request], cursor, _ = tick(cursor)
    assert request.run_key == sha(b)
    path.write_bytes(a)  # back to a content that already ran
    assert tick(cursor)[0] == []


def test_bad_file_requests_one_run_and_is_not_requested_again(landing, tick):
    drop(landing, "broken.csv", b"when,what\nyesterday,oops\n")
    [request], cursor, _ = tick(None)
    assert request.run_key == sha(b"when,what\nyesterday,oops\n")
    for _ in range(3):
        requests, cursor, _ = tick(cursor)
        assert requests == []


def test_bad_file_run_fails_before_training_and_leaves_the_champion(landing, tick, artifacts_dir):
    champion = artifacts_dir / "registry" / "champion.json"
    champion.parent.mkdir(parents=True)
    champion.write_text(json.dumps({"version": "v0001", "checkpoint": "/somewhere"}))
    before = champion.read_bytes()
    drop(landing, "broken.csv", b"when,what\nyesterday,oops\n")
    [request], _, _ = tick(None)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("retrain_job").execute_in_process(
            run_config=request.run_config, instance=instance, raise_on_error=False
        )
        assert not result.success
        materialized = {
            e.asset_key.to_user_string()
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        }
        assert not materialized & {"trained_policy", "promoted_policy"}
        # Visible as a failed raw_prices step or a failed blocking schema check, with a reason.
        failures = [
            e.event_specific_data.error.message
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_FAILURE and e.step_key == "raw_prices"
        ]
        failed_checks = [
            e.event_specific_data.check_name
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            and not e.event_specific_data.passed
        ]
        assert (failures and all(failures)) or "raw_prices_schema_valid" in failed_checks
    assert champion.read_bytes() == before


def test_file_still_being_written_waits_for_it_to_settle(landing, tick, monkeypatch):
    monkeypatch.setenv(SETTLE_ENV_VAR, "30")
    path = drop(landing, "prices.csv", price_csv(1))
    requests, cursor, skip = tick(None)
    assert requests == []
    assert re.search(r"prices.csv changed \d+s ago; waiting 30s", skip), skip
    assert LandingCursor.from_json(cursor).files == {}
    settled(path)
    [request], _, _ = tick(cursor)
    assert request.run_key == sha(price_csv(1))


def test_empty_file_waits_for_content(landing, tick):
    path = drop(landing, "prices.csv", b"")
    requests, cursor, skip = tick(None)
    assert requests == []
    assert skip.startswith("prices.csv is empty")
    path.write_bytes(price_csv(1))
    [request], _, _ = tick(cursor)
    assert request.run_key == sha(price_csv(1))


def test_temp_hidden_and_other_files_are_ignored(landing, tick):
    drop(landing, ".prices.csv", price_csv(1))  # `cp x landing/.x.csv && mv` is the atomic way
    drop(landing, "prices.csv.part", price_csv(2))
    drop(landing, "notes.txt", b"hello")
    (landing / "sub.csv").mkdir()
    (landing / "sub.csv" / "inner.csv").write_bytes(price_csv(3))
    requests, _, skip = tick(None)
    assert requests == []
    assert skip.startswith("no new price file")


def test_cursor_round_trip_and_a_foreign_cursor_names_the_fix(landing, tick):
    drop(landing, "a.csv", price_csv(1))
    drop(landing, "b.csv", price_csv(2))
    _, raw, _ = tick(None)
    cursor = LandingCursor.from_json(raw)
    assert set(cursor.seen.values()) == {"a.csv", "b.csv"}
    assert set(cursor.files) == {"a.csv", "b.csv"}
    assert LandingCursor.from_json(cursor.to_json()) == cursor
    assert cursor.to_json() == raw
    with pytest.raises(ValueError, match=r"not a landing cursor.*Set cursor"):
        tick("42")
    with pytest.raises(ValueError, match=r"version 7, expected 1"):
        LandingCursor.from_json(json.dumps({"version": 7, "seen": {}, "files": {}}))


def test_a_repeated_tick_requests_the_same_run_keys(landing, tick):
    """At-least-once: if the daemon dies before saving the cursor, the tick is evaluated again
    from the old cursor; it yields the same run keys, which the daemon runs only once."""
    drop(landing, "a.csv", price_csv(1))
    drop(landing, "b.csv", price_csv(2))
    first, _, _ = tick(None)
    again, _, _ = tick(None)
    assert [r.run_key for r in again] == [r.run_key for r in first]
    assert [r.run_config for r in again] == [r.run_config for r in first]


def test_burst_of_twenty_versions_requests_exactly_one_run_per_content(landing, tick):
    versions = [price_csv(seed) for seed in range(100, 120)]
    distinct = {sha(v) for v in versions}
    assert len(distinct) == 20
    cursor, requested, observed = None, [], set()
    # 20 versions arrive in quick succession between ticks: new names, overwrites of one
    # name, and copies of earlier versions, with a tick after every few writes.
    for i, data in enumerate(versions):
        drop(landing, f"drop_{i:02d}.csv", data)
        drop(landing, "latest.csv", data)
        if i % 2:
            drop(landing, f"again_{i:02d}.csv", versions[i // 2])
        if i % 3 == 2:
            requests, cursor, _ = tick(cursor)
            requested += requests
        observed.add(sha(data))
    requests, cursor, _ = tick(cursor)
    requested += requests
    for _ in range(2):  # nothing new: later ticks request nothing
        requests, cursor, _ = tick(cursor)
        assert requests == []
    keys = [r.run_key for r in requested]
    assert len(keys) == len(set(keys)) == 20
    assert set(keys) == distinct == observed
    for request in requested:
        assert sha(source_of(request).read_bytes()) == request.run_key


def test_bad_extra_run_config_fails_the_tick_without_advancing(landing, tick, monkeypatch):
    drop(landing, "prices.csv", price_csv(1))
    monkeypatch.setenv(RETRAIN_RUN_CONFIG_ENV_VAR, str(landing.parent / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match="missing.yaml, which does not exist"):
        tick(None)
    sneaky = landing.parent / "sneaky.yaml"
    sneaky.write_text(yaml.safe_dump({"ops": {"raw_prices": {"config": {"source_path": "x"}}}}))
    monkeypatch.setenv(RETRAIN_RUN_CONFIG_ENV_VAR, str(sneaky))
    with pytest.raises(ValueError, match="sets ops.raw_prices.config.source_path"):
        tick(None)
    (landing.parent / "list.yaml").write_text("- 1\n- 2\n")
    monkeypatch.setenv(RETRAIN_RUN_CONFIG_ENV_VAR, str(landing.parent / "list.yaml"))
    with pytest.raises(ValueError, match="holds a list"):
        tick(None)
    monkeypatch.delenv(RETRAIN_RUN_CONFIG_ENV_VAR)
    assert len(tick(None)[0]) == 1


# --- definitions: the job, the sensor and the schedule as shipped ----------------------------


def test_retrain_job_is_the_whole_pipeline_with_every_check_and_the_training_tag():
    job = defs.resolve_job_def("retrain_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == PIPELINE_ASSETS
    every_check = {
        key
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.asset_key.to_user_string() in PIPELINE_ASSETS
    }
    assert set(job.asset_layer.asset_graph.asset_check_keys) == every_check
    assert {key.name for key in every_check} >= {
        "raw_prices_schema_valid",
        "trained_policy_restores_and_acts",
        "trained_policy_beats_buy_and_hold",
        "trained_policy_validation_sharpe_at_least_minimum",
    }
    assert job.tags[TRAINING_TAG] == "true"


def test_sensor_and_schedule_ship_stopped_and_target_the_retrain_job():
    sensor = defs.resolve_sensor_def("new_prices_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == "retrain_job"
    assert sensor.minimum_interval_seconds == DEFAULT_SENSOR_INTERVAL_SECONDS
    schedule = defs.resolve_schedule_def("weekly_retrain_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == retrain_job.name


def test_sensor_interval_comes_from_the_environment_and_is_checked():
    code = "from rl_assets.automation.sensors import new_prices_sensor as s; print(s.minimum_interval_seconds)"
    env = {**os.environ, "RL_ASSETS_SENSOR_INTERVAL_SECONDS": "7"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "7", out.stderr[-2000:]
    env["RL_ASSETS_SENSOR_INTERVAL_SECONDS"] = "soon"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "RL_ASSETS_SENSOR_INTERVAL_SECONDS='soon' is not a whole number" in out.stderr


def schedule_tick(instance, artifacts_dir):
    context = dg.build_schedule_context(
        instance=instance,
        resources={"artifacts": ArtifactStoreResource(root=str(artifacts_dir))},
    )
    return weekly_retrain_schedule(context)


def test_schedule_retrains_on_the_prices_file_unless_that_content_already_succeeded(
    landing, artifacts_dir, tmp_path, monkeypatch
):
    data = price_csv(5)
    prices_file = tmp_path / "prices.csv"
    prices_file.write_bytes(data)
    monkeypatch.setenv(PRICES_FILE_ENV_VAR, str(prices_file))
    with dg.instance_for_test() as instance:
        request = schedule_tick(instance, artifacts_dir)
        assert isinstance(request, dg.RunRequest)
        assert request.tags[CONTENT_TAG] == sha(data)
        assert source_of(request).read_bytes() == data
        # A failed run on that content does not count; a successful one does.
        for status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS):
            instance.add_run(
                dg.DagsterRun(
                    job_name="retrain_job",
                    run_id=f"run-{status.value.lower()}",
                    tags={CONTENT_TAG: sha(data)},
                    status=status,
                )
            )
        skip = schedule_tick(instance, artifacts_dir)
        assert isinstance(skip, dg.SkipReason)
        assert "unchanged since run run-success" in skip.skip_message
        prices_file.write_bytes(price_csv(6))
        assert isinstance(schedule_tick(instance, artifacts_dir), dg.RunRequest)


def test_schedule_without_a_prices_file_retrains_on_the_generator(landing, artifacts_dir):
    with dg.instance_for_test() as instance:
        request = schedule_tick(instance, artifacts_dir)
    assert isinstance(request, dg.RunRequest)
    assert "raw_prices" not in request.run_config.get("ops", {})


# --- data versions: what makes Dagster show downstream assets stale --------------------------


def test_new_file_content_makes_the_splits_stale_and_the_same_content_does_not(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(price_csv(1))
    b.write_bytes(price_csv(2))
    same_as_a = tmp_path / "same_as_a.csv"
    same_as_a.write_bytes(a.read_bytes())

    def config(path):
        return {"ops": {"raw_prices": {"config": {"source_path": str(path)}}}}

    assets = [prices.raw_prices, prices.price_splits]
    train = dg.AssetKey("train_prices")
    with dg.instance_for_test() as instance:

        def status():
            return get_stale_status_resolver(instance, assets).get_status(train)

        assert dg.materialize(assets, run_config=config(a), instance=instance).success
        assert status() == StaleStatus.FRESH
        only_raw = {"selection": [prices.raw_prices], "instance": instance}
        assert dg.materialize(assets, run_config=config(same_as_a), **only_raw).success
        assert status() == StaleStatus.FRESH
        assert dg.materialize(assets, run_config=config(b), **only_raw).success
        assert status() == StaleStatus.STALE
