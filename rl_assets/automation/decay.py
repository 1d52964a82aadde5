"""Retraining on decay: when a champion's monitoring finds its edge gone, request a
retraining run of its instrument, at most once per champion per spacing of new data.

Every retrain is another attempt at the gate, counted in the instrument's trial ledger. A
decayed champion whose candidates keep being refused would otherwise be retrained on every
new bar, each a fresh draw: so after one retrain of a champion, the next waits until the
data has moved on by ``$RL_ASSETS_DECAY_RETRAIN_SPACING_DAYS`` business days (default
``constants.DECAY_RETRAIN_SPACING_DAYS``).
"""

import datetime as dt
import json
import os

import dagster as dg
import numpy as np

from rl_assets import constants
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


SPACING_ENV_VAR = "RL_ASSETS_DECAY_RETRAIN_SPACING_DAYS"
CHAMPION_TAG = "rl_assets/decayed_champion"
THROUGH_TAG = "rl_assets/data_through"


def retrain_spacing_days() -> int:
    """Business days of new data between two decay retrains of one champion."""
    raw = os.environ.get(SPACING_ENV_VAR, "").strip()
    if not raw:
        return constants.DECAY_RETRAIN_SPACING_DAYS
    if not raw.isdigit():
        raise ValueError(
            f"${SPACING_ENV_VAR}={raw!r} is not a whole number of business days >= 0; set it "
            f"to e.g. {constants.DECAY_RETRAIN_SPACING_DAYS} or unset it"
        )
    return int(raw)


def last_retrain(instance: dg.DagsterInstance, instrument: str, champion: str):
    """The latest decay retrain run requested for this champion of this instrument."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            tags={
                "dagster/sensor_name": DECAY_SENSOR,
                "dagster/partition": instrument,
                CHAMPION_TAG: champion,
            }
        ),
        limit=1,
    )
    return runs[0] if runs else None


def decayed_verdict(artifacts: ArtifactStoreResource, instrument: str) -> dict | None:
    """The latest monitoring verdict of ``instrument``'s champion in place if it found the
    edge gone, else None. champion_performance writes it to the registry lane in the same
    step whose output its check judges (public files, no Dagster internals)."""
    registry = artifacts.registry(instrument)
    champion = registry.champion()
    if champion is None or not registry.champion_decayed(champion):
        return None
    return registry.monitoring()


@dg.sensor(
    name=DECAY_SENSOR,
    job=retrain_job,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "When champion_performance_within_expected_band fails for an instrument, requests a "
        "retrain run for it on a rolling split of its latest bars, at most once per champion "
        "per $RL_ASSETS_DECAY_RETRAIN_SPACING_DAYS business days of new data (each retrain "
        "is an attempt the trial ledger counts). The gate still decides whether the new "
        "candidate replaces the champion. Off until turned on."
    ),
)
def champion_decay_sensor(
    context: dg.SensorEvaluationContext, artifacts: ArtifactStoreResource
) -> dg.SensorResult:
    """A retraining run per instrument whose champion decayed, spaced by new data."""
    cursor = json.loads(context.cursor) if context.cursor else {"failures_after": 0.0}
    requests, notes = [], []
    extra = None
    for instrument in registered(context.instance):
        meta = decayed_verdict(artifacts, instrument)
        if meta is None:
            continue
        champion = str(meta.get("champion_version"))
        run_key = f"decay:{instrument}:{champion}:{meta.get('data_version')}"
        ran = run_with_key(context.instance, DECAY_SENSOR, run_key)
        if ran is not None:
            notes.append(f"{instrument}: already retrained on this data ({ran.run_id})")
            continue
        # The last bar the check saw (the wall-clock date for checks that do not say).
        through = str(meta.get("through") or dt.date.today())
        before = last_retrain(context.instance, instrument, champion)
        spacing = retrain_spacing_days()
        if before is not None and THROUGH_TAG in before.tags:
            moved = int(np.busday_count(before.tags[THROUGH_TAG], through))
            if moved < spacing:
                notes.append(
                    f"{instrument}: champion {champion} was retrained on data through "
                    f"{before.tags[THROUGH_TAG]} ({before.run_id}); the next retrain waits for "
                    f"{spacing} business days of new data ({moved} so far): each retrain is "
                    "another attempt the ledger counts"
                )
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
        requests[-1] = requests[-1].with_replaced_attrs(
            tags={**requests[-1].tags, CHAMPION_TAG: champion, THROUGH_TAG: through}
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
