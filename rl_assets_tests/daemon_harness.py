"""A real `dagster-daemon run` for the end-to-end tests (test_daemon_e2e.py,
test_daemon_decay_e2e.py): its DAGSTER_HOME, landing folder and run config, and helpers to
wait for its runs and read what they did. Two test files, so pytest-xdist can run the two
long daemon scenarios on different workers."""

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

import pandas as pd
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorType

from rl_assets.automation.jobs import CONTENT_TAG
from rl_assets.automation.sensors import LandingCursor
from rl_assets.data.synthetic import generate_prices, latest_business_day
from rl_assets_tests.conftest import (
    TINY_RUN_CONFIG,
)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKSPACE = REPO / "workspace.yaml"
SENSOR = "new_prices_sensor"
PARTITIONS = "instrument"
# A liveness guard, not a speed target: the CPU is shared, and six runs train one at a time
# (each a candidate and two walk-forward folds, on two private Ray sessions). Measured this
# session: 18.5 minutes alone, over 20 beside the other test worker; 45 minutes catches a
# hang without failing a slow machine.
DEADLINE_SECONDS = 2700
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
# The gate raised out of reach (a tightening: allowed), and one training iteration: no need
# to train long to be refused.
STRICT_RUN_CONFIG = copy.deepcopy(TINY_RUN_CONFIG)
STRICT_RUN_CONFIG["ops"]["trained_policy"]["config"].update(min_iterations=1, max_iterations=1)
STRICT_RUN_CONFIG["resources"] = {"gate_thresholds": {"config": {"min_test_sharpe": 50.0}}}


def bars(seed: int, structure: str = "momentum") -> pd.DataFrame:
    """Current daily bars (to the latest business day, so a champion's signal is not stale)."""
    return generate_prices("2019-01-01", latest_business_day(), seed=seed, structure=structure)


def csv(frame: pd.DataFrame) -> bytes:
    return (
        frame.reset_index()[["date", "open", "high", "low", "close", "volume"]]
        .to_csv(index=False)
        .encode()
    )


def universe_csv(frames: dict[str, pd.DataFrame]) -> bytes:
    """A multi-ticker file: one row per (date, symbol)."""
    rows = [f.reset_index().assign(symbol=s) for s, f in frames.items()]
    return pd.concat(rows).to_csv(index=False).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def live_processes(match: Callable[[int, bytes], bool]) -> list[int]:
    """Live (not zombie) processes for which ``match(pid, environ)`` holds."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            environ = (stat.parent / "environ").read_bytes()
        except (OSError, IndexError):
            continue
        if state != "Z" and match(pid, environ):
            found.append(pid)
    return found


def processes_of(home: Path) -> list[int]:
    """Every live process started for the instance at ``home``, in any process group or
    session: the daemon, its code server and run workers, and what the runs detach on
    purpose (run guards, Ray's reaper) or start (Ray's raylet, GCS and workers)."""
    mark = f"DAGSTER_HOME={home}\0".encode()
    return live_processes(lambda pid, environ: pid != os.getpid() and mark in environ)


def describe(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            out.append(f"{pid}: {cmd[:160]}")
    return out


class Daemon:
    """A `dagster-daemon run` in its own process group, with a temporary instance."""

    def __init__(
        self, tmp_path: Path, max_concurrent_runs: int | None = None, sensor: str = SENSOR
    ):
        self.sensor = sensor
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
            # No instrument from the repo's own prices directory.
            "RL_ASSETS_PRICES_DIR": str(tmp_path / "no_prices"),
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
            self.cli("sensor", "start", self.sensor)
            # What the test checks at the end finds the daemon now (it can see a process).
            assert self.proc.pid in processes_of(self.home)
            yield self
        finally:
            self.stop()
            log.close()
            self.instance.dispose()

    def stop(self) -> None:
        """SIGTERM the daemon's process group, then SIGKILL whatever is left of it; then wait
        for what the runs detached (run guards, Ray's reaper) to end by itself."""
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
        deadline = time.monotonic() + 30
        while processes_of(self.home) and time.monotonic() < deadline:
            time.sleep(0.5)

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
        pytest.fail(f"timed out waiting for {what}:\n{self.summary()}\n{self.log_tail()}")

    def summary(self) -> str:
        return "\n".join(
            f"{r.dagster_run.tags.get('dagster/partition')} "
            f"{r.dagster_run.tags.get(CONTENT_TAG, '')[:12]} {r.dagster_run.status.value}"
            for r in self.runs()
        )

    def runs(self) -> list:
        """Run records of retrain_job started by this daemon's sensor, oldest first."""
        records = self.instance.get_run_records(
            filters=RunsFilter(job_name="retrain_job", tags={"dagster/sensor_name": self.sensor})
        )
        return sorted(records, key=lambda r: r.create_timestamp)

    def run_for(self, instrument: str, content: str):
        """The run of ``instrument`` on ``content`` (a sha256), if requested yet."""
        return next(
            (
                r
                for r in self.runs()
                if r.dagster_run.tags.get("dagster/partition") == instrument
                and r.dagster_run.tags.get(CONTENT_TAG) == content
            ),
            None,
        )

    def sensor_state(self):
        states = self.instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        return next((s for s in states if s.name == self.sensor), None)

    def cursor(self) -> LandingCursor:
        state = self.sensor_state()
        raw = state.instigator_data.cursor if state and state.instigator_data else None
        return LandingCursor.from_json(raw)

    def handled(self, *names: str) -> bool:
        """The sensor has looked at these landed files as they are now."""
        cursor = self.cursor()
        return all(cursor.handled(n, (self.landing / n).stat().st_ctime_ns) for n in names)

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

    def logs_mention(self, text: str) -> list[str]:
        """The daemon's output and every run's captured output that contain ``text``."""
        files = [self.log_path, *(p for p in self.home.rglob("*") if p.suffix in (".out", ".err"))]
        return [str(p) for p in files if text in p.read_text(errors="replace")]


def events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list:
    return [r.dagster_event for r in instance.all_logs(run_id, of_type=kind)]


def materialized(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """Asset -> partition of each materialization in the run."""
    return {
        e.asset_key.to_user_string(): e.partition
        for e in events(instance, run_id, DagsterEventType.ASSET_MATERIALIZATION)
    }


def check_results(instance: DagsterInstance, run_id: str) -> dict[str, Any]:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in events(instance, run_id, DagsterEventType.ASSET_CHECK_EVALUATION)
    }


def why_failed(instance: DagsterInstance, run_id: str) -> str:
    """Failed steps and checks of a run, for assertion messages."""
    steps = [
        f"{e.step_key}: {e.event_specific_data.error.message.strip()[:500]}"
        for e in events(instance, run_id, DagsterEventType.STEP_FAILURE)
    ]
    checks = [
        f"check {n} failed" for n, d in check_results(instance, run_id).items() if not d.passed
    ]
    return "\n".join(steps + checks) or "no failed step or check recorded"


def champion(daemon: Daemon, instrument: str) -> dict | None:
    pointer = daemon.artifacts / "registry" / instrument / "champion.json"
    return json.loads(pointer.read_text()) if pointer.exists() else None
