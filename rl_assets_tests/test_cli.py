"""The real CLI, as a user runs it: register the instruments, then `dagster asset materialize
--select '*' --partition <instrument>` for each, then the summary `make demo` prints."""

import subprocess
import sys

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, RunsFilter

from rl_assets.promotion.gate import GATES
from rl_assets.promotion.ledger import Ledger
from rl_assets.registry import Registry
from rl_assets_tests.conftest import (
    ALL_ASSETS,
    EDGE,
    NULL,
    PIPELINE_ASSETS,
    REPO,
    TINY_RUN_CONFIG,
    cli_env,
    materialize_command,
    new_dagster_home,
    register_instruments,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def all_check_names() -> set[str]:
    from rl_assets.definitions import defs

    return {key.name for key in defs.resolve_asset_graph().asset_check_keys}


def materialized_in(instance, run_id: str) -> set[str]:
    return {
        r.dagster_event.event_specific_data.materialization.asset_key.to_user_string()
        for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    }


def test_cli_materializes_the_whole_graph_per_instrument(tmp_path):
    home = new_dagster_home(tmp_path / "dagster_home")
    artifacts = tmp_path / "artifacts"
    env = cli_env(home, artifacts)
    register_instruments(home, EDGE, NULL, env=env)
    config_file = tmp_path / "run_config.yaml"
    config_file.write_text(yaml.safe_dump(TINY_RUN_CONFIG))

    codes = {}
    for instrument in (EDGE, NULL):
        proc = subprocess.run(
            materialize_command(config_file, partition=instrument),
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        codes[instrument] = proc.returncode
        if instrument == EDGE:
            assert proc.returncode == 0, proc.stderr[-3000:]
    assert codes[NULL] != 0  # the gate refused the null: that run fails, as Dagster reports it

    with DagsterInstance.from_config(str(home)) as instance:
        for instrument, promoted in ((EDGE, True), (NULL, False)):
            runs = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": instrument}))
            assert len(runs) == 1, instrument
            run_id = runs[0].run_id
            done = materialized_in(instance, run_id)
            # Every candidate gets its report; only a passing one is promoted.
            expected = ALL_ASSETS if promoted else PIPELINE_ASSETS - {"promoted_policy"}
            assert done == expected, (instrument, done)
            evaluations = {
                r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data
                for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
            }
            # Every check was evaluated (monitoring's only where there is a champion) ...
            monitoring = {"champion_performance_within_expected_band"}
            assert set(evaluations) == all_check_names() - (set() if promoted else monitoring)
            for data in evaluations.values():
                assert data.partition == instrument  # ... and recorded for this instrument
            gate = {n: d.passed for n, d in evaluations.items() if n.startswith("candidate_")}
            assert len(gate) == len(GATES)
            assert all(d.passed for n, d in evaluations.items() if n not in gate)  # data is fine
            assert all(gate.values()) == promoted, gate

    edge = Registry.for_instrument(artifacts / "registry", EDGE).champion()
    assert edge["version"] == "v0001" and edge["instrument"] == EDGE
    assert Registry.for_instrument(artifacts / "registry", NULL).champion() is None
    # One attempt each in its instrument's ledger, refused or not, started by hand.
    for instrument, passed in ((EDGE, True), (NULL, False)):
        [attempt] = Ledger(artifacts / "registry" / instrument).entries()
        assert attempt["passed"] == passed and attempt["origin"]["started_by"] == "manual"

    summary = subprocess.run(
        [sys.executable, "-m", "rl_assets.summary", "--exit-status", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # make demo: a gate refusal is a result (exit 0), shown with its reasons and its report.
    assert summary.returncode == 0, summary.stdout + summary.stderr
    out = summary.stdout
    edge_part, null_part = out.split(f"{NULL}: run")
    assert "promoted:    yes, v0001" in edge_part and "report:" in edge_part
    assert "the gate refused the candidate" in null_part and "refused by " in null_part
    assert "report:" in null_part and "report.md" in null_part
