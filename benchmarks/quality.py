"""Training quality: the whole procedure, judged out of sample, on the generated momentum series.

    .venv/bin/python -m benchmarks.quality '{"seeds": 5}'

runs one measurement (the child) and prints its JSON; ``run()`` is what benchmarks.run calls.
The benchmarks' generated prices (the generator's momentum series, seed 7,
2019-01-01..2023-12-31) are judged with training seeds 0..n-1 by
``rl_assets.promotion.procedure.judge_procedure`` with its defaults, one seed after another
in one process and one Ray session: the candidate to deploy trained on the last 756 + 252
bars, and the same procedure (the default ``TrainingSpec`` with that seed: early stopping,
execution at the next open) trained on every rolling walk-forward fold (train 756,
validation 252, test windows of up to 252 bars tiling the data backwards from its last
bar), candidate and folds concurrently as Ray tasks; then every gate with the deployment's
thresholds and cost model and no champion. Per seed: promoted or not, the pooled test
days' skill Sharpe over the exposure-matched benchmark and its Deflated Sharpe (the figures
the gate judges), the test and buy-and-hold Sharpes, and the candidate's own validation
Sharpe and iterations. This data holds 1,304 bars, 296 after the first 1008, so two folds
(44 and 252 test days): about 1.2 years of pooled evidence, enough for the planted
momentum (autocorrelation 0.4, a Sharpe of about 5 before costs), little for a weak edge
(the power table of ``--with-calibration``).

Earlier runs compared the new defaults (VectorTradingEnv, minimal pipelines, 16 staggered
envs) with the previous ones (TradingEnv through RLlib's default pipelines, 8 envs, no
stagger) by each training's validation Sharpe and ``judge_training_result`` on the fixed
validation year. That comparison is gone: the gate now judges a procedure by its pooled
walk-forward test evidence, and ``judge_procedure`` trains every policy through
``train_folds`` on the project's env path (the env class is not part of a procedure's
spec), so the previous configuration cannot be judged by the same procedure without a
second code path that nothing deploys. What it measured, that the faster path learns as
well, is pinned by ``rl_assets_tests/test_sampling.py`` (the two paths are bit-identical
for the same seed and sampling order). The new defaults are reported alone.
"""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

DATA = "generated momentum series (seed 7), 2019-01-01..2023-12-31"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def child(args: dict[str, Any]) -> None:
    import torch

    from rl_assets import constants
    from rl_assets.data.synthetic import generate_prices
    from rl_assets.promotion.procedure import judge_procedure
    from rl_assets.rl.training import TrainingSpec, ray_session

    torch.set_num_threads(1)  # the driver only rolls out the folds' test days
    prices = generate_prices(constants.GENERATOR_START, constants.GENERATOR_END)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp,
        ray_session(num_cpus=os.cpu_count()),
    ):
        for seed in range(int(args["seeds"])):
            spec = TrainingSpec(seed=seed)
            t0 = time.perf_counter()
            result = judge_procedure(prices, spec, Path(tmp) / f"seed-{seed}")
            seconds = time.perf_counter() - t0
            evidence, candidate = result["evidence"], result["candidate"]
            pooled = evidence["pooled"]
            gates = result["gates"]
            rows.append(
                {
                    "seed": seed,
                    "promoted": bool(result["promoted"]),
                    "failed": [g.name for g in gates if not g.passed],
                    "execution": evidence["execution"],
                    "folds": len(evidence["plan"]),
                    "fold_test_days": [f["test"][1] - f["test"][0] for f in evidence["plan"]],
                    "test_days": int(pooled["days"]),
                    "test_years": float(pooled["years"]),
                    "test_first_date": pooled["first_date"],
                    "test_last_date": pooled["last_date"],
                    "skill_sharpe": float(pooled["skill_sharpe"]),
                    "skill_sharpe_se": float(pooled["skill_sharpe_se"]),
                    "dsr": float(pooled["dsr"]),
                    "test_sharpe": float(pooled["policy_sharpe"]),
                    "test_buy_and_hold_sharpe": float(pooled["buy_and_hold_sharpe"]),
                    "exposure": float(pooled["exposure"]),
                    "validation_sharpe": float(candidate["best_validation_sharpe"]),
                    "buy_and_hold_sharpe": _float(candidate.get("buy_and_hold_validation_sharpe")),
                    "iterations": int(candidate["iterations"]),
                    "stop_reason": candidate["stop_reason"],
                    "episodes": int(candidate["episodes_total"]),
                    "fold_iterations": [int(f["iterations"]) for f in result["folds"]],
                    "seconds": seconds,
                }
            )
    harness.emit({"rows": rows, "bars": len(prices), "data": DATA, "cores": os.cpu_count()})


def run(quick: bool) -> dict[str, Any]:
    seeds = 2 if quick else 5
    print(f"  quality: {seeds} seeds, each judge_procedure ...", file=sys.stderr)
    proc = harness.python_child("benchmarks.quality", {"seeds": seeds}, timeout=3600)
    res = proc["result"]
    rows = res["rows"]
    summary = {
        "promoted": sum(r["promoted"] for r in rows),
        "skill_sharpe": harness.summarize([r["skill_sharpe"] for r in rows]),
        "mean_skill_sharpe": statistics.fmean(r["skill_sharpe"] for r in rows),
        "dsr": harness.summarize([r["dsr"] for r in rows]),
        "validation_sharpe": harness.summarize([r["validation_sharpe"] for r in rows]),
        "seconds": harness.summarize([r["seconds"] for r in rows]),
    }
    return {
        "seeds": seeds,
        "bars": res["bars"],
        "data": res["data"],
        "cores": res["cores"],
        "rows": rows,
        "summary": summary,
        "load": harness.load_of([proc]),
        "wall_s": proc["wall_s"],
    }


def markdown(r: dict[str, Any]) -> str:
    f = harness.fmt
    if "summary" not in r or "previous" in r["summary"]:  # an earlier version's results
        return "## 5. Training quality\n\nNo figures of the walk-forward procedure in this run.\n"
    s, rows = r["summary"], r["rows"]
    first = rows[0]
    lines = [
        "## 5. Training quality: the whole procedure, judged out of sample",
        "",
        f"The {r['data']} ({r['bars']:,} bars), judged with training seeds 0-{r['seeds'] - 1} "
        "by `judge_procedure` with its defaults: the candidate trained on the last 756 + "
        f"252 bars and the same procedure on {first['folds']} rolling walk-forward fold(s) "
        f"(test days {', '.join(map(str, first['fold_test_days']))}, "
        f"{first['test_first_date']}..{first['test_last_date']}), all as Ray tasks; default "
        f"TrainingSpec with early stopping, execution `{first['execution']}`; every gate with "
        "the deployment's thresholds, no champion. One process and one Ray session, seeds "
        f"one after another; load {harness.fmt_load(r['load'])}. Skill Sharpe: the pooled "
        "test days' annualised Sharpe over the exposure-matched benchmark (+/- its HAC "
        "standard error); DSR: its Deflated Sharpe (one trial), which the gate wants at "
        "0.95 or more.",
        "",
        "| seed | promoted | pooled skill Sharpe | DSR | test Sharpe / buy-and-hold | "
        "candidate validation Sharpe | candidate iterations (stop) | fold iterations | gates "
        "that refused | s |",
        "|---:|---|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for x in rows:
        lines.append(
            f"| {x['seed']} | {'yes' if x['promoted'] else 'no'} | "
            f"{x['skill_sharpe']:+.2f} +/- {x['skill_sharpe_se']:.2f} | {x['dsr']:.3f} | "
            f"{x['test_sharpe']:.2f} / {x['test_buy_and_hold_sharpe']:.2f} | "
            f"{x['validation_sharpe']:.2f} | {x['iterations']} ({x['stop_reason']}) | "
            f"{', '.join(map(str, x['fold_iterations']))} | "
            f"{', '.join(x['failed']) or 'none'} | {x['seconds']:.0f} |"
        )
    lines += [
        "",
        f"Promoted: {s['promoted']} of {r['seeds']}. Pooled skill Sharpe: mean "
        f"{s['mean_skill_sharpe']:.2f}, median {f(s['skill_sharpe'], 2)}; DSR median "
        f"{f(s['dsr'], 3)}; the candidate's validation Sharpe median "
        f"{f(s['validation_sharpe'], 2)}. Seconds per seed (candidate and folds on "
        f"{r['cores']} cores): {f(s['seconds'], 0)}. The previous-vs-new-defaults "
        "comparison of earlier runs is gone: the gate judges a procedure by its pooled "
        "walk-forward evidence, which `judge_procedure` trains on the project's env path "
        "only (benchmarks/quality.py says why).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
