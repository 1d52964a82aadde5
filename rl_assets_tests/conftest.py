"""Shared fixtures: tiny prices, a tiny training budget, an isolated artifacts dir, local Ray.

Every Ray the tests start (in process, in CLI subprocesses, the daemon's runs, `ray start`
heads) keeps its files under one temp root of this session (RAY_TMPDIR), not /tmp/ray; at
the end of the session no process of that root may be alive, the root is removed, and
/tmp/ray/ray_current_cluster is as the session found it.
"""

import copy
import os
import shutil
import sys
import tempfile
import threading
import time
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
        "walk_forward",
        "fold_policies",
        "fold_test_returns",
        "walk_forward_evidence",
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
        # The two most recent walk-forward folds: every run trains three policies, not six.
        "walk_forward": {"config": {"max_folds": 2}},
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


def step_window(instance, run_id: str, step: str) -> tuple[float, float] | None:
    """(STEP_START, STEP_SUCCESS or STEP_FAILURE) timestamps of ``step`` in a run; None if it
    never started."""
    from dagster import DagsterEventType

    start = end = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key != step:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            start = record.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            end = record.timestamp
    if start is None:
        return None
    assert end is not None, f"{step} of run {run_id} started and never ended"
    return start, end


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

    # Its local storage under the test's folder (by default it is a temp dir of its own that
    # stays behind unless the instance is disposed, and the result still needs it).
    instance = dg.DagsterInstance.ephemeral(tempdir=str(artifacts.parent / "ephemeral_instance"))
    instance.add_dynamic_partitions("instrument", [instrument])
    # The store is the deployment's ($RL_ASSETS_ARTIFACTS), as for every run.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RL_ASSETS_ARTIFACTS", str(artifacts))
        return dg.materialize(
            [*defs.assets, *defs.asset_checks],
            run_config=run_config,
            resources=defs.resources,
            instance=instance,
            partition_key=instrument,
            selection=selection,
            raise_on_error=False,
        )


@pytest.fixture
def instance_with_instruments(tmp_path):
    """An instance under a temporary DAGSTER_HOME with both generated instruments registered."""
    from dagster import DagsterInstance

    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        instance.add_dynamic_partitions("instrument", [EDGE, NULL])
        yield instance


def dg_env(home: Path, artifacts: Path) -> dict[str, str]:
    """cli_env for `dg`, which warns unless the project's venv is the active one (the Makefile
    sets VIRTUAL_ENV the same way)."""
    return {**cli_env(home, artifacts), "VIRTUAL_ENV": sys.prefix}


SYSTEM_RAY_ADDRESS_FILE = Path("/tmp/ray/ray_current_cluster")


def pytest_configure(config):
    if getattr(config.option, "numprocesses", None) and "PYTEST_XDIST_WORKER" not in os.environ:
        return  # pytest-xdist's controller runs no test; each worker makes its own root
    # Short (Ray's socket paths live under it, 107-byte limit) and private to this session
    # (to this worker under pytest-xdist); inherited by every subprocess the tests start.
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rlt-ray-")
    # torch's compile cache (RLlib's learner touches it) defaults to /tmp/torchinductor_<user>,
    # which would outlive the tests; keep it under the same root, removed at the end.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(os.environ["RAY_TMPDIR"], "inductor")


# The longest files first (measured under `make test` beside a busy loop: the daemon's
# files 9 and 3 min, the browser 3.6, the kill 2.9, the CLI and concurrency 2.5 each, ...): `make test` hands whole files to the workers in this order
# (--dist loadfile --no-loadscope-reorder), so no long file starts last and runs alone.
LONGEST_FIRST = (
    "test_daemon_e2e.py",
    "test_ui_browser.py",
    "test_daemon_decay_e2e.py",
    "test_kill.py",
    "test_concurrency.py",
    "test_cli.py",
    "test_learning.py",
    "test_ray_cluster.py",
    "test_postgres.py",
    "test_prices_cli.py",
    "test_signal_and_monitoring.py",
    "test_pipeline.py",
    "test_demo.py",
    "test_dg_cli.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


SYSTEM_RAY_DIR = SYSTEM_RAY_ADDRESS_FILE.parent


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _gcs_ports(sessions) -> dict[str, Path]:
    """GCS port -> session dir, for the given Ray session dirs."""
    return {
        f.read_text().strip(): session
        for session in sessions
        for f in Path(session).glob("gcs_server_port_*")
    }


class _Descendants(threading.Thread):
    """Records every process that descends from this pytest process while tests run
    (sampled twice a second), so a Ray session made anywhere can be traced to the tests:
    Ray names a session dir after the pid of the process that started it."""

    def __init__(self):
        super().__init__(daemon=True)
        self.pids: set[int] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        from rl_assets.rl.reaper import descendants

        while not self._stop_event.wait(0.5):
            self.pids.update(descendants(os.getpid()))

    def stop(self) -> set[int]:
        self._stop_event.set()
        self.join()
        return self.pids | {os.getpid()}


def ray_leftovers(
    root: Path,
    system_dir: Path,
    sessions_before: set[Path],
    address_before: str | None,
    ours: set[int],
) -> list[str]:
    """What the tests left of Ray, after their processes are gone; removes what is theirs.

    Checked: the tests' root (removed here), Ray session dirs under ``system_dir`` named
    after one of the tests' processes (``ours``; removed here), and the address file in
    ``system_dir`` pointing at a cluster of the tests. Other users' sessions and address
    file changes are not the tests' and are left alone.
    """
    problems = []
    ports = _gcs_ports(root.glob("**/session_2*"))
    shutil.rmtree(root, ignore_errors=True)
    if root.exists():
        problems.append(f"could not remove the tests' Ray temp root {root}")
    new_sessions = set(system_dir.glob("session_2*")) - sessions_before
    strays = sorted(p for p in new_sessions if int(p.name.rsplit("_", 1)[1]) in ours)
    ports.update(_gcs_ports(strays))
    for stray in strays:
        shutil.rmtree(stray, ignore_errors=True)
        problems.append(f"a test started a Ray session outside RAY_TMPDIR: {stray}")
    address_file = system_dir / "ray_current_cluster"
    address_after = _read(address_file)
    if address_after and address_after != address_before:
        if address_after.rsplit(":", 1)[-1] in ports:
            problems.append(f"{address_file} points at {address_after}, a cluster of the tests")
    return problems


@pytest.fixture(scope="session", autouse=True)
def _no_ray_state_left_behind():
    """Session-end assertion: no Ray process of the tests' temp root is alive and nothing
    of the tests' Ray is left (``ray_leftovers``)."""
    from rl_assets.rl.local_ray import cluster_processes, stop_cluster

    root = Path(os.environ["RAY_TMPDIR"])
    address_before = _read(SYSTEM_RAY_ADDRESS_FILE)
    sessions_before = set(SYSTEM_RAY_DIR.glob("session_2*"))
    watcher = _Descendants()
    watcher.start()
    yield root
    ours = watcher.stop()
    deadline = time.monotonic() + 60  # Ray's agents exit a few seconds after shutdown
    while (left := cluster_processes(root)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        stop_cluster(root)
    problems = ray_leftovers(root, SYSTEM_RAY_DIR, sessions_before, address_before, ours)
    assert not left, f"Ray processes outlived the tests: {sorted(left.values())}"
    assert not problems, problems


@pytest.fixture
def tiny_run_config() -> dict:
    return copy.deepcopy(TINY_RUN_CONFIG)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """One artifact store for a module's in-process runs (RL_ASSETS_ARTIFACTS points at it)."""
    root = tmp_path_factory.mktemp("artifacts")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RL_ASSETS_ARTIFACTS", str(root))
        yield root


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
    """(open, close) bars: what the env, rollouts and training take (next-open execution)."""
    from rl_assets.rl.env import bars

    return bars(momentum_prices)


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the whole session; training code reuses an initialised Ray."""
    import ray

    from rl_assets.rl.local_ray import SYSTEM_CONFIG

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
            _system_config=dict(SYSTEM_CONFIG),
        )  # fmt: skip
    session_dir = Path(ray._private.worker._global_node.get_session_dir_path())
    assert session_dir.is_relative_to(os.environ["RAY_TMPDIR"]), session_dir
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
