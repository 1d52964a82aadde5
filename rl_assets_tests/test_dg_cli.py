"""The `dg` CLI ([tool.dg] in pyproject.toml) sees the same definitions as the code location."""

import json
import re
import subprocess

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance

from rl_assets.definitions import defs
from rl_assets_tests.conftest import (
    DG,
    EDGE,
    REPO,
    TINY_RUN_CONFIG,
    dg_env,
    launch_command,
    new_dagster_home,
    register_instruments,
)

pytestmark = pytest.mark.e2e


def run_dg(tmp_path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = dg_env(new_dagster_home(tmp_path / "dagster_home"), tmp_path / "artifacts")
    return subprocess.run(
        [str(DG), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_dg_list_defs_lists_every_asset_check_job_sensor_and_schedule(tmp_path):
    proc = run_dg(tmp_path, "list", "defs", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = json.loads(proc.stdout)
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()

    assert {a["asset_key"] for a in listed["assets"]} == {
        k.to_user_string() for k in graph.get_all_asset_keys()
    }
    assert {(c["asset_key"], c["name"]) for c in listed["asset_checks"]} == {
        (k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys
    }
    assert {j["name"] for j in listed["jobs"]} == {
        j.name for j in repo.get_all_jobs() if not j.name.startswith("__")
    }
    assert {s["name"] for s in listed["sensors"]} == {s.name for s in repo.sensor_defs}
    assert {s["name"] for s in listed["schedules"]} == {s.name for s in repo.schedule_defs}
    assert proc.stderr == ""  # no warning either (e.g. about the venv)


def test_dg_check_defs_loads_the_definitions(tmp_path):
    proc = run_dg(tmp_path, "check", "defs")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All definitions loaded successfully" in proc.stdout


def test_dg_launch_materializes_a_selection_with_its_checks(tmp_path):
    home = new_dagster_home(tmp_path / "dagster_home")
    env = dg_env(home, tmp_path / "artifacts")
    register_instruments(home, EDGE, env=env)  # --partition needs a registered instrument
    proc = subprocess.run(
        launch_command("raw_prices", partition=EDGE),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # dg launch is the supported CLI: no SupersessionWarning (nor any other warning).
    output = (proc.stdout + proc.stderr).splitlines()
    assert [line for line in output if "Warning" in line] == []

    with DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(AssetKey("raw_prices"))
        assert event is not None
        assert event.dagster_event.partition == EDGE
        assert instance.get_latest_materialization_event(AssetKey("train_prices")) is None
        evaluations = [
            r.dagster_event.event_specific_data
            for r in instance.all_logs(
                event.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
        checked = {e.asset_check_key for e in evaluations}
        # Each check result is recorded for the instrument the run materialized.
        assert {e.partition for e in evaluations} == {EDGE}
    expected = {
        k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key.path == ["raw_prices"]
    }
    assert expected and checked == expected


@pytest.mark.slow
def test_dg_launch_of_the_whole_graph_is_as_quiet_as_make_demo(tmp_path):
    """The README's `dg launch` of one instrument trains on a private Ray: no WARNING (Ray's
    token-auth notice included), no stack trace, and the run promotes."""
    home = new_dagster_home(tmp_path / "dagster_home")
    env = dg_env(home, tmp_path / "artifacts")
    env.pop("RAY_AUTH_MODE", None)  # as a new user's shell has it
    register_instruments(home, EDGE, env=env)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_RUN_CONFIG))
    proc = subprocess.run(
        launch_command('key:"*"', REPO / "console_logging.yaml", config, partition=EDGE),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert [line for line in output.splitlines() if re.search(r"Warning|WARNING", line)] == []
    assert "Traceback" not in output and "Stack Trace" not in output
    assert "promoted v0001" in output


ASSETS_AND_CHECKS_QUERY = """
{ assetNodes { assetKey { path }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }
"""


@pytest.mark.slow
def test_dg_dev_serves_the_same_definitions(tmp_path):
    from rl_assets_tests.test_ui_browser import DevServer, free_port, signals_not_ignored

    home = new_dagster_home(tmp_path / "dagster_home")
    port = free_port()
    log_path = tmp_path / "dg_dev.log"
    with open(log_path, "w") as log, signals_not_ignored():
        proc = subprocess.Popen(
            [str(DG), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=dg_env(home, tmp_path / "artifacts"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )
    server = DevServer(proc, home, f"http://127.0.0.1:{port}", log_path)
    try:
        server.wait_ready()
        nodes = server.graphql(ASSETS_AND_CHECKS_QUERY)["data"]["assetNodes"]
    finally:
        server.stop()
    served = {
        ("/".join(n["assetKey"]["path"]), c["name"])
        for n in nodes
        for c in n["assetChecksOrError"]["checks"]
    }
    graph = defs.resolve_asset_graph()
    assert {"/".join(n["assetKey"]["path"]) for n in nodes} == {
        k.to_user_string() for k in graph.get_all_asset_keys()
    }
    assert served == {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
