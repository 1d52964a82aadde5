"""Settings that belong to the deployment, not to a run.

A run's config is whatever the person or sensor launching it wrote; the settings below decide
what the registry is, which files may be unpickled, when a champion counts as decayed (a
decayed champion is skipped by the next candidate's comparison) and when a signal may be
given. They are read from the environment of the Dagster daemon, webserver and CLI, as the
gate's thresholds are (rl_assets.promotion.gate). A run may tighten the signal's staleness
limit; anything else a run sets here stops the run before it trains, naming the variable.
"""

import os
from dataclasses import dataclass
from typing import Literal

from rl_assets import constants
from rl_assets.failures import CONFIG, failure


@dataclass(frozen=True)
class Setting:
    name: str  # as the run config would spell it
    env_var: str
    default: float
    kind: type = float
    # "max": a run may use a lower value (tighter); "min": a higher one; None: not at all.
    run_may: Literal["lower", "raise"] | None = None
    low: float = 0.0  # exclusive lower bound of a valid value

    def deployment_value(self) -> float:
        raw = os.environ.get(self.env_var, "").strip()
        if not raw:
            return self.kind(self.default)
        try:
            value = self.kind(raw)
        except ValueError:
            value = None
        if value is None or not value > self.low:
            raise failure(
                CONFIG,
                f"${self.env_var}={raw!r} is not a valid {self.name} (a {self.kind.__name__} "
                f"above {self.low:g}); set it to e.g. {self.default} or unset it",
            )
        return value

    def for_run(self, run_value: float | None, where: str) -> float:
        """The deployment's value, or ``run_value`` where a run may tighten it to that."""
        value = self.deployment_value()
        if run_value is None:
            return value
        fix = (
            f"set ${self.env_var} in the environment of the Dagster daemon, webserver and CLI "
            "and restart them"
        )
        if self.run_may is None:
            raise failure(
                CONFIG,
                f"run config {where}.{self.name}={run_value} is refused: {self.name} belongs "
                f"to the deployment (now {value}), not to a run; to change it, {fix}",
            )
        tighter = run_value <= value if self.run_may == "lower" else run_value >= value
        if not tighter or not run_value > self.low:
            way = "at most" if self.run_may == "lower" else "at least"
            raise failure(
                CONFIG,
                f"run config {where}.{self.name}={run_value} would loosen the deployment's "
                f"{self.name}={value}: a run may only tighten it (a value {way} {value}); to "
                f"change the deployment's value, {fix}",
            )
        return self.kind(run_value)


FALSE_ALARM_RATE = Setting(
    "false_alarm_rate_per_year",
    "RL_ASSETS_MONITORING_FALSE_ALARM_RATE_PER_YEAR",
    constants.FALSE_ALARM_RATE_PER_YEAR,
)
MIN_LIVE_DAYS = Setting(
    "min_live_days", "RL_ASSETS_MONITORING_MIN_LIVE_DAYS", constants.MIN_LIVE_DAYS, kind=int
)
MAX_STALENESS = Setting(
    "max_staleness_business_days",
    "RL_ASSETS_SIGNAL_MAX_STALENESS_BUSINESS_DAYS",
    constants.MAX_SIGNAL_STALENESS_BUSINESS_DAYS,
    kind=int,
    run_may="lower",
    low=-1,
)
TRADE_DECAYED_ENV_VAR = "RL_ASSETS_SIGNAL_TRADE_DECAYED_CHAMPIONS"


def trade_decayed_champions() -> bool:
    """Whether a champion its monitoring found decayed still signals (then the signal says
    so). The deployment's choice alone; default no."""
    raw = os.environ.get(TRADE_DECAYED_ENV_VAR, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise failure(
        CONFIG,
        f"${TRADE_DECAYED_ENV_VAR}={raw!r} is neither true nor false; set it to 1 to keep "
        "signalling decayed champions, or unset it",
    )
