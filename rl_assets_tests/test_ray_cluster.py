"""The long-lived local Ray (`make ray-up` / `make ray-down`): runs join it, it keeps
running, it requires its token, and stopping it stops it alone and leaves nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rl_assets.rl.local_ray import cluster_processes

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
TRAIN_TINY = """
import json, sys
from rl_assets.rl.training import TrainingSpec, train_ppo, with_history
from rl_assets.data.synthetic import generate_prices
p = generate_prices("2019-01-01", "2023-12-31")
train = p.loc["2020-01-01":"2023-01-31", ["open", "close"]].to_numpy()
val = p.loc["2023-02-01":"2023-12-31", ["open", "close"]].to_numpy()
spec = TrainingSpec(window=5, episode_length=63, train_batch_size=252, minibatch_size=64,
                    num_epochs=2, target_episodes=20, num_env_runners=1,
                    num_envs_per_env_runner=2)
out = train_ppo(spec, train, with_history(train, val, 5), sys.argv[1], log=lambda m: None)
print("RESULT " + json.dumps({"ray": out["ray"], "iterations": out["iterations"],
                              "runners": out["num_env_runners"]}))
"""
PROBE = "import ray; ray.init(); print('CPU', ray.cluster_resources().get('CPU'))"
# The niceness of a Ray task's worker: Ray's default ranks workers 15 below their starter.
NICENESS = "import os, ray; print('NICE', ray.get(ray.remote(lambda: os.nice(0)).remote()))"
SESSION_NICENESS = (
    "import ray; from rl_assets.rl.training import ray_session\n"
    f"with ray_session(num_cpus=1):\n    exec({NICENESS!r})"
)


def local_ray_cli(root: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """What `make ray-up` / `make ray-down` run."""
    cmd = [sys.executable, "-m", "rl_assets.rl.local_ray", *args, "--root", str(root)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def sourced(env_file: Path) -> dict[str, str]:
    """The environment after `source .ray_env`."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    for line in env_file.read_text().splitlines():
        key, value = line.removeprefix("export ").split("=", 1)
        env[key] = value
    return env


def run(code: str, env: dict[str, str], *args: str, timeout: float = 400):
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip


def test_long_lived_local_ray_serves_runs_requires_its_token_and_stops_alone(tmp_path):
    up = local_ray_cli(tmp_path, "up")
    assert up.returncode == 0, up.stderr[-3000:]
    state = json.loads((tmp_path / ".ray" / "state.json").read_text())
    address = (tmp_path / ".ray_address").read_text().strip()
    assert address == state["address"] and not address.endswith(":6379")
    # Its files stay under this session's Ray temp root (conftest), not /tmp/ray.
    assert Path(state["temp_dir"]).is_relative_to(os.environ["RAY_TMPDIR"])
    assert oct((tmp_path / ".ray" / "auth_token").stat().st_mode & 0o777) == "0o600"
    env = sourced(tmp_path / ".ray_env")
    assert env["RAY_ADDRESS"] == address and env["RAY_AUTH_MODE"] == "token"
    try:
        proc = run(TRAIN_TINY, env, str(tmp_path / "ckpt"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        result = json.loads(line[len("RESULT ") :])
        assert result["ray"] == f"cluster:{address}"
        assert result["runners"] == 1 and result["iterations"] >= 5
        assert (tmp_path / "ckpt" / "best.json").exists()
        # Training left the cluster running; `up` again joins it instead of starting one.
        probe = run(PROBE + "; " + NICENESS, env, timeout=120)
        assert probe.returncode == 0 and "CPU 2.0" in probe.stdout, probe.stderr[-2000:]
        # Its workers (the folds' trainings) run at the priority of who started it.
        assert f"NICE {os.nice(0)}" in probe.stdout, probe.stdout
        again = local_ray_cli(tmp_path, "up")
        assert again.returncode == 0 and "already running" in again.stdout
        assert local_ray_cli(tmp_path, "status").returncode == 0
        # Token authentication is on: a driver without the token is refused.
        no_token = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
        refused = run(PROBE, {**no_token, "HOME": str(tmp_path)}, timeout=120)
        assert refused.returncode != 0
        assert "InvalidAuthToken" in refused.stderr or "uthentication" in refused.stderr
    finally:
        down = local_ray_cli(tmp_path, "down")
    assert down.returncode == 0, down.stderr[-3000:]
    assert cluster_processes(Path(state["temp_dir"])) == {}
    assert not Path(state["temp_dir"]).exists()
    assert not (tmp_path / ".ray_address").exists() and not (tmp_path / ".ray_env").exists()
    assert local_ray_cli(tmp_path, "status").returncode == 1


def test_a_private_ray_runs_its_workers_at_the_priority_of_its_run():
    """Beside any busy process at normal priority, workers at Ray's default niceness (15) got
    a few percent of a core: one tiny run's walk-forward folds took 150 s instead of 10."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = run(SESSION_NICENESS, env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"NICE {os.nice(0)}" in proc.stdout, proc.stdout
