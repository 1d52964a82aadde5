"""Training joins an existing Ray cluster (RAY_ADDRESS) and leaves it running."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

RAY = Path(sys.executable).parent / "ray"
TRAIN_TINY = """
import json, sys
from rl_assets.rl.training import TrainingSpec, train_ppo, with_history
from rl_assets.data.synthetic import generate_prices
p = generate_prices("2019-01-01", "2023-12-31")
train = p.loc["2020-01-01":"2023-01-31", "close"].to_numpy()
val = p.loc["2023-02-01":"2023-12-31", "close"].to_numpy()
spec = TrainingSpec(window=5, episode_length=63, train_batch_size=252, minibatch_size=64,
                    num_epochs=2, target_episodes=20, num_env_runners=1,
                    num_envs_per_env_runner=1)
out = train_ppo(spec, train, with_history(train, val, 5), sys.argv[1], log=lambda m: None)
print("RESULT " + json.dumps({"ray": out["ray"], "iterations": out["iterations"],
                              "runners": out["num_env_runners"]}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_alive(address: str) -> bool:
    probe = f"import ray; ray.init(address={address!r}); print(ray.cluster_resources().get('CPU'))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0 and proc.stdout.strip() not in ("", "None")


def test_training_runs_on_an_existing_cluster_and_leaves_it_running(tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Ray 2.60 turns on token auth by default; a `ray start` head and a separate driver did
    # not agree on the token here, so this loopback-only test cluster runs without it.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not cluster_alive(address):
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the Ray head did not come up within 90 s"
            time.sleep(1)
        proc = subprocess.run(
            [sys.executable, "-c", TRAIN_TINY, str(tmp_path / "ckpt")],
            env={**env, "RAY_ADDRESS": address},
            capture_output=True,
            text=True,
            timeout=400,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        result = json.loads(line[len("RESULT ") :])
        assert result["ray"] == f"cluster:{address}"
        assert result["runners"] == 1 and result["iterations"] >= 5
        assert (tmp_path / "ckpt" / "best.json").exists()
        assert cluster_alive(address), "training must leave an existing cluster running"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
