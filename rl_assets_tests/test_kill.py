"""SIGKILL of the run mid-training: no half checkpoint, champion intact, no orphaned Ray."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from rl_assets.rl import checkpoints
from rl_assets.rl.reaper import _stat, descendants
from rl_assets_tests.conftest import (
    REPO,
    TINY_RUN_CONFIG,
    cli_env,
    materialize_command,
    new_dagster_home,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def cli(home: Path, artifacts: Path, config: dict, tmp: Path, name: str) -> subprocess.Popen:
    config_file = tmp / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        materialize_command(config_file),
        cwd=REPO, env=cli_env(home, artifacts), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def test_sigkill_mid_training_leaves_checkpoints_and_champion_intact(tmp_path):
    home, artifacts = new_dagster_home(tmp_path / "home"), tmp_path / "artifacts"

    first = cli(home, artifacts, TINY_RUN_CONFIG, tmp_path, "first")
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    champion_file = artifacts / "registry" / "champion.json"
    champion_before = champion_file.read_bytes()

    long = json.loads(json.dumps(TINY_RUN_CONFIG))
    long["ops"]["episodes_per_iteration"]["config"]["target_episodes"] = 4000
    long["ops"]["trained_policy"]["config"].update(
        {"patience": 1000, "min_iterations": 5, "max_iterations": 1000}
    )
    runs = artifacts / "runs"
    earlier = set(runs.iterdir())
    victim = cli(home, artifacts, long, tmp_path, "long")
    deadline = time.monotonic() + 300
    while not any((d / "checkpoints/best.json").exists() for d in set(runs.iterdir()) - earlier):
        assert victim.poll() is None, victim.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.5)
    time.sleep(2)  # let it be mid-iteration, possibly mid-checkpoint
    left_behind = descendants(victim.pid)
    assert len(left_behind) >= 2, "expected Ray processes under the run worker"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)

    deadline = time.monotonic() + 30
    alive = left_behind
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = {p: s for p, s in left_behind.items() if (st := _stat(p)) and st[1] == s}
    assert not alive, f"Ray processes outlived the killed run: {sorted(alive)}"

    assert champion_file.read_bytes() == champion_before
    for ckpt_root in runs.glob("*/checkpoints"):
        for entry in ckpt_root.iterdir():
            if entry.is_dir():
                assert checkpoints.is_complete(entry) or entry.name.startswith(
                    checkpoints.TMP_MARK
                ), entry
        pointer = json.loads((ckpt_root / "best.json").read_text())
        assert checkpoints.is_complete(ckpt_root / pointer["checkpoint"])

    rerun = cli(home, artifacts, TINY_RUN_CONFIG, tmp_path, "rerun")
    rerun.wait(timeout=600)
    with DagsterInstance.from_config(str(home)) as instance:
        events = instance.get_latest_materialization_event(AssetKey("trained_policy"))
        assert events is not None
        champion = json.loads(champion_file.read_text())
    # The rerun trained from scratch; the champion changed only through a passing gate.
    assert champion["version"] in ("v0001", "v0002")
