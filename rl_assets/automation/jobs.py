"""The retraining job, its weekly schedule, and the run config and tags every retrain run carries."""

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from rl_assets.data.sources import PriceSourceError, symbol_digests
from rl_assets.data.synthetic import generate_prices, latest_business_day
from rl_assets.data.versions import content_hash
from rl_assets.instruments import (
    InstrumentError,
    InstrumentSource,
    instrument_partitions,
    registered,
    resolve,
)
from rl_assets.resources import ArtifactStoreResource

CONTENT_TAG = "rl_assets/content_sha256"
CONFIG_TAG = "rl_assets/config_sha256"
SOURCE_FILE_TAG = "rl_assets/source_file"
REQUESTED_BY_TAG = "rl_assets/requested_by"
ATTEMPT_TAG = "rl_assets/attempt"
PARTITION_TAG = "dagster/partition"

# Optional YAML run config merged into every run the sensors and the schedule request
# (a small training budget, tighter gate thresholds, split dates...).
RETRAIN_RUN_CONFIG_ENV_VAR = "RL_ASSETS_RETRAIN_RUN_CONFIG"
# Immutable, content-addressed copies of the price files runs train on, under the artifacts root.
INCOMING_DIR = "incoming"

retrain_job = dg.define_asset_job(
    name="retrain_job",
    selection=dg.AssetSelection.all(),
    partitions_def=instrument_partitions,
    description=(
        "Retrain one instrument from raw_prices through promoted_policy with every check, then "
        "its signal and monitoring; the gate blocks promotion (and so a new signal). "
        "Trainings and promotions queue for their concurrency pools."
    ),
)

signal_job = dg.define_asset_job(
    name="signal_job",
    selection=dg.AssetSelection.assets("raw_prices", "trading_signal", "champion_performance"),
    partitions_def=instrument_partitions,
    description=(
        "The latest prices of one instrument, its champion's signal for the next session and "
        "the champion's paper trading since its validation window (no training)."
    ),
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_digest(run_config: dict[str, Any]) -> str:
    """16 hex digits identifying an effective run config (key order does not matter)."""
    text = json.dumps(run_config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def snapshot_prices(data: bytes, sha256: str, name: str, artifacts_root: str | Path) -> Path:
    """Write ``data`` once to ``<artifacts>/incoming/<sha256>/<name>``; return that path.

    A queued run reads this copy, not the original file, so it trains on exactly the bytes
    that were hashed even if the file is overwritten before the run starts. The copy keeps
    its name, so the loader reads it in the same format as the original.
    """
    if not name or Path(name).name != name:
        raise ValueError(f"snapshot name {name!r} must be a bare file name like 'prices.csv'")
    directory = Path(artifacts_root) / INCOMING_DIR / sha256
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / name
    if dest.is_file() and dest.stat().st_size == len(data):
        return dest  # content-addressed: a repeated tick finds its own copy
    tmp = directory / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def extra_run_config() -> dict[str, Any]:
    """The YAML named by $RL_ASSETS_RETRAIN_RUN_CONFIG, or {} when it is unset."""
    raw = os.environ.get(RETRAIN_RUN_CONFIG_ENV_VAR, "").strip()
    if not raw:
        return {}
    path = Path(raw)
    if not path.is_file():
        raise FileNotFoundError(
            f"${RETRAIN_RUN_CONFIG_ENV_VAR} names {path}, which does not exist; "
            f"create that YAML run config or unset ${RETRAIN_RUN_CONFIG_ENV_VAR}"
        )
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(
            f"${RETRAIN_RUN_CONFIG_ENV_VAR} file {path} is not valid YAML ({exc}); fix it"
        ) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(
            f"${RETRAIN_RUN_CONFIG_ENV_VAR} file {path} holds a {type(config).__name__}; "
            "it must be a run config mapping such as {ops: {...}, resources: {...}}"
        )
    source = config.get("ops", {}).get("raw_prices", {}).get("config", {}).get("source_path")
    if source:
        raise ValueError(
            f"${RETRAIN_RUN_CONFIG_ENV_VAR} file {path} sets ops.raw_prices.config.source_path "
            f"to {source!r}; the sensors and the schedule set it for each instrument: remove it"
        )
    return config


def retrain_run_config(
    source_path: str | Path | None, extra: dict[str, Any] | None = None, symbol: str = ""
) -> dict[str, Any]:
    """Run config of one retrain run: ``extra`` (default: the optional YAML), then the file."""
    config = extra_run_config() if extra is None else extra
    if source_path is None:
        return config
    raw = {"source_path": str(source_path), **({"symbol": symbol} if symbol else {})}
    return _deep_merge(config, {"ops": {"raw_prices": {"config": raw}}})


def source_content(source: InstrumentSource) -> str:
    """What the instrument's training data is made of, as a digest: the file's bytes, the
    symbol's rows of a multi-ticker file, or the generated bars."""
    if source.kind == "generator":
        return content_hash(generate_prices_for(source))
    if source.symbol:
        digests = symbol_digests(source.path)
        if source.symbol not in digests:
            raise InstrumentError(f"symbol {source.symbol!r} is no longer in {source.path}")
        return digests[source.symbol]
    return sha256_hex(Path(source.path).read_bytes())


def generate_prices_for(source: InstrumentSource):
    """The bars raw_prices generates for this instrument with its default config."""
    from rl_assets import constants

    return generate_prices(constants.GENERATOR_START, latest_business_day(), **source.generator)


def run_request_for(
    instrument: str,
    source: InstrumentSource,
    content: str,
    extra: dict[str, Any],
    artifacts_root: str | Path,
    requested_by: str,
    run_key: str | None = None,
    attempt: int = 1,
) -> dg.RunRequest:
    """One retrain run of ``instrument`` on ``content``: file instruments read an immutable
    snapshot; the tags say what it trains on and under which effective config."""
    if source.kind == "file":
        data = Path(source.path).read_bytes()
        snapshot = snapshot_prices(data, sha256_hex(data), Path(source.path).name, artifacts_root)
        run_config = retrain_run_config(snapshot, extra, source.symbol)
    else:
        run_config = retrain_run_config(None, extra)
    return dg.RunRequest(
        partition_key=instrument,
        run_key=run_key,
        run_config=run_config,
        tags={
            CONTENT_TAG: content,
            CONFIG_TAG: config_digest(extra),
            SOURCE_FILE_TAG: source.path or "generator",
            REQUESTED_BY_TAG: requested_by,
            ATTEMPT_TAG: str(attempt),
        },
    )


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def finished_run(instance: dg.DagsterInstance, instrument: str, content: str, config: str):
    """A finished retrain run of this instrument on this content and config, whatever its outcome."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=retrain_job.name,
            tags={PARTITION_TAG: instrument, CONTENT_TAG: content, CONFIG_TAG: config},
            statuses=FINISHED,
        ),
        limit=1,
    )
    return runs[0] if runs else None


def registered_sources(
    instance: dg.DagsterInstance, problems: list[str]
) -> list[tuple[str, InstrumentSource, str]]:
    """(instrument, where its prices come from, their content digest) for every registered
    instrument whose prices can be read; the others are reported in ``problems``."""
    found = []
    for instrument in registered(instance):
        try:
            source = resolve(instrument)
            found.append((instrument, source, source_content(source)))
        except (InstrumentError, PriceSourceError, OSError) as err:
            problems.append(f"{instrument}: {err}")
    return found


def run_with_key(instance: dg.DagsterInstance, sensor: str, run_key: str) -> dg.DagsterRun | None:
    """The run ``sensor`` already launched for ``run_key``, if any (what makes run keys dedupe)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={"dagster/run_key": run_key, "dagster/sensor_name": sensor}),
        limit=1,
    )
    return runs[0] if runs else None


@dg.schedule(
    job=retrain_job,
    cron_schedule="0 6 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Mondays 06:00 UTC: one retrain run per registered instrument, skipping an instrument "
        "whose content and effective config already had a finished run (whatever its outcome)."
    ),
)
def weekly_retrain_schedule(
    context: dg.ScheduleEvaluationContext, artifacts: ArtifactStoreResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """Weekly retraining of every instrument whose data or config changed; off until turned on."""
    extra = extra_run_config()
    config = config_digest(extra)
    requests, skipped = [], []
    for instrument, source, content in registered_sources(context.instance, skipped):
        done = finished_run(context.instance, instrument, content, config)
        if done is not None:
            skipped.append(
                f"{instrument}: content {content[:12]} and config {config} already ran in "
                f"{done.run_id} ({done.status.value}); launch retrain_job by hand to force a run"
            )
            continue
        requests.append(
            run_request_for(instrument, source, content, extra, artifacts.path, "schedule")
        )
    for note in skipped:
        context.log.info(f"weekly_retrain_schedule: {note}")
    if not requests:
        return dg.SkipReason("; ".join(skipped) or "no instruments registered")
    return requests


@dg.schedule(
    job=signal_job,
    cron_schedule="30 21 * * 1-5",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Weekdays 21:30 UTC, after the US close: every instrument's latest prices, signal and "
        "champion monitoring (a failed decay check then triggers champion_decay_sensor)."
    ),
)
def daily_signal_schedule(
    context: dg.ScheduleEvaluationContext, artifacts: ArtifactStoreResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """One signal run per registered instrument; off until turned on."""
    requests, skipped = [], []
    for instrument, source, content in registered_sources(context.instance, skipped):
        requests.append(
            run_request_for(instrument, source, content, {}, artifacts.path, "signal_schedule")
        )
    for note in skipped:
        context.log.warning(f"daily_signal_schedule: {note}")
    return requests or dg.SkipReason("; ".join(skipped) or "no instruments registered")
