"""The landing-directory sensor: one retrain run per (instrument, content), never twice, and
bounded retries of runs that failed for an infrastructure reason."""

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from rl_assets import constants
from rl_assets.automation.jobs import (
    ATTEMPT_TAG,
    CONFIG_TAG,
    CONTENT_TAG,
    REQUESTED_BY_TAG,
    SOURCE_FILE_TAG,
    config_digest,
    extra_run_config,
    retrain_job,
    retrain_run_config,
    run_with_key,
    sha256_hex,
    snapshot_prices,
)
from rl_assets.automation.retries import infrastructure_retries
from rl_assets.data.sources import PriceSourceError, symbol_digests
from rl_assets.instruments import (
    InstrumentError,
    instrument_partitions,
    key_from_file,
    price_suffix,
    record_landed,
    validate_key,
)
from rl_assets.resources import ArtifactStoreResource

SENSOR_NAME = "new_prices_sensor"
LANDING_DIR_ENV_VAR = "RL_ASSETS_LANDING_DIR"
DEFAULT_LANDING_DIR = constants.REPO_ROOT / "landing"
SENSOR_INTERVAL_ENV_VAR = "RL_ASSETS_SENSOR_INTERVAL_SECONDS"
DEFAULT_SENSOR_INTERVAL_SECONDS = 30
# A file modified less than this long ago may still be being copied: look again next tick.
SETTLE_ENV_VAR = "RL_ASSETS_LANDING_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 10
MAX_RETRIES_ENV_VAR = "RL_ASSETS_MAX_INFRA_RETRIES"
DEFAULT_MAX_RETRIES = 2
CURSOR_VERSION = 2
RUN_KEY_TAG = "dagster/run_key"


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(
            f"${name}={raw!r} is not a whole number >= {minimum}; "
            f"set it to e.g. {default} or unset it for the default"
        )
    return value


def landing_dir() -> Path:
    """Where users drop price files: $RL_ASSETS_LANDING_DIR, else ``<repo>/landing``."""
    raw = os.environ.get(LANDING_DIR_ENV_VAR, "").strip()
    return Path(raw).expanduser() if raw else DEFAULT_LANDING_DIR


def sensor_interval_seconds() -> int:
    return _env_int(SENSOR_INTERVAL_ENV_VAR, DEFAULT_SENSOR_INTERVAL_SECONDS, minimum=1)


def settle_seconds() -> int:
    return _env_int(SETTLE_ENV_VAR, DEFAULT_SETTLE_SECONDS, minimum=0)


def max_retries() -> int:
    return _env_int(MAX_RETRIES_ENV_VAR, DEFAULT_MAX_RETRIES, minimum=0)


@dataclass
class LandingCursor:
    """What the sensor has handled, in a size that does not grow with the files that arrive.

    Files are taken in order of their inode change time (ctime: set by every write, copy and
    rename, and never by a tool that preserves modification times, such as ``cp -p`` or
    rsync). ``watermark_ns`` is the ctime up to which every file was handled, ``at_watermark``
    the names handled at exactly that ctime, and ``failures_after`` the update time of the
    last failed run looked at for retries. Which contents already ran is Dagster's record of
    run keys, not the cursor's.
    """

    watermark_ns: int = 0
    at_watermark: list[str] = field(default_factory=list)
    failures_after: float = 0.0

    @classmethod
    def from_json(cls, raw: str | None) -> "LandingCursor":
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            if data.get("version") != CURSOR_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {CURSOR_VERSION}")
            return cls(
                watermark_ns=int(data["watermark_ns"]),
                at_watermark=list(data["at_watermark"]),
                failures_after=float(data["failures_after"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"{SENSOR_NAME} cursor {raw[:80]!r} is not a landing cursor ({exc}); clear "
                f"the cursor in the UI (Sensors > {SENSOR_NAME} > Set cursor, empty): run "
                "keys still stop any content that already ran from running again"
            ) from None

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": CURSOR_VERSION,
                "watermark_ns": self.watermark_ns,
                "at_watermark": sorted(self.at_watermark),
                "failures_after": self.failures_after,
            },
            sort_keys=True,
        )

    def handled(self, name: str, ctime_ns: int) -> bool:
        return ctime_ns < self.watermark_ns or (
            ctime_ns == self.watermark_ns and name in self.at_watermark
        )

    def advance(self, name: str, ctime_ns: int) -> None:
        if ctime_ns > self.watermark_ns:
            self.watermark_ns, self.at_watermark = ctime_ns, [name]
        elif ctime_ns == self.watermark_ns and name not in self.at_watermark:
            self.at_watermark.append(name)


def _landed_files(directory: Path) -> list[tuple[Path, os.stat_result]]:
    """Top-level price files, oldest change first; hidden files (copies in progress) skipped."""
    found = []
    for path in directory.iterdir():
        if path.name.startswith(".") or not price_suffix(path):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed while we listed
            continue
        if path.is_file():
            found.append((path, stat))
    return sorted(found, key=lambda item: (item[1].st_ctime_ns, item[0].name))


def instruments_of(path: Path, data: bytes) -> list[tuple[str, str, str]]:
    """(instrument, content digest, symbol) for each instrument in a landed file: one per
    symbol of a multi-ticker file (its rows' digest), else one named after the file (the
    file's sha256). A file that cannot be parsed is one instrument: its run then fails at
    raw_prices with the reason."""
    try:
        digests = symbol_digests(path)
    except PriceSourceError:
        digests = {}
    if digests:
        return [(validate_key(s, f"symbol in {path.name}"), d, s) for s, d in digests.items()]
    return [(key_from_file(path), sha256_hex(data), "")]


@dg.sensor(
    name=SENSOR_NAME,
    job=retrain_job,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches $RL_ASSETS_LANDING_DIR (default <repo>/landing) for price files; adds their "
        "instruments and requests one retrain run per (instrument, content). Off until turned on."
    ),
)
def new_prices_sensor(
    context: dg.SensorEvaluationContext, artifacts: ArtifactStoreResource
) -> dg.SensorResult:
    """One retraining run per instrument whose rows changed in a file dropped in the landing directory."""
    directory = landing_dir()
    directory.mkdir(parents=True, exist_ok=True)
    cursor = LandingCursor.from_json(context.cursor)
    settle = settle_seconds()
    now = time.time()
    requests: list[dg.RunRequest] = []
    new_keys: list[str] = []
    notes: list[str] = []
    extra: dict | None = None
    blocked_at: int | None = None  # the watermark may not pass a file still being written
    for path, stat in _landed_files(directory):
        name, ctime = path.name, stat.st_ctime_ns
        if cursor.handled(name, ctime):
            continue
        if stat.st_size == 0 or now - stat.st_mtime < settle:
            notes.append(f"{name} is still being written; waiting {settle}s")
            blocked_at = ctime if blocked_at is None else min(blocked_at, ctime)
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            context.log.warning(f"cannot read {path}: {exc}; will try again next tick")
            notes.append(f"{name} unreadable ({type(exc).__name__})")
            blocked_at = ctime if blocked_at is None else min(blocked_at, ctime)
            continue
        if len(data) != stat.st_size:
            notes.append(f"{name} changed while being read; reading it again next tick")
            blocked_at = ctime if blocked_at is None else min(blocked_at, ctime)
            continue
        try:
            found = instruments_of(path, data)
        except InstrumentError as err:
            context.log.warning(str(err))
            notes.append(str(err))
            found = []
        if extra is None and found:
            # Read the extra YAML once per tick and before any copy, so a bad YAML fails the
            # tick (visible in the UI, retried next tick) without advancing the cursor.
            extra = extra_run_config()
        unchanged = []
        for instrument, content, symbol in found:
            run_key = f"{instrument}:{content}"
            earlier = run_with_key(context.instance, SENSOR_NAME, run_key)
            if earlier is not None:
                unchanged.append(instrument)
                continue
            snapshot = snapshot_prices(data, sha256_hex(data), name, artifacts.path)
            # Its prices from now on, for the schedules, the decay sensor and the signal too.
            record_landed(artifacts.path, instrument, snapshot, symbol, content, path)
            new_keys.append(instrument)
            requests.append(
                dg.RunRequest(
                    partition_key=instrument,
                    run_key=run_key,
                    run_config=retrain_run_config(snapshot, extra, symbol),
                    tags={
                        CONTENT_TAG: content,
                        CONFIG_TAG: config_digest(extra or {}),
                        SOURCE_FILE_TAG: str(path),
                        REQUESTED_BY_TAG: SENSOR_NAME,
                        ATTEMPT_TAG: "1",
                    },
                )
            )
            context.log.info(
                f"{name}: {instrument} has new content {content[:12]}; requesting a run"
            )
        if unchanged:
            notes.append(f"{name}: unchanged for {', '.join(unchanged)} (already ran)")
        if blocked_at is None or ctime < blocked_at:
            cursor.advance(name, ctime)
    retries, retry_notes, cursor.failures_after = infrastructure_retries(
        context.instance, SENSOR_NAME, cursor.failures_after, max_retries()
    )
    requests += retries
    notes += retry_notes
    partitions = (
        [instrument_partitions.build_add_request(sorted(set(new_keys)))] if new_keys else []
    )
    if requests:
        return dg.SensorResult(
            run_requests=requests, dynamic_partitions_requests=partitions, cursor=cursor.to_json()
        )
    reason = "; ".join(notes) if notes else "no new price file"
    return dg.SensorResult(
        skip_reason=dg.SkipReason(f"{reason} in {directory}"), cursor=cursor.to_json()
    )
