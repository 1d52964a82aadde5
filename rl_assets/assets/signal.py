"""The champion in use: each instrument's position for the next session, with provenance."""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa

from rl_assets import constants, display, run_guard
from rl_assets.data.schemas import RawPrices, describe_failures, failure_summary
from rl_assets.data.versions import content_hash
from rl_assets.failures import DATA, NO_CHAMPION, failure
from rl_assets.instruments import instrument_partitions
from rl_assets.promotion.gate import judging_spec
from rl_assets.resources import ArtifactStoreResource, GateResource
from rl_assets.rl import checkpoints
from rl_assets.rl.env import bars
from rl_assets.rl.inference import next_position
from rl_assets.rl.training import load_module

SIGNALS_DIR = "signals"


class SignalConfig(dg.Config):
    """When prices are too old to act on. ``as_of`` (YYYY-MM-DD) is today (UTC) when empty."""

    max_staleness_business_days: int = constants.MAX_SIGNAL_STALENESS_BUSINESS_DAYS
    as_of: str = ""


def business_days_after(last: pd.Timestamp, as_of: pd.Timestamp) -> int:
    """Business days after ``last`` up to and including ``as_of``."""
    start = np.datetime64(last.date()) + np.timedelta64(1, "D")
    return int(np.busday_count(start, np.datetime64(as_of.date()) + np.timedelta64(1, "D")))


def write_signal(root: Path, instrument: str, record: dict[str, Any]) -> tuple[Path, Path]:
    """The record in the history (one file per as-of date, champion and data version), then
    as ``latest.json``: each file appears whole or not at all (temp file, fsync, rename)."""
    folder = root / SIGNALS_DIR / instrument
    name = f"{record['as_of']}_{record['champion_version']}_{record['data_version'][:8]}.json"
    history = folder / "history" / name
    checkpoints.write_json_atomically(history, record)
    latest = folder / "latest.json"
    checkpoints.write_json_atomically(latest, record)
    return latest, history


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.SIGNAL_GROUP,
    deps=["promoted_policy"],
    kinds={"pytorch"},
    code_version="1",
)
def trading_signal(
    context: dg.AssetExecutionContext,
    config: SignalConfig,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    raw_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """The champion's position for the next session, from the instrument's latest prices."""
    run_guard.ensure(context)
    instrument = context.partition_key
    champion = artifacts.registry(instrument).champion()
    if champion is None:
        raise failure(
            NO_CHAMPION,
            f"{instrument} has no champion yet, so no signal: a candidate must pass the gate "
            "first (materialize promoted_policy for this instrument)",
        )
    try:
        RawPrices.validate(raw_prices, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise failure(DATA, describe_failures(failure_summary(err), "raw_prices")) from None
    last = raw_prices.index[-1]
    as_of = pd.Timestamp(config.as_of) if config.as_of else pd.Timestamp.now(tz="UTC")
    as_of = as_of.tz_localize(None) if as_of.tzinfo else as_of
    stale = business_days_after(last, as_of)
    if stale > config.max_staleness_business_days:
        raise failure(
            DATA,
            f"{instrument}: the last bar is {last.date()}, {stale} business days before "
            f"{as_of.date()} (limit {config.max_staleness_business_days}); land newer prices "
            "and materialize raw_prices, or raise trading_signal config "
            "max_staleness_business_days",
        )
    checkpoint = artifacts.trusted(champion["checkpoint"])
    spec = judging_spec(champion["spec"], gate_thresholds.cost_model())
    decision = next_position(load_module(checkpoint), bars(raw_prices), spec.env_config())
    session = (last + pd.offsets.BDay(1)).date()
    execute_at = {
        "next_open": f"enter at the open of {session}",
        "next_close": f"enter at the close of {session} (market-on-close)",
    }.get(spec.execution, f"research execution {spec.execution}: not tradable")
    record = {
        "instrument": instrument,
        "as_of": str(last.date()),
        "session": str(session),
        "execution": spec.execution,
        "execute_at": execute_at,
        "position": decision.position,
        "held_into_last_bar": decision.held,
        "action": decision.action,
        "action_probabilities": decision.probabilities,
        "champion_version": champion["version"],
        "checkpoint_sha256": checkpoints.content_digest(checkpoint),
        "data_version": content_hash(raw_prices),
        "generated_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "run_id": context.run_id,
    }
    latest, history = write_signal(artifacts.path, instrument, record)
    context.log.info(
        f"{instrument}: position {decision.position:+.0f}: {execute_at} (decided after the "
        f"close of {record['as_of']}; champion {champion['version']})"
    )
    return dg.Output(
        record,
        metadata={
            "instrument": instrument,
            "position": decision.position,
            "as_of": record["as_of"],
            "execute_at": execute_at,
            "champion_version": champion["version"],
            "probability_of_position": display.fraction(
                decision.probabilities[str(decision.position)]
            ),
            "checkpoint_sha256": record["checkpoint_sha256"],
            "data_version": record["data_version"],
            "signal_file": dg.MetadataValue.path(str(latest)),
            "history_file": dg.MetadataValue.path(str(history)),
            "record": dg.MetadataValue.json(record),
        },
    )


def read_latest_signal(artifacts_root: str | os.PathLike, instrument: str) -> dict | None:
    """What a downstream system reads: ``<artifacts>/signals/<instrument>/latest.json``."""
    path = Path(artifacts_root) / SIGNALS_DIR / instrument / "latest.json"
    return json.loads(path.read_text()) if path.exists() else None
