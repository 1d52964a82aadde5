"""Shared fixtures: tiny prices, a tiny training budget, an isolated artifacts dir, local Ray."""

import copy
import os
from pathlib import Path

import numpy as np
import pytest

from rl_assets.synthetic import generate_prices

# A budget small enough for tests: 4 episodes of 63 steps per iteration, 5 iterations.
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
