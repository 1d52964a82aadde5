"""The whole asset graph in process: a passing gate promotes, a failing gate does not."""

import pytest
from dagster import DagsterEventType, DagsterInstance

from rl_assets.definitions import defs
from rl_assets.registry import Registry
from rl_assets_tests.conftest import PIPELINE_ASSETS

pytestmark = pytest.mark.slow


def run(instance, run_config, selection=None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
        asset_selection=selection,
    )


def materialized(result) -> set[str]:
    return {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
    }


def check_results(result) -> dict[str, bool]:
    return {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster_home"))) as inst:
        yield inst


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RL_ASSETS_ARTIFACTS", str(root))
        yield root


@pytest.fixture(scope="module")
def passing_run(local_ray, instance, artifacts):
    from rl_assets_tests.conftest import TINY_RUN_CONFIG

    config = {
        "ops": {
            **TINY_RUN_CONFIG["ops"],
            # Half a year of data after validation, for the untouched test window.
            "raw_prices": {"config": {"end": "2024-06-28"}},
            "validation_report": {"config": {"test_start": "2024-01-01", "test_end": "2024-06-28"}},
        }
    }
    return run(instance, config)


def test_the_report_has_baselines_honesty_and_the_untouched_test_window(passing_run, artifacts):
    report = passing_run.output_for_node("validation_report")
    assert set(report["validation"]) == {
        "policy",
        "buy_and_hold",
        "flat",
        "random (mean of 20)",
    }
    assert report["validation"]["flat"]["sharpe"] == 0.0
    assert report["validation"]["flat"]["trades"] == 0
    assert 0.0 <= report["deflated_sharpe"]["dsr"] <= 1.0
    ci = report["sharpe_difference_vs_buy_and_hold"]
    assert ci["low"] <= ci["difference"] <= ci["high"]
    assert set(report["test"]) == set(report["validation"])
    md = (artifacts / "runs" / passing_run.run_id / "report" / "report.md").read_text()
    assert "Untouched test window 2024-01-01..2024-06-28" in md
    assert (
        artifacts / "runs" / passing_run.run_id / "report" / "validation.png"
    ).stat().st_size > 10_000


def test_a_passing_gate_materializes_everything_and_promotes(passing_run, artifacts):
    assert passing_run.success
    assert materialized(passing_run) == PIPELINE_ASSETS
    checks = check_results(passing_run)
    assert all(checks.values()), checks
    assert {
        "raw_prices_schema_valid",
        "trained_policy_restores_and_acts",
        "trained_policy_beats_buy_and_hold",
        "trained_policy_validation_sharpe_at_least_minimum",
    } <= set(checks)
    champion = Registry(artifacts / "registry").champion()
    assert champion["version"] == "v0001"
    assert champion["run_id"] == passing_run.run_id


def failing_config(tiny_run_config):
    cfg = dict(tiny_run_config)
    cfg["ops"] = {**cfg["ops"], "raw_prices": {"config": {"structure": "random_walk"}}}
    cfg["resources"] = {"gate_thresholds": {"config": {"min_validation_sharpe": 50.0}}}
    return cfg


@pytest.fixture(scope="module")
def failing_run(passing_run, instance):
    from rl_assets_tests.conftest import TINY_RUN_CONFIG

    return run(instance, failing_config(TINY_RUN_CONFIG))


def test_a_failing_gate_stops_promotion_and_keeps_the_champion(failing_run, artifacts):
    assert not failing_run.success
    done = materialized(failing_run)
    assert "trained_policy" in done  # the candidate is recorded ...
    assert "promoted_policy" not in done  # ... but not promoted
    checks = check_results(failing_run)
    assert checks["trained_policy_validation_sharpe_at_least_minimum"] is False
    assert Registry(artifacts / "registry").champion()["version"] == "v0001"


def test_promoted_policy_alone_refuses_a_candidate_that_failed_the_gate(
    failing_run, instance, artifacts
):
    """The latest trained_policy failed its gate; materializing promoted_policy by itself must
    re-check and refuse, not trust 'latest'."""
    from dagster import AssetKey

    from rl_assets_tests.conftest import TINY_RUN_CONFIG

    alone = run(instance, failing_config(TINY_RUN_CONFIG), selection=[AssetKey("promoted_policy")])
    assert not alone.success
    assert "promoted_policy" not in materialized(alone)
    failure = next(e for e in alone.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    message = str(failure.event_specific_data.error)
    assert "refused" in message and "validation_sharpe_at_least_minimum" in message
    assert "champion is unchanged (v0001)" in message
    registry = Registry(artifacts / "registry")
    assert registry.champion()["version"] == "v0001"
    assert registry.versions() == ["v0001"]
