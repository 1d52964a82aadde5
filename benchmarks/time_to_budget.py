"""Time to the episode budget: launch to a trained policy, plain, through Dagster, and SB3.

    .venv/bin/python -m benchmarks.time_to_budget '{"mode": "plain", "target_episodes": 100}'

runs one measurement (the child) and prints its JSON; ``run()`` is what benchmarks.run calls.
Every path does the same training work on the same bars: the default TrainingSpec (next-open
execution, so (open, close) bars) with ``patience`` and ``min_iterations`` raised so early
stopping cannot end training before the episode budget, a greedy validation rollout after
every iteration and the best policy kept on disk, on the benchmarks' fixed date split of the
generated momentum series (train 2020-01-01..2023-01-31, validation 2023-02-01..2023-12-31).
The RLlib paths run with a private Ray (started and stopped by the run) and with the
long-lived local Ray of ``make ray-up`` (``rl_assets.rl.local_ray``, started once for the
section); the Stable-Baselines3 script does the same iterations, rollouts and saves.

The Dagster path materializes ``--select '*trained_policy'``: trained_policy and every asset
upstream of it (raw_prices, price_splits, episodes_per_iteration) with their checks, and
price_splits configured with the fixed dates above (the pipeline's default split now rolls
over the last 756 + 252 bars of data that end today). The asset graph also trains the
walk-forward folds after trained_policy (walk_forward, fold_policies, fold_test_returns,
walk_forward_evidence), which no other path does; so "launch to a trained policy" stops at
trained_policy as before, and one extra run (long-lived Ray) materializes the whole graph as
it runs by default (rolling split, every fold trained on Ray, evaluation, promotion, signal,
monitoring) to show what the folds add. Also measured alone, each in a fresh process: Ray
start-up and joining the long-lived Ray, and the code-location import.
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
# Launch to a trained policy through Dagster with a long-lived Ray, against an SB3 script.
TARGET_VS_SB3 = 1.5


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
    """(rows, train bars, validation bars): (open, close) bars (``rl_assets.rl.env.bars``),
    what the default next-open execution trains and validates on.

    Default: generated prices and the benchmarks' fixed date split (``constants.TRAIN_START``
    .. ``VALIDATION_END``: price_splits' dates layout, which the Dagster path is given).
    With ``rows``: that many business days ending at the default end date, split like
    ``price_splits`` with ``validation_fraction=0.2`` (last 20% of rows is validation).
    """
    import pandas as pd

    from rl_assets import constants
    from rl_assets.data.synthetic import generate_prices
    from rl_assets.rl.env import bars

    if rows is None:
        prices = generate_prices(constants.GENERATOR_START, constants.GENERATOR_END)
        train = bars(prices.loc[constants.TRAIN_START : constants.TRAIN_END])
        val = bars(prices.loc[constants.VALIDATION_START : constants.VALIDATION_END])
        return len(prices), train, val
    end = pd.Timestamp(constants.GENERATOR_END)
    start = pd.bdate_range(end=end, periods=rows)[0]
    prices = generate_prices(str(start.date()), str(end.date()))
    n_val = max(1, math.ceil(len(prices) * 0.2))
    all_bars = bars(prices)
    return len(prices), all_bars[:-n_val], all_bars[-n_val:]


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
    # train_ppo would import these itself; importing them first only times them apart:
    # RLlib's PPO, then torch._inductor.config, which RLlib's seeding pulls in through
    # torch.use_deterministic_algorithms (seen in a profile of build_algo).
    import ray.rllib.algorithms.ppo  # noqa: F401

    stamps["rllib_imported"] = time.time()
    import torch._inductor.config  # noqa: F401

    stamps["inductor_imported"] = time.time()
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


# fold_policies' metadata kept for the whole-graph run (numbers only).
FOLD_METADATA = ("folds", "trained", "wall_seconds", "fold_seconds_total", "parallelism")


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def child_dagster_events(args: dict[str, Any]) -> dict[str, Any]:
    """Read the one run of a fresh DAGSTER_HOME: step times, logs, trained_policy metadata
    (and fold_policies', when the run trained the walk-forward folds)."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    if len(runs) != 1:
        raise RuntimeError(f"expected one run in the benchmark DAGSTER_HOME, found {len(runs)}")
    run = runs[0]
    steps: dict[str, dict[str, float]] = {}
    first_log, trained_meta, fold_meta = None, {}, {}
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
                if mat.asset_key.to_user_string() == "fold_policies":
                    fold_meta = {
                        k: _number(v.value) for k, v in mat.metadata.items() if k in FOLD_METADATA
                    }
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
        "fold_policies": fold_meta,
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


def child_ray_connect(args: dict[str, Any]) -> dict[str, Any]:
    """Join the running cluster at RAY_ADDRESS (auth from the environment) and leave."""
    t0 = time.perf_counter()
    import ray

    t1 = time.perf_counter()
    ray.init(log_to_driver=False)
    t2 = time.perf_counter()
    ray.shutdown()
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "init_s": t2 - t1, "shutdown_s": t3 - t2}


def child_sb3(args: dict[str, Any]) -> dict[str, Any]:
    """A Stable-Baselines3 script doing the same work from launch: the same PPO update on
    the same number of envs, the same iterations, a greedy validation rollout after each
    and the best model saved."""
    stamps = {"child_start": time.time()}
    import torch

    from benchmarks.training_throughput import build_sb3
    from rl_assets.rl.training import TrainingSpec, evaluate, with_history

    torch.set_num_threads(1)  # as the project's TrainingSpec.torch_threads
    stamps["imports_done"] = time.time()
    n_rows, train, val = load_splits(args.get("rows"))
    spec = TrainingSpec(target_episodes=args["target_episodes"])
    validation = with_history(train, val, spec.window)
    stamps["data_ready"] = time.time()
    model, per_iteration, _ = build_sb3(spec, train, spec.num_envs_per_env_runner)
    best, sharpes = -float("inf"), []
    with tempfile.TemporaryDirectory() as tmp:
        first = None
        for _ in range(args["min_iterations"]):
            t0 = time.time()
            model.learn(per_iteration, reset_num_timesteps=False)
            first = first or t0
            policy = lambda obs: int(model.predict(obs, deterministic=True)[0])  # noqa: E731
            sharpe = evaluate(policy, validation, spec)["sharpe"]
            sharpes.append(sharpe)
            if sharpe > best:
                best = sharpe
                model.save(Path(tmp) / "best.zip")
    stamps["trained"] = time.time()
    return {
        "stamps": stamps,
        "first_iteration_start": first,
        "iterations": len(sharpes),
        "env_steps": model.num_timesteps,
        "best_validation_sharpe": best,
        "rows": n_rows,
    }


def child(args: dict[str, Any]) -> None:
    modes = {
        "plain": child_plain,
        "dagster_events": child_dagster_events,
        "ray_start": child_ray_start,
        "ray_connect": child_ray_connect,
        "sb3": child_sb3,
    }
    harness.emit(modes[args["mode"]](args))


RAY_VARS = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")


def ray_child_env(ray_env: dict[str, str] | None, extra: dict[str, str] | None = None):
    """The child's environment: a private Ray (no RAY_ADDRESS) unless ``ray_env`` joins one."""
    env = harness.child_env(extra)
    for key in RAY_VARS:
        env.pop(key, None)
    env.update(ray_env or {})
    return env


def measure_plain(args: dict[str, Any], ray_env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = harness.python_child(
        "benchmarks.time_to_budget", {"mode": "plain", **args}, env=ray_child_env(ray_env)
    )
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
        "rllib_import_s": res["stamps"]["rllib_imported"] - res["stamps"]["data_ready"],
        "inductor_import_s": res["stamps"]["inductor_imported"] - res["stamps"]["rllib_imported"],
        "join_and_build_s": loop_start - res["stamps"]["inductor_imported"],
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


INSTRUMENT = "SYN_MOMENTUM"
# Launch to a trained policy: trained_policy and everything upstream of it (raw_prices,
# price_splits, episodes_per_iteration) with their checks. `+trained_policy` would select
# one level up only (no raw_prices), which a fresh instance cannot load.
TO_TRAINED_SELECTION = "*trained_policy"
WHOLE_GRAPH_SELECTION = "*"


def _dagster_run_config(args: dict[str, Any], whole_graph: bool = False) -> dict[str, Any]:
    """The budget of every path; to a trained policy, also the fixed dates of the other
    paths' split (the whole graph keeps the default rolling split and its folds)."""
    from rl_assets import constants

    ops: dict[str, Any] = {
        "episodes_per_iteration": {"config": {"target_episodes": args["target_episodes"]}},
        "trained_policy": {
            "config": {
                "patience": args["patience"],
                "min_iterations": args["min_iterations"],
                "max_iterations": args["max_iterations"],
            }
        },
    }
    if not whole_graph:
        ops["price_splits"] = {
            "config": {
                "train_start": constants.TRAIN_START,
                "train_end": constants.TRAIN_END,
                "validation_start": constants.VALIDATION_START,
                "validation_end": constants.VALIDATION_END,
            }
        }
    return {"ops": ops}


def measure_sb3(args: dict[str, Any]) -> dict[str, Any]:
    proc = harness.python_child(
        "benchmarks.time_to_budget", {"mode": "sb3", **args}, env=ray_child_env(None)
    )
    res = proc["result"]
    t0 = proc["launched_at"]
    return {
        "proc": proc,
        "wall_s": proc["wall_s"],
        "to_trained_s": res["stamps"]["trained"] - t0,
        "before_training_s": res["first_iteration_start"] - t0,
        "data_ready_s": res["stamps"]["data_ready"] - t0,
        "train_loop_s": res["stamps"]["trained"] - res["first_iteration_start"],
        "best_validation_sharpe": res["best_validation_sharpe"],
        "iterations": res["iterations"],
        "episodes_total": res["env_steps"] // 252,
        "load_start": proc["load_start"],
        "load_end": proc["load_end"],
    }


def measure_dagster(
    args: dict[str, Any], ray_env: dict[str, str] | None = None, whole_graph: bool = False
) -> dict[str, Any]:
    """One `dagster asset materialize` of the instrument's partition on a fresh instance:
    to a trained policy (``TO_TRAINED_SELECTION``, fixed dates), or ``whole_graph``."""
    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="bench-dagster-"))
    try:
        home = tmp / "dagster_home"
        home.mkdir()
        shutil.copy(harness.ROOT / "dagster.yaml", home / "dagster.yaml")
        config = tmp / "run_config.yaml"
        config.write_text(yaml.safe_dump(_dagster_run_config(args, whole_graph)))
        env = ray_child_env(
            ray_env, {"DAGSTER_HOME": str(home), "RL_ASSETS_ARTIFACTS": str(tmp / "artifacts")}
        )
        # SYN_MOMENTUM is the embedded generator's default series, the prices every other
        # path here trains on. Registering it is set-up, not part of the timed launch.
        harness.run_child(
            [sys.executable, "-m", "rl_assets.instruments", "add", INSTRUMENT],
            env=env, expect_result=False,
        )  # fmt: skip
        dagster_cli = Path(sys.executable).parent / "dagster"
        select = WHOLE_GRAPH_SELECTION if whole_graph else TO_TRAINED_SELECTION
        cmd = [str(dagster_cli), "asset", "materialize", "--select", select]
        cmd += ["--partition", INSTRUMENT, "-m", "rl_assets.definitions", "-c", str(config)]
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
    step_s = {
        key: s["STEP_SUCCESS"] - s["STEP_START"]
        for key, s in steps.items()
        if "STEP_START" in s and "STEP_SUCCESS" in s
    }
    folds = events.get("fold_policies") or {}
    extra: dict[str, Any] = {}
    if whole_graph:
        extra = {
            "fold_policies_s": step_s.get("fold_policies", math.nan),
            "folds": folds.get("folds"),
            "folds_trained": folds.get("trained"),
            "fold_parallelism": folds.get("parallelism"),
            "fold_seconds_total": folds.get("fold_seconds_total"),
            "failed_steps": sorted(k for k, s in steps.items() if "STEP_FAILURE" in s),
        }
    return {
        "proc": proc,
        "select": select,
        "step_s": step_s,
        **extra,
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


def run(quick: bool) -> dict[str, Any]:
    from rl_assets.rl import local_ray

    repeats = 1 if quick else 2  # 2 x 5 interleaved launches keep make bench under 15 min
    args = budget_args(40 if quick else 100)
    out: dict[str, Any] = {"args": args, "repeats": repeats}

    print("  time to budget: Ray start-up and code-location import ...", file=sys.stderr)
    ray_runs = [
        harness.python_child(
            "benchmarks.time_to_budget", {"mode": "ray_start"}, env=ray_child_env(None)
        )
        for _ in range(repeats)
    ]
    out["ray_start"] = _ray_summary(ray_runs)
    code = [sys.executable, "-c", "import rl_assets.definitions"]
    bare = [sys.executable, "-c", "pass"]
    loc_runs = [harness.run_child(code, expect_result=False) for _ in range(repeats)]
    bare_runs = [harness.run_child(bare, expect_result=False) for _ in range(repeats)]
    out["code_location"] = {
        "wall": harness.summarize([r["wall_s"] for r in loc_runs]),
        "interpreter": harness.summarize([r["wall_s"] for r in bare_runs]),
        "load": harness.load_of(loc_runs),
    }

    paths: dict[str, list[dict[str, Any]]] = {
        "plain": [], "plain_ll": [], "dagster": [], "dagster_ll": [], "sb3": []
    }  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        print("  time to budget: starting the long-lived local Ray ...", file=sys.stderr)
        t0 = time.perf_counter()
        state = local_ray.up(root)
        out["ray_up_s"] = time.perf_counter() - t0
        ll_env = {"RAY_ADDRESS": state["address"], **local_ray.auth_env(Path(state["token_path"]))}
        connect_runs = [
            harness.python_child(
                "benchmarks.time_to_budget", {"mode": "ray_connect"}, env=ray_child_env(ll_env)
            )
            for _ in range(repeats)
        ]
        out["ray_connect"] = _ray_summary(connect_runs)
        for i in range(repeats):  # interleaved, so the paths see similar load
            for name, measure in (
                ("sb3", lambda: measure_sb3(args)),
                ("plain", lambda: measure_plain(args)),
                ("plain_ll", lambda: measure_plain(args, ll_env)),
                ("dagster", lambda: measure_dagster(args)),
                ("dagster_ll", lambda: measure_dagster(args, ll_env)),
            ):
                print(f"  time to budget: {name} {i + 1}/{repeats} ...", file=sys.stderr)
                paths[name].append(measure())
        # Once: what the walk-forward folds (and the rest of the graph) add after training.
        # Its failure leaves the comparison above standing.
        print("  time to budget: whole graph with folds, long-lived Ray ...", file=sys.stderr)
        try:
            paths["dagster_graph"] = [measure_dagster(args, ll_env, whole_graph=True)]
        except harness.ChildFailed as err:
            out["dagster_graph_error"] = str(err)[-2000:]
            print(f"  time to budget: whole graph FAILED: {err}"[:3000], file=sys.stderr)
    finally:
        t0 = time.perf_counter()
        stopped = local_ray.down(root)
        out["ray_down_s"] = time.perf_counter() - t0
        out["ray_down_processes"] = len(stopped["stopped"])
        shutil.rmtree(root, ignore_errors=True)
    keys = (
        "wall_s", "to_trained_s", "before_training_s", "data_ready_s", "ray_and_build_s",
        "train_loop_s", "best_validation_sharpe", "before_first_step_s",
        "before_trained_policy_step_s", "after_trained_s", "buy_and_hold_sharpe",
        "rllib_import_s", "inductor_import_s", "join_and_build_s", "fold_policies_s",
    )  # fmt: skip
    for name, rows in paths.items():
        out[name] = _path_summary(rows, tuple(k for k in keys if k in rows[0]))
    for name in ("dagster", "dagster_ll", "dagster_graph"):
        if name in paths:
            out[name]["status"] = [r["status"] for r in paths[name]]
            out[name]["select"] = paths[name][0]["select"]
    if "dagster_graph" in paths:
        graph = paths["dagster_graph"][0]
        out["dagster_graph"].update(
            {k: graph[k] for k in ("folds", "folds_trained", "fold_parallelism", "failed_steps")}
        )
        out["dagster_graph"]["step_s"] = graph["step_s"]
        # The whole graph against the to-trained selection of the same (long-lived) setup.
        out["graph_vs_selection"] = {
            key: out["dagster_graph"][key]["median"] / out["dagster_ll"][key]["median"]
            for key in ("wall_s", "to_trained_s")
        }

    def paired(a: str, b: str, fn) -> dict[str, float]:
        return harness.summarize([fn(x, y) for x, y in zip(paths[a], paths[b], strict=True)])

    # Per interleaved pair, then the median: pairs share load conditions.
    out["overhead_to_trained"] = paired(
        "plain", "dagster", lambda p, d: (d["to_trained_s"] - p["to_trained_s"]) / d["to_trained_s"]
    )
    out["overhead_end_to_end"] = paired(
        "plain", "dagster", lambda p, d: (d["wall_s"] - p["wall_s"]) / d["wall_s"]
    )
    out["vs_sb3"] = paired(
        "sb3", "dagster_ll", lambda s3, d: d["to_trained_s"] / s3["to_trained_s"]
    )
    out["vs_sb3_plain_ll"] = paired(
        "sb3", "plain_ll", lambda s3, p: p["to_trained_s"] / s3["to_trained_s"]
    )
    out["saving_plain"] = paired("plain", "plain_ll", lambda a, b: a["wall_s"] - b["wall_s"])
    out["saving_dagster"] = paired(
        "dagster", "dagster_ll", lambda a, b: a["to_trained_s"] - b["to_trained_s"]
    )
    out["runs"] = {
        name: [{k: v for k, v in r.items() if k != "proc"} for r in rows]
        for name, rows in paths.items()
    }
    return out


def _count(value: Any, fmt: str = ".0f") -> str:
    return "-" if value is None or isinstance(value, str) else format(value, fmt)


def _ray_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "wall": harness.summarize([r["wall_s"] for r in runs]),
        "import": harness.summarize([r["result"]["import_s"] for r in runs]),
        "init": harness.summarize([r["result"]["init_s"] for r in runs]),
        "shutdown": harness.summarize([r["result"]["shutdown_s"] for r in runs]),
        "load": harness.load_of(runs),
    }


def _summ(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    return harness.summarize([r[key] for r in rows])


def _path_summary(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _summ(rows, k) for k in keys}
    out["episodes"] = [r["episodes_total"] for r in rows]
    out["load"] = harness.load_of(rows)
    return out


COLUMNS = (
    ("sb3", "SB3 script"),
    ("plain", "plain `train_ppo`, private Ray"),
    ("plain_ll", "plain `train_ppo`, long-lived Ray"),
    ("dagster", "`dagster asset materialize`, private Ray"),
    ("dagster_ll", "`dagster asset materialize`, long-lived Ray"),
    ("dagster_graph", "whole graph with its folds (`--select '*'`, rolling split), long-lived Ray"),
)


def markdown(r: dict[str, Any]) -> str:
    a, f = r["args"], harness.fmt
    cols = [(k, label) for k, label in COLUMNS if k in r]

    def row(label: str, key: str, digits: int = 1) -> str:
        cells = [f(r[k][key], digits) if key in r[k] else "-" for k, _ in cols]
        return f"| {label} | " + " | ".join(cells) + " |"

    vs = r["vs_sb3"]["median"]
    vs_verdict = "met" if vs <= TARGET_VS_SB3 else f"missed by {vs - TARGET_VS_SB3:.2f}"
    over = r["overhead_to_trained"]["median"]
    over_verdict = (
        "met"
        if over < TARGET_OVERHEAD
        else f"missed by {100 * (over - TARGET_OVERHEAD):.1f} points"
    )
    d, dl, s3, p, pl = r["dagster"], r["dagster_ll"], r["sb3"], r["plain"], r["plain_ll"]
    lines = [
        "## 3. Time to the episode budget",
        "",
        f"From launching a fresh process to a trained policy with {a['target_episodes']} "
        "episodes' worth of env steps: default TrainingSpec (execution at the next open, "
        "on (open, close) bars), the generated momentum series with the benchmarks' fixed "
        "date split (train 2020-01-01..2023-01-31, validation 2023-02-01..2023-12-31), "
        f"{a['min_iterations']} iterations in every path (patience "
        f"{a['patience']} so early stopping cannot end training first), a greedy validation "
        "rollout after each iteration and the best policy written to disk. The SB3 script "
        "does the same with Stable-Baselines3 PPO (same update, same envs, torch threads 1). "
        "The Dagster columns materialize `--select '*trained_policy'` (trained_policy, "
        "everything upstream of it and their checks; price_splits given the same dates), "
        "so every column stops at the trained policy; the last column, measured once, is "
        "the whole graph as it runs by default: the rolling split (the last 756 + 252 bars "
        "of data ending today), then every walk-forward fold trained on Ray, the pooled "
        "evidence, report, gate, signal and monitoring. "
        "Long-lived Ray: `make ray-up`'s cluster (`rl_assets.rl.local_ray`, started once, "
        f"{r['ray_up_s']:.1f} s; stopped at the end, {r['ray_down_s']:.1f} s, "
        f"{r['ray_down_processes']} processes) joined through RAY_ADDRESS and its token. "
        "Seconds from launch, median (min-max, n); the paths ran interleaved.",
        "",
        "| seconds from launch | " + " | ".join(label for _, label in cols) + " |",
        "|---|" + "---:|" * len(cols),
        row("prices and split ready (plain, SB3)", "data_ready_s"),
        row("first Dagster step starts (CLI, code location, instance)", "before_first_step_s"),
        row("trained_policy step starts (upstream assets, checks)", "before_trained_policy_step_s"),
        row("RLlib and torch imports, Ray start or join, build_algo (duration)", "ray_and_build_s"),
        row("  of which `import ray.rllib.algorithms.ppo`", "rllib_import_s"),
        row("  of which torch's inductor, imported by RLlib's seeding", "inductor_import_s"),
        row("  of which Ray start or join, `build_algo`", "join_and_build_s"),
        row("first iteration starts", "before_training_s"),
        row("training loop incl. validation rollouts (duration)", "train_loop_s"),
        row("**trained policy**", "to_trained_s"),
        row("after trained_policy to process exit (duration)", "after_trained_s"),
        row("  of which fold_policies: the walk-forward folds on Ray", "fold_policies_s"),
        row("process exit", "wall_s"),
        row("best validation Sharpe (one training seed)", "best_validation_sharpe", 2),
        "| episodes' worth of env steps | "
        + " | ".join(", ".join(map(str, r[k]["episodes"])) for k, _ in cols)
        + " |",
        "| load average | " + " | ".join(harness.fmt_load(r[k]["load"]) for k, _ in cols) + " |",
        "",
        f"Dagster run status: {', '.join(d['status'] + dl['status'])}"
        + (
            f"; whole graph: {', '.join(r['dagster_graph']['status'])}"
            if "dagster_graph" in r
            else ""
        )
        + ".",
        "",
        f"**Launch to a trained policy through `dagster asset materialize` with the "
        f"long-lived Ray: {dl['to_trained_s']['median']:.1f} s against "
        f"{s3['to_trained_s']['median']:.1f} s for the SB3 script, {vs:.2f}x** (per-pair "
        f"{f(r['vs_sb3'], 2)}; target <= {TARGET_VS_SB3}x: {vs_verdict}). The plain "
        f"`train_ppo` script with the long-lived Ray: {r['vs_sb3_plain_ll']['median']:.2f}x.",
        "",
    ]
    if vs > TARGET_VS_SB3:
        after_loop = dl["to_trained_s"]["median"] - (
            dl["before_training_s"]["median"] + dl["train_loop_s"]["median"]
        )
        lines += [
            f"Why: the SB3 script starts its first iteration "
            f"{s3['before_training_s']['median']:.1f} s after launch; the Dagster path "
            f"{dl['before_training_s']['median']:.1f} s after launch: the `dagster` CLI, the "
            f"code location and the instance ({dl['before_first_step_s']['median']:.1f} s to "
            "the first step), the upstream assets and their checks (trained_policy starts at "
            f"{dl['before_trained_policy_step_s']['median']:.1f} s), then RLlib's imports, "
            f"joining Ray and `build_algo` ({dl['ray_and_build_s']['median']:.1f} s; in the "
            f"plain script with the long-lived Ray: {pl['rllib_import_s']['median']:.1f} s "
            f"importing RLlib's PPO, {pl['inductor_import_s']['median']:.1f} s importing "
            "torch's inductor, which RLlib's seeding pulls in through "
            "`torch.use_deterministic_algorithms`, and "
            f"{pl['join_and_build_s']['median']:.1f} s joining Ray and building). The "
            f"training loop itself takes {dl['train_loop_s']['median']:.1f} s against SB3's "
            f"{s3['train_loop_s']['median']:.1f} s (section 2: RLlib's learner update). After "
            "the loop, the trained_policy step takes another "
            f"{after_loop:.1f} s before it succeeds: stopping the algorithm, leaving Ray, "
            "drawing the training curve (the first matplotlib import) and the step's "
            "metadata and output.",
            "",
        ]
    if "dagster_graph" in r:
        g = r["dagster_graph"]
        failed = g.get("failed_steps") or []
        lines += [
            f"**The whole graph with its walk-forward folds** (one run, long-lived Ray): "
            f"{g['wall_s']['median']:.1f} s to process exit, "
            f"{r['graph_vs_selection']['wall_s']:.2f}x the run that stops at trained_policy "
            f"({dl['wall_s']['median']:.1f} s). After trained_policy, fold_policies trained "
            f"{_count(g.get('folds_trained'))} of {_count(g.get('folds'))} folds as Ray tasks "
            f"in {g['fold_policies_s']['median']:.1f} s (parallelism "
            f"{_count(g.get('fold_parallelism'), '.2f')}), each fold the same budget as the "
            "candidate; the rest is the folds' test days, the pooled evidence, the report, "
            "the gate, the signal and monitoring"
            + (f" (failed steps: {', '.join(failed)})" if failed else "")
            + ". Its trained_policy trains on the rolling split's bars, not the fixed "
            "dates of the other columns: the same iterations on as many bars, give or take "
            "a few dozen.",
            "",
        ]
    if "dagster_graph_error" in r:
        lines += [
            "**The whole graph with its walk-forward folds** (one run, long-lived Ray) "
            f"failed: {r['dagster_graph_error'][-500:]}",
            "",
        ]
    lines += [
        f"**Start-up saved per run by the long-lived Ray:** plain script "
        f"{f(r['saving_plain'], 1)} s of {p['wall_s']['median']:.1f} s (process exit); Dagster "
        f"path {f(r['saving_dagster'], 1)} s to the trained policy (paired differences).",
        "",
        f"Dagster overhead with a private Ray (the previous target, plain call vs Dagster, "
        f"to the trained policy): {over:.1%} (target < {TARGET_OVERHEAD:.0%}: {over_verdict}); "
        f"to process exit (trained_policy's checks and the run's end): "
        f"{r['overhead_end_to_end']['median']:.0%}.",
        "",
        "| fixed cost, fresh process each | private Ray: `ray.init(address='local')` | "
        "long-lived Ray: `ray.init()` with RAY_ADDRESS | load |",
        "|---|---:|---:|---:|",
        f"| `import ray` | {f(r['ray_start']['import'], 2)} | {f(r['ray_connect']['import'], 2)} "
        f"| {harness.fmt_load(r['ray_start']['load'])} / "
        f"{harness.fmt_load(r['ray_connect']['load'])} |",
        f"| start or join | {f(r['ray_start']['init'], 2)} | {f(r['ray_connect']['init'], 2)} | |",
        f"| `ray.shutdown()` (stop or leave) | {f(r['ray_start']['shutdown'], 2)} | "
        f"{f(r['ray_connect']['shutdown'], 2)} | |",
        f"| whole process | {f(r['ray_start']['wall'], 2)} | {f(r['ray_connect']['wall'], 2)} | |",
        "",
        'Code-location load (`python -c "import rl_assets.definitions"`): '
        f"{f(r['code_location']['wall'], 2)} s, against {f(r['code_location']['interpreter'], 2)}"
        f" s for `python -c pass` (load {harness.fmt_load(r['code_location']['load'])}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
