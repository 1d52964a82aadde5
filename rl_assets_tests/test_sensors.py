"""new_prices_sensor, its retries and weekly_retrain_schedule evaluated directly, and the data
versions they rely on."""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from dagster._core.definitions.data_version import StaleStatus
from dagster._core.events import EngineEventData
from dagster._utils.test.data_versions import get_stale_status_resolver

from rl_assets.assets import prices
from rl_assets.automation.jobs import (
    ATTEMPT_TAG,
    CONFIG_TAG,
    CONTENT_TAG,
    REQUESTED_BY_TAG,
    RETRAIN_RUN_CONFIG_ENV_VAR,
    SOURCE_FILE_TAG,
    config_digest,
    retrain_job,
    weekly_retrain_schedule,
)
from rl_assets.automation.retries import fail_orphaned_runs, failure_kind, infrastructure_retries
from rl_assets.automation.sensors import (
    DEFAULT_SENSOR_INTERVAL_SECONDS,
    LANDING_DIR_ENV_VAR,
    SENSOR_NAME,
    SETTLE_ENV_VAR,
    LandingCursor,
    new_prices_sensor,
)
from rl_assets.data.sources import PRICES_FILE_ENV_VAR
from rl_assets.data.synthetic import generate_prices
from rl_assets.definitions import defs
from rl_assets.failures import DATA, failure
from rl_assets.resources import ArtifactStoreResource
from rl_assets_tests.conftest import ALL_ASSETS, EDGE, NULL, TINY_RUN_CONFIG


def price_frame(seed: int, structure: str = "momentum") -> pd.DataFrame:
    return generate_prices("2019-01-01", "2023-12-31", seed=seed, structure=structure)


def price_csv(seed: int, structure: str = "momentum") -> bytes:
    return price_frame(seed, structure).reset_index().to_csv(index=False).encode()


def universe_csv(frames: dict[str, pd.DataFrame]) -> bytes:
    rows = [f.reset_index().assign(symbol=s) for s, f in frames.items()]
    return pd.concat(rows).to_csv(index=False).encode()


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
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def record(instance: dg.DagsterInstance, requests: list[dg.RunRequest], status=None) -> None:
    """What the daemon does with a tick's requests: a run per new run key, tagged as such."""
    for request in requests:
        instance.add_run(
            dg.DagsterRun(
                job_name=retrain_job.name,
                run_id=f"run-{len(instance.get_runs())}",
                run_config=request.run_config,
                tags={
                    **request.tags,
                    **({"dagster/run_key": request.run_key} if request.run_key else {}),
                    "dagster/sensor_name": SENSOR_NAME,
                    "dagster/partition": request.partition_key,
                },
                status=status or dg.DagsterRunStatus.SUCCESS,
            )
        )


@pytest.fixture
def tick(artifacts_dir, instance):
    """Evaluate the sensor once from ``cursor``: (run requests, new cursor, skip message,
    partitions added). The daemon's part, recording the runs, follows each tick."""

    def evaluate(cursor: str | None, keep: bool = True):
        context = dg.build_sensor_context(
            cursor=cursor,
            instance=instance,
            resources={"artifacts": ArtifactStoreResource()},
        )
        result = new_prices_sensor(context)
        assert isinstance(result, dg.SensorResult)
        skip = result.skip_reason.skip_message if result.skip_reason else None
        requests = list(result.run_requests or [])
        added = [k for r in result.dynamic_partitions_requests or [] for k in r.partition_keys]
        if keep:
            record(instance, requests)
        return requests, result.cursor, skip, added

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
    requests, cursor, skip, _ = tick(None)
    assert requests == []
    assert landing.is_dir()
    assert "no new price file" in skip and str(landing) in skip
    assert LandingCursor.from_json(cursor) == LandingCursor()


def test_new_file_adds_its_instrument_and_requests_one_run_on_an_immutable_copy(
    landing, tick, artifacts_dir
):
    data = price_csv(1)
    path = drop(landing, "SPY.csv", data)
    requests, _, skip, added = tick(None)
    assert skip is None and added == ["SPY"]
    [request] = requests
    assert request.partition_key == "SPY"
    assert request.run_key == f"SPY:{sha(data)}"
    assert request.tags[CONTENT_TAG] == sha(data)
    assert request.tags[SOURCE_FILE_TAG] == str(path)
    assert request.tags[REQUESTED_BY_TAG] == SENSOR_NAME and request.tags[ATTEMPT_TAG] == "1"
    snapshot = source_of(request)
    assert snapshot == artifacts_dir / "incoming" / sha(data) / "SPY.csv"
    assert snapshot.read_bytes() == data
    # The run reads the copy: overwriting the landing file later cannot change what it trains on.
    path.write_bytes(price_csv(2))
    assert snapshot.read_bytes() == data


def test_requested_run_config_is_valid_for_the_retrain_job(landing, tick, monkeypatch, tmp_path):
    extra = tmp_path / "retrain.yaml"
    extra.write_text(yaml.safe_dump(TINY_RUN_CONFIG))
    monkeypatch.setenv(RETRAIN_RUN_CONFIG_ENV_VAR, str(extra))
    drop(landing, "QQQ.parquet", b"not really parquet: the sensor does not need to parse it")
    [request], _, _, _ = tick(None)
    assert source_of(request).name == "QQQ.parquet" and request.partition_key == "QQQ"
    ops = request.run_config["ops"]
    assert ops["episodes_per_iteration"] == TINY_RUN_CONFIG["ops"]["episodes_per_iteration"]
    assert request.tags[CONFIG_TAG] == config_digest(TINY_RUN_CONFIG)
    dg.validate_run_config(defs.resolve_job_def("retrain_job"), request.run_config)


def test_unchanged_file_requests_nothing(landing, tick):
    drop(landing, "SPY.csv", price_csv(1))
    [_], cursor, _, _ = tick(None)
    requests, cursor2, skip, _ = tick(cursor)
    assert requests == []
    assert skip == f"no new price file in {landing}"
    assert json.loads(cursor2) == json.loads(cursor)


def test_touched_file_is_read_again_and_requests_nothing(landing, tick):
    path = drop(landing, "SPY.csv", price_csv(1))
    settled(path, age=120)
    [_], cursor, _, _ = tick(None)
    path.touch()
    requests, cursor2, skip, _ = tick(cursor)
    assert requests == []
    assert "SPY.csv: unchanged for SPY (already ran)" in skip
    assert tick(cursor2)[0] == []


def test_changed_file_requests_a_run_for_the_new_content(landing, tick):
    path = drop(landing, "SPY.csv", price_csv(1))
    [first], cursor, _, _ = tick(None)
    new = price_csv(2)
    path.write_bytes(new)
    [second], cursor, _, _ = tick(cursor)
    assert second.run_key == f"SPY:{sha(new)}" != first.run_key
    assert source_of(second).read_bytes() == new


def test_another_name_is_another_instrument_and_reverted_content_never_runs_twice(landing, tick):
    a, b = price_csv(1), price_csv(2)
    path = drop(landing, "SPY.csv", a)
    [_], cursor, _, _ = tick(None)
    drop(landing, "IVV.csv", a)  # the same bars under another ticker: that ticker's first run
    [copy], cursor, _, added = tick(cursor)
    assert (copy.partition_key, added) == ("IVV", ["IVV"])
    path.write_bytes(b)
    [request], cursor, _, _ = tick(cursor)
    assert request.run_key == f"SPY:{sha(b)}"
    path.write_bytes(a)  # back to a content that already ran for SPY
    requests, cursor, skip, _ = tick(cursor)
    assert requests == [] and "unchanged for SPY" in skip


def test_a_multi_ticker_file_starts_a_run_only_for_the_symbols_whose_rows_changed(landing, tick):
    frames = {"AAA": price_frame(1), "BBB": price_frame(2), "CCC": price_frame(3)}
    path = drop(landing, "universe.csv", universe_csv(frames))
    requests, cursor, _, added = tick(None)
    assert sorted(r.partition_key for r in requests) == added == ["AAA", "BBB", "CCC"]
    for request in requests:
        ops = request.run_config["ops"]["raw_prices"]["config"]
        assert ops["symbol"] == request.partition_key
        assert source_of(request).read_bytes() == path.read_bytes()
    changed = frames["BBB"].copy()
    changed.iloc[-1, changed.columns.get_loc("close")] *= 1.02
    path.write_bytes(universe_csv({**frames, "BBB": changed}))
    [again], cursor, skip, _ = tick(cursor)
    assert again.partition_key == "BBB"
    assert skip is None  # a run was requested; AAA and CCC were left alone


def test_a_file_name_that_cannot_be_an_instrument_is_reported_not_run(landing, tick):
    drop(landing, "my prices.csv", price_csv(1))
    requests, _, skip, _ = tick(None)
    assert requests == []
    assert "cannot be used" in skip and "rename the file" in skip


def test_bad_file_requests_one_run_and_is_not_requested_again(landing, tick):
    broken = b"when,what\nyesterday,oops\n"
    drop(landing, "BROKEN.csv", broken)
    [request], cursor, _, _ = tick(None)
    assert request.run_key == f"BROKEN:{sha(broken)}"
    for _ in range(3):
        requests, cursor, _, _ = tick(cursor)
        assert requests == []


def test_bad_file_run_fails_at_raw_prices_and_leaves_the_champion(
    landing, tick, artifacts_dir, tmp_path
):
    champion = artifacts_dir / "registry" / "BROKEN" / "champion.json"
    champion.parent.mkdir(parents=True)
    champion.write_text(json.dumps({"version": "v0001", "checkpoint": "/somewhere"}))
    before = champion.read_bytes()
    drop(landing, "BROKEN.csv", b"when,what\nyesterday,oops\n")
    [request], _, _, _ = tick(None)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("instrument", ["BROKEN"])
        result = defs.resolve_job_def("retrain_job").execute_in_process(
            run_config=request.run_config,
            instance=instance,
            partition_key="BROKEN",
            raise_on_error=False,
        )
        assert not result.success
        materialized = {
            e.asset_key.to_user_string()
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        }
        assert materialized == set()
        [failure_event] = [
            e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        assert failure_event.step_key == "raw_prices"
        assert "lacks required column(s)" in failure_event.event_specific_data.error.message
        assert failure_kind(instance, result.run_id) == "data"  # never retried
    assert champion.read_bytes() == before


def test_file_still_being_written_waits_for_it_to_settle(landing, tick, monkeypatch):
    monkeypatch.setenv(SETTLE_ENV_VAR, "30")
    path = drop(landing, "SPY.csv", price_csv(1))
    requests, cursor, skip, _ = tick(None)
    assert requests == []
    assert re.search(r"SPY.csv is still being written; waiting 30s", skip), skip
    assert LandingCursor.from_json(cursor).watermark_ns == 0
    settled(path)
    [request], _, _, _ = tick(cursor)
    assert request.run_key == f"SPY:{sha(price_csv(1))}"


def test_empty_file_waits_for_content(landing, tick):
    path = drop(landing, "SPY.csv", b"")
    requests, cursor, skip, _ = tick(None)
    assert requests == [] and skip.startswith("SPY.csv is still being written")
    path.write_bytes(price_csv(1))
    [request], _, _, _ = tick(cursor)
    assert request.run_key == f"SPY:{sha(price_csv(1))}"


def test_temp_hidden_and_other_files_are_ignored(landing, tick):
    drop(landing, ".SPY.csv", price_csv(1))  # `cp x landing/.x.csv && mv` is the atomic way
    drop(landing, "SPY.csv.part", price_csv(2))
    drop(landing, "notes.txt", b"hello")
    (landing / "sub.csv").mkdir()
    (landing / "sub.csv" / "inner.csv").write_bytes(price_csv(3))
    requests, _, skip, _ = tick(None)
    assert requests == []
    assert skip.startswith("no new price file")


def test_a_file_copied_in_with_an_old_modification_time_is_still_seen(landing, tick):
    """`cp -p` and rsync keep the source's mtime; the cursor orders files by change time."""
    drop(landing, "SPY.csv", price_csv(1))
    [_], cursor, _, _ = tick(None)
    old = drop(landing, "OLD.csv", price_csv(4))
    settled(old, age=10 * 365 * 86400)  # modified ten years ago
    [request], _, _, _ = tick(cursor)
    assert request.partition_key == "OLD"


def test_cursor_round_trip_stays_small_and_a_foreign_cursor_names_the_fix(landing, tick):
    for i in range(60):
        drop(landing, f"T{i:02d}.csv", price_csv(1000 + i % 3))
    _, raw, _, _ = tick(None)
    cursor = LandingCursor.from_json(raw)
    newest = max(p.stat().st_ctime_ns for p in landing.iterdir())
    assert cursor.watermark_ns == newest
    # Only the names at the newest change time: the cursor does not grow with the files.
    assert set(cursor.at_watermark) == {
        p.name for p in landing.iterdir() if p.stat().st_ctime_ns == newest
    }
    assert LandingCursor.from_json(cursor.to_json()) == cursor
    assert cursor.to_json() == raw
    with pytest.raises(ValueError, match=r"not a landing cursor.*Set cursor"):
        tick("42")
    with pytest.raises(ValueError, match=r"version 1, expected 2"):
        LandingCursor.from_json(json.dumps({"version": 1, "seen": {}, "files": {}}))


def test_a_repeated_tick_requests_the_same_run_keys(landing, tick):
    """At-least-once: if the daemon dies before saving the cursor and before creating the runs,
    the tick is evaluated again from the old cursor and yields the same run keys."""
    drop(landing, "AAA.csv", price_csv(1))
    drop(landing, "BBB.csv", price_csv(2))
    first, _, _, _ = tick(None, keep=False)
    again, _, _, _ = tick(None, keep=False)
    assert [r.run_key for r in again] == [r.run_key for r in first]
    assert [r.run_config for r in again] == [r.run_config for r in first]


def test_burst_of_versions_requests_exactly_one_run_per_instrument_and_content(landing, tick):
    versions = [price_csv(seed) for seed in range(100, 112)]
    cursor, requested, expected = None, [], set()
    # Versions arrive in quick succession between ticks: new names, overwrites of one name,
    # and copies of earlier versions, with a tick after every few writes.
    for i, data in enumerate(versions):
        drop(landing, f"D{i:02d}.csv", data)
        drop(landing, "LATEST.csv", data)
        expected |= {(f"D{i:02d}", sha(data))}
        if i % 3 == 2:
            requests, cursor, _, _ = tick(cursor)
            requested += requests
            expected |= {("LATEST", sha(data))}
    requests, cursor, _, _ = tick(cursor)
    requested += requests
    expected |= {("LATEST", sha(versions[-1]))}
    for _ in range(2):  # nothing new: later ticks request nothing
        assert tick(cursor)[0] == []
    pairs = [(r.partition_key, r.tags[CONTENT_TAG]) for r in requested]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == expected
    for request in requested:
        assert sha(source_of(request).read_bytes()) == request.tags[CONTENT_TAG]


def test_bad_extra_run_config_fails_the_tick_without_advancing(landing, tick, monkeypatch):
    drop(landing, "SPY.csv", price_csv(1))
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


# --- retries: infrastructure failures are retried a bounded number of times --------------------


@dg.op
def ray_did_not_start():
    raise RuntimeError("Ray did not start: the GCS server did not come up")


@dg.op
def bad_data():
    raise failure(DATA, "prices.csv lacks required column(s) ['volume']")


def failed_run(instance, op, attempt: int, key: str = "SPY:abc") -> str:
    job = dg.GraphDefinition(name=f"job_{op.name}", node_defs=[op]).to_job()
    tags = {
        REQUESTED_BY_TAG: SENSOR_NAME,
        ATTEMPT_TAG: str(attempt),
        "dagster/run_key": key if attempt == 1 else f"{key}#retry{attempt - 1}",
        "dagster/partition": "SPY",
        CONTENT_TAG: "abc",
    }
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert not result.success
    return result.run_id


def test_only_infrastructure_failures_are_retried_and_only_a_bounded_number_of_times(instance):
    infra = failed_run(instance, ray_did_not_start, attempt=1)
    data = failed_run(instance, bad_data, attempt=1, key="QQQ:def")
    assert (failure_kind(instance, infra), failure_kind(instance, data)) == (
        "infrastructure",
        "data",
    )
    requests, notes, after = infrastructure_retries(instance, SENSOR_NAME, 0.0, max_retries=2)
    [retry] = requests
    assert (retry.partition_key, retry.run_key) == ("SPY", "SPY:abc#retry1")
    assert retry.tags[ATTEMPT_TAG] == "2" and retry.tags[CONTENT_TAG] == "abc"
    # Each failed run is tagged with why (the Runs list filters on it); a retry is not.
    outcomes = {r: instance.get_run_by_id(r).tags.get("rl_assets/outcome") for r in (infra, data)}
    assert outcomes == {infra: "failed:infrastructure", data: "failed:data"}
    assert "rl_assets/outcome" not in retry.tags
    # The same failures are not looked at twice.
    assert infrastructure_retries(instance, SENSOR_NAME, after, max_retries=2)[0] == []
    # The last allowed attempt fails too: no further retry, and the tick says so.
    failed_run(instance, ray_did_not_start, attempt=3)
    requests, notes, _ = infrastructure_retries(instance, SENSOR_NAME, after, max_retries=2)
    assert requests == []
    assert any("not retried again (limit 2)" in n for n in notes)


def test_a_started_run_whose_worker_was_killed_is_failed_and_then_retried(instance):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a run worker that no longer exists
    tags = {REQUESTED_BY_TAG: SENSOR_NAME, ATTEMPT_TAG: "1", "dagster/run_key": "SPY:abc"}
    orphan, alive = (
        instance.add_run(
            dg.DagsterRun(
                job_name=retrain_job.name,
                run_id=run_id,
                tags={**tags, "dagster/partition": "SPY"},
                status=dg.DagsterRunStatus.STARTED,
            )
        )
        for run_id in ("orphan", "alive")
    )
    for run, pid in ((orphan, dead.pid), (alive, os.getpid())):
        instance.report_engine_event(
            f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
        )
    assert fail_orphaned_runs(instance, SENSOR_NAME) == ["orphan"]
    assert instance.get_run_by_id("orphan").status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id("alive").status == dg.DagsterRunStatus.STARTED
    [retry], _, _ = infrastructure_retries(instance, SENSOR_NAME, 0.0, max_retries=2)
    assert retry.run_key == "SPY:abc#retry1" and retry.partition_key == "SPY"


# --- definitions: the job, the sensor and the schedule as shipped ----------------------------


def test_retrain_job_is_the_whole_pipeline_with_every_check_per_instrument():
    job = defs.resolve_job_def("retrain_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == ALL_ASSETS
    every_check = set(defs.resolve_asset_graph().asset_check_keys)
    assert set(job.asset_layer.asset_graph.asset_check_keys) == every_check
    assert {key.name for key in every_check} >= {
        "raw_prices_schema_valid",
        "candidate_restores_and_acts",
        "candidate_beats_champion",
    }
    assert job.partitions_def is not None and job.partitions_def.name == "instrument"


def test_sensor_and_schedule_ship_stopped_and_target_the_retrain_job():
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
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


# --- the weekly schedule: every instrument, never the same content and config twice -----------


def schedule_tick(instance, artifacts_dir):
    context = dg.build_schedule_context(
        instance=instance,
        resources={"artifacts": ArtifactStoreResource()},
    )
    return weekly_retrain_schedule(context)


@pytest.fixture
def prices_dir(tmp_path, monkeypatch):
    from rl_assets import constants

    root = tmp_path / "prices"
    root.mkdir()
    monkeypatch.setenv(constants.PRICES_DIR_ENV_VAR, str(root))
    monkeypatch.delenv(PRICES_FILE_ENV_VAR, raising=False)
    monkeypatch.delenv(RETRAIN_RUN_CONFIG_ENV_VAR, raising=False)
    return root


def test_the_schedule_requests_one_run_per_instrument(prices_dir, artifacts_dir, instance):
    (prices_dir / "SPY.csv").write_bytes(price_csv(5))
    instance.add_dynamic_partitions("instrument", ["SPY", EDGE, NULL])
    requests = schedule_tick(instance, artifacts_dir)
    assert sorted(r.partition_key for r in requests) == sorted(["SPY", EDGE, NULL])
    spy = next(r for r in requests if r.partition_key == "SPY")
    assert spy.tags[CONTENT_TAG] == sha(price_csv(5))
    assert source_of(spy).read_bytes() == price_csv(5)
    generated = next(r for r in requests if r.partition_key == EDGE)
    assert "raw_prices" not in generated.run_config.get("ops", {})
    for request in requests:
        dg.validate_run_config(defs.resolve_job_def("retrain_job"), request.run_config)


@pytest.mark.parametrize("outcome", ["SUCCESS", "FAILURE", "CANCELED"])
def test_the_schedule_skips_content_and_config_that_already_ran_whatever_the_outcome(
    prices_dir, artifacts_dir, instance, tmp_path, monkeypatch, outcome
):
    (prices_dir / "SPY.csv").write_bytes(price_csv(5))
    instance.add_dynamic_partitions("instrument", ["SPY"])
    [request] = schedule_tick(instance, artifacts_dir)
    record(instance, [request], status=dg.DagsterRunStatus[outcome])
    skip = schedule_tick(instance, artifacts_dir)
    assert isinstance(skip, dg.SkipReason)
    assert "already ran in run-0" in skip.skip_message and "by hand to force" in skip.skip_message
    # A new effective config is a new question: it runs.
    extra = tmp_path / "retrain.yaml"
    extra.write_text(yaml.safe_dump(TINY_RUN_CONFIG))
    monkeypatch.setenv(RETRAIN_RUN_CONFIG_ENV_VAR, str(extra))
    [by_config] = schedule_tick(instance, artifacts_dir)
    monkeypatch.delenv(RETRAIN_RUN_CONFIG_ENV_VAR)
    # So does new content.
    (prices_dir / "SPY.csv").write_bytes(price_csv(6))
    [by_content] = schedule_tick(instance, artifacts_dir)
    assert by_config.tags[CONFIG_TAG] != request.tags[CONFIG_TAG]
    assert by_content.tags[CONTENT_TAG] != request.tags[CONTENT_TAG]


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
    resources = {"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "values"))}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("instrument", ["SPY"])

        def status():
            return get_stale_status_resolver(instance, assets).get_status(train, "SPY")

        def materialize(path, **kwargs):
            return dg.materialize(
                assets, run_config=config(path), instance=instance, partition_key="SPY",
                resources=resources, **kwargs,
            ).success  # fmt: skip

        assert materialize(a)
        assert status() == StaleStatus.FRESH
        assert materialize(same_as_a, selection=[prices.raw_prices])
        assert status() == StaleStatus.FRESH
        assert materialize(b, selection=[prices.raw_prices])
        assert status() == StaleStatus.STALE


# --- instruments that arrived only through the landing folder stay first-class --------------


def test_a_landed_instrument_is_found_by_the_schedule_the_decay_sensor_and_the_list(
    landing, prices_dir, tick, instance, artifacts_dir, capsys
):
    from rl_assets import instruments
    from rl_assets.automation.decay import champion_decay_sensor
    from rl_assets.registry import Registry
    from rl_assets.rl import checkpoints

    frames = {"AAA": price_frame(1), "BBB": price_frame(2)}
    universe = drop(landing, "universe.csv", universe_csv(frames))
    requests, _, _, added = tick(None, keep=False)  # as if the runs had not happened yet
    assert sorted(added) == ["AAA", "BBB"]
    instance.add_dynamic_partitions("instrument", added)  # what the daemon does with them
    copy = source_of(requests[0])
    # Nothing in the prices directory or the generator: the landed copy is where they live.
    source = instruments.resolve("AAA")
    assert (source.path, source.symbol, source.landed_from) == (str(copy), "AAA", str(universe))
    assert "landed" in source.describe()

    # The weekly schedule retrains them on that copy.
    scheduled = {r.partition_key: r for r in schedule_tick(instance, artifacts_dir)}
    assert set(scheduled) == {"AAA", "BBB"}
    assert source_of(scheduled["AAA"]).read_bytes() == universe.read_bytes()
    assert scheduled["AAA"].run_config["ops"]["raw_prices"]["config"]["symbol"] == "AAA"

    # The decay sensor requests a retrain of a decayed champion of a landed instrument.
    lane = Registry.for_instrument(artifacts_dir / "registry", "AAA")
    checkpoints.write_json_atomically(lane.pointer, {"version": "v0001"})
    lane.record_monitoring(
        {"champion_version": "v0001", "decayed": True, "data_version": "d1",
         "through": "2024-01-05", "reason": "the edge has decayed"}
    )  # fmt: skip
    context = dg.build_sensor_context(
        instance=instance, resources={"artifacts": ArtifactStoreResource()}
    )
    [decay] = champion_decay_sensor(context).run_requests
    assert decay.partition_key == "AAA" and source_of(decay).read_bytes() == universe.read_bytes()

    # `instruments list` says where each one's prices came from.
    assert instruments.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(rf"AAA\s+registered\s+landed {re.escape(str(universe))}", listed), listed
    assert "no prices found" not in listed
