"""The promotion gate as blocking checks on each candidate's report, one property each.

The checks sit on ``validation_report``, not on ``trained_policy``: a failed blocking check
stops everything downstream of its asset, and every candidate, refused or not, must get
its report. So the report judges the candidate once (restoring its checkpoint) and each
check states one gate's verdict; a failure blocks ``promoted_policy`` alone, which judges
the candidate again itself before it commits.
"""

from typing import Any

import dagster as dg

from rl_assets.instruments import partitioned_check
from rl_assets.promotion.gate import GATES

CHECK_PREFIX = "candidate_"


def _gate_check(name: str, description: str) -> dg.AssetChecksDefinition:
    @partitioned_check(
        asset="validation_report",
        name=f"{CHECK_PREFIX}{name}",
        description=description,
        blocking=True,
    )
    def _check(validation_report: dict[str, Any]) -> dg.AssetCheckResult:
        result = next(g for g in validation_report["gates"] if g["name"] == name)
        return dg.AssetCheckResult(
            passed=bool(result["passed"]),
            description=None if result["passed"] else result["reason"],
            metadata={
                "observed": result["observed"],
                "threshold": result["threshold"],
                "reason": result["reason"],
                "checkpoint": dg.MetadataValue.path(validation_report["checkpoint"]),
            },
        )

    return _check


gate_checks = [_gate_check(name, description) for name, (description, _) in GATES.items()]
