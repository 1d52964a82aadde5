"""The real CLI, as a user runs it: `dagster asset materialize --select '*'` with a run-config file."""

import subprocess
import sys

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance

from rl_assets_tests.conftest import (
    REPO,
    TINY_RUN_CONFIG,
    cli_env,
    materialize_command,
    new_dagster_home,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

UP_TO_REPORT = [
    "raw_prices",
    "train_prices",
    "validation_prices",
    "episodes_per_iteration",
    "trained_policy",
    "validation_report",
]


def all_check_names() -> set[str]:
    from rl_assets.definitions import defs

    return {key.name for key in defs.resolve_asset_graph().asset_check_keys}


@pytest.mark.parametrize(
    "extra, expect_promotion",
    [
        ({}, True),
        (
            {
                "ops": {"raw_prices": {"config": {"structure": "random_walk"}}},
                "resources": {"gate_thresholds": {"config": {"min_validation_sharpe": 50.0}}},
            },
            False,
        ),
    ],
    ids=["gate-passes", "gate-fails"],
)
def test_cli_materializes_the_whole_graph(tmp_path, extra, expect_promotion):
    home = new_dagster_home(tmp_path / "dagster_home")
    config = {
        "ops": {**TINY_RUN_CONFIG["ops"], **extra.get("ops", {})},
        **({"resources": extra["resources"]} if "resources" in extra else {}),
    }
    config_file = tmp_path / "run_config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = cli_env(home, tmp_path / "artifacts")
    proc = subprocess.run(
        materialize_command(config_file),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert (proc.returncode == 0) == expect_promotion, proc.stderr[-3000:]

    with DagsterInstance.from_config(str(home)) as instance:
        for key in UP_TO_REPORT[:-1]:
            assert instance.get_latest_materialization_event(AssetKey(key)) is not None, key
        run_id = instance.get_latest_materialization_event(AssetKey("trained_policy")).run_id
        evaluations = {
            r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data.passed
            for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        }
        assert set(evaluations) == all_check_names()  # every check was evaluated
        gate = {n: ok for n, ok in evaluations.items() if n.startswith("trained_policy_")}
        assert len(gate) == 7
        assert all(ok for n, ok in evaluations.items() if n not in gate)  # the data is fine
        gate_passed = all(gate.values())
        assert gate_passed == expect_promotion
        report = instance.get_latest_materialization_event(AssetKey("validation_report"))
        promoted = instance.get_latest_materialization_event(AssetKey("promoted_policy"))
        # A failed blocking check on trained_policy stops everything downstream in the run.
        assert (report is not None) == gate_passed
        assert (promoted is not None) == gate_passed
    assert (tmp_path / "artifacts/registry/champion.json").exists() == expect_promotion

    summary = subprocess.run(
        [sys.executable, "-m", "rl_assets.summary", "--exit-status", str(proc.returncode)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # make demo: a gate refusal is a result (exit 0), shown with its reasons.
    assert summary.returncode == 0, summary.stdout + summary.stderr
    assert ("promoted:   yes" in summary.stdout) == expect_promotion
    assert ("the gate refused the candidate" in summary.stdout) != expect_promotion

    if not gate_passed:
        # The documented way to read a rejected candidate's report: materialize it alone.
        alone = subprocess.run(
            materialize_command(config_file, select="validation_report"),
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert alone.returncode == 0, alone.stderr[-3000:]
        with DagsterInstance.from_config(str(home)) as instance:
            event = instance.get_latest_materialization_event(AssetKey("validation_report"))
            assert event is not None
            meta = event.asset_materialization.metadata
            assert meta["validation_sharpe"].value < 50.0
            assert instance.get_latest_materialization_event(AssetKey("promoted_policy")) is None
