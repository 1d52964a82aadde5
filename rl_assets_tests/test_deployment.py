"""What a run may not set: the artifact store, the IO manager's store, the monitoring's
settings; the signal's staleness limit only lower. Each refusal names the variable."""

import pytest
from dagster import AssetKey, DagsterEventType, Failure

from rl_assets.definitions import defs
from rl_assets.deployment import FALSE_ALARM_RATE, MAX_STALENESS, MIN_LIVE_DAYS
from rl_assets_tests.conftest import EDGE, TINY_RUN_CONFIG


def run(instance, config, selection=None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=config,
        instance=instance,
        partition_key=EDGE,
        raise_on_error=False,
        asset_selection=selection,
    )


def started_steps(result) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}


def failures(result) -> str:
    """Every error the run's events carry (a step's, or a resource's at its start)."""
    return "\n".join(
        str(error)
        for e in result.all_events
        if (error := getattr(e.event_specific_data, "error", None)) is not None
    )


def with_config(**parts):
    config = {"ops": dict(TINY_RUN_CONFIG["ops"])}
    for key, value in parts.items():
        if key == "resources":
            config["resources"] = value
        else:
            config["ops"][key] = {"config": value}
    return config


@pytest.mark.parametrize(
    "resource", ["artifacts", "io_manager"], ids=["artifact store", "IO manager"]
)
def test_a_run_that_moves_the_artifact_store_stops_before_training(
    resource, instance_with_instruments, artifacts_dir, tmp_path
):
    """Elsewhere the registry is empty (a champion trivially beaten) and `root: /` would let
    any pickle load."""
    config = with_config(resources={resource: {"config": {"root": str(tmp_path / "empty")}}})
    result = run(instance_with_instruments, config)
    assert not result.success
    message = failures(result)
    assert f"resources.{resource}.config.root=" in message, message
    assert "$RL_ASSETS_ARTIFACTS" in message and "may not move it" in message
    assert "trained_policy" not in started_steps(result)
    assert not (tmp_path / "empty").exists()


def test_the_deployments_own_root_in_run_config_is_accepted(
    instance_with_instruments, artifacts_dir
):
    config = with_config(resources={"artifacts": {"config": {"root": str(artifacts_dir)}}})
    result = run(instance_with_instruments, config, [AssetKey("raw_prices")])
    assert result.success, failures(result)


@pytest.mark.parametrize(
    "name, value, env_var",
    [
        ("min_live_days", 200, "RL_ASSETS_MONITORING_MIN_LIVE_DAYS"),
        ("min_live_days", 5, "RL_ASSETS_MONITORING_MIN_LIVE_DAYS"),
        ("false_alarm_rate_per_year", 0.5, "RL_ASSETS_MONITORING_FALSE_ALARM_RATE_PER_YEAR"),
        ("false_alarm_rate_per_year", 0.001, "RL_ASSETS_MONITORING_FALSE_ALARM_RATE_PER_YEAR"),
    ],
)
def test_a_run_may_not_set_the_monitoring_either_way(
    name, value, env_var, instance_with_instruments, artifacts_dir
):
    """Flagging a champion decayed lets the next candidate skip the comparison with it;
    never flagging it keeps it trading: both directions are the deployment's."""
    config = with_config(champion_performance={name: value})
    result = run(
        instance_with_instruments,
        config,
        [AssetKey("raw_prices"), AssetKey("champion_performance")],
    )
    assert not result.success
    message = failures(result)
    assert f"ops.champion_performance.config.{name}={value} is refused" in message, message
    assert f"${env_var}" in message


def test_a_run_may_only_lower_the_signals_staleness_limit(instance_with_instruments, artifacts_dir):
    selection = [AssetKey("raw_prices"), AssetKey("trading_signal")]
    looser = run(instance_with_instruments, with_config(trading_signal={"max_staleness_business_days": 10}), selection)  # fmt: skip
    message = failures(looser)
    assert "max_staleness_business_days=10 would loosen the deployment's" in message, message
    assert "$RL_ASSETS_SIGNAL_MAX_STALENESS_BUSINESS_DAYS" in message
    # Tighter is accepted: the run goes on to the next reason (no champion here).
    tighter = run(instance_with_instruments, with_config(trading_signal={"max_staleness_business_days": 1}), selection)  # fmt: skip
    assert "has no champion yet" in failures(tighter)


def test_settings_read_the_deployments_environment(monkeypatch):
    assert MIN_LIVE_DAYS.for_run(None, "x") == 20
    monkeypatch.setenv("RL_ASSETS_MONITORING_MIN_LIVE_DAYS", "40")
    assert MIN_LIVE_DAYS.for_run(None, "x") == 40
    monkeypatch.setenv("RL_ASSETS_MONITORING_FALSE_ALARM_RATE_PER_YEAR", "zero")
    with pytest.raises(Failure, match="RL_ASSETS_MONITORING_FALSE_ALARM_RATE_PER_YEAR='zero'"):
        FALSE_ALARM_RATE.for_run(None, "x")
    monkeypatch.setenv("RL_ASSETS_SIGNAL_MAX_STALENESS_BUSINESS_DAYS", "5")
    assert MAX_STALENESS.for_run(None, "x") == 5 and MAX_STALENESS.for_run(0, "x") == 0
    with pytest.raises(Failure, match="a value at most 5"):
        MAX_STALENESS.for_run(6, "x")


def test_a_failed_run_without_a_verdict_is_tagged_with_why(
    instance_with_instruments, artifacts_dir, tmp_path
):
    """run_outcome_sensor (and the sensors' retry pass) tag a failed run's class; a run
    that already carries its verdict keeps it."""
    import dagster as dg

    from rl_assets.outcomes import OUTCOME_TAG, run_outcome_sensor, tag_failure_class

    instance = instance_with_instruments
    missing = tmp_path / "nowhere.csv"
    result = run(instance, with_config(raw_prices={"source_path": str(missing)}), [AssetKey("raw_prices")])  # fmt: skip
    assert not result.success
    failed_run = instance.get_run_by_id(result.run_id)
    assert OUTCOME_TAG not in failed_run.tags
    [event] = [
        r.dagster_event
        for r in instance.all_logs(result.run_id)
        if r.dagster_event and r.dagster_event.event_type == DagsterEventType.RUN_FAILURE
    ]
    context = dg.build_run_status_sensor_context(
        sensor_name="run_outcome_sensor",
        dagster_instance=instance,
        dagster_run=failed_run,
        dagster_event=event,
    ).for_run_failure()
    run_outcome_sensor(context)
    assert instance.get_run_by_id(result.run_id).tags[OUTCOME_TAG] == "failed:data"
    # A verdict already tagged is kept.
    instance.add_run_tags(result.run_id, {OUTCOME_TAG: "refused"})
    assert tag_failure_class(instance, failed_run) == "refused"
