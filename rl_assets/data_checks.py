"""Data-quality checks on prices: pandera schemas as blocking checks."""

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from rl_assets.assets.prices import raw_prices
from rl_assets.schemas import RawPrices, failure_summary


@dg.asset_check(asset=raw_prices, blocking=True)
def raw_prices_schema_valid(raw_prices: pd.DataFrame) -> dg.AssetCheckResult:
    """Every row satisfies the RawPrices schema (lazy: all failures are listed)."""
    try:
        RawPrices.validate(raw_prices, lazy=True)
    except pa.errors.SchemaErrors as err:
        summary = failure_summary(err)
        return dg.AssetCheckResult(
            passed=False,
            metadata={
                "observed": f"{summary['failure_count']} failing cells",
                "threshold": "0 failing cells",
                "failing_rules": dg.MetadataValue.json(summary["rules"]),
                "first_failing_rows": dg.MetadataValue.json(summary["first_failing_rows"]),
            },
        )
    return dg.AssetCheckResult(
        passed=True,
        metadata={"observed": f"{len(raw_prices)} rows valid", "threshold": "0 failing cells"},
    )
