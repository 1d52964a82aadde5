"""The real `dagster-daemon run`: files dropped in the landing dir become instruments, and each
(instrument, content) retrains, gates, promotes, signals and is watched once, on its own."""

import json
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from rl_assets.automation.jobs import CONFIG_TAG, CONTENT_TAG, config_digest
from rl_assets.data.sources import symbol_digests
from rl_assets.promotion.gate import GATES
from rl_assets.promotion.ledger import Ledger
from rl_assets_tests.conftest import PIPELINE_ASSETS, TINY_RUN_CONFIG, step_window
from rl_assets_tests.daemon_harness import (
    DEADLINE_SECONDS,
    FINISHED,
    PARTITIONS,
    SENSOR,
    STRICT_RUN_CONFIG,
    Daemon,
    bars,
    champion,
    check_results,
    csv,
    describe,
    drop,
    events,
    materialized,
    processes_of,
    sha,
    universe_csv,
    why_failed,
    write_yaml,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


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

    # Two runs at a time (the deployment allows 4): enough to show runs overlap while
    # trainings take turns. Each run queued behind the training pool keeps a step process
    # polling for its slot at about a third of a core (Dagster 1.13, SQLite); with four
    # runs, three such pollers starved the niced Ray workers of the run that held the slot,
    # and six tiny runs took over 18 minutes on 2 cores.
    daemon = Daemon(tmp_path, max_concurrent_runs=2)
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
            assert len(gate) == len(GATES) and not all(gate.values()), gate
            if expected[instrument, content][0] == strict:
                assert gate["candidate_test_sharpe_at_least_minimum"] is False, gate
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
        # Every trained candidate is one attempt in its own instrument's ledger, recorded as
        # started by the sensor (BBB twice: two contents).
        for instrument, count in {"SPY": 1, "AAA": 1, "BBB": 2, "RW": 1}.items():
            attempts = Ledger(daemon.artifacts / "registry" / instrument).entries()
            assert len(attempts) == count, (instrument, attempts)
            assert {a["origin"]["started_by"] for a in attempts} == {f"sensor {SENSOR}"}
            assert [a["attempts"] for a in attempts] == list(range(1, count + 1))
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
