"""Training quality: the new defaults against the previous ones on the generated momentum series.

    .venv/bin/python -m benchmarks.quality '{"seeds": 5}'

runs one measurement (the child) and prints its JSON; ``run()`` is what benchmarks.run calls.
The pipeline's default data (the generator's momentum series, seed 7, default date split)
is trained with training seeds 0..n-1 under two configurations, in one process and one
Ray session: the previous defaults (TradingEnv through RLlib's default pipelines, 8 envs,
no stagger) and the new ones (VectorTradingEnv, minimal pipelines, 16 staggered envs).
Everything else is the default TrainingSpec (early stopping included), and every kept
policy goes through the promotion gate with default thresholds and no champion. The gate
calibration over random-walk and momentum data is ``--with-calibration``.
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

CONFIGS = {
    "previous": {
        "spec": {"num_envs_per_env_runner": 8, "stagger_episodes": False},
        "env": "TradingEnv",
    },
    "project": {"spec": {}, "env": "VectorTradingEnv"},
}


def child(args: dict[str, Any]) -> None:
    import torch

    from rl_assets import constants
    from rl_assets.data.synthetic import generate_prices
    from rl_assets.promotion import gate
    from rl_assets.rl import env as env_module
    from rl_assets.rl.training import TrainingSpec, ray_session, train_ppo, with_history

    torch.set_num_threads(1)
    prices = generate_prices(constants.GENERATOR_START, constants.GENERATOR_END)
    train = prices.loc[constants.TRAIN_START : constants.TRAIN_END, "close"].to_numpy()
    val = prices.loc[constants.VALIDATION_START : constants.VALIDATION_END, "close"].to_numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ray_session(num_cpus=2):
        for seed in range(int(args["seeds"])):
            for name, cfg in CONFIGS.items():  # interleaved: both see the same load
                spec = TrainingSpec(**{**cfg["spec"], "seed": seed})
                t0 = time.perf_counter()
                result = train_ppo(
                    spec,
                    train,
                    with_history(train, val, spec.window),
                    Path(tmp) / f"{name}-{seed}",
                    log=lambda _: None,
                    env_class=getattr(env_module, cfg["env"]),
                )
                seconds = time.perf_counter() - t0
                gates = gate.judge_training_result(result, train, val)
                rows.append(
                    {
                        "config": name,
                        "seed": seed,
                        "validation_sharpe": result["best_validation_sharpe"],
                        "buy_and_hold_sharpe": result["buy_and_hold_validation_sharpe"],
                        "best_iteration": result["best_iteration"],
                        "iterations": result["iterations"],
                        "episodes": result["episodes_total"],
                        "stop_reason": result["stop_reason"],
                        "promoted": all(g.passed for g in gates),
                        "failed": [g.name for g in gates if not g.passed],
                        "seconds": seconds,
                    }
                )
    harness.emit({"rows": rows})


def run(quick: bool) -> dict[str, Any]:
    seeds = 2 if quick else 5
    print(f"  quality: {seeds} seeds x {len(CONFIGS)} configurations ...", file=sys.stderr)
    proc = harness.python_child("benchmarks.quality", {"seeds": seeds}, timeout=3600)
    rows = proc["result"]["rows"]
    summary = {}
    for name in CONFIGS:
        mine = [r for r in rows if r["config"] == name]
        summary[name] = {
            "sharpe": harness.summarize([r["validation_sharpe"] for r in mine]),
            "mean_sharpe": statistics.fmean(r["validation_sharpe"] for r in mine),
            "promoted": sum(r["promoted"] for r in mine),
            "seconds": harness.summarize([r["seconds"] for r in mine]),
            "episodes": [r["episodes"] for r in mine],
        }
    return {
        "seeds": seeds,
        "rows": rows,
        "summary": summary,
        "load": harness.load_of([proc]),
        "wall_s": proc["wall_s"],
    }


def markdown(r: dict[str, Any]) -> str:
    s, f = r["summary"], harness.fmt
    prev, proj = s["previous"], s["project"]
    lines = [
        "## 5. Training quality: new defaults against the previous ones",
        "",
        "Validation Sharpe of the kept checkpoint on the pipeline's default data (generated "
        "momentum series, default split), default TrainingSpec with early stopping, training "
        f"seeds 0-{r['seeds'] - 1}, one process and one Ray session, configurations "
        f"interleaved; load {harness.fmt_load(r['load'])}. Previous: TradingEnv through "
        "RLlib's default pipelines, 8 envs, no stagger. New: VectorTradingEnv, minimal "
        "pipelines, 16 staggered envs. Gate: default thresholds, no champion.",
        "",
        "| seed | previous: validation Sharpe | new: validation Sharpe | previous: iterations "
        "(stop) | new: iterations (stop) | previous / new: episodes | previous / new: promoted |",
        "|---:|---:|---:|---|---|---:|---:|",
    ]
    by = {(x["config"], x["seed"]): x for x in r["rows"]}
    for seed in range(r["seeds"]):
        a, b = by[("previous", seed)], by[("project", seed)]
        lines.append(
            f"| {seed} | {a['validation_sharpe']:.2f} | {b['validation_sharpe']:.2f} | "
            f"{a['iterations']} ({a['stop_reason']}) | {b['iterations']} ({b['stop_reason']}) "
            f"| {a['episodes']} / {b['episodes']} | {'yes' if a['promoted'] else 'no'} / "
            f"{'yes' if b['promoted'] else 'no'} |"
        )
    bh = r["rows"][0]["buy_and_hold_sharpe"]
    lines += [
        "",
        f"Mean validation Sharpe: previous {prev['mean_sharpe']:.2f} "
        f"(median {f(prev['sharpe'], 2)}), new {proj['mean_sharpe']:.2f} (median "
        f"{f(proj['sharpe'], 2)}); buy-and-hold {bh:.2f}. Promoted by the gate: previous "
        f"{prev['promoted']} of {r['seeds']}, new {proj['promoted']} of {r['seeds']}. Seconds "
        f"per training (one shared Ray session): previous {f(prev['seconds'], 1)}, new "
        f"{f(proj['seconds'], 1)}. The new defaults sample in a different order (more envs, "
        "staggered), so seeds do not pair one to one; the comparison is of the spread.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
