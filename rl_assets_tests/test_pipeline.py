"""The whole asset graph in process, per instrument: every candidate gets a report, only a
candidate that passes every gate is promoted, and no path goes around the gate."""

import copy

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

from rl_assets.definitions import defs
from rl_assets.promotion.ledger import Ledger
from rl_assets.registry import Registry
from rl_assets_tests.conftest import ALL_ASSETS, EDGE, NULL, TINY_RUN_CONFIG

pytestmark = pytest.mark.slow


def run(instance, run_config, partition, selection=None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=run_config,
        instance=instance,
        partition_key=partition,
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


def failure_message(result) -> str:
    return "\n".join(
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.event_type == DagsterEventType.STEP_FAILURE
    )


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster_home"))) as inst:
        inst.add_dynamic_partitions("instrument", [EDGE, NULL])
        yield inst


@pytest.fixture(scope="module")
def passing_run(local_ray, instance, artifacts):
    config = copy.deepcopy(TINY_RUN_CONFIG)
    config["ops"] |= {
        # Data to mid-2024: two walk-forward folds before the candidate's own windows.
        "raw_prices": {"config": {"end": "2024-06-28"}},
        # The signal is asked for as of the data's end, so those prices are not stale.
        "trading_signal": {"config": {"as_of": "2024-06-28"}},
    }
    return run(instance, config, EDGE)


@pytest.fixture(scope="module")
def refused_run(passing_run, instance):
    """The null instrument under the default gate: nothing to learn, so it is refused."""
    return run(instance, TINY_RUN_CONFIG, NULL)


def test_a_passing_gate_materializes_everything_and_promotes(passing_run, artifacts):
    assert passing_run.success, failure_message(passing_run)
    assert materialized(passing_run) == ALL_ASSETS
    checks = check_results(passing_run)
    assert all(checks.values()), checks
    assert {"raw_prices_schema_valid", "candidate_beats_buy_and_hold"} <= set(checks)
    champion = Registry.for_instrument(artifacts / "registry", EDGE).champion()
    assert champion["version"] == "v0001"
    assert champion["run_id"] == passing_run.run_id
    # The champion's numbers are its own checkpoint's evaluation, and the rules it passed.
    report = passing_run.output_for_node("validation_report")
    assert champion["validation_sharpe"] == pytest.approx(report["validation_sharpe"])
    assert champion["cost_model"] == report["cost_model"]
    assert champion["thresholds"] == report["thresholds"]
    assert {g["name"] for g in champion["gates"]} == {g["name"] for g in report["gates"]}
    # One attempt in the ledger, though the report and promoted_policy both judged it.
    [attempt] = ledger(artifacts, EDGE)
    assert attempt["key"] == champion["source_checkpoint"] == champion["ledger_key"]
    assert attempt["passed"] and attempt["attempts"] == 1 and attempt["trials"] == 1.0
    assert attempt["origin"]["judged_by_run"] == passing_run.run_id
    assert attempt["origin"]["started_by"] == "manual"
    assert attempt["skill_returns"] == champion["skill_returns"]
    assert len(attempt["skill_returns"]["values"]) == report["walk_forward"]["pooled"]["days"]
    assert champion["data_through"] == "2024-06-28"


def ledger(artifacts, instrument: str) -> list[dict]:
    return Ledger(Registry.for_instrument(artifacts / "registry", instrument).root).entries()


def test_the_report_has_baselines_gates_and_the_walk_forward_evidence(passing_run, artifacts):
    report = passing_run.output_for_node("validation_report")
    assert set(report["validation"]) == {"policy", "buy_and_hold", "flat", "random (mean of 20)"}
    assert report["validation"]["flat"]["sharpe"] == 0.0
    assert report["validation"]["flat"]["trades"] == 0
    assert report["verdict"] == "passes every gate" and report["passed"]
    assert [g["name"] for g in report["gates"]][-2:] == ["beats_champion", "q_value_within_limit"]
    plan = passing_run.output_for_node("walk_forward")
    evidence = report["walk_forward"]
    assert 0.0 <= evidence["pooled"]["dsr"] <= 1.0
    assert len(evidence["folds"]) == len(plan["folds"]) >= 2
    assert evidence["pooled"]["days"] == plan["test_days"]
    # The last fold's test window ends where the candidate's validation window does: the
    # candidate's own windows are not test days; every test day lies before them or is
    # judged by a fold that never saw it.
    assert plan["folds"][-1]["test_dates"][1] == "2024-06-28"
    folder = artifacts / "runs" / passing_run.run_id / "report"
    md = (folder / "report.md").read_text()
    assert "The procedure out of sample (walk-forward)" in md
    assert f"{evidence['pooled']['years']:.1f} years of pooled test evidence" in md
    assert "| beats_buy_and_hold |" in md and "**Verdict: passes every gate.**" in md
    assert "## Every attempt counted" in md and "This is attempt 1 judged" in md
    assert (folder / "validation.png").stat().st_size > 10_000
    assert (folder / "walk_forward.png").stat().st_size > 10_000


def test_a_refused_candidate_still_gets_its_report_and_changes_no_champion(refused_run, artifacts):
    assert not refused_run.success
    done = materialized(refused_run)
    assert "validation_report" in done  # every candidate gets its report ...
    assert "promoted_policy" not in done  # ... and the gate stops only promotion
    checks = check_results(refused_run)
    failed = {name for name, ok in checks.items() if not ok}
    assert failed and all(name.startswith("candidate_") for name in failed), checks
    report = refused_run.output_for_node("validation_report")
    assert report["verdict"].startswith("refused by ") and not report["passed"]
    for gate in report["gates"]:
        assert {"name", "passed", "observed", "threshold", "reason"} <= set(gate)
    assert Registry.for_instrument(artifacts / "registry", NULL).champion() is None
    edge = Registry.for_instrument(artifacts / "registry", EDGE).champion()
    assert edge["version"] == "v0001"
    # Refused attempts are counted too, each in its own instrument's ledger.
    [attempt] = ledger(artifacts, NULL)
    assert not attempt["passed"] and attempt["failed"] == [
        g["name"] for g in report["gates"] if not g["passed"]
    ]
    assert len(ledger(artifacts, EDGE)) == 1


def test_promoted_policy_alone_refuses_a_candidate_that_failed_the_gate(
    refused_run, instance, artifacts
):
    """The latest trained_policy failed its gate; materializing promoted_policy by itself must
    judge again and refuse, not trust 'latest'."""
    alone = run(instance, TINY_RUN_CONFIG, NULL, selection=[AssetKey("promoted_policy")])
    assert not alone.success
    assert "promoted_policy" not in materialized(alone)
    message = failure_message(alone)
    assert "refused" in message and "The champion is unchanged (none yet)" in message
    assert Registry.for_instrument(artifacts / "registry", NULL).versions() == []
    # It judged the same candidate again: still one attempt.
    assert len(ledger(artifacts, NULL)) == 1


def test_a_re_split_candidate_is_refused_naming_both_versions(passing_run, instance, artifacts):
    """Re-split after training, then promote alone: the candidate was not selected on these
    splits, so promotion refuses and names both."""
    resplit = copy.deepcopy(TINY_RUN_CONFIG)
    resplit["ops"]["price_splits"] = {"config": {"validation_end": "2023-10-31"}}
    splits = run(
        instance, resplit, EDGE, selection=[AssetKey("train_prices"), AssetKey("validation_prices")]
    )
    assert splits.success, failure_message(splits)
    alone = run(instance, TINY_RUN_CONFIG, EDGE, selection=[AssetKey("promoted_policy")])
    assert not alone.success
    message = failure_message(alone)
    assert "trained_on_these_splits" in message
    assert "2023-10-31" in message and "2024-06-28" in message  # the two validation ranges
    assert Registry.for_instrument(artifacts / "registry", EDGE).versions() == ["v0001"]


def test_a_run_config_that_loosens_the_gate_fails_before_training(instance, artifacts):
    loose = copy.deepcopy(TINY_RUN_CONFIG)
    loose["resources"] = {"gate_thresholds": {"config": {"min_deflated_sharpe": 0.5}}}
    result = run(instance, loose, NULL)
    assert not result.success
    assert "trained_policy" not in materialized(result)
    message = failure_message(result)
    assert "gate_thresholds.min_deflated_sharpe=0.5 would loosen" in message
    assert "RL_ASSETS_GATE_MIN_DEFLATED_SHARPE" in message


def test_metadata_floats_are_rounded_for_reading_and_the_json_keeps_full_precision(passing_run):
    def shown(node: str) -> dict:
        [mat] = passing_run.asset_materializations_for_node(node)
        return {k: v.value for k, v in mat.metadata.items()}

    report = shown("validation_report")
    for key in ("validation_sharpe", "buy_and_hold_sharpe", "train_sharpe", "deflated_sharpe"):
        assert report[key] == round(report[key], 3), key
    for key in ("total_return", "max_drawdown"):
        assert report[key] == round(report[key], 4), key
    full = report["report"]["validation_sharpe"]
    assert report["validation_sharpe"] == round(full, 3) and full != round(full, 3)
    policy = shown("trained_policy")
    assert policy["best_validation_sharpe"] == round(policy["best_validation_sharpe"], 3)


def test_a_scheduled_retrain_is_one_more_attempt_in_the_ledger(
    passing_run, instance, artifacts, tmp_path, monkeypatch
):
    """The weekly schedule's request for the instrument, run as the daemon runs it (its
    config and tags, and the schedule's name): one more attempt, recorded with its origin
    and judged against the one before it. Last in this module: it may promote."""
    import yaml
    from dagster import build_schedule_context

    from rl_assets.automation.jobs import (
        RETRAIN_RUN_CONFIG_ENV_VAR,
        retrain_job,
        weekly_retrain_schedule,
    )
    from rl_assets.resources import ArtifactStoreResource

    extra = tmp_path / "retrain.yaml"
    extra.write_text(yaml.safe_dump({"ops": {**TINY_RUN_CONFIG["ops"], "raw_prices": {
        "config": {"end": "2024-07-31"}}, "trading_signal": {"config": {"as_of": "2024-07-31"}}}}))  # fmt: skip
    monkeypatch.setenv(RETRAIN_RUN_CONFIG_ENV_VAR, str(extra))
    context = build_schedule_context(
        instance=instance, resources={"artifacts": ArtifactStoreResource()}
    )
    [request] = [r for r in weekly_retrain_schedule(context) if r.partition_key == EDGE]
    result = defs.resolve_job_def(retrain_job.name).execute_in_process(
        run_config=request.run_config,
        instance=instance,
        partition_key=EDGE,
        tags={**request.tags, "dagster/schedule_name": "weekly_retrain_schedule"},
        raise_on_error=False,
    )
    assert "validation_report" in materialized(result), failure_message(result)
    first, second = ledger(artifacts, EDGE)
    assert second["origin"]["started_by"] == "schedule weekly_retrain_schedule"
    assert second["origin"]["judged_by_run"] == result.run_id
    assert second["attempts"] == 2 and 1.0 <= second["trials"] <= 2.0
    report = result.output_for_node("validation_report")
    assert report["attempts"] == 2
    champion_gate = next(g for g in report["gates"] if g["name"] == "beats_champion")
    assert "shared test days" in champion_gate["reason"]  # paired with v0001's evidence
