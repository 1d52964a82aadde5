"""The champion in use: each instrument's position for the next session, with provenance."""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from rl_assets import calendars, constants, display, run_guard
from rl_assets.data.schemas import RawPrices, describe_failures, failure_summary
from rl_assets.data.versions import content_hash
from rl_assets.deployment import MAX_STALENESS, TRADE_DECAYED_ENV_VAR, trade_decayed_champions
from rl_assets.failures import CONFIG, DATA, INTEGRITY, NO_CHAMPION, failure
from rl_assets.instruments import InstrumentError, instrument_partitions, resolve
from rl_assets.promotion.gate import judging_spec
from rl_assets.registry import ChampionUnusable, file_lock
from rl_assets.resources import ArtifactStoreResource, GateResource
from rl_assets.rl import checkpoints
from rl_assets.rl.env import bars
from rl_assets.rl.inference import next_position
from rl_assets.rl.training import load_module

SIGNALS_DIR = "signals"


class SignalConfig(dg.Config):
    """``as_of`` (YYYY-MM-DD): the signal as it would have been given on that day, from the
    bars up to it (today, UTC, when empty). ``max_staleness_business_days`` may only be set
    lower than the deployment's ($RL_ASSETS_SIGNAL_MAX_STALENESS_BUSINESS_DAYS, 3)."""

    max_staleness_business_days: int | None = None
    as_of: str = ""


def instrument_calendar(instrument: str) -> str:
    """The instrument's exchange calendar (rl_assets.calendars): weekdays for the generator's
    instruments, which have bars on exchange holidays; XNYS for files unless configured."""
    try:
        generated = resolve(instrument).kind == "generator"
    except InstrumentError:
        generated = False
    try:
        name = calendars.calendar_name(instrument, generated)
        calendars.calendar(name, pd.Timestamp.now())  # an unknown name stops here, named
        return name
    except calendars.CalendarError as err:
        raise failure(CONFIG, str(err)) from None


def write_signal(root: Path, instrument: str, record: dict[str, Any]) -> tuple[Path | None, Path]:
    """The record in the history (one file per as-of date, champion and data version), then
    as ``latest.json`` unless that already holds a signal for a later session (a re-executed
    old run never replaces a newer signal); each file appears whole or not at all (temp
    file, fsync, rename). Returns (latest, or None when it was kept, history)."""
    folder = root / SIGNALS_DIR / instrument
    version = record.get("champion_version") or "none"
    # A no-signal record has a name of its own: it never overwrites the signal it supersedes.
    none = "_no-signal" if record.get("position") is None else ""
    name = f"{record['as_of']}_{version}_{record['data_version'][:8]}{none}.json"
    history = folder / "history" / name
    checkpoints.write_json_atomically(history, record)
    latest = folder / "latest.json"
    with file_lock(folder, ".signal.lock"):
        current = read_latest_signal(root, instrument)
        if current is not None and current.get("session", "") > record["session"]:
            return None, history
        checkpoints.write_json_atomically(latest, record)
    return latest, history


def no_signal(
    root: Path, instrument: str, base: dict[str, Any], reason: str
) -> tuple[Path | None, Path]:
    """Supersede ``latest.json`` with a record that gives no position and says why, so that
    nothing downstream keeps trading the previous signal."""
    record = {**base, "position": None, "signal": False, "reason": reason}
    return write_signal(root, instrument, record)


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.SIGNAL_GROUP,
    # After the champion's monitoring: the signal carries its verdict, and a decayed champion
    # does not signal (unless the deployment chose to keep trading it).
    deps=["promoted_policy", "champion_performance"],
    kinds={"pytorch"},
    code_version="2",
)
def trading_signal(
    context: dg.AssetExecutionContext,
    config: SignalConfig,
    artifacts: ArtifactStoreResource,
    gate_thresholds: GateResource,
    raw_prices: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """The champion's position for the next session, from the instrument's prices up to as-of; no position, and why, when none can be given."""
    run_guard.ensure(context)
    instrument = context.partition_key
    max_staleness = MAX_STALENESS.for_run(
        config.max_staleness_business_days, "ops.trading_signal.config"
    )
    registry = artifacts.registry(instrument)
    champion = registry.champion()
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
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    as_of = pd.Timestamp(config.as_of) if config.as_of else now
    as_of = as_of.tz_localize(None) if as_of.tzinfo else as_of
    # Only what was known on as-of: a signal for a past day never sees later bars.
    prices = raw_prices.loc[: as_of.normalize()]
    if prices.empty:
        raise failure(
            DATA,
            f"{instrument}: no bars on or before as_of {as_of.date()} (the first is "
            f"{raw_prices.index[0].date()}); choose a later as_of",
        )
    last = prices.index[-1]
    calendar = instrument_calendar(instrument)
    next_day = calendars.next_session(calendar, last)
    session = next_day.date()
    cost = gate_thresholds.cost_model()
    base = {
        "instrument": instrument,
        "as_of": str(last.date()),
        "session": str(session),
        "calendar": calendar,
        "session_open_utc": calendars.session_open_utc(calendar, next_day).isoformat(),
        "execution": cost.execution,
        "champion_version": champion["version"],
        "data_version": content_hash(prices),
        "generated_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "run_id": context.run_id,
        "monitoring": _monitoring_verdict(registry, champion),
    }

    def refuse(kind: str, reason: str) -> dg.Failure:
        no_signal(artifacts.path, instrument, base, reason)
        return failure(kind, f"{reason}; latest.json now says so, with no position")

    stale = calendars.sessions_after(calendar, last, as_of)
    if stale > max_staleness:
        raise refuse(
            DATA,
            f"{instrument}: no signal: the last bar is {last.date()}, {stale} {calendar} "
            f"sessions before {as_of.date()} (limit {max_staleness}); land newer prices and "
            "materialize raw_prices",
        )
    try:
        checkpoint = artifacts.trusted(registry.verified(champion))
    except ChampionUnusable as err:
        raise refuse(INTEGRITY, f"no signal: {err}") from None
    decayed = registry.champion_decayed(champion)
    if decayed and not trade_decayed_champions():
        reason = (
            f"{instrument}: no signal: champion {champion['version']} is DECAYED by its "
            f"monitoring ({base['monitoring'].get('reason', '')}); a retrain is due. To keep "
            f"signalling decayed champions, set ${TRADE_DECAYED_ENV_VAR}=1"
        )
        latest, history = no_signal(artifacts.path, instrument, base, reason)
        context.log.warning(reason)
        return dg.Output(
            {**base, "position": None, "signal": False, "reason": reason},
            metadata={
                "instrument": instrument,
                "position": "none",
                "reason": reason,
                "signal_file": dg.MetadataValue.path(str(latest or history)),
            },
        )
    spec = judging_spec(champion["spec"], cost)
    decision = next_position(load_module(checkpoint), bars(prices), spec.env_config())
    execute_at = {
        "next_open": f"enter at the open of {session}",
        "next_close": f"enter at the close of {session} (market-on-close)",
    }.get(spec.execution, f"research execution {spec.execution}: not tradable")
    record = {
        **base,
        "signal": True,
        "execution": spec.execution,
        "execute_at": execute_at,
        "position": decision.position,
        "held_into_last_bar": decision.held,
        "action": decision.action,
        # The policy's own probability of its greedy action: not a calibrated confidence.
        "policy_probability": decision.probabilities[str(decision.position)],
        "action_probabilities": decision.probabilities,
        "checkpoint_sha256": champion.get("checkpoint_sha256")
        or checkpoints.policy_digest(checkpoint),
        "champion_decayed": decayed,
    }
    latest, history = write_signal(artifacts.path, instrument, record)
    if latest is None:
        context.log.warning(
            f"{instrument}: latest.json holds a signal for a later session than {session}; "
            f"kept it (this one is in {history})"
        )
    context.log.info(
        f"{instrument}: position {decision.position:+.0f}: {execute_at} (decided after the "
        f"close of {record['as_of']}; champion {champion['version']}"
        + ("; DECAYED, traded by the deployment's choice" if decayed else "")
        + ")"
    )
    return dg.Output(
        record,
        metadata={
            "instrument": instrument,
            "position": decision.position,
            "as_of": record["as_of"],
            "session": record["session"],
            "execute_at": execute_at,
            "champion_version": champion["version"],
            "policy_probability": display.fraction(record["policy_probability"]),
            "checkpoint_sha256": record["checkpoint_sha256"],
            "data_version": record["data_version"],
            "signal_file": dg.MetadataValue.path(str(latest or history)),
            "history_file": dg.MetadataValue.path(str(history)),
            "record": dg.MetadataValue.json(record),
        },
    )


def _monitoring_verdict(registry, champion: dict[str, Any]) -> dict[str, Any]:
    """The champion's latest monitoring verdict, as the signal carries it."""
    state = registry.monitoring()
    if state is None or state.get("champion_version") != champion["version"]:
        return {"state": "not watched yet"}
    return {
        "state": "DECAYED" if state.get("decayed") else "edge holding",
        "reason": state.get("reason", ""),
        "days": state.get("days"),
        "recorded_at": state.get("recorded_at"),
    }


def read_latest_signal(artifacts_root: str | os.PathLike, instrument: str) -> dict | None:
    """What a downstream system reads: ``<artifacts>/signals/<instrument>/latest.json``."""
    path = Path(artifacts_root) / SIGNALS_DIR / instrument / "latest.json"
    return json.loads(path.read_text()) if path.exists() else None
