"""Shared fixtures: tiny prices, a tiny training budget, an isolated artifacts dir, local Ray."""

import copy
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from rl_assets.data.synthetic import generate_prices

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
DG = Path(sys.executable).parent / "dg"

# The training pipeline's assets, in graph order ...
PIPELINE_ASSETS = frozenset(
    {
        "raw_prices",
        "train_prices",
        "validation_prices",
        "episodes_per_iteration",
        "trained_policy",
        "validation_report",
        "promoted_policy",
    }
)
# ... and the champion in use: its signal and its monitoring.
IN_USE_ASSETS = frozenset({"trading_signal", "champion_performance"})
ALL_ASSETS = PIPELINE_ASSETS | IN_USE_ASSETS

# A budget small enough for tests: 4 episodes of 63 steps per iteration, 5 iterations.
TINY_SPEC = dict(
    window=5,
    episode_length=63,
    train_batch_size=252,
    num_envs_per_env_runner=2,
    minibatch_size=64,
    num_epochs=3,
    target_episodes=20,
)
TINY_RUN_CONFIG = {
    "ops": {
        "episodes_per_iteration": {
            "config": {
                "target_episodes": 20,
                "episode_length": 63,
                "window": 5,
                "train_batch_size": 252,
                "num_envs_per_env_runner": 2,
            }
        },
        "trained_policy": {"config": {"minibatch_size": 64, "num_epochs": 3}},
    }
}


# The embedded generator's instruments: a planted edge and a null.
EDGE = "SYN_MOMENTUM"
NULL = "SYN_NULL"


def materialize_command(
    config_file: str | Path, select: str = "*", partition: str = EDGE
) -> list[str]:
    """The user's command: `dagster asset materialize` of one instrument on the code location."""
    return [
        str(DAGSTER), "asset", "materialize", "--select", select, "--partition", partition,
        "-m", "rl_assets.definitions", "-c", str(config_file),
    ]  # fmt: skip


def register_instruments(home: Path, *keys: str, env: dict | None = None) -> None:
    """`python -m rl_assets.instruments add ...` against the instance at ``home``."""
    import subprocess

    run_env = {**(env or os.environ), "DAGSTER_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "rl_assets.instruments", "add", *keys],
        cwd=REPO, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def launch_command(select: str, *config_files: str | Path, partition: str = EDGE) -> list[str]:
    """The modern CLI (`make demo` uses it): `dg launch --assets` of one instrument on the
    code location that [tool.dg] in pyproject.toml names; run it with cwd=REPO and dg_env."""
    config = [arg for file in config_files for arg in ("-c", str(file))]
    return [str(DG), "launch", "--assets", select, "--partition", partition, *config]


def new_dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME holding a copy of the project's dagster.yaml (SQLite storage)."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", path / "dagster.yaml")
    return path


def cli_env(home: Path, artifacts: Path) -> dict[str, str]:
    """Environment for a CLI run: its own instance and artifact store, a private local Ray."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "RL_ASSETS_ARTIFACTS": str(artifacts)}
    env.pop("RAY_ADDRESS", None)
    return env


def materialize_instrument(
    artifacts: Path, run_config: dict, instrument: str = EDGE, selection=None
):
    """The whole graph for one instrument in process, as `dagster asset materialize --select
    '*' --partition <instrument>` runs it, with artifacts and values under ``artifacts``."""
    import dagster as dg

    from rl_assets.definitions import defs
    from rl_assets.resources import ArtifactStoreResource, RunScopedIOManager

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("instrument", [instrument])
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        run_config=run_config,
        resources={
            **defs.resources,
            "artifacts": ArtifactStoreResource(root=str(artifacts)),
            "io_manager": RunScopedIOManager(root=str(artifacts)),
        },
        instance=instance,
        partition_key=instrument,
        selection=selection,
        raise_on_error=False,
    )


@pytest.fixture
def instance_with_instruments(tmp_path):
    """An instance under a temporary DAGSTER_HOME with both generated instruments registered."""
    from dagster import DagsterInstance

    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        instance.add_dynamic_partitions("instrument", [EDGE, NULL])
        yield instance


def dg_env(home: Path, artifacts: Path) -> dict[str, str]:
    """cli_env for `dg`, which warns unless the project's venv is the active one (the Makefile
    sets VIRTUAL_ENV the same way)."""
    return {**cli_env(home, artifacts), "VIRTUAL_ENV": sys.prefix}


@pytest.fixture
def tiny_run_config() -> dict:
    return copy.deepcopy(TINY_RUN_CONFIG)


@pytest.fixture
def artifacts_dir(tmp_path, monkeypatch) -> Path:
    """Point RL_ASSETS_ARTIFACTS at a fresh directory for this test."""
    root = tmp_path / "artifacts"
    monkeypatch.setenv("RL_ASSETS_ARTIFACTS", str(root))
    return root


@pytest.fixture(scope="session")
def momentum_prices():
    return generate_prices("2019-01-01", "2023-12-31", seed=7, structure="momentum")


@pytest.fixture(scope="session")
def random_walk_prices():
    return generate_prices("2019-01-01", "2023-12-31", seed=7, structure="random_walk")


@pytest.fixture(scope="session")
def closes(momentum_prices) -> np.ndarray:
    return momentum_prices["close"].to_numpy()


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the whole session; training code reuses an initialised Ray."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _no_leaked_defs_state_storage():
    """Dagster keeps the entered instance's defs-state storage in a context variable; a test
    that left it pointing at a disposed instance makes the next materialize fail with
    'undefined DagsterInstance weakref'. Start every test without one."""
    from dagster._core.storage.defs_state.base import _current_storage

    token = _current_storage.set(None)
    yield
    try:
        _current_storage.reset(token)
    except ValueError:
        _current_storage.set(None)
