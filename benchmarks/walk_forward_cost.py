"""What one instrument's walk-forward costs against one training.

K folds trained concurrently as Ray tasks on K cores (``train_folds``) against one fold's
training loop in process (``train_ppo``), both with a warm local Ray, on the default
spec and the embedded instrument's windows (756 train, 252 validation). Target: K folds on
K cores cost at most 1.5x one fold's training loop plus start-up. Also 2K folds (two rounds
on K cores) and every fold of a 2019-2026 instrument.

    .venv/bin/python -m benchmarks.walk_forward_cost [--repeats 3]
"""

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 1.5


def measure(repeats: int) -> dict[str, Any]:
    from rl_assets.data.synthetic import generate_prices
    from rl_assets.rl.env import bars
    from rl_assets.rl.training import TrainingSpec, ray_session, train_ppo, with_history
    from rl_assets.rl.walk_forward import plan_rolling_folds, train_folds

    cores = os.cpu_count() or 1
    prices = generate_prices("2019-01-01", "2026-11-30", seed=7, structure="momentum")
    folds = plan_rolling_folds(prices.index, 756, 252, 252)
    all_bars = bars(prices)
    spec = TrainingSpec()
    spec_dict = dataclasses.asdict(spec)
    root = Path(tempfile.mkdtemp(prefix="wf_cost_"))
    out: dict[str, Any] = {"cores": cores, "folds_in_data": len(folds), "runs": []}
    try:
        with ray_session(None, cores):
            # Warm-up: the Ray workers import RLlib once, as in a long-lived process.
            train_folds(spec_dict, all_bars, folds[-cores:], root / "warm", log=lambda m: None)
            for r in range(repeats):
                fold = folds[-1]
                train = all_bars[fold.train[0] : fold.train[1]]
                validation = with_history(
                    train, all_bars[fold.validation[0] : fold.validation[1]], spec.window
                )
                t0 = time.perf_counter()
                one = train_ppo(spec, train, validation, root / f"one{r}", log=lambda m: None)
                one_wall = time.perf_counter() - t0
                row = {
                    "one_fold_in_process_s": one_wall,
                    "one_fold_loop_s": sum(h["seconds"] for h in one["history"]),
                }
                for name, chosen in (
                    ("k_folds", folds[-cores:]),
                    ("two_k_folds", folds[-2 * cores :]),
                    ("all_folds", folds),
                ):
                    t0 = time.perf_counter()
                    res = train_folds(spec_dict, all_bars, chosen, root / f"{name}{r}", log=str)
                    row[f"{name}_s"] = time.perf_counter() - t0
                    row[f"{name}_n"] = len(chosen)
                    row[f"{name}_fold_s"] = [x["finished_at"] - x["started_at"] for x in res]
                out["runs"].append(row)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in out["runs"])

    out["median"] = {
        k: med(k)
        for k in (
            "one_fold_in_process_s",
            "one_fold_loop_s",
            "k_folds_s",
            "two_k_folds_s",
            "all_folds_s",
        )
    }
    out["ratio_k_folds_to_one"] = (
        out["median"]["k_folds_s"] / out["median"]["one_fold_in_process_s"]
    )
    out["target"] = TARGET
    out["met"] = out["ratio_k_folds_to_one"] <= TARGET
    out["load"] = os.getloadavg()
    return out


def markdown(r: dict[str, Any]) -> str:
    m = r["median"]
    k = r["cores"]
    return "\n".join(
        [
            "## Walk-forward cost (one instrument's folds on Ray)",
            "",
            f"Default spec, 756 train / 252 validation bars, warm local Ray with {k} CPUs, "
            f"median of {len(r['runs'])} repeats; load {r['load'][0]:.1f}.",
            "",
            "| what | wall s |",
            "|---|---:|",
            f"| one fold, `train_ppo` in process (its loop alone: {m['one_fold_loop_s']:.1f} s) "
            f"| {m['one_fold_in_process_s']:.1f} |",
            f"| {k} folds as Ray tasks on {k} cores | {m['k_folds_s']:.1f} |",
            f"| {2 * k} folds (two rounds) | {m['two_k_folds_s']:.1f} |",
            f"| all {r['folds_in_data']} folds of a 2019-2026 instrument | {m['all_folds_s']:.1f} |",
            "",
            f"{k} folds on {k} cores cost {r['ratio_k_folds_to_one']:.2f}x one fold's training "
            f"(loop plus start-up); target at most {TARGET}x: "
            f"{'met' if r['met'] else 'missed'}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/walk_forward_cost.json")
    args = parser.parse_args()
    result = measure(args.repeats)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
