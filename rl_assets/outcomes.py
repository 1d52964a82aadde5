"""A run's outcome as a run tag: ``promoted``, ``refused``, or why it reached no verdict.

Dagster 1.13 fails a run whose blocking ERROR check fails, and has no "blocked but not failed"
status: a refusal and a Ray crash are both FAILURE. The tag tells them apart in the Runs list
(filter ``rl_assets/outcome=refused``), in the sensors' retry logic and in the summary:

- ``promoted``: the candidate passed every gate and is the instrument's champion;
- ``refused``: the gate judged it and refused it (``rl_assets/failed_gates`` names the gates);
- ``failed:data``, ``failed:config``, ``failed:integrity``, ``failed:no_champion``,
  ``failed:infrastructure``: the run stopped before a verdict, for that reason.

The assets tag the verdict as soon as it is known (any run: UI, CLI, sensor, schedule); a
failed run without a verdict gets its failure class from ``run_outcome_sensor`` (with the
daemon), from the sensors' retry pass, or from ``make demo``.
"""

from typing import Any

import dagster as dg

OUTCOME_TAG = "rl_assets/outcome"
FAILED_GATES_TAG = "rl_assets/failed_gates"
PROMOTED = "promoted"
REFUSED = "refused"
FAILED = "failed:"
# Tags that describe one run's result: never copied to a retry of it.
RESULT_TAGS = (OUTCOME_TAG, FAILED_GATES_TAG)


def tag_outcome(context: Any, outcome: str, failed_gates: list[str] | None = None) -> None:
    """Tag the running run with its outcome (and the gates that failed)."""
    tags = {OUTCOME_TAG: outcome}
    if failed_gates:
        # Tag values are short strings: the names, without the common prefix.
        names = ",".join(g.removeprefix("candidate_") for g in failed_gates)
        tags[FAILED_GATES_TAG] = names[:250]
    context.instance.add_run_tags(context.run_id, tags)


def outcome_of(run: dg.DagsterRun) -> str:
    return run.tags.get(OUTCOME_TAG, "")


def tag_failure_class(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """The outcome of a failed run: its verdict tag if it has one, else ``failed:<class>``
    (``rl_assets.automation.retries.failure_kind``), which is then tagged on it."""
    from rl_assets.automation.retries import failure_kind

    current = instance.get_run_by_id(run.run_id) or run
    if outcome_of(current):
        return outcome_of(current)
    kind = failure_kind(instance, run.run_id)
    outcome = REFUSED if kind == "gate" else f"{FAILED}{kind}"
    instance.add_run_tags(run.run_id, {OUTCOME_TAG: outcome})
    return outcome


@dg.run_failure_sensor(
    name="run_outcome_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Tags every failed run without a verdict with why it failed "
    "(rl_assets/outcome=failed:<class>), so refusals and faults can be told apart in the Runs list.",
)
def run_outcome_sensor(context: dg.RunFailureSensorContext) -> None:
    outcome = tag_failure_class(context.instance, context.dagster_run)
    context.log.info(f"run {context.dagster_run.run_id}: {OUTCOME_TAG}={outcome}")
