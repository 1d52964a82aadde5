"""The real `dagster-daemon run` watching a champion: when its edge fades, the decay sensor
requests one retraining run, and the gate decides what that run promotes."""

import subprocess
import time

import pytest
from dagster import DagsterRunStatus, RunsFilter

from rl_assets.automation.decay import DECAY_SENSOR
from rl_assets.promotion.ledger import Ledger
from rl_assets_tests.conftest import TINY_RUN_CONFIG, materialize_command, register_instruments
from rl_assets_tests.daemon_harness import (
    DEADLINE_SECONDS,
    FINISHED,
    REPO,
    Daemon,
    champion,
    check_results,
    describe,
    materialized,
    processes_of,
    why_failed,
    write_yaml,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_a_decayed_champion_is_retrained_once_by_the_daemon(tmp_path):
    """SYN_FADING's edge ends on 2023-12-31: trained, gated and promoted through the CLI on
    prices ending 2023-12-29, then watched on the prices extended to today, its champion
    fails the decay check; the daemon's
    champion_decay_sensor then requests one retraining run on a rolling split, and nothing
    more while the data stays the same. The gate decides that run's outcome."""
    fading = "SYN_FADING"
    daemon = Daemon(tmp_path, sensor=DECAY_SENSOR)
    deadline = time.monotonic() + DEADLINE_SECONDS
    register_instruments(daemon.home, fading, env=daemon.env)
    promoted_on = "2023-12-29"
    config, later = tmp_path / "promote.yaml", tmp_path / "tiny.yaml"
    write_yaml(
        config,
        {
            "ops": {
                **TINY_RUN_CONFIG["ops"],
                "raw_prices": {"config": {"end": promoted_on}},
                "trading_signal": {"config": {"as_of": promoted_on}},
            }
        },
    )
    write_yaml(later, TINY_RUN_CONFIG)
    first = subprocess.run(
        materialize_command(config, partition=fading),
        cwd=REPO, env=daemon.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert champion(daemon, fading)["version"] == "v0001"
    watched = subprocess.run(
        materialize_command(later, select="raw_prices,champion_performance", partition=fading),
        cwd=REPO, env=daemon.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert watched.returncode == 0, watched.stderr[-3000:]

    with daemon.running():
        instance = daemon.instance
        cli_run = [
            r
            for r in instance.get_runs(filters=RunsFilter(tags={"dagster/partition": fading}))
            if "dagster/sensor_name" not in r.tags
        ][0]  # the newest: the watch on the extended prices
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
        # Two attempts in the ledger: the promotion from the CLI, then the decay retrain,
        # which was judged counting the first.
        first_attempt, retrain = Ledger(daemon.artifacts / "registry" / fading).entries()
        assert first_attempt["origin"]["started_by"] == "manual"
        assert retrain["origin"] == {
            "judged_by_run": run.run_id,
            "started_by": f"sensor {DECAY_SENSOR}",
            "run_key": run.tags["dagster/run_key"],
        }
        assert retrain["attempts"] == 2
        assert daemon.logs_mention("database is locked") == []
    left = processes_of(daemon.home)
    assert left == [], f"outlived the test: {describe(left)}"
