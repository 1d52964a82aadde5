"""Gate calibration as a benchmark: benchmarks.gate_calibration in a fresh process, timed.

Only with ``benchmarks.run --with-calibration``: it trains 2 x seeds policies.
"""

import sys
from typing import Any

from benchmarks import harness

TARGET_RANDOM_WALK_MAX = 0.1  # at most 1 of 10 random-walk seeds promoted
TARGET_MOMENTUM_MIN = 0.8  # at least 8 of 10 momentum seeds promoted


def child(args: dict[str, Any]) -> None:
    from benchmarks.gate_calibration import main

    out = main(["--seeds", str(args["seeds"])])
    harness.emit({"promoted": out["promoted"], "seeds": out["seeds"], "rows": out["rows"]})


def run(quick: bool) -> dict[str, Any]:
    seeds = 1 if quick else 10
    print(f"  gate calibration: {seeds} seed(s) per structure ...", file=sys.stderr, flush=True)
    proc = harness.python_child("benchmarks.calibration", {"seeds": seeds}, timeout=7200)
    res = proc["result"]
    return {
        "seeds": seeds,
        "promoted": res["promoted"],
        "wall_s": proc["wall_s"],
        "training_s": harness.summarize([r["seconds"] for r in res["rows"]]),
        "load": harness.load_of([proc]),
        "rows": res["rows"],
    }


def markdown(r: dict[str, Any]) -> str:
    n = r["seeds"]
    rw, mo = r["promoted"]["random_walk"], r["promoted"]["momentum"]
    rw_ok = rw <= TARGET_RANDOM_WALK_MAX * n
    mo_ok = mo >= TARGET_MOMENTUM_MIN * n
    return "\n".join(
        [
            "## Gate calibration",
            "",
            f"`benchmarks/gate_calibration.py main(['--seeds', '{n}'])`: new prices and a new "
            "training seed per run, default TrainingSpec and gate thresholds, no champion. "
            f"Load {harness.fmt_load(r['load'])}.",
            "",
            "| structure | promoted | target | verdict |",
            "|---|---:|---|---|",
            f"| random_walk | {rw} of {n} | at most {TARGET_RANDOM_WALK_MAX:.0%} | "
            f"{'met' if rw_ok else 'MISSED'} |",
            f"| momentum | {mo} of {n} | at least {TARGET_MOMENTUM_MIN:.0%} | "
            f"{'met' if mo_ok else 'MISSED'} |",
            "",
            f"Wall time {r['wall_s']:.0f} s for {2 * n} trainings (one Ray session); one "
            f"training {harness.fmt(r['training_s'], 1)} s.",
            "",
        ]
    )


if __name__ == "__main__":
    import json

    child(json.loads(sys.argv[1]))
