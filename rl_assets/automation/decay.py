"""Retraining on decay: when a champion's live results fall below the band its validation
implied, request one retraining run of its instrument per data version."""

import json

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter

from rl_assets import constants
from rl_assets.assets.monitoring import DECAY_CHECK
from rl_assets.automation.jobs import (
    _deep_merge,
    extra_run_config,
    retrain_job,
    run_request_for,
    run_with_key,
)
from rl_assets.automation.retries import infrastructure_retries
from rl_assets.automation.sensors import max_retries, sensor_interval_seconds
from rl_assets.instruments import InstrumentError, registered, resolve
from rl_assets.resources import ArtifactStoreResource

DECAY_SENSOR = "champion_decay_sensor"
CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("champion_performance"), DECAY_CHECK)
# The retrain learns from the most recent bars: a rolling split, whatever the dates configured.
ROLLING_SPLIT = {
    "ops": {
        "price_splits": {
            "config": {
                "validation_days": constants.DECAY_VALIDATION_DAYS,
                "train_days": constants.DECAY_TRAIN_DAYS,
            }
        }
    }
}


def failed_decay_check(instance: dg.DagsterInstance, instrument: str):
    """The latest evaluation of the decay check for ``instrument`` if it failed, else None."""
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [CHECK_KEY], partition_filter=PartitionKeyFilter(key=instrument)
    )
    record = records.get(CHECK_KEY)
    if record is None or record.event is None or record.event.dagster_event is None:
        return None
    evaluation = record.event.dagster_event.event_specific_data
    return None if evaluation.passed else evaluation


@dg.sensor(
    name=DECAY_SENSOR,
    job=retrain_job,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "When champion_performance_within_expected_band fails for an instrument, requests one "
        "retrain run for it per data version, on a rolling split of its latest bars. The gate "
        "still decides whether the new candidate replaces the champion. Off until turned on."
    ),
)
def champion_decay_sensor(
    context: dg.SensorEvaluationContext, artifacts: ArtifactStoreResource
) -> dg.SensorResult:
    """One retraining run per instrument whose champion decayed, once per data version."""
    cursor = json.loads(context.cursor) if context.cursor else {"failures_after": 0.0}
    requests, notes = [], []
    extra = None
    for instrument in registered(context.instance):
        evaluation = failed_decay_check(context.instance, instrument)
        if evaluation is None:
            continue
        meta = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
        run_key = f"decay:{instrument}:{meta.get('champion_version')}:{meta.get('data_version')}"
        ran = run_with_key(context.instance, DECAY_SENSOR, run_key)
        if ran is not None:
            notes.append(f"{instrument}: already retrained on this data ({ran.run_id})")
            continue
        try:
            source = resolve(instrument)
        except InstrumentError as err:
            notes.append(str(err))
            continue
        extra = extra if extra is not None else _deep_merge(extra_run_config(), ROLLING_SPLIT)
        requests.append(
            run_request_for(
                instrument,
                source,
                str(meta.get("data_version")),
                extra,
                artifacts.path,
                DECAY_SENSOR,
                run_key=run_key,
            )
        )
        notes.append(f"{instrument}: {meta.get('reason')}; requesting a retrain")
    retries, retry_notes, cursor["failures_after"] = infrastructure_retries(
        context.instance, DECAY_SENSOR, float(cursor["failures_after"]), max_retries()
    )
    requests += retries
    for note in notes + retry_notes:
        context.log.info(note)
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))
    return dg.SensorResult(
        skip_reason=dg.SkipReason("; ".join(notes + retry_notes) or "no champion has decayed"),
        cursor=json.dumps(cursor),
    )
