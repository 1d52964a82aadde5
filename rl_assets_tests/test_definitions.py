"""The code location: exact assets and checks, and a light import."""

import subprocess
import sys

from rl_assets.definitions import defs
from rl_assets_tests.conftest import PIPELINE_ASSETS

GATE_CHECKS = {
    "trained_policy_restores_and_acts",
    "trained_policy_weights_finite",
    "trained_policy_validation_sharpe_at_least_minimum",
    "trained_policy_beats_buy_and_hold",
    "trained_policy_deflated_sharpe_at_least_confidence",
    "trained_policy_train_validation_gap_within_limit",
    "trained_policy_beats_champion",
}


def test_assets_are_exactly_the_pipeline():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == PIPELINE_ASSETS


def test_gate_checks_are_blocking_and_on_trained_policy():
    graph = defs.resolve_asset_graph()
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert GATE_CHECKS | {"raw_prices_schema_valid"} <= set(checks)
    for name in GATE_CHECKS:
        assert checks[name].asset_key.to_user_string() == "trained_policy"
        assert checks[name].blocking, name
    assert checks["raw_prices_schema_valid"].blocking


def test_every_asset_has_a_group_and_a_description():
    for spec in defs.resolve_all_asset_specs():
        assert spec.group_name in {"data", "training", "evaluation", "promotion"}, spec.key
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
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {"retrain_job"}
    assert {s.name for s in repo.sensor_defs} == {"new_prices_sensor"}
    assert {s.name for s in repo.schedule_defs} == {"weekly_retrain_schedule"}
