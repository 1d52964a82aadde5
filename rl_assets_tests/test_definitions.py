"""The code location: exact assets and checks, and a light import."""

import subprocess
import sys

import dagster as dg

from rl_assets import constants
from rl_assets.definitions import defs
from rl_assets.instruments import instrument_partitions
from rl_assets_tests.conftest import ALL_ASSETS

GATE_CHECKS = {
    "candidate_trained_on_these_splits",
    "candidate_restores_and_acts",
    "candidate_weights_finite",
    "candidate_positions_allowed",
    "candidate_train_validation_gap_within_limit",
    "candidate_execution_tradable",
    "candidate_evidence_from_this_procedure",
    "candidate_test_evidence_sufficient",
    "candidate_test_sharpe_at_least_minimum",
    "candidate_beats_buy_and_hold",
    "candidate_deflated_sharpe_at_least_confidence",
    "candidate_beats_champion",
}


def test_assets_are_exactly_the_pipeline():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == ALL_ASSETS


def test_gate_checks_are_blocking_and_on_the_report_so_every_candidate_gets_one():
    graph = defs.resolve_asset_graph()
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert GATE_CHECKS | {"raw_prices_schema_valid"} <= set(checks)
    for name in GATE_CHECKS:
        assert checks[name].asset_key.to_user_string() == "validation_report"
        assert checks[name].blocking, name
    assert checks["raw_prices_schema_valid"].blocking
    # A refused candidate's blocking checks stop promotion only: the report is upstream.
    assert graph.get(dg.AssetKey("promoted_policy")).parent_keys >= {
        dg.AssetKey("validation_report")
    }
    assert (
        dg.AssetKey("validation_report") not in graph.get(dg.AssetKey("trained_policy")).parent_keys
    )


def test_every_asset_and_check_is_partitioned_by_instrument():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).partitions_def == instrument_partitions, key
    for key in graph.asset_check_keys:
        assert graph.get_check_spec(key).partitions_def == instrument_partitions, key


def test_training_and_promotion_take_concurrency_pools():
    graph = defs.resolve_asset_graph()
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys()}
    assert pools["trained_policy"] == {constants.TRAINING_POOL}
    assert pools["fold_policies"] == {constants.TRAINING_POOL}
    assert pools["promoted_policy"] == {constants.PROMOTION_POOL}


def test_every_asset_has_a_group_and_a_description():
    for spec in defs.resolve_all_asset_specs():
        assert spec.group_name in {
            "data",
            "training",
            "evaluation",
            "promotion",
            "signal",
            "monitoring",
        }, spec.key
        assert spec.description, spec.key


def test_code_location_loads_without_ray_torch_scipy_or_matplotlib():
    code = (
        "import sys, rl_assets.definitions; "
        "bad = [m for m in ('ray', 'torch', 'scipy', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jobs_sensors_and_schedules_are_exactly_these():
    repo = defs.get_repository_def()
    jobs = {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")}
    assert jobs == {"retrain_job", "signal_job"}
    assert {s.name for s in repo.sensor_defs} == {
        "new_prices_sensor",
        "champion_decay_sensor",
        "run_outcome_sensor",
    }
    assert {s.name for s in repo.schedule_defs} == {
        "weekly_retrain_schedule",
        "daily_signal_schedule",
    }
