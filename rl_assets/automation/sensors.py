"""The landing-directory sensor: one retrain run per new price-file content, never twice."""

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from rl_assets.automation.jobs import (
    CONTENT_TAG,
    SOURCE_FILE_TAG,
    extra_run_config,
    retrain_job,
    retrain_run_config,
    sha256_hex,
    snapshot_prices,
)
from rl_assets.resources import REPO_ROOT, ArtifactStoreResource

LANDING_DIR_ENV_VAR = "RL_ASSETS_LANDING_DIR"
DEFAULT_LANDING_DIR = REPO_ROOT / "landing"
PRICE_SUFFIXES = (".csv", ".parquet")
SENSOR_INTERVAL_ENV_VAR = "RL_ASSETS_SENSOR_INTERVAL_SECONDS"
DEFAULT_SENSOR_INTERVAL_SECONDS = 30
# A file modified less than this long ago may still be being copied: look again next tick.
SETTLE_ENV_VAR = "RL_ASSETS_LANDING_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 10
CURSOR_VERSION = 1


def _env_seconds(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(
            f"${name}={raw!r} is not a whole number of seconds >= {minimum}; "
            f"set it to e.g. {default} or unset it for the default"
        )
    return value


def landing_dir() -> Path:
    """Where users drop price files: $RL_ASSETS_LANDING_DIR, else ``<repo>/landing``."""
    raw = os.environ.get(LANDING_DIR_ENV_VAR, "").strip()
    return Path(raw).expanduser() if raw else DEFAULT_LANDING_DIR


def sensor_interval_seconds() -> int:
    return _env_seconds(SENSOR_INTERVAL_ENV_VAR, DEFAULT_SENSOR_INTERVAL_SECONDS, minimum=1)


def settle_seconds() -> int:
    return _env_seconds(SETTLE_ENV_VAR, DEFAULT_SETTLE_SECONDS, minimum=0)


@dataclass
class LandingCursor:
    """What the sensor has seen, as JSON.

    ``seen`` maps the sha256 of every file content ever requested to the file it first came
    from; ``files`` caches ``[mtime_ns, size, sha256]`` per file name so an unchanged file is
    not read again and a touched one is re-hashed and found known.
    """

    seen: dict[str, str] = field(default_factory=dict)
    files: dict[str, list] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: str | None) -> "LandingCursor":
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            if data.get("version") != CURSOR_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {CURSOR_VERSION}")
            seen, files = dict(data["seen"]), dict(data["files"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"new_prices_sensor cursor {raw[:80]!r} is not a landing cursor ({exc}); clear "
                "the cursor in the UI (Sensors > new_prices_sensor > Set cursor, empty): run "
                "keys still stop any content that already ran from running again"
            ) from None
        return cls(seen=seen, files=files)

    def to_json(self) -> str:
        return json.dumps(
            {"version": CURSOR_VERSION, "seen": self.seen, "files": self.files}, sort_keys=True
        )


def _price_files(directory: Path) -> list[tuple[Path, os.stat_result]]:
    """Top-level *.csv / *.parquet files, oldest first; hidden files (temp copies) are skipped."""
    found = []
    for path in directory.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in PRICE_SUFFIXES:
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed while we listed
            continue
        if path.is_file():
            found.append((path, stat))
    return sorted(found, key=lambda item: (item[1].st_mtime_ns, item[0].name))


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches $RL_ASSETS_LANDING_DIR (default <repo>/landing) for *.csv/*.parquet price "
        "files; each new content (sha256) requests one retrain_job run. Off until turned on."
    ),
)
def new_prices_sensor(
    context: dg.SensorEvaluationContext, artifacts: ArtifactStoreResource
) -> dg.SensorResult:
    """Request one retraining run per new price-file content dropped in the landing directory."""
    directory = landing_dir()
    directory.mkdir(parents=True, exist_ok=True)
    cursor = LandingCursor.from_json(context.cursor)
    settle = settle_seconds()
    now = time.time()
    files: dict[str, list] = {}
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    extra: dict | None = None
    for path, stat in _price_files(directory):
        name = path.name
        cached = cursor.files.get(name)
        if cached and cached[:2] == [stat.st_mtime_ns, stat.st_size]:
            files[name] = cached
            continue
        if stat.st_size == 0:  # created but not written yet: look again when it has content
            notes.append(f"{name} is empty")
            continue
        if now - stat.st_mtime < settle:
            if cached:
                files[name] = cached
            notes.append(f"{name} changed {now - stat.st_mtime:.0f}s ago; waiting {settle}s")
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            context.log.warning(f"cannot read {path}: {exc}; will try again next tick")
            notes.append(f"{name} unreadable ({type(exc).__name__})")
            continue
        if len(data) != stat.st_size:
            notes.append(f"{name} changed while being read; reading it again next tick")
            continue
        sha = sha256_hex(data)
        files[name] = [stat.st_mtime_ns, stat.st_size, sha]
        if sha in cursor.seen:
            notes.append(f"{name} has the content of {cursor.seen[sha]} (sha256 {sha[:12]})")
            continue
        if extra is None:
            # Read the extra YAML once per tick and before any copy, so a bad YAML fails the
            # tick (visible in the UI, retried next tick) without advancing the cursor.
            extra = extra_run_config()
        snapshot = snapshot_prices(data, sha, name, artifacts.path)
        cursor.seen[sha] = name
        requests.append(
            dg.RunRequest(
                run_key=sha,
                run_config=retrain_run_config(snapshot, extra),
                tags={CONTENT_TAG: sha, SOURCE_FILE_TAG: str(path)},
            )
        )
        context.log.info(f"{name}: new content sha256 {sha[:12]}; requesting a retrain run")
    cursor.files = files
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor.to_json())
    reason = "; ".join(notes) if notes else "no new price file"
    return dg.SensorResult(
        skip_reason=dg.SkipReason(f"{reason} in {directory}"), cursor=cursor.to_json()
    )
