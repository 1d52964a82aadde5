"""The terminal's console logger: Dagster's own, with verdicts told apart from faults.

A refused candidate fails its run (a blocking check fails), and Dagster prints that as an
ERROR with a stack trace, twice, followed by an ERROR per skipped downstream step: exactly
as it prints a Ray crash. Here a refusal is one line, naming the failed gates and the
report, and a deliberate failure (``rl_assets.failures``: bad data, bad config, no
champion, an altered checkpoint) is its message without the stack trace. Anything else
(infrastructure) is printed as Dagster prints it. The run's stored log, which the UI shows,
is unchanged: this only filters what the terminal shows.
"""

import logging
import re
from pathlib import Path
from typing import Any

import dagster as dg

from rl_assets.failures import DELIBERATE, KIND_KEY
from rl_assets.outcomes import OUTCOME_TAG, REFUSED

GATE_CHECK = re.compile(r"\bcandidate_(\w+)")
STACK_TRACE = "\n\nStack Trace:"


def _event(record: logging.LogRecord) -> tuple[Any, dict]:
    meta = getattr(record, "dagster_meta", None) or {}
    return meta.get("dagster_event"), meta


def _error(event: Any) -> Any:
    return getattr(event.event_specific_data, "error", None) if event is not None else None


def _kind(event: Any) -> str:
    data = getattr(event, "event_specific_data", None)
    user = getattr(data, "user_failure_data", None)
    value = (getattr(user, "metadata", None) or {}).get(KIND_KEY)
    return str(getattr(value, "value", value) or "")


def _gates(error: Any) -> list[str]:
    """The failed gates a DagsterAssetCheckFailedError names, if it names only gates."""
    if error is None or not error.cls_name == "DagsterAssetCheckFailedError":
        return []
    names = [line.split(": ", 1)[-1] for line in error.message.splitlines()[1:] if line.strip()]
    if not names or not all(n.startswith("candidate_") for n in names):
        return []
    return [n.removeprefix("candidate_") for n in names]


def _info(record: logging.LogRecord, message: str) -> None:
    record.msg, record.args = message, ()
    record.levelno, record.levelname = logging.INFO, "INFO"


class VerdictsNotFaults(logging.Filter):
    """Per run (one logger per run): one line for a refusal, no stack trace for a
    deliberate failure, no ERROR for the steps a refusal skips."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = False

    def filter(self, record: logging.LogRecord) -> bool:
        event, meta = _event(record)
        if event is None:
            if self.refused and str(record.msg).endswith("Not executing."):
                return False  # a step downstream of the refusal: nothing went wrong there
            return True
        error = _error(event)
        gates = _gates(error)
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and gates:
            self.refused = True
            return False  # said once, with the run's outcome, below
        if event.event_type == dg.DagsterEventType.RUN_FAILURE and (gates or self.refused):
            report = (
                Path(_artifacts_root()) / "runs" / str(meta.get("run_id")) / "report" / "report.md"
            )
            _info(
                record,
                f"{meta.get('job_name')} - {meta.get('run_id')} - REFUSED by the gate "
                f"({', '.join(gates) or 'see the report'}): the champion is unchanged; report "
                f"{report}; run tag {OUTCOME_TAG}={REFUSED}",
            )
            return True
        kind = _kind(event)
        if kind in DELIBERATE and error is not None:
            head = str(record.msg).split("\n\n", 1)[0]
            reason = error.message.strip().splitlines()[0] if error.message else ""
            reason = reason.removeprefix("dagster._core.definitions.events.Failure: ")
            record.msg, record.args = f"{head} [{kind}] {reason}", ()
            if kind == "gate":
                self.refused = True
                _info(record, str(record.msg))
        return True


def _artifacts_root() -> str:
    from rl_assets.resources import default_artifacts_root

    return default_artifacts_root()


@dg.logger(
    config_schema=dg.colored_console_logger.config_schema,
    description="Dagster's colored console logger; a refusal is one line, a deliberate "
    "failure has no stack trace (rl_assets.console).",
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = dg.colored_console_logger.logger_fn(init_context)
    logger.addFilter(VerdictsNotFaults())
    return logger
