"""Gate calibration: how often the gate promotes on random-walk vs planted-structure data.

    .venv/bin/python -m benchmarks.gate_calibration --seeds 10

Each seed draws new prices (generator seed) and trains with a new training seed, using
the default TrainingSpec and GateThresholds, with no champion (first promotion).
Target: at most 1 of 10 random-walk seeds promoted, at least 8 of 10 momentum seeds.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from rl_assets import constants
from rl_assets.data.synthetic import generate_prices
from rl_assets.promotion import gate
from rl_assets.rl.training import TrainingSpec, ray_session, train_ppo, with_history


def one(structure: str, seed: int, root: Path, spec_overrides: dict | None = None) -> dict:
    prices = generate_prices(
        constants.GENERATOR_START, constants.GENERATOR_END, seed=1000 + seed, structure=structure
    )
    train = prices.loc[constants.TRAIN_START : constants.TRAIN_END, "close"].to_numpy()
    val = prices.loc[constants.VALIDATION_START : constants.VALIDATION_END, "close"].to_numpy()
    spec = TrainingSpec(**{**(spec_overrides or {}), "seed": seed})
    t0 = time.perf_counter()
    result = train_ppo(
        spec,
        train,
        with_history(train, val, spec.window),
        root / f"{structure}-{seed}",
        log=lambda _: None,
    )
    gates = gate.judge_training_result(result, train, val)
    return {
        "structure": structure,
        "seed": seed,
        "promoted": all(g.passed for g in gates),
        "failed": [g.name for g in gates if not g.passed],
        "validation_sharpe": result["best_validation_sharpe"],
        "buy_and_hold_sharpe": result["buy_and_hold_validation_sharpe"],
        "dsr": next(g.observed for g in gates if g.name.startswith("deflated")),
        "iterations": result["iterations"],
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--structures", default="random_walk,momentum")
    parser.add_argument("--spec", default="{}", help="JSON TrainingSpec overrides")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ray_session():
        for structure in args.structures.split(","):
            for seed in range(args.seeds):
                row = one(structure, seed, Path(tmp), json.loads(args.spec))
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {
        s: sum(r["promoted"] for r in rows if r["structure"] == s)
        for s in ("random_walk", "momentum")
    }
    out = {"seeds": args.seeds, "promoted": summary, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(summary))
    return out


if __name__ == "__main__":
    main()
