"""Thresholds of the warning-level data-quality checks on raw_prices."""

import dagster as dg

from rl_assets import constants


class DataQualityResource(dg.ConfigurableResource):
    """Thresholds of the non-blocking raw_prices checks (defaults in constants.py).

    Bound to the checks themselves (``resource_defs``), so Definitions need not register
    it (registering the same key there too is an error). Override per run with
    ``resources: {data_quality: {config: {max_gap_business_days: 10}}}``.
    """

    max_gap_business_days: int = constants.MAX_GAP_BUSINESS_DAYS
    max_unchanged_closes: int = constants.MAX_UNCHANGED_CLOSES
    max_abs_daily_return: float = constants.MAX_ABS_DAILY_RETURN


# One instance shared by every check: Dagster requires bound resources to be identical.
DEFAULT_DATA_QUALITY = DataQualityResource()
