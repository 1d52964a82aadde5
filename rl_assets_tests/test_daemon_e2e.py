"""The real `dagster-daemon run`: files dropped in the landing dir retrain, queue, gate and dedupe."""

import contextlib
import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.scheduler.instigation import InstigatorType

from rl_assets.automation.jobs import CONTENT_TAG, TRAINING_TAG
from rl_assets.data.synthetic import generate_prices
from rl_assets_tests.conftest import TINY_RUN_CONFIG

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKSPACE = REPO / "workspace.yaml"
SENSOR = "new_prices_sensor"
DEADLINE_SECONDS = 240
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def prices_csv(seed: int, structure: str = "momentum") -> bytes:
    df = generate_prices("2019-01-01", "2023-12-31", seed=seed, structure=structure)
    return (
        df.reset_index()[["date", "open", "high", "low", "close", "volume"]]
        .to_csv(index=False)
        .encode()
    )


def drop(landing: Path, name: str, data: bytes) -> Path:
    """Drop a file the safe way: write a hidden temp file, then rename it into place."""
    tmp = landing / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, landing / name)
    return landing / name


def write_yaml(path: Path, config: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config))
    os.replace(tmp, path)


class Daemon:
    """A `dagster-daemon run` in its own process group, with a temporary instance."""

    def __init__(self, tmp_path: Path, max_concurrent_runs: int | None = None):
        self.home = tmp_path / "dagster_home"
        self.home.mkdir()
        instance_yaml = yaml.safe_load((REPO / "dagster.yaml").read_text())
        if max_concurrent_runs is not None:
            instance_yaml["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
        self.landing = tmp_path / "landing"
        self.landing.mkdir()
        self.artifacts = tmp_path / "artifacts"
        self.run_config = tmp_path / "retrain.yaml"
        write_yaml(self.run_config, TINY_RUN_CONFIG)
        self.log_path = tmp_path / "daemon.log"
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "RL_ASSETS_ARTIFACTS": str(self.artifacts),
            "RL_ASSETS_LANDING_DIR": str(self.landing),
            "RL_ASSETS_SENSOR_INTERVAL_SECONDS": "1",
            # Files are renamed into place here, so nothing needs time to settle.
            "RL_ASSETS_LANDING_SETTLE_SECONDS": "0",
            "RL_ASSETS_RETRAIN_RUN_CONFIG": str(self.run_config),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        # Each run starts and stops its own local Ray, as on a user's machine.
        for name in ("RAY_ADDRESS", "RL_ASSETS_PRICES_FILE"):
            self.env.pop(name, None)
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> None:
        out = subprocess.run(
            [str(BIN / "dagster"), *args, "-w", str(WORKSPACE)],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, f"dagster {' '.join(args)} failed:\n{out.stderr[-3000:]}"

    @contextmanager
    def running(self) -> Iterator["Daemon"]:
        # Create the SQLite databases first: two processes creating them at once (the daemon
        # and `dagster sensor start`) race on the schema migration.
        self.instance = DagsterInstance.from_config(str(self.home))
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: code server and run workers too
        )
        try:
            self.cli("sensor", "start", SENSOR)
            yield self
        finally:
            self.stop()
            log.close()
            self.instance.dispose()

    def stop(self) -> None:
        """SIGTERM the daemon's process group, then SIGKILL whatever is left of it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while self.group_members() and time.monotonic() < deadline:
            time.sleep(0.2)  # the code server and run workers got SIGTERM too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def group_members(self) -> list[int]:
        """Live (not zombie) processes still in the daemon's process group."""
        members = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            state, pgrp = fields[0], int(fields[2])
            if pgrp == self.proc.pid and state != "Z":
                members.append(int(stat.parent.name))
        return members

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_for(self, what: str, predicate: Callable[[], Any], deadline: float) -> Any:
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the daemon exited ({self.proc.returncode}) waiting for {what}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}:\n{self.log_tail()}")

    def runs(self) -> list:
        """Run records of retrain_job, oldest first."""
        records = self.instance.get_run_records(filters=RunsFilter(job_name="retrain_job"))
        return sorted(records, key=lambda r: r.create_timestamp)

    def run_for(self, content: bytes):
        key = hashlib.sha256(content).hexdigest()
        return next((r for r in self.runs() if r.dagster_run.tags.get(CONTENT_TAG) == key), None)

    def sensor_state(self):
        states = self.instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        return next((s for s in states if s.name == SENSOR), None)

    def cursor(self) -> dict:
        state = self.sensor_state()
        raw = state.instigator_data.cursor if state and state.instigator_data else None
        return json.loads(raw) if raw else {"seen": {}, "files": {}}

    def tick_records(self) -> list:
        """The sensor's ticks, newest first."""
        state = self.sensor_state()
        return list(self.instance.get_ticks(state.instigator_origin_id, state.selector_id))

    def ticks(self) -> int:
        return len(self.tick_records())

    def ticks_since(self, count: int) -> list:
        """Ticks after the first ``count`` ticks, newest first."""
        records = self.tick_records()
        return records[: len(records) - count]

    def wait_ticks(self, n: int, deadline: float) -> None:
        start = self.ticks()
        self.wait_for(f"{n} more sensor ticks", lambda: self.ticks() >= start + n, deadline)


def events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list:
    return [r.dagster_event for r in instance.all_logs(run_id, of_type=kind)]


def why_failed(instance: DagsterInstance, run_id: str) -> str:
    """Failed steps and checks of a run, for assertion messages."""
    steps = [
        f"{e.step_key}: {e.event_specific_data.error.message.strip()[:500]}"
        for e in events(instance, run_id, DagsterEventType.STEP_FAILURE)
    ]
    checks = [
        f"check {e.event_specific_data.check_name} failed"
        for e in events(instance, run_id, DagsterEventType.ASSET_CHECK_EVALUATION)
        if not e.event_specific_data.passed
    ]
    return "\n".join(steps + checks) or "no failed step or check recorded"


def champion(daemon: Daemon) -> dict | None:
    pointer = daemon.artifacts / "registry" / "champion.json"
    return json.loads(pointer.read_text()) if pointer.exists() else None


def test_dropped_files_retrain_one_at_a_time_and_only_a_passing_gate_promotes(tmp_path):
    # The generator's own series (seed 7), which the in-process pipeline tests promote.
    good = prices_csv(7)
    random_walk = prices_csv(7, structure="random_walk")
    bad = b"when,what\nyesterday,oops\n"
    daemon = Daemon(tmp_path)
    deadline = time.monotonic() + DEADLINE_SECONDS
    with daemon.running():
        assert champion(daemon) is None
        # A good file: one run, with the tiny budget from $RL_ASSETS_RETRAIN_RUN_CONFIG.
        drop(daemon.landing, "prices.csv", good)
        first = daemon.wait_for("a run for prices.csv", lambda: daemon.run_for(good), deadline)
        # The next requests read a gate raised out of reach (as a user raises a threshold),
        # and one training iteration (no need to train long to fail), and queue behind it.
        strict = copy.deepcopy(TINY_RUN_CONFIG)
        strict["ops"]["trained_policy"]["config"].update(min_iterations=1, max_iterations=1)
        strict["resources"] = {"gate_thresholds": {"config": {"min_validation_sharpe": 50.0}}}
        write_yaml(daemon.run_config, strict)
        drop(daemon.landing, "random_walk.csv", random_walk)
        daemon.wait_for("a run for random_walk.csv", lambda: daemon.run_for(random_walk), deadline)
        drop(daemon.landing, "broken.csv", bad)
        daemon.wait_for("a run for broken.csv", lambda: daemon.run_for(bad), deadline)
        # Same content again under a new name, and the first file touched: nothing to run.
        drop(daemon.landing, "prices_again.csv", good)
        (daemon.landing / "prices.csv").touch()
        daemon.wait_for(
            "the sensor to see prices_again.csv",
            lambda: "prices_again.csv" in daemon.cursor()["files"],
            deadline,
        )
        daemon.wait_for(
            "the run for prices.csv to finish",
            lambda: daemon.run_for(good).dagster_run.status in FINISHED,
            deadline,
        )
        assert daemon.run_for(good).dagster_run.status == DagsterRunStatus.SUCCESS, why_failed(
            daemon.instance, first.dagster_run.run_id
        )
        assert champion(daemon)["run_id"] == first.dagster_run.run_id
        # The two queued runs get a budget of their own (a loaded machine trains slowly).
        deadline = time.monotonic() + DEADLINE_SECONDS
        daemon.wait_for(
            "the queued runs to finish",
            lambda: all(r.dagster_run.status in FINISHED for r in daemon.runs()),
            deadline,
        )
        daemon.wait_ticks(2, deadline)
        records = daemon.runs()
        instance = daemon.instance

        assert len(records) == 3, [r.dagster_run.tags.get(CONTENT_TAG) for r in records]
        ok, gated, broken = (daemon.run_for(c) for c in (good, random_walk, bad))
        assert ok.dagster_run.run_id == first.dagster_run.run_id
        assert ok.dagster_run.status == DagsterRunStatus.SUCCESS, daemon.log_tail()
        assert gated.dagster_run.status == DagsterRunStatus.FAILURE
        assert broken.dagster_run.status == DagsterRunStatus.FAILURE
        for record in records:
            assert record.dagster_run.tags[TRAINING_TAG] == "true"
            assert record.dagster_run.tags["dagster/sensor_name"] == SENSOR

        # At most one training run at a time: the others were queued, then ran one by one.
        spans = sorted((r.start_time, r.end_time) for r in records)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, spans
        assert gated.create_timestamp.timestamp() < ok.end_time, "the second run never queued"

        # The passing run promoted; the failing gate and the bad file left the champion alone.
        current = champion(daemon)
        assert current["version"] == "v0001"
        assert current["run_id"] == ok.dagster_run.run_id
        history = (daemon.artifacts / "registry" / "history.jsonl").read_text().splitlines()
        assert [json.loads(line)["event"] for line in history] == ["promote"]

        checks = {
            e.event_specific_data.check_name: e.event_specific_data.passed
            for e in events(
                instance, gated.dagster_run.run_id, DagsterEventType.ASSET_CHECK_EVALUATION
            )
        }
        assert checks["trained_policy_validation_sharpe_at_least_minimum"] is False, checks
        for record in (gated, broken):
            materialized = {
                e.asset_key.to_user_string()
                for e in events(
                    instance, record.dagster_run.run_id, DagsterEventType.ASSET_MATERIALIZATION
                )
            }
            assert "promoted_policy" not in materialized
        failures = events(instance, broken.dagster_run.run_id, DagsterEventType.STEP_FAILURE)
        broken_checks = {
            e.event_specific_data.check_name: e.event_specific_data.passed
            for e in events(
                instance, broken.dagster_run.run_id, DagsterEventType.ASSET_CHECK_EVALUATION
            )
        }
        assert [e.step_key for e in failures] == ["raw_prices"] or (
            broken_checks.get("raw_prices_schema_valid") is False
        ), (failures, broken_checks)
        assert instance.get_latest_materialization_event(AssetKey("promoted_policy")).run_id == (
            ok.dagster_run.run_id
        )
        assert "database is locked" not in daemon.log_path.read_text(errors="replace")
    assert daemon.group_members() == [], "daemon, code server or run workers outlived the test"


def test_a_burst_of_twenty_files_queues_one_run_per_content(tmp_path):
    """The queue is paused (max_concurrent_runs 0): what the sensor requests stays visible."""
    versions = [prices_csv(seed) for seed in range(200, 220)]
    keys = {hashlib.sha256(v).hexdigest() for v in versions}
    daemon = Daemon(tmp_path, max_concurrent_runs=0)
    deadline = time.monotonic() + DEADLINE_SECONDS
    with daemon.running():
        for i, data in enumerate(versions):
            drop(daemon.landing, f"drop_{i:02d}.csv", data)
            drop(daemon.landing, "latest.csv", data)  # one name overwritten 20 times
            if i % 4 == 3:
                drop(daemon.landing, f"copy_{i:02d}.csv", versions[i // 2])
            time.sleep(0.1)
        names = {p.name for p in daemon.landing.iterdir() if not p.name.startswith(".")}
        daemon.wait_for(
            "the sensor to see every file",
            lambda: names <= set(daemon.cursor()["files"]),
            deadline,
        )
        assert {r.dagster_run.tags[CONTENT_TAG] for r in daemon.runs()} == keys
        # At-least-once: forget the cursor, so the next tick sees every file as new again;
        # the run keys turn every request into a no-op.
        before = daemon.ticks()
        daemon.cli("sensor", "cursor", SENSOR, "--delete")
        daemon.wait_for(
            "a tick whose requests were all deduplicated by run key",
            lambda: any(
                set(tick.run_keys) == keys and not tick.run_ids
                for tick in daemon.ticks_since(before)
            ),
            deadline,
        )
        records = daemon.runs()
        assert len(records) == 20
        assert {r.dagster_run.tags["dagster/run_key"] for r in records} == keys
        assert {r.dagster_run.status for r in records} == {DagsterRunStatus.QUEUED}
        assert "database is locked" not in daemon.log_path.read_text(errors="replace")
    assert daemon.group_members() == [], "daemon, code server or run workers outlived the test"
