"""`make demo` as a newcomer runs it: no avoidable warning, training progress and the summary."""

import logging
import re
import subprocess
import sys

import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, RunsFilter

from rl_assets.definitions import defs
from rl_assets_tests.conftest import EDGE, NULL, REPO, TINY_RUN_CONFIG, cli_env

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# A Python warning category (BetaWarning, SupersessionWarning, DeprecationWarning, ...) or a
# WARNING-level log line (Ray: "WARNING file.py:12 --", Dagster: " - WARNING - ").
WARNING_LINE = re.compile(r"Warning|\bWARNING\b")
PROGRESS_LINE = r" - {run_id} - trained_policy - iteration (\d+): episodes \d+ \(total \d+/\d+\)"


def test_make_demo_prints_progress_and_summary_and_no_avoidable_warning(tmp_path):
    assert sys.prefix == str(REPO / ".venv"), "run the tests with the project's venv (make test)"
    home, artifacts = tmp_path / "dagster_home", tmp_path / "artifacts"
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(TINY_RUN_CONFIG))
    env = cli_env(home, artifacts)
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(name, None)  # a fresh top-level make, also under `make test`
    proc = subprocess.run(
        # -o: take the installed venv as it is (make test installed it before running pytest).
        ["make", "-o", ".venv/.installed", "demo", f"DEMO_CONFIG={config_file}",
         f"DEMO_INSTRUMENTS={EDGE} {NULL}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]

    assert [line for line in output.splitlines() if WARNING_LINE.search(line)] == []
    # The null's refusal is a verdict: one line naming the failed gates and the report, no
    # stack trace, no ERROR for the steps it skips.
    assert "Traceback" not in output and "Stack Trace" not in output, output[-4000:]
    assert " - ERROR - " not in output, output[-4000:]
    [refusal] = [line for line in proc.stderr.splitlines() if "REFUSED by the gate (" in line]
    assert " - INFO - " in refusal and "rl_assets/outcome=refused" in refusal
    report = refusal.split("; report ", 1)[1].split(";", 1)[0]
    assert report.endswith("report.md") and (artifacts / "runs").as_posix() in report
    # Dagster's DEBUG event stream stays out of the terminal...
    assert " - DEBUG - " not in output and "STEP_START" not in output

    with DagsterInstance.from_config(str(home)) as instance:
        # Two instruments in one process, as `make demo` runs them: the second one's
        # algorithm is built in a process that already built one (no new warning either).
        [record] = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("trained_policy"), asset_partitions=[EDGE]),
            limit=1,
        ).records
        policy = record.event_log_entry
        iterations = policy.asset_materialization.metadata["iterations"].value
        records = instance.all_logs(policy.run_id)
        checks = {
            r.dagster_event.event_specific_data.asset_check_key
            for r in records
            if r.dagster_event
            and r.dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        }
        # ...but the run's log keeps it (the UI shows every event).
        assert any(
            r.level == logging.DEBUG
            and r.dagster_event
            and r.dagster_event.event_type == DagsterEventType.STEP_START
            for r in records
        )
        stored_progress = [
            r.user_message for r in records if re.match(r"iteration \d+: episodes", r.user_message)
        ]
    assert checks == set(defs.resolve_asset_graph().asset_check_keys)  # the whole graph ran
    # Each run carries its outcome: the Runs list can be filtered to refusals.
    with DagsterInstance.from_config(str(home)) as instance:
        for instrument, outcome in ((EDGE, "promoted"), (NULL, "refused")):
            runs = instance.get_runs(
                RunsFilter(tags={"dagster/partition": instrument, "rl_assets/outcome": outcome})
            )
            assert len(runs) == 1, (instrument, outcome)
        [refused] = instance.get_runs(RunsFilter(tags={"rl_assets/outcome": "refused"}))
        assert refused.tags["rl_assets/failed_gates"]

    # One progress line per training iteration, in order, in the terminal and in the log.
    progress = re.compile(PROGRESS_LINE.format(run_id=policy.run_id))
    shown = [int(m.group(1)) for m in progress.finditer(proc.stderr)]
    assert shown == list(range(1, iterations + 1))
    assert len(stored_progress) == iterations
    # The summary follows the run.
    assert f"{EDGE}: run " in proc.stdout
    assert f"training:    {iterations} iterations" in proc.stdout
    assert "promoted:    yes, v0001" in proc.stdout
    assert "signal:" in proc.stdout
    # Judged on walk-forward evidence at the next open, the planted edge is promoted and the
    # realistic null refused, each with its pooled out-of-sample evidence in the summary.
    null = proc.stdout[proc.stdout.index(f"{NULL}: run ") :]
    assert "promoted:    no: the gate refused the candidate" in null
    assert "    refused by " in null and "years of pooled test evidence" in null
    edge = proc.stdout[proc.stdout.index(f"{EDGE}: run ") : proc.stdout.index(f"{NULL}: run ")]
    assert "years of pooled test evidence" in edge
    # The temp store, not the repo's.
    assert (artifacts / "registry" / EDGE / "champion.json").is_file()
