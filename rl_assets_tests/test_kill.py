"""SIGKILL of the run mid-training: no half checkpoint, champion intact, no orphaned Ray."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance

from rl_assets.rl import checkpoints
from rl_assets.rl.reaper import _stat, descendants
from rl_assets_tests.conftest import (
    EDGE,
    REPO,
    TINY_RUN_CONFIG,
    cli_env,
    materialize_command,
    new_dagster_home,
    register_instruments,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def cli(home: Path, artifacts: Path, config: dict, tmp: Path, name: str) -> subprocess.Popen:
    """The CLI run in the background, its log in a file (a pipe nobody reads until the run
    ends fills up and blocks the run for ever: a whole run logs more than a pipe holds)."""
    config_file = tmp / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    log = tmp / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            materialize_command(config_file),
            cwd=REPO, env=cli_env(home, artifacts), stdout=out, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
    proc.log = log
    return proc


def tail(proc: subprocess.Popen) -> str:
    return proc.log.read_text(errors="replace")[-3000:]


def test_sigkill_mid_training_leaves_checkpoints_and_champion_intact(tmp_path):
    home, artifacts = new_dagster_home(tmp_path / "home"), tmp_path / "artifacts"
    register_instruments(home, EDGE, env=cli_env(home, artifacts))

    first = cli(home, artifacts, TINY_RUN_CONFIG, tmp_path, "first")
    assert first.wait(timeout=600) == 0, tail(first)
    champion_file = artifacts / "registry" / EDGE / "champion.json"
    champion_before = champion_file.read_bytes()
    first_run = json.loads(champion_before)["run_id"]

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
        assert victim.poll() is None, tail(victim)
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
    # The run guard saw its process die: the run is failed, not STARTED for ever, and the
    # training pool slot it held is free again (else the rerun below would wait for ever).
    with DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 30
        while (killed := instance.get_runs(limit=1)[0]).status.value == "STARTED":
            assert time.monotonic() < deadline, "the killed run was never marked failed"
            time.sleep(0.5)
        assert killed.status.value == "FAILURE"
        assert instance.event_log_storage.get_concurrency_run_ids() <= {first_run}
    for ckpt_root in runs.glob("*/checkpoints"):
        for entry in ckpt_root.iterdir():
            if entry.is_dir():
                assert checkpoints.is_complete(entry) or entry.name.startswith(
                    checkpoints.TMP_MARK
                ), entry
        pointer = json.loads((ckpt_root / "best.json").read_text())
        assert checkpoints.is_complete(ckpt_root / pointer["checkpoint"])

    # The rerun trains the first run's config from scratch: the same seed gives the same
    # policy, which does not beat the champion it equals. It finishes (no stale state from
    # the killed run gets in its way), is refused by the gate alone, and the champion stays.
    rerun = cli(home, artifacts, TINY_RUN_CONFIG, tmp_path, "rerun")
    assert rerun.wait(timeout=600) == 1, tail(rerun)
    with DagsterInstance.from_config(str(home)) as instance:
        (last, *_) = instance.get_runs(limit=1)
        checks = {
            r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data.passed
            for r in instance.all_logs(last.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        }
        assert instance.get_latest_materialization_event(AssetKey("validation_report"))
    assert [name for name, ok in checks.items() if not ok] == ["candidate_beats_champion"]
    champion = json.loads(champion_file.read_text())
    assert (champion["version"], champion["run_id"]) == ("v0001", first_run)
    assert champion_file.read_bytes() == champion_before
