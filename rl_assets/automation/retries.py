"""Why a run failed, and bounded retries of those that failed for an infrastructure reason.

A deliberate failure (bad data, bad config, a refused candidate: ``rl_assets.failures``, or a
failed blocking check) would fail again and is never retried. Anything else (Ray did not
start, an exception in library code, the run worker was killed) is infrastructure: the
sensor that requested the run requests it again, at most ``max_retries`` times.
"""

import datetime
import os
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType

from rl_assets.automation.jobs import ATTEMPT_TAG, REQUESTED_BY_TAG
from rl_assets.failures import KIND_KEY
from rl_assets.outcomes import FAILED, RESULT_TAGS, tag_failure_class

INFRASTRUCTURE = "infrastructure"
RUN_KEY_TAG = "dagster/run_key"
RETRY_MARK = "#retry"


def failure_kind(instance: dg.DagsterInstance, run_id: str) -> str:
    """'data', 'config' or 'gate' for a deliberate failure, else 'infrastructure'."""
    for record in instance.all_logs(
        run_id,
        of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.ASSET_CHECK_EVALUATION},
    ):
        event = record.dagster_event
        data = event.event_specific_data
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            if not data.passed and data.blocking:
                return "gate" if data.check_name.startswith("candidate_") else "data"
            continue
        user = data.user_failure_data
        if user is not None and KIND_KEY in (user.metadata or {}):
            value = user.metadata[KIND_KEY]
            return getattr(value, "value", value)
    return INFRASTRUCTURE


def _process_start_ticks(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def worker_is_gone(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The pid of a started run's local run worker if that process no longer exists."""
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.event_specific_data
        pid = getattr(data.metadata.get("pid"), "value", None) if data and data.metadata else None
        if not pid or "Started process for run" not in (record.dagster_event.message or ""):
            continue
        pid = int(pid)
        started = _process_start_ticks(pid)
        if started is None:
            return pid
        # A pid reused by a process started after the run worker is not the run worker.
        began = _boot_time() + started / os.sysconf("SC_CLK_TCK")
        return pid if began > record.timestamp + 1 else None
    return None


def fail_orphaned_runs(instance: dg.DagsterInstance, requested_by: str) -> list[str]:
    """Mark as failed the started runs of this requester whose local run worker died (killed,
    machine restarted): Dagster's default run launcher cannot notice that itself."""
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        return []  # workers elsewhere (containers, another host): their launcher monitors them
    failed = []
    for run in instance.get_runs(
        filters=dg.RunsFilter(
            tags={REQUESTED_BY_TAG: requested_by}, statuses=[dg.DagsterRunStatus.STARTED]
        )
    ):
        pid = worker_is_gone(instance, run)
        if pid is not None:
            instance.report_run_failed(
                run,
                f"the run worker (pid {pid}) is gone: the process was killed or the machine restarted",
            )
            failed.append(run.run_id)
    return failed


def infrastructure_retries(
    instance: dg.DagsterInstance, requested_by: str, after: float, max_retries: int
) -> tuple[list[dg.RunRequest], list[str], float]:
    """Run requests that retry this requester's runs which failed for an infrastructure
    reason since ``after`` (an update timestamp); notes; the new ``after``."""
    fail_orphaned_runs(instance, requested_by)
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            tags={REQUESTED_BY_TAG: requested_by},
            statuses=[dg.DagsterRunStatus.FAILURE],
            updated_after=datetime.datetime.fromtimestamp(after, datetime.UTC),
        ),
        ascending=True,
    )
    requests, notes, newest = [], [], after
    for record in records:
        run = record.dagster_run
        newest = max(newest, record.update_timestamp.timestamp())
        # Its outcome tag (a refusal, or the class found now, which is tagged on the run:
        # that updates the run, so the pass moves past the update too).
        outcome = tag_failure_class(instance, run)
        tagged = instance.get_run_record_by_id(run.run_id)
        if tagged is not None:
            newest = max(newest, tagged.update_timestamp.timestamp())
        if outcome != f"{FAILED}{INFRASTRUCTURE}":
            continue
        attempt = int(run.tags.get(ATTEMPT_TAG, "1"))
        base = run.tags.get(RUN_KEY_TAG, run.run_id).split(RETRY_MARK)[0]
        if attempt > max_retries:
            notes.append(
                f"run {run.run_id} ({run.tags.get('dagster/partition', '')}) failed for an "
                f"infrastructure reason on attempt {attempt}; not retried again (limit {max_retries})"
            )
            continue
        requests.append(
            dg.RunRequest(
                partition_key=run.tags.get("dagster/partition"),
                run_key=f"{base}{RETRY_MARK}{attempt}",
                run_config=run.run_config,
                tags={
                    **{
                        k: v
                        for k, v in run.tags.items()
                        if k.startswith("rl_assets/") and k not in RESULT_TAGS
                    },
                    ATTEMPT_TAG: str(attempt + 1),
                },
            )
        )
        notes.append(f"retrying run {run.run_id}: it failed for an infrastructure reason")
    return requests, notes, newest
