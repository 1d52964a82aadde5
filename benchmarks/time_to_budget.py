"""Time to the episode budget: nothing to a trained policy, as a plain call and through Dagster.

    .venv/bin/python -m benchmarks.time_to_budget '{"mode": "plain", "target_episodes": 100}'

runs one measurement (the child) and prints its JSON; ``run()`` is what benchmarks.run calls.
Both paths do the same training work: the default TrainingSpec with ``patience`` and
``min_iterations`` raised so early stopping cannot end training before the episode budget.
Also measured alone, each in a fresh process: Ray start-up and the code-location import.
"""

import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

TARGET_OVERHEAD = 0.15


def budget_args(target_episodes: int) -> dict[str, int]:
    """Patience and iterations that make training run exactly to the episode budget."""
    from rl_assets.rl.training import TrainingSpec, plan_budget

    spec = TrainingSpec(target_episodes=target_episodes, min_iterations=1)
    iterations = plan_budget(spec)["iterations_for_target"]
    return {
        "target_episodes": target_episodes,
        "patience": 1000,
        "min_iterations": iterations,
        "max_iterations": max(iterations, 30),
    }


def load_splits(rows: int | None):
    """Default: generated prices and the date split of rl_assets/assets/prices.py.

    With ``rows``: that many business days ending at the default end date, split like
    ``price_splits`` with ``validation_fraction=0.2`` (last 20% of rows is validation).
    """
    import pandas as pd

    from rl_assets import constants
    from rl_assets.data.synthetic import generate_prices

    if rows is None:
        prices = generate_prices(constants.GENERATOR_START, constants.GENERATOR_END)
        train = prices.loc[constants.TRAIN_START : constants.TRAIN_END, "close"].to_numpy()
        val = prices.loc[constants.VALIDATION_START : constants.VALIDATION_END, "close"]
        return len(prices), train, val.to_numpy()
    end = pd.Timestamp(constants.GENERATOR_END)
    start = pd.bdate_range(end=end, periods=rows)[0]
    prices = generate_prices(str(start.date()), str(end.date()))
    n_val = max(1, math.ceil(len(prices) * 0.2))
    closes = prices["close"].to_numpy()
    return len(prices), closes[:-n_val], closes[-n_val:]


def child_plain(args: dict[str, Any]) -> dict[str, Any]:
    """Prices, split and train_ppo, as a user script would; absolute timestamps."""
    stamps = {"child_start": time.time()}
    from rl_assets.rl.training import TrainingSpec, train_ppo, with_history

    if args.get("torch_threads"):  # what a TrainingSpec.torch_threads field would do
        import torch

        torch.set_num_threads(int(args["torch_threads"]))
    stamps["imports_done"] = time.time()
    n_rows, train, val = load_splits(args.get("rows"))
    spec = TrainingSpec(
        target_episodes=args["target_episodes"],
        patience=args["patience"],
        min_iterations=args["min_iterations"],
        max_iterations=args["max_iterations"],
        **args.get("spec", {}),
    )
    stamps["data_ready"] = time.time()
    logs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        result = train_ppo(
            spec,
            train,
            with_history(train, val, spec.window),
            Path(tmp) / "checkpoints",
            log=lambda _msg: logs.append(time.time()),
        )
    stamps["trained"] = time.time()
    history = result["history"]
    return {
        "stamps": stamps,
        "first_iteration_log": logs[0],
        "first_iteration_s": history[0]["seconds"],
        "train_loop_s": sum(r["seconds"] for r in history),
        "train_ppo_s": result["seconds"],
        "episodes_total": result["episodes_total"],
        "iterations": result["iterations"],
        "stop_reason": result["stop_reason"],
        "best_validation_sharpe": result["best_validation_sharpe"],
        "buy_and_hold_sharpe": result["buy_and_hold_validation_sharpe"],
        "rows": n_rows,
        "train_rows": len(train),
        "validation_rows": len(val),
    }


def child_dagster_events(args: dict[str, Any]) -> dict[str, Any]:
    """Read the one run of a fresh DAGSTER_HOME: step times, logs, trained_policy metadata."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    if len(runs) != 1:
        raise RuntimeError(f"expected one run in the benchmark DAGSTER_HOME, found {len(runs)}")
    run = runs[0]
    steps: dict[str, dict[str, float]] = {}
    first_log, trained_meta = None, {}
    run_start = None
    for entry in instance.all_logs(run.run_id):
        if entry.is_dagster_event:
            event = entry.dagster_event
            kind = event.event_type_value
            if kind == "RUN_START":
                run_start = entry.timestamp
            if entry.step_key and kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
                steps.setdefault(entry.step_key, {})[kind] = entry.timestamp
            if kind == "ASSET_MATERIALIZATION":
                mat = event.event_specific_data.materialization
                if mat.asset_key.to_user_string() == "trained_policy":
                    trained_meta = {k: v.value for k, v in mat.metadata.items()}
        elif first_log is None and entry.user_message.startswith("iteration 1:"):
            first_log = entry.timestamp
    history = trained_meta.get("history") or [{}]
    return {
        "status": run.status.value,
        "run_start": run_start,
        "steps": steps,
        "first_iteration_log": first_log,
        "first_iteration_s": history[0].get("seconds"),
        "train_loop_s": sum(r.get("seconds", 0.0) for r in history),
        "train_ppo_s": trained_meta.get("seconds"),
        "episodes_total": trained_meta.get("episodes_total"),
        "iterations": trained_meta.get("iterations"),
        "stop_reason": trained_meta.get("stop_reason"),
        "best_validation_sharpe": trained_meta.get("best_validation_sharpe"),
    }


def child_ray_start(args: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    import ray

    t1 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    t2 = time.perf_counter()
    ray.shutdown()
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "init_s": t2 - t1, "shutdown_s": t3 - t2}


def child(args: dict[str, Any]) -> None:
    modes = {
        "plain": child_plain,
        "dagster_events": child_dagster_events,
        "ray_start": child_ray_start,
    }
    harness.emit(modes[args["mode"]](args))


def measure_plain(args: dict[str, Any]) -> dict[str, Any]:
    proc = harness.python_child("benchmarks.time_to_budget", {"mode": "plain", **args})
    res = proc["result"]
    t0 = proc["launched_at"]
    loop_start = res["first_iteration_log"] - res["first_iteration_s"]
    return {
        "proc": proc,
        "wall_s": proc["wall_s"],
        "to_trained_s": res["stamps"]["trained"] - t0,
        "before_training_s": loop_start - t0,
        "imports_s": res["stamps"]["imports_done"] - t0,
        "data_ready_s": res["stamps"]["data_ready"] - t0,
        "ray_and_build_s": loop_start - res["stamps"]["data_ready"],
        "train_loop_s": res["train_loop_s"],
        "best_validation_sharpe": res["best_validation_sharpe"],
        "buy_and_hold_sharpe": res["buy_and_hold_sharpe"],
        "episodes_total": res["episodes_total"],
        "iterations": res["iterations"],
        "stop_reason": res["stop_reason"],
        "rows": res["rows"],
        "peak_rss_mib": proc["tree_peak_rss_mib"],
        "max_process_rss_mib": proc["max_process_rss_mib"],
        "load_start": proc["load_start"],
        "load_end": proc["load_end"],
    }


def _dagster_run_config(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "ops": {
            "episodes_per_iteration": {"config": {"target_episodes": args["target_episodes"]}},
            "trained_policy": {
                "config": {
                    "patience": args["patience"],
                    "min_iterations": args["min_iterations"],
                    "max_iterations": args["max_iterations"],
                }
            },
        }
    }


def measure_dagster(args: dict[str, Any]) -> dict[str, Any]:
    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="bench-dagster-"))
    try:
        home = tmp / "dagster_home"
        home.mkdir()
        shutil.copy(harness.ROOT / "dagster.yaml", home / "dagster.yaml")
        config = tmp / "run_config.yaml"
        config.write_text(yaml.safe_dump(_dagster_run_config(args)))
        env = harness.child_env(
            {"DAGSTER_HOME": str(home), "RL_ASSETS_ARTIFACTS": str(tmp / "artifacts")}
        )
        dagster_cli = Path(sys.executable).parent / "dagster"
        cmd = [str(dagster_cli), "asset", "materialize", "--select", "*"]
        cmd += ["-m", "rl_assets.definitions", "-c", str(config)]
        proc = harness.run_child(cmd, env=env, expect_result=False, check=False)
        events = harness.python_child(
            "benchmarks.time_to_budget", {"mode": "dagster_events"}, env=env
        )["result"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t0 = proc["launched_at"]
    steps = events["steps"]
    trained = steps.get("trained_policy", {})
    if "STEP_SUCCESS" not in trained or events["first_iteration_log"] is None:
        raise harness.ChildFailed(
            f"dagster run {events['status']}: trained_policy did not materialize; "
            f"stderr tail:\n{proc['stderr_tail']}"
        )
    loop_start = events["first_iteration_log"] - events["first_iteration_s"]
    first_step = min(s["STEP_START"] for s in steps.values() if "STEP_START" in s)
    return {
        "proc": proc,
        "status": events["status"],
        "exit_code": proc["returncode"],
        "wall_s": proc["wall_s"],
        "to_trained_s": trained["STEP_SUCCESS"] - t0,
        "before_training_s": loop_start - t0,
        "before_first_step_s": first_step - t0,
        "before_trained_policy_step_s": trained["STEP_START"] - t0,
        "ray_and_build_s": loop_start - trained["STEP_START"],
        "best_validation_sharpe": events["best_validation_sharpe"],
        "after_trained_s": proc["wall_s"] - (trained["STEP_SUCCESS"] - t0),
        "train_loop_s": events["train_loop_s"],
        "episodes_total": events["episodes_total"],
        "iterations": events["iterations"],
        "stop_reason": events["stop_reason"],
        "peak_rss_mib": proc["tree_peak_rss_mib"],
        "max_process_rss_mib": proc["max_process_rss_mib"],
        "load_start": proc["load_start"],
        "load_end": proc["load_end"],
    }


def _summ(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    return harness.summarize([r[key] for r in rows])


def run(quick: bool, tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """``tuned``: the faster settings from training_throughput (TrainingSpec fields and
    ``torch_threads``); the plain path is also timed with them."""
    repeats = 1 if quick else 3
    args = budget_args(40 if quick else 100)
    tuned = dict(tuned or {})
    tuned_args = {
        **args,
        "spec": {k: v for k, v in tuned.items() if k != "torch_threads"},
        "torch_threads": tuned.get("torch_threads"),
    }
    out: dict[str, Any] = {"args": args, "repeats": repeats, "tuned": tuned}

    print("  time to budget: Ray start-up and code-location import ...", file=sys.stderr)
    ray_runs = [
        harness.python_child("benchmarks.time_to_budget", {"mode": "ray_start"})
        for _ in range(repeats)
    ]
    out["ray_start"] = {
        "wall": harness.summarize([r["wall_s"] for r in ray_runs]),
        "import": harness.summarize([r["result"]["import_s"] for r in ray_runs]),
        "init": harness.summarize([r["result"]["init_s"] for r in ray_runs]),
        "shutdown": harness.summarize([r["result"]["shutdown_s"] for r in ray_runs]),
        "load": harness.load_of(ray_runs),
    }
    code = [sys.executable, "-c", "import rl_assets.definitions"]
    bare = [sys.executable, "-c", "pass"]
    loc_runs = [harness.run_child(code, expect_result=False) for _ in range(repeats)]
    bare_runs = [harness.run_child(bare, expect_result=False) for _ in range(repeats)]
    out["code_location"] = {
        "wall": harness.summarize([r["wall_s"] for r in loc_runs]),
        "interpreter": harness.summarize([r["wall_s"] for r in bare_runs]),
        "load": harness.load_of(loc_runs),
    }

    plain, dagster, fast = [], [], []
    for i in range(repeats):  # interleaved, so the paths see similar load
        print(f"  time to budget: plain train_ppo {i + 1}/{repeats} ...", file=sys.stderr)
        plain.append(measure_plain(args))
        print(f"  time to budget: dagster materialize {i + 1}/{repeats} ...", file=sys.stderr)
        dagster.append(measure_dagster(args))
        if tuned:
            print(f"  time to budget: plain, tuned {tuned} {i + 1}/{repeats} ...", file=sys.stderr)
            fast.append(measure_plain(tuned_args))
    plain_keys = (
        "wall_s",
        "to_trained_s",
        "before_training_s",
        "data_ready_s",
        "ray_and_build_s",
        "train_loop_s",
        "best_validation_sharpe",
        "buy_and_hold_sharpe",
    )
    out["plain"] = _path_summary(plain, plain_keys)
    if fast:
        out["plain_tuned"] = _path_summary(fast, plain_keys)
    dagster_keys = (
        "wall_s",
        "to_trained_s",
        "before_training_s",
        "before_first_step_s",
        "before_trained_policy_step_s",
        "ray_and_build_s",
        "after_trained_s",
        "train_loop_s",
        "best_validation_sharpe",
    )
    out["dagster"] = _path_summary(dagster, dagster_keys)
    out["dagster"]["status"] = [r["status"] for r in dagster]
    # Overhead per interleaved pair, then the median: pairs share load conditions.
    out["overhead_to_trained"] = harness.summarize(
        [
            (d["to_trained_s"] - p["to_trained_s"]) / d["to_trained_s"]
            for p, d in zip(plain, dagster, strict=True)
        ]
    )
    out["overhead_end_to_end"] = harness.summarize(
        [(d["wall_s"] - p["wall_s"]) / d["wall_s"] for p, d in zip(plain, dagster, strict=True)]
    )
    out["runs"] = {
        name: [{k: v for k, v in r.items() if k != "proc"} for r in rows]
        for name, rows in (("plain", plain), ("dagster", dagster), ("plain_tuned", fast))
    }
    return out


def _path_summary(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _summ(rows, k) for k in keys}
    out["episodes"] = [r["episodes_total"] for r in rows]
    out["load"] = harness.load_of(rows)
    return out


def markdown(r: dict[str, Any]) -> str:
    a, p, d, f = r["args"], r["plain"], r["dagster"], harness.fmt
    over = r["overhead_to_trained"]["median"]
    over_all = r["overhead_end_to_end"]["median"]
    verdict = (
        f"met ({over:.1%} < {TARGET_OVERHEAD:.0%})"
        if over < TARGET_OVERHEAD
        else f"MISSED by {100 * (over - TARGET_OVERHEAD):.1f} points ({over:.1%} >= "
        f"{TARGET_OVERHEAD:.0%})"
    )
    extra_pre = d["before_training_s"]["median"] - p["before_training_s"]["median"]
    gap = d["to_trained_s"]["median"] - p["to_trained_s"]["median"]
    t = r.get("plain_tuned")
    tuned_col = f" plain, tuned {r['tuned']} |" if t else ""
    tuned_sep = "---:|" if t else ""

    def row(label: str, key: str | None, dkey: str | None, digits: int = 1) -> str:
        cells = [f(p[key], digits) if key else "-", f(d[dkey], digits) if dkey else "-"]
        if t:
            cells.append(f(t[key], digits) if key else "-")
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        "## 3. Time to the episode budget",
        "",
        f"From launching a fresh process to a trained policy with {a['target_episodes']} "
        "episodes: default TrainingSpec, default generated prices and date split, patience "
        f"{a['patience']} and min_iterations {a['min_iterations']} so early stopping cannot "
        f"end training before the budget ({a['min_iterations']} iterations in both paths). "
        "Seconds from launch, median (min-max, n); the paths ran interleaved.",
        "",
        f"| seconds from launch | plain `train_ppo` call | `dagster asset materialize --select '*'` |{tuned_col}",
        f"|---|---:|---:|{tuned_sep}",
        row("prices and split ready (interpreter, imports, generator)", "data_ready_s", None),
        row(
            "first Dagster step starts (CLI, code location, instance)", None, "before_first_step_s"
        ),
        row(
            "trained_policy step starts (upstream assets and checks)",
            None,
            "before_trained_policy_step_s",
        ),
        row(
            "RLlib and torch imports, Ray start, build_algo (duration)",
            "ray_and_build_s",
            "ray_and_build_s",
        ),
        row("first train() call", "before_training_s", "before_training_s"),
        row("training loop (duration)", "train_loop_s", "train_loop_s"),
        row("**trained policy**", "to_trained_s", "to_trained_s"),
        row("validation_report, promoted_policy, checks (duration)", None, "after_trained_s"),
        row("process exit", "wall_s", "wall_s"),
        row(
            "best validation Sharpe (one training seed)",
            "best_validation_sharpe",
            "best_validation_sharpe",
            2,
        ),
        row("buy-and-hold validation Sharpe", "buy_and_hold_sharpe", None, 2),
        "| episodes completed | "
        + " | ".join(", ".join(map(str, x["episodes"])) for x in ([p, d, t] if t else [p, d]))
        + " |",
        "| load average | "
        + " | ".join(harness.fmt_load(x["load"]) for x in ([p, d, t] if t else [p, d]))
        + " |",
        "",
        f"Dagster run status: {', '.join(d['status'])}.",
        "",
        f"**Dagster overhead to a trained policy: {over:.1%}** of the Dagster path's time "
        f"({gap:.1f} s; per-pair ratios {f(r['overhead_to_trained'], 2)}); target < "
        f"{TARGET_OVERHEAD:.0%}: **{verdict}**. Whole run, including evaluation, promotion "
        f"and checks that the plain call does not do: {over_all:.0%}.",
        "",
    ]
    if over >= TARGET_OVERHEAD:
        lines += [
            f"Why: {extra_pre:.1f} s of the {gap:.1f} s gap is spent before the first "
            "train() call. The first Dagster step starts "
            f"{d['before_first_step_s']['median']:.1f} s after launch (the `dagster` CLI's "
            "imports, loading the code location, opening the SQLite instance), when the plain "
            f"script already has its prices at {p['data_ready_s']['median']:.1f} s; the "
            "upstream assets and their checks run until "
            f"{d['before_trained_policy_step_s']['median']:.1f} s. RLlib and torch imports, Ray "
            f"start and build_algo take {d['ray_and_build_s']['median']:.1f} s in Dagster "
            "against "
            f"{p['ray_and_build_s']['median']:.1f} s plain, the training loop "
            f"{d['train_loop_s']['median']:.1f} s against {p['train_loop_s']['median']:.1f} s "
            "(the same work: a difference there is load, not Dagster).",
            "",
        ]
    lines += [
        "| fixed cost, fresh process each | seconds | load |",
        "|---|---:|---:|",
        f"| `import ray` | {f(r['ray_start']['import'], 2)} | "
        f"{harness.fmt_load(r['ray_start']['load'])} |",
        f"| `ray.init(address='local', num_cpus=2, include_dashboard=False)` | "
        f"{f(r['ray_start']['init'], 2)} | |",
        f"| `ray.shutdown()` | {f(r['ray_start']['shutdown'], 2)} | |",
        "| whole Ray start-up process (interpreter, import, init, shutdown) | "
        f"{f(r['ray_start']['wall'], 2)} | |",
        '| `python -c "import rl_assets.definitions"` (code-location load) | '
        f"{f(r['code_location']['wall'], 2)} | {harness.fmt_load(r['code_location']['load'])} |",
        "| `python -c pass` (interpreter alone, for reference) | "
        f"{f(r['code_location']['interpreter'], 2)} | |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
