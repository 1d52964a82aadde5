"""The retraining job, its weekly schedule, and the run config and tags every retrain run carries."""

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from rl_assets.data.sources import PRICES_FILE_ENV_VAR
from rl_assets.resources import ArtifactStoreResource

# dagster.yaml limits runs carrying this tag (any value) to one at a time: one training, one
# promotion in flight, however the run was started (sensor, schedule, UI, CLI).
TRAINING_TAG = "rl_assets/training"
CONTENT_TAG = "rl_assets/content_sha256"
SOURCE_FILE_TAG = "rl_assets/source_file"

# Optional YAML run config merged into every run the sensor and the schedule request
# (a small training budget, gate thresholds, split dates...).
RETRAIN_RUN_CONFIG_ENV_VAR = "RL_ASSETS_RETRAIN_RUN_CONFIG"
# Immutable, content-addressed copies of the price files runs train on, under the artifacts root.
INCOMING_DIR = "incoming"

retrain_job = dg.define_asset_job(
    name="retrain_job",
    selection=dg.AssetSelection.assets("promoted_policy").upstream(),
    description=(
        "Retrain from raw_prices through promoted_policy with every check; the gate blocks "
        "promotion. One run at a time (tag rl_assets/training)."
    ),
    tags={TRAINING_TAG: "true"},
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot_prices(data: bytes, sha256: str, name: str, artifacts_root: str | Path) -> Path:
    """Write ``data`` once to ``<artifacts>/incoming/<sha256>/<name>``; return that path.

    A queued run reads this copy, not the landing file, so it trains on exactly the bytes
    that were hashed even if the landing file is overwritten before the run starts. The
    file keeps its name, so the loader reads it in the same format as the original.
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
            f"to {source!r}; the sensor and the schedule set it for each file: remove that key"
        )
    return config


def retrain_run_config(
    source_path: str | Path | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run config of one retrain run: ``extra`` (default: the optional YAML), then the file."""
    config = extra_run_config() if extra is None else extra
    if source_path is None:
        return config
    return _deep_merge(
        config, {"ops": {"raw_prices": {"config": {"source_path": str(source_path)}}}}
    )


@dg.schedule(
    job=retrain_job,
    cron_schedule="0 6 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Mondays 06:00 UTC: retrain on $RL_ASSETS_PRICES_FILE (else the generator); skipped "
        "when a retrain run already succeeded on the same file content."
    ),
)
def weekly_retrain_schedule(
    context: dg.ScheduleEvaluationContext, artifacts: ArtifactStoreResource
) -> dg.RunRequest | dg.SkipReason:
    """Weekly retraining on the configured price source; off until a user turns it on."""
    raw = os.environ.get(PRICES_FILE_ENV_VAR, "").strip()
    if not raw:
        return dg.RunRequest(
            run_config=retrain_run_config(None), tags={SOURCE_FILE_TAG: "generator"}
        )
    path = Path(raw)
    if not path.is_file():
        raise FileNotFoundError(
            f"${PRICES_FILE_ENV_VAR} names {path}, which does not exist; point it at a CSV or "
            f"Parquet price file, or unset it to retrain on the generator"
        )
    data = path.read_bytes()
    sha = sha256_hex(data)
    done = context.instance.get_runs(
        filters=dg.RunsFilter(
            job_name=retrain_job.name,
            tags={CONTENT_TAG: sha},
            statuses=[dg.DagsterRunStatus.SUCCESS],
        ),
        limit=1,
    )
    if done:
        return dg.SkipReason(
            f"{path} (sha256 {sha[:12]}) is unchanged since run {done[0].run_id} retrained on "
            "it; update the file to retrain"
        )
    snapshot = snapshot_prices(data, sha, path.name, artifacts.path)
    return dg.RunRequest(
        run_config=retrain_run_config(snapshot),
        tags={CONTENT_TAG: sha, SOURCE_FILE_TAG: str(path)},
    )
