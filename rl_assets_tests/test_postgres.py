"""PostgreSQL instance storage: an instrument registered and run through the real CLI lands its
partitions, runs and training metrics in a fresh database, which is dropped afterwards."""

import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from psycopg2 import sql
from sqlalchemy.engine import make_url

from rl_assets import display
from rl_assets_tests.conftest import (
    EDGE,
    TINY_RUN_CONFIG,
    dg_env,
    launch_command,
    materialize_command,
    register_instruments,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
# The server the tests create their database on; the same variables dagster.postgres.yaml reads.
SERVER = {
    "host": os.environ.get("DAGSTER_PG_HOST", "127.0.0.1"),
    "port": os.environ.get("DAGSTER_PG_PORT", "5432"),
    "user": os.environ.get("DAGSTER_PG_USER", "postgres"),
    "password": os.environ.get("DAGSTER_PG_PASSWORD", ""),
}
REPORT_METRICS = [
    "validation_sharpe",
    "buy_and_hold_sharpe",
    "train_sharpe",
    "sharpe_gap",
    "total_return",
    "max_drawdown",
]


def connect(dbname: str):
    return psycopg2.connect(dbname=dbname, connect_timeout=5, **SERVER)


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A fresh database on the real server, dropped afterwards."""
    try:
        admin = connect("postgres")
    except psycopg2.OperationalError as err:
        reason = (
            f"PostgreSQL is not reachable at {SERVER['host']}:{SERVER['port']} as "
            f"{SERVER['user']} ({str(err).strip()}); start the server or set DAGSTER_PG_HOST, "
            "DAGSTER_PG_PORT, DAGSTER_PG_USER and DAGSTER_PG_PASSWORD"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    admin.autocommit = True
    name = f"rl_assets_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            left = cur.fetchone()
        admin.close()
        assert left is None, f"database {name} was not dropped"


@pytest.fixture(scope="module")
def test_database() -> Iterator[str]:
    with fresh_database() as name:
        yield name


@pytest.fixture(scope="module")
def pg_env(test_database, tmp_path_factory) -> Iterator[dict[str, str]]:
    """DAGSTER_HOME holding a copy of dagster.postgres.yaml, and the variables it reads.

    They are also set in this process, so the tests read the instance back the same way.
    """
    root = tmp_path_factory.mktemp("postgres_instance")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    values = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": SERVER["host"],
        "DAGSTER_PG_PORT": SERVER["port"],
        "DAGSTER_PG_USER": SERVER["user"],
        "DAGSTER_PG_PASSWORD": SERVER["password"],
        "DAGSTER_PG_DB": test_database,
        "RL_ASSETS_ARTIFACTS": str(root / "artifacts"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        for key in ("RAY_ADDRESS", "RL_ASSETS_PRICES_FILE"):
            mp.delenv(key, raising=False)
        yield dict(os.environ)


def dagster_cli(env: dict[str, str], *args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DAGSTER), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def pipeline_run(pg_env, tmp_path_factory) -> dict[str, Any]:
    """Register the planted-edge instrument in the PostgreSQL instance, then materialize every
    asset of it once through the real CLI."""
    config_file = tmp_path_factory.mktemp("run_config") / "cfg.yaml"
    config_file.write_text(yaml.safe_dump(TINY_RUN_CONFIG))
    register_instruments(Path(pg_env["DAGSTER_HOME"]), EDGE, env=pg_env)
    started = time.monotonic()
    proc = subprocess.run(
        materialize_command(config_file, partition=EDGE),
        cwd=REPO, env=pg_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"dagster asset materialize failed:\n{proc.stderr[-4000:]}"
    return {"seconds": time.monotonic() - started, "stderr": proc.stderr}


@pytest.fixture(scope="module")
def instance(pg_env, pipeline_run) -> Iterator[DagsterInstance]:
    """The instance read back from DAGSTER_HOME, as an operator's script would."""
    with DagsterInstance.get() as inst:
        yield inst


def metadata(instance: DagsterInstance, key: str) -> tuple[dict[str, Any], str]:
    event = instance.get_latest_materialization_event(AssetKey(key))
    assert event is not None, f"no materialization of {key} in the PostgreSQL instance"
    meta = event.asset_materialization.metadata
    return {k: getattr(v, "value", v) for k, v in meta.items()}, event.run_id


def test_every_storage_is_postgres_and_holds_the_run(instance, test_database):
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    # The rows are in the test database itself, not in some SQLite file next to it.
    with connect(test_database) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event FROM event_logs WHERE asset_key = %s AND dagster_event_type = %s",
            (AssetKey("trained_policy").to_string(), DagsterEventType.ASSET_MATERIALIZATION.value),
        )
        rows = cur.fetchall()
        cur.execute("SELECT status FROM runs")
        statuses = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
            ("instrument",),
        )
        instruments = [r[0] for r in cur.fetchall()]
    conn.close()
    assert len(rows) == 1
    assert '"validation/sharpe"' in rows[0][0]
    assert statuses == [DagsterRunStatus.SUCCESS.value]
    # The registered instrument is a partition stored in PostgreSQL too.
    assert instruments == [EDGE]
    assert instance.get_dynamic_partitions("instrument") == [EDGE]


def test_run_materialized_every_asset_and_evaluated_every_check(instance):
    from rl_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    _, run_id = metadata(instance, "trained_policy")
    run = instance.get_run_by_id(run_id)
    assert run.status == DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == EDGE
    for key in graph.get_all_asset_keys():
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.run_id == run_id, key
        assert event.dagster_event.partition == EDGE, key
    evaluations = {
        r.dagster_event.event_specific_data.asset_check_key: r.dagster_event.event_specific_data
        for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    }
    assert set(evaluations) == set(graph.asset_check_keys)
    # Each result is stored for the instrument (the UI's per-partition check status).
    assert {e.partition for e in evaluations.values()} == {EDGE}
    assert all(e.passed for e in evaluations.values()), {
        k.name: e.passed for k, e in evaluations.items()
    }


def test_per_iteration_training_metrics_are_queryable(instance):
    policy, _ = metadata(instance, "trained_policy")
    history = policy["history"]
    n = policy["iterations"]
    assert n >= 1
    assert [row["iteration"] for row in history] == list(range(1, n + 1))
    for row in history:
        assert finite(row["validation/sharpe"]), row
        assert row["episodes"] >= 0 and row["seconds"] > 0, row
    episodes = [row["episodes"] for row in history]
    assert [row["episodes_total"] for row in history] == [sum(episodes[: i + 1]) for i in range(n)]
    steps = [row["env_steps_total"] for row in history]
    assert steps == sorted(steps) and steps[0] > 0
    assert policy["episodes_total"] == history[-1]["episodes_total"]
    best = policy["best_iteration"]
    assert 1 <= best <= n
    # The history keeps full precision; the figure shown in the UI is it to 3 decimals.
    best_sharpe = history[best - 1]["validation/sharpe"]
    assert max(row["validation/sharpe"] for row in history) == best_sharpe
    assert policy["best_validation_sharpe"] == display.ratio(best_sharpe)
    for key in ("best_validation_sharpe", "buy_and_hold_validation_sharpe", "seconds"):
        assert finite(policy[key]), key


def test_validation_report_metrics_are_queryable(instance):
    shown, report_run = metadata(instance, "validation_report")
    policy, policy_run = metadata(instance, "trained_policy")
    assert report_run == policy_run
    for key in REPORT_METRICS:
        assert finite(shown[key]), (key, shown.get(key))
    # The full-precision report is stored too; the shown figures are it, rounded.
    report = shown["report"]
    assert report["sharpe_gap"] == pytest.approx(
        report["train_sharpe"] - report["validation_sharpe"], abs=1e-9
    )
    for key in ("validation_sharpe", "train_sharpe", "sharpe_gap"):
        assert shown[key] == display.ratio(report[key]), key
    # The report restores the best checkpoint: the same greedy policy on the same days.
    best_sharpe = policy["history"][policy["best_iteration"] - 1]["validation/sharpe"]
    assert report["validation_sharpe"] == pytest.approx(best_sharpe, abs=1e-6)
    assert "| policy |" in shown["metrics"]


def test_instance_migrate_on_the_populated_database(pg_env, instance, test_database):
    proc = dagster_cli(pg_env, "instance", "migrate", timeout=180)
    assert proc.returncode == 0, f"dagster instance migrate failed:\n{proc.stderr[-4000:]}"
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        current, head = storage.alembic_version()
        assert current == head, (type(storage).__name__, current, head)
    with connect(test_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        versions = {r[0] for r in cur.fetchall()}
    conn.close()
    assert versions == {instance.run_storage.alembic_version()[1]}
    # The metrics survive the migration and still read back.
    policy, _ = metadata(instance, "trained_policy")
    assert [row["iteration"] for row in policy["history"]] == list(
        range(1, policy["iterations"] + 1)
    )


# Dagster's documented storage block (dagster-postgres API docs): no `scheme`, so the URL is a
# bare postgresql://, for which SQLAlchemy picks its default driver: psycopg2 in the pinned 2.0.
DOCS_STORAGE = """\
telemetry:
  enabled: false
storage:
  postgres:
    postgres_db:
      username: {user}
      password: "{password}"
      hostname: {host}
      db_name: {db_name}
      port: {port}
"""


def test_dagster_docs_storage_block_without_scheme_works(tmp_path):
    with fresh_database() as name:
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(DOCS_STORAGE.format(db_name=name, **SERVER))
        env = dg_env(home, tmp_path / "artifacts")
        register_instruments(home, EDGE, env=env)
        proc = subprocess.run(
            launch_command("raw_prices", partition=EDGE),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"dg launch failed:\n{proc.stderr[-4000:]}"

        with DagsterInstance.from_config(str(home)) as instance:
            for storage in (instance.run_storage, instance.event_log_storage):
                url = make_url(storage.postgres_url)
                assert (url.drivername, url.get_dialect().driver) == ("postgresql", "psycopg2")
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            event = instance.get_latest_materialization_event(AssetKey("raw_prices"))
            assert event is not None and event.dagster_event.partition == EDGE
        with connect(name) as conn, conn.cursor() as cur:
            cur.execute("SELECT run_id, status FROM runs")
            runs = cur.fetchall()
        conn.close()
        assert runs == [(event.run_id, DagsterRunStatus.SUCCESS.value)]
