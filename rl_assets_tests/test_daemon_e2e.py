"""The real `dagster-daemon run`: files dropped in the landing dir become instruments, and each
(instrument, content) retrains, gates, promotes, signals and is watched once, on its own."""

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

from rl_assets.automation.decay import DECAY_SENSOR
from rl_assets.automation.jobs import CONFIG_TAG, CONTENT_TAG, config_digest
from rl_assets.automation.sensors import LandingCursor
from rl_assets.data.sources import symbol_digests
from rl_assets.data.synthetic import generate_prices, latest_business_day
from rl_assets_tests.conftest import (
    PIPELINE_ASSETS,
    TINY_RUN_CONFIG,
    materialize_command,
    register_instruments,
    step_window,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKSPACE = REPO / "workspace.yaml"
SENSOR = "new_prices_sensor"
PARTITIONS = "instrument"
# A liveness guard, not a speed target: the CPU is shared, and six runs train one at a time.
DEADLINE_SECONDS = 1200
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
# The gate raised out of reach (a tightening: allowed), and one training iteration: no need
# to train long to be refused.
STRICT_RUN_CONFIG = copy.deepcopy(TINY_RUN_CONFIG)
STRICT_RUN_CONFIG["ops"]["trained_policy"]["config"].update(min_iterations=1, max_iterations=1)
STRICT_RUN_CONFIG["resources"] = {"gate_thresholds": {"config": {"min_validation_sharpe": 50.0}}}


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


def test_dropped_files_become_instruments_each_retrained_gated_and_signalled_on_its_own(tmp_path):
    momentum = bars(7)  # the generator's own planted edge, which the tiny budget promotes
    spy = csv(momentum)
    # A multi-ticker file: AAA holds the very bars of SPY, BBB a realistic null. Identical data
    # and config train an identical policy, which does not beat a champion it equals: AAA is
    # promoted only because its lane is its own.
    universe = universe_csv({"AAA": momentum, "BBB": bars(11, "garch_null")})
    # The same file rewritten: AAA's rows byte for byte the same, BBB's rows new.
    universe_v2 = universe_csv({"AAA": momentum, "BBB": bars(12, "garch_null")})
    random_walk = csv(bars(7, "random_walk"))
    broken = b"when,what\nyesterday,oops\n"
    aaa, bbb = symbol_digests_of(tmp_path, universe)
    aaa_v2, bbb_v2 = symbol_digests_of(tmp_path, universe_v2)
    assert aaa == aaa_v2 and bbb != bbb_v2
    tiny, strict = config_digest(TINY_RUN_CONFIG), config_digest(STRICT_RUN_CONFIG)
    # (instrument, content) -> the config the sensor read for it, and whether it is promoted.
    expected = {
        ("SPY", sha(spy)): (tiny, True),
        ("AAA", aaa): (tiny, True),
        ("BBB", bbb): (tiny, False),
        ("RW", sha(random_walk)): (strict, False),
        ("BROKEN", sha(broken)): (strict, False),
        ("BBB", bbb_v2): (strict, False),
    }

    daemon = Daemon(tmp_path)
    deadline = time.monotonic() + DEADLINE_SECONDS
    with daemon.running():
        instance = daemon.instance
        assert instance.get_dynamic_partitions(PARTITIONS) == []
        # Good prices for SPY, and a file of two tickers: three instruments, three runs, with
        # the tiny budget from $RL_ASSETS_RETRAIN_RUN_CONFIG.
        drop(daemon.landing, "SPY.csv", spy)
        drop(daemon.landing, "UNIVERSE.csv", universe)
        for instrument, content in (("SPY", sha(spy)), ("AAA", aaa), ("BBB", bbb)):
            daemon.wait_for(
                f"a run for {instrument}", lambda i=instrument, c=content: daemon.run_for(i, c),
                deadline,
            )  # fmt: skip
        # The next requests read a gate raised out of reach, as a user tightens a threshold.
        write_yaml(daemon.run_config, STRICT_RUN_CONFIG)
        drop(daemon.landing, "RW.csv", random_walk)
        drop(daemon.landing, "BROKEN.csv", broken)
        # Only BBB's rows changed: one more run, for BBB alone.
        drop(daemon.landing, "UNIVERSE.csv", universe_v2)
        (daemon.landing / "SPY.csv").touch()  # read again, same content: nothing to run
        for instrument, content in (("RW", sha(random_walk)), ("BROKEN", sha(broken)),
                                    ("BBB", bbb_v2)):  # fmt: skip
            daemon.wait_for(
                f"a run for {instrument}", lambda i=instrument, c=content: daemon.run_for(i, c),
                deadline,
            )  # fmt: skip
        daemon.wait_for(
            "the sensor to look at every file as it is now",
            lambda: daemon.handled("SPY.csv", "UNIVERSE.csv", "RW.csv", "BROKEN.csv"),
            deadline,
        )
        daemon.wait_for(
            "every run to finish",
            lambda: all(r.dagster_run.status in FINISHED for r in daemon.runs()),
            deadline,
        )
        daemon.wait_ticks(3, deadline)  # and nothing more is requested
        records = daemon.runs()

        # The sensor added one partition per file, one per symbol of the multi-ticker file.
        assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == sorted(
            {"SPY", "AAA", "BBB", "RW", "BROKEN"}
        )
        # One run per (instrument, content), keyed so, with the config of its tick.
        runs = {}
        for record in records:
            tags = record.dagster_run.tags
            key = (tags["dagster/partition"], tags[CONTENT_TAG])
            assert key not in runs, f"two runs for {key}:\n{daemon.summary()}"
            runs[key] = record
            assert tags["dagster/run_key"] == f"{key[0]}:{key[1]}"
            assert tags["dagster/sensor_name"] == SENSOR
            assert tags[CONFIG_TAG] == expected[key][0], key
        assert set(runs) == set(expected), daemon.summary()

        for (instrument, content), (_, promoted) in expected.items():
            run_id = runs[instrument, content].dagster_run.run_id
            status = runs[instrument, content].dagster_run.status
            done = materialized(instance, run_id)
            assert set(done.values()) <= {instrument}, done  # all of it for its instrument
            results = check_results(instance, run_id)
            assert {d.partition for d in results.values()} <= {instrument}, results
            if instrument == "BROKEN":
                assert status == DagsterRunStatus.FAILURE
                failed_steps = [
                    e.step_key for e in events(instance, run_id, DagsterEventType.STEP_FAILURE)
                ]
                schema = results.get("raw_prices_schema_valid")
                assert failed_steps == ["raw_prices"] or (schema and not schema.passed), why_failed(
                    instance, run_id
                )
                assert "trained_policy" not in done
                continue
            if promoted:
                assert status == DagsterRunStatus.SUCCESS, why_failed(instance, run_id)
                # The whole graph: trained, reported, promoted, signalled and watched.
                assert set(done) == PIPELINE_ASSETS | {"trading_signal", "champion_performance"}
                assert all(d.passed for d in results.values()), why_failed(instance, run_id)
                continue
            # Refused, with its report: every candidate gets one.
            assert status == DagsterRunStatus.FAILURE
            assert set(done) == PIPELINE_ASSETS - {"promoted_policy"}, (instrument, done)
            gate = {n: d.passed for n, d in results.items() if n.startswith("candidate_")}
            assert len(gate) == 9 and not all(gate.values()), gate
            if expected[instrument, content][0] == strict:
                assert gate["candidate_validation_sharpe_at_least_minimum"] is False, gate
            assert not (daemon.artifacts / "signals" / instrument).exists()

        # Champions are per instrument: SPY's and AAA's are each their own run's v0001.
        for instrument, content in (("SPY", sha(spy)), ("AAA", aaa)):
            run_id = runs[instrument, content].dagster_run.run_id
            current = champion(daemon, instrument)
            assert (current["version"], current["run_id"]) == ("v0001", run_id), instrument
            history = daemon.artifacts / "registry" / instrument / "history.jsonl"
            assert [json.loads(line)["event"] for line in history.read_text().splitlines()] == [
                "promote"
            ]
            # The signal downstream systems read, written by this instrument's run.
            signal_file = daemon.artifacts / "signals" / instrument / "latest.json"
            assert signal_file.is_file(), instrument
            record = json.loads(signal_file.read_text())
            assert (record["instrument"], record["run_id"]) == (instrument, run_id)
            assert record["champion_version"] == "v0001"
            assert record["position"] in (-1, 0, 1)
        for instrument in ("BBB", "RW", "BROKEN"):
            assert champion(daemon, instrument) is None, instrument

        # Trainings take turns (the training pool, limit 1), although runs overlapped.
        spans = {
            key: (r.start_time, r.end_time) for key, r in runs.items() if r.start_time is not None
        }
        trainings = {
            key: window
            for key in runs
            if (window := step_window(instance, runs[key].dagster_run.run_id, "trained_policy"))
        }
        assert len(trainings) == 5, trainings  # every run but BROKEN's trained
        ordered = sorted(trainings.values())
        for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
            assert start >= end, f"two trainings overlapped: {trainings}"
        overlapping_runs = [
            (a, b)
            for a in spans
            for b in spans
            if a < b and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
        ]
        assert overlapping_runs, (
            f"no two runs were in flight at once, nothing to keep apart: {spans}"
        )
        # One run of an instrument at a time: BBB's second run started after its first ended.
        assert spans["BBB", bbb_v2][0] >= spans["BBB", bbb][1], spans

        assert daemon.logs_mention("database is locked") == []
    left = processes_of(daemon.home)
    assert left == [], f"outlived the test: {describe(left)}"


def symbol_digests_of(tmp_path: Path, data: bytes) -> tuple[str, str]:
    """The sensor's content digests of AAA's and BBB's rows in a multi-ticker file."""
    path = tmp_path / "digest" / "universe.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    digests = symbol_digests(path)
    return digests["AAA"], digests["BBB"]


def test_a_burst_of_files_queues_one_run_per_instrument_and_content(tmp_path):
    """The queue is paused (max_concurrent_runs 0): what the sensor requests stays visible."""
    versions = [csv(bars(seed)) for seed in range(200, 220)]
    daemon = Daemon(tmp_path, max_concurrent_runs=0)
    deadline = time.monotonic() + DEADLINE_SECONDS
    # Each name is an instrument; LATEST is overwritten 20 times (its queued runs are the
    # contents the sensor happened to see, the last one at least); COPY_i holds an earlier
    # version's content under another instrument.
    exact: dict[str, str] = {}
    with daemon.running():
        for i, data in enumerate(versions):
            drop(daemon.landing, f"DROP_{i:02d}.csv", data)
            exact[f"DROP_{i:02d}"] = sha(data)
            drop(daemon.landing, "LATEST.csv", data)
            if i % 4 == 3:
                drop(daemon.landing, f"COPY_{i:02d}.csv", versions[i // 2])
                exact[f"COPY_{i:02d}"] = sha(versions[i // 2])
            time.sleep(0.1)
        names = sorted(p.name for p in daemon.landing.iterdir() if not p.name.startswith("."))
        assert len(names) == len(exact) + 1
        daemon.wait_for("the sensor to see every file", lambda: daemon.handled(*names), deadline)
        instruments = sorted([*exact, "LATEST"])
        assert sorted(daemon.instance.get_dynamic_partitions(PARTITIONS)) == instruments

        def run_keys() -> list[str]:
            return [r.dagster_run.tags["dagster/run_key"] for r in daemon.runs()]

        keys = run_keys()
        assert len(keys) == len(set(keys)), "two runs for one (instrument, content)"
        for record in daemon.runs():
            tags = record.dagster_run.tags
            assert tags["dagster/run_key"] == f"{tags['dagster/partition']}:{tags[CONTENT_TAG]}"
        by_instrument: dict[str, set[str]] = {}
        for key in keys:
            instrument, content = key.split(":")
            by_instrument.setdefault(instrument, set()).add(content)
        assert {i: c for i, c in by_instrument.items() if i != "LATEST"} == {
            i: {c} for i, c in exact.items()
        }
        assert sha(versions[-1]) in by_instrument["LATEST"]
        assert by_instrument["LATEST"] <= {sha(v) for v in versions}

        # At-least-once: forget the cursor, so the next tick reads every file as new again;
        # every (instrument, content) already has its run, so nothing is requested.
        before = daemon.ticks()
        daemon.cli("sensor", "cursor", SENSOR, "--delete")
        unchanged = [f"{n}: unchanged for {n.removesuffix('.csv')} (already ran)" for n in names]

        def deduplicated_tick():
            return next(
                (
                    t
                    for t in daemon.ticks_since(before)
                    if t.skip_reason and all(u in t.skip_reason for u in unchanged)
                ),
                None,
            )

        tick = daemon.wait_for("a tick that found every file already ran", deduplicated_tick,
                               deadline)  # fmt: skip
        assert not tick.run_ids
        assert run_keys() == keys
        assert {r.dagster_run.status for r in daemon.runs()} == {DagsterRunStatus.QUEUED}
        assert daemon.logs_mention("database is locked") == []
    left = processes_of(daemon.home)
    assert left == [], f"outlived the test: {describe(left)}"


def test_a_decayed_champion_is_retrained_once_by_the_daemon(tmp_path):
    """SYN_FADING's edge ends with its validation window: trained, gated, promoted and
    watched through the CLI, its champion fails the decay check; the daemon's
    champion_decay_sensor then requests one retraining run on a rolling split, and nothing
    more while the data stays the same. The gate decides that run's outcome."""
    fading = "SYN_FADING"
    daemon = Daemon(tmp_path, sensor=DECAY_SENSOR)
    deadline = time.monotonic() + DEADLINE_SECONDS
    register_instruments(daemon.home, fading, env=daemon.env)
    config = tmp_path / "tiny.yaml"
    write_yaml(config, TINY_RUN_CONFIG)
    first = subprocess.run(
        materialize_command(config, partition=fading),
        cwd=REPO, env=daemon.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert champion(daemon, fading)["version"] == "v0001"

    with daemon.running():
        instance = daemon.instance
        [cli_run] = [
            r
            for r in instance.get_runs(filters=RunsFilter(tags={"dagster/partition": fading}))
            if "dagster/sensor_name" not in r.tags
        ]
        decay = check_results(instance, cli_run.run_id)["champion_performance_within_expected_band"]
        assert not decay.passed, decay.metadata["reason"].value
        data_version = decay.metadata["data_version"].value

        record = daemon.wait_for("a decay retrain run", lambda: daemon.runs(), deadline)[0]
        daemon.wait_for(
            "the retrain run to finish",
            lambda: daemon.instance.get_run_by_id(record.dagster_run.run_id).status in FINISHED,
            deadline,
        )
        daemon.wait_ticks(3, deadline)  # and nothing more is requested
        [record] = daemon.runs()
        run = instance.get_run_by_id(record.dagster_run.run_id)
        assert run.tags["dagster/partition"] == fading
        assert run.tags["dagster/run_key"] == f"decay:{fading}:v0001:{data_version}"
        split = run.run_config["ops"]["price_splits"]["config"]
        assert split == {"validation_days": 252, "train_days": 756}
        # The retrain trained a candidate and the gate judged it: promoted as v0002 by that
        # run, or refused with v0001 still in place.
        done = materialized(instance, run.run_id)
        assert {"trained_policy", "validation_report"} <= set(done), why_failed(
            instance, run.run_id
        )
        current = champion(daemon, fading)
        if run.status == DagsterRunStatus.SUCCESS:
            assert (current["version"], current["run_id"]) == ("v0002", run.run_id)
        else:
            gate = check_results(instance, run.run_id)
            assert not all(d.passed for n, d in gate.items() if n.startswith("candidate_")), (
                why_failed(instance, run.run_id)
            )
            assert current["version"] == "v0001"
        assert daemon.logs_mention("database is locked") == []
    left = processes_of(daemon.home)
    assert left == [], f"outlived the test: {describe(left)}"
