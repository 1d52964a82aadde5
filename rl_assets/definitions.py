"""The one Dagster Definitions of rl_assets (no ray or torch import at load time)."""

import dagster as dg

from rl_assets.assets import (
    evaluation,
    monitoring,
    prices,
    promotion,
    signal,
    training,
    walk_forward,
)
from rl_assets.automation.decay import champion_decay_sensor
from rl_assets.automation.jobs import (
    daily_signal_schedule,
    retrain_job,
    signal_job,
    weekly_retrain_schedule,
)
from rl_assets.automation.sensors import new_prices_sensor
from rl_assets.console import console_logger
from rl_assets.data import checks as data_checks
from rl_assets.outcomes import run_outcome_sensor
from rl_assets.promotion import checks as gate_checks
from rl_assets.resources import (
    ArtifactStoreResource,
    GateResource,
    RayResource,
    RunScopedIOManager,
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [prices, training, walk_forward, evaluation, promotion, signal, monitoring]
    ),
    asset_checks=dg.load_asset_checks_from_modules([data_checks, gate_checks, monitoring]),
    jobs=[retrain_job, signal_job],
    sensors=[new_prices_sensor, champion_decay_sensor, run_outcome_sensor],
    schedules=[weekly_retrain_schedule, daily_signal_schedule],
    resources={
        # Asset values per run: a run's checks, report and promotion judge the candidate
        # this run trained, however many runs are in flight (see RunScopedIOManager).
        "io_manager": RunScopedIOManager(),
        "artifacts": ArtifactStoreResource(),
        "ray": RayResource(),
        "gate_thresholds": GateResource(),
    },
    # One process for the whole run: the default multiprocess executor starts a
    # subprocess per step (each re-imports the code location and, for training,
    # torch and ray), several seconds per step for no parallelism we could use on
    # 2 cores; Ray already parallelises inside trained_policy.
    executor=dg.in_process_executor,
    # Dagster's console logger, with a refusal as one line and no stack trace for a
    # deliberate failure (rl_assets/console.py); the stored log is unchanged.
    loggers={"console": console_logger},
)
