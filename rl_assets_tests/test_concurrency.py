"""Two real CLI runs at once on one instance and one artifact store: each run gates and promotes
its own candidate, promotions serialise with compare-and-swap, and storage holds up."""

import subprocess
import time

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, RunsFilter

from rl_assets.promotion.ledger import Ledger
from rl_assets.registry import Registry
from rl_assets_tests.conftest import (
    EDGE,
    REPO,
    TINY_RUN_CONFIG,
    cli_env,
    materialize_command,
    new_dagster_home,
    register_instruments,
    step_window,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SEEDS = (0, 3)


def test_two_cli_runs_at_once_each_judge_their_own_candidate(tmp_path):
    home = new_dagster_home(tmp_path / "dagster_home")
    artifacts = tmp_path / "artifacts"
    env = cli_env(home, artifacts)
    register_instruments(home, EDGE, env=env)
    procs = {}
    for seed in SEEDS:
        config = yaml.safe_load(yaml.safe_dump(TINY_RUN_CONFIG))
        config["ops"]["trained_policy"]["config"]["seed"] = seed
        config_file = tmp_path / f"seed{seed}.yaml"
        config_file.write_text(yaml.safe_dump(config))
        # Each run's log in a file: with pipes, the run holding the training slot could
        # block on a full pipe while this test waits on the other one.
        with open(tmp_path / f"seed{seed}.log", "w") as log:
            procs[seed] = subprocess.Popen(
                materialize_command(config_file, partition=EDGE),
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        time.sleep(1.0)  # a second apart, as two users would
    for proc in procs.values():
        proc.wait(timeout=900)
    outputs = {seed: (tmp_path / f"seed{seed}.log").read_text() for seed in procs}
    for out in outputs.values():
        assert "database is locked" not in out, out[-3000:]
        assert "OperationalError" not in out, out[-3000:]

    registry = Registry.for_instrument(artifacts / "registry", EDGE)
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": EDGE}))
        assert len(runs) == 2
        candidates = {}
        for run in runs:
            seed = run.run_config["ops"]["trained_policy"]["config"]["seed"]
            # The run's own checkpoint lies under its own run folder.
            own = artifacts / "runs" / run.run_id / "checkpoints"
            mats = {
                r.dagster_event.event_specific_data.materialization.asset_key.to_user_string(): (
                    r.dagster_event.event_specific_data.materialization.metadata
                )
                for r in instance.all_logs(
                    run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
                )
            }
            checkpoint = mats["trained_policy"]["checkpoint"].value
            assert checkpoint.startswith(str(own)), (seed, checkpoint)
            report = mats["validation_report"]["report"].value
            assert report["checkpoint"] == checkpoint  # the report judged this run's candidate
            for record in instance.all_logs(
                run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            ):
                data = record.dagster_event.event_specific_data
                if data.check_name.startswith("candidate_"):
                    assert data.metadata["checkpoint"].value == checkpoint
            candidates[run.run_id] = (seed, checkpoint, report, "promoted_policy" in mats)
        # Training is one at a time (the training pool), CLI runs included.
        windows = [step_window(instance, r.run_id, "trained_policy") for r in runs]
        assert all(windows), windows
        (a0, a1), (b0, b1) = windows
        assert a1 <= b0 or b1 <= a0, "two trainings overlapped despite the pool limit of 1"

    history = registry.history()
    # Every registry entry names the checkpoint of the run that promoted it.
    for entry in history:
        seed, checkpoint, _, promoted = candidates[entry["run_id"]]
        assert promoted and entry["source_checkpoint"] == checkpoint
    promoted = [run_id for run_id, c in candidates.items() if c[3]]
    assert 1 <= len(promoted) <= 2
    assert [e["version"] for e in history] == [f"v{i + 1:04d}" for i in range(len(promoted))]
    if len(promoted) == 2:
        # The second promotion compared its procedure with the champion's the first
        # installed, paired on their shared test days, and beat it.
        first, second = history
        assert second["replaced"] == first["version"]
        assert second["champion_comparison"]["passed"]
        assert (
            second["champion_comparison"]["observed"]
            >= second["thresholds"]["min_confidence_over_champion"]
        )
    assert registry.champion()["source_checkpoint"] == history[-1]["source_checkpoint"]
    # Both runs recorded their attempt (each judged it twice: once), and whichever was
    # judged second counted the first.
    attempts = Ledger(registry.root).entries()
    assert sorted(a["key"] for a in attempts) == sorted(c[1] for c in candidates.values())
    assert sorted(a["attempts"] for a in attempts) == [1, 2]
