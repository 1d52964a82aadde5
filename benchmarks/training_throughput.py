"""Training throughput: env steps/s of RLlib PPO as configured here, against Stable-Baselines3.

    .venv/bin/python -m benchmarks.training_throughput '{"lib": "rllib", "num_env_runners": 0}'

runs one measurement (the child) and prints its JSON; ``run()`` is what benchmarks.run calls.
Each configuration runs in its own fresh process: build (RLlib: Ray start and
``build_algo``; SB3: the model), one warm-up iteration, then ``windows`` measurement
windows of ``iterations`` iterations of ``train_batch_size`` env steps each. A window's
figure is env steps sampled / wall seconds of its iterations (sampling plus learning).
Stable-Baselines3 runs the same PPO work: rollouts of ``train_batch_size`` steps split
over the same number of envs (DummyVecEnv), the same minibatch, epochs, learning rate,
gamma, GAE lambda, clip and value-loss coefficients and 64x64 tanh networks.
"""

import json
import sys
import time
from dataclasses import replace
from typing import Any

from benchmarks import harness

TARGET_RATIO = 0.8
CONTENDING_HOGS = 2  # busy-looping processes beside the contended measurements
RUNNER_COUNTS = (0, 1, 2)


def _train_closes():
    from rl_assets import constants
    from rl_assets.data.synthetic import generate_prices

    prices = generate_prices(constants.GENERATOR_START, constants.GENERATOR_END)
    return prices.loc[constants.TRAIN_START : constants.TRAIN_END, "close"].to_numpy()


def _spec(args: dict[str, Any]):
    from rl_assets.rl.training import TrainingSpec

    fields = ("num_env_runners", "num_envs_per_env_runner", "minibatch_size", "train_batch_size")
    return replace(TrainingSpec(), **{k: args[k] for k in fields if k in args})


def _set_threads(args: dict[str, Any]) -> int:
    import torch

    if args.get("torch_threads"):
        torch.set_num_threads(int(args["torch_threads"]))
    return torch.get_num_threads()


def child_rllib(args: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from rl_assets.rl.training import build_ppo_config, ray_session

    spec = _spec(args)
    closes = _train_closes()
    threads = _set_threads(args)
    t_import = time.perf_counter()
    windows: list[dict[str, float]] = []
    with ray_session(num_cpus=2):
        t_ray = time.perf_counter()
        algo = build_ppo_config(spec, closes).build_algo()
        t_build = time.perf_counter()
        try:
            result = algo.train()  # warm-up: first sampling and learner update
            t_warm = time.perf_counter()
            steps_before = result[NUM_ENV_STEPS_SAMPLED_LIFETIME]
            for _ in range(args.get("windows", 3)):
                t0 = time.perf_counter()
                for _ in range(args.get("iterations", 2)):
                    result = algo.train()
                seconds = time.perf_counter() - t0
                steps = result[NUM_ENV_STEPS_SAMPLED_LIFETIME] - steps_before
                steps_before = result[NUM_ENV_STEPS_SAMPLED_LIFETIME]
                timers = result.get("timers", {})
                windows.append(
                    {
                        "steps": steps,
                        "seconds": seconds,
                        "steps_per_s": steps / seconds,
                        "sampling_s": timers.get("env_runner_sampling_timer", float("nan")),
                        "learner_s": timers.get("learner_update_timer", float("nan")),
                    }
                )
            profile = (
                _profile_sampling(algo, spec.train_batch_size) if args.get("profile") else None
            )
        finally:
            algo.stop()
    return {
        "profile": profile,
        "windows": windows,
        "torch_threads": threads,
        "import_s": t_import - t_start,
        "ray_init_s": t_ray - t_import,
        "build_s": t_build - t_ray,
        "warmup_iteration_s": t_warm - t_build,
    }


def _profile_sampling(algo, steps: int) -> dict[str, float]:
    """Where one iteration's sampling time goes (cProfile, local env runner): shares."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    algo.env_runner.sample(num_timesteps=steps)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)

    def cumulative(path: str, name: str) -> float:
        return sum(v[3] for k, v in stats.items() if k[0].endswith(path) and k[2] == name)

    def own(fragment: str) -> float:
        return sum(v[2] for k, v in stats.items() if fragment in k[0])

    total = cumulative("single_agent_env_runner.py", "_sample")
    parts = {
        "TradingEnv.step": cumulative("rl_assets/rl/env.py", "step"),
        "gymnasium vector env step (includes TradingEnv.step)": cumulative(
            "gymnasium/vector/sync_vector_env.py", "step"
        ),
        "RLlib connector pipelines (env-to-module, module-to-env)": cumulative(
            "connector_pipeline_v2.py", "__call__"
        ),
        "RLModule forward_exploration (the 64x64 policy, torch)": cumulative(
            "torch/torch_rl_module.py", "forward_exploration"
        ),
        "SingleAgentEpisode add_env_step / add_env_reset": cumulative(
            "single_agent_episode.py", "add_env_step"
        )
        + cumulative("single_agent_episode.py", "add_env_reset"),
        "RLlib metrics logging (own time)": own("rllib/utils/metrics/"),
        "torch (own time of torch functions)": own("/torch/"),
    }
    return {"total_s": total, **{k: v / total for k, v in parts.items()}}


def child_sb3(args: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rl_assets.rl.env import TradingEnv
    from rl_assets.rl.training import build_ppo_config

    spec = _spec(args)
    closes = _train_closes()
    threads = _set_threads(args)
    n_envs = int(args["n_envs"])
    # Hyperparameters read from the RLlib config this project builds, not restated.
    cfg = build_ppo_config(spec, closes)
    t_import = time.perf_counter()
    env_config = {**spec.env_config(), "closes": closes}
    venv = DummyVecEnv([lambda: TradingEnv(env_config) for _ in range(n_envs)])
    rollout = spec.train_batch_size // n_envs
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=cfg.lr,
        n_steps=rollout,
        batch_size=cfg.minibatch_size,
        n_epochs=cfg.num_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.lambda_,
        clip_range=cfg.clip_param,
        vf_coef=cfg.vf_loss_coeff,
        ent_coef=cfg.entropy_coeff,
        policy_kwargs={
            "net_arch": {"pi": list(spec.hidden_sizes), "vf": list(spec.hidden_sizes)},
            "activation_fn": torch.nn.Tanh,
        },
        seed=spec.seed,
        device="cpu",
        verbose=0,
    )
    # A logger without outputs: SB3's default one leaves an SB3-<date> folder in /tmp per run.
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    per_iteration = rollout * n_envs
    t_build = time.perf_counter()
    model.learn(per_iteration)  # warm-up: one rollout and one update
    t_warm = time.perf_counter()
    windows = []
    for _ in range(args.get("windows", 3)):
        before = model.num_timesteps
        t0 = time.perf_counter()
        model.learn(args.get("iterations", 2) * per_iteration, reset_num_timesteps=False)
        seconds = time.perf_counter() - t0
        steps = model.num_timesteps - before
        windows.append({"steps": steps, "seconds": seconds, "steps_per_s": steps / seconds})
    return {
        "windows": windows,
        "torch_threads": threads,
        "import_s": t_import - t_start,
        "build_s": t_build - t_import,
        "warmup_iteration_s": t_warm - t_build,
        "hyperparameters": {
            "n_envs": n_envs,
            "n_steps": rollout,
            "batch_size": cfg.minibatch_size,
            "n_epochs": cfg.num_epochs,
            "learning_rate": cfg.lr,
            "gamma": cfg.gamma,
            "gae_lambda": cfg.lambda_,
            "clip_range": cfg.clip_param,
            "vf_coef": cfg.vf_loss_coeff,
        },
    }


def child(args: dict[str, Any]) -> None:
    harness.emit(child_rllib(args) if args["lib"] == "rllib" else child_sb3(args))


def _measure(args: dict[str, Any], label: str, hogs: int = 0) -> dict[str, Any]:
    print(f"  training throughput: {label} ...", file=sys.stderr, flush=True)
    with harness.cpu_hogs(hogs):
        proc = harness.python_child("benchmarks.training_throughput", args, timeout=1800)
    windows = proc["result"]["windows"]
    return {
        "label": label,
        "args": args,
        "steps_per_s": harness.summarize([w["steps_per_s"] for w in windows]),
        "load": harness.load_of([proc]),
        "detail": proc["result"],
        "peak_rss_mib": proc["tree_peak_rss_mib"],
        "wall_s": proc["wall_s"],
    }


def parallel_envs(args: dict[str, Any]) -> int:
    return max(1, args.get("num_env_runners", 0)) * args.get("num_envs_per_env_runner", 4)


def _threads_label(threads: int | None) -> str:
    return f"torch threads {threads}" if threads else "torch threads default"


def run(quick: bool) -> dict[str, Any]:
    from rl_assets.rl.training import TrainingSpec

    default = TrainingSpec()
    base = {
        "windows": 2 if quick else 3,
        "iterations": 1 if quick else 2,
        "num_envs_per_env_runner": default.num_envs_per_env_runner,
        "minibatch_size": default.minibatch_size,
    }
    out: dict[str, Any] = {"base": base, "runners": [], "contended": [], "tuning": []}
    out["default_spec"] = {
        "num_env_runners": default.num_env_runners,
        "num_envs_per_env_runner": default.num_envs_per_env_runner,
        "minibatch_size": default.minibatch_size,
        "train_batch_size": default.train_batch_size,
        "num_epochs": default.num_epochs,
        "episode_length": default.episode_length,
    }
    rl_cache: dict[str, dict[str, Any]] = {}
    sb3_cache: dict[str, dict[str, Any]] = {}

    def rllib(threads: int | None = None, **change: Any) -> dict[str, Any]:
        args = {**base, "lib": "rllib", "num_env_runners": 0, **change}
        if threads:
            args["torch_threads"] = threads
        key = json.dumps(args, sort_keys=True)
        if key not in rl_cache:
            label = (
                f"RLlib, {args['num_env_runners']} env runner(s), "
                f"{args['num_envs_per_env_runner']} envs each, minibatch "
                f"{args['minibatch_size']}, {_threads_label(threads)}"
            )
            rl_cache[key] = _measure(args, label)
        return rl_cache[key]

    def sb3(n_envs: int, threads: int | None = None) -> dict[str, Any]:
        args = {**base, "lib": "sb3", "n_envs": n_envs}
        if threads:
            args["torch_threads"] = threads
        key = json.dumps(args, sort_keys=True)
        if key not in sb3_cache:
            label = f"SB3 PPO, {n_envs} envs (DummyVecEnv), {_threads_label(threads)}"
            sb3_cache[key] = _measure(args, label)
        return sb3_cache[key]

    def compare(rl: dict[str, Any], threads: int | None) -> dict[str, Any]:
        peer = sb3(parallel_envs(rl["args"]), threads)
        ratio = rl["steps_per_s"]["median"] / peer["steps_per_s"]["median"]
        return {"rllib": rl, "sb3": peer, "ratio": ratio, "threads": threads}

    # 1. Runner counts at this project's configuration (torch's default threads), and with
    #    one torch thread in the driver (remote runners get OMP_NUM_THREADS=1 from Ray).
    for runners in RUNNER_COUNTS:
        for threads in (None, 1):
            # The local runner with one torch thread also profiles one sampling pass.
            extra = {"profile": True} if runners == 0 and threads == 1 else {}
            out["runners"].append(
                compare(rllib(threads, num_env_runners=runners, **extra), threads)
            )

    # 2. Torch threads when the cores are shared: the same local-runner measurements with
    #    CONTENDING_HOGS busy-looping processes beside them (other engineers' tests, CI).
    short = {**base, "windows": 2, "iterations": 1}
    for threads in (None, 1):
        pair = {}
        for lib, extra in (("rllib", {"num_env_runners": 0}), ("sb3", {"n_envs": 4})):
            args = {**short, "lib": lib, **extra}
            if threads:
                args["torch_threads"] = threads
            name = "RLlib, 0 env runners" if lib == "rllib" else "SB3 PPO, 4 envs"
            label = f"{name}, {_threads_label(threads)}, {CONTENDING_HOGS} busy processes beside"
            pair[lib] = _measure(args, label, hogs=CONTENDING_HOGS)
        out["contended"].append(
            {
                "threads": threads,
                **pair,
                "ratio": pair["rllib"]["steps_per_s"]["median"]
                / pair["sb3"]["steps_per_s"]["median"],
            }
        )

    # 3. Speed tuning on the local runner: the thread setting with the better geometric mean
    #    of the quiet and the contended figure, then envs per runner and minibatch size one
    #    at a time at that thread setting.
    def robust(threads: int | None) -> float:
        quiet = next(
            c
            for c in out["runners"]
            if c["threads"] == threads and c["rllib"]["args"]["num_env_runners"] == 0
        )
        busy = next(c for c in out["contended"] if c["threads"] == threads)
        return (
            quiet["rllib"]["steps_per_s"]["median"] * busy["rllib"]["steps_per_s"]["median"]
        ) ** 0.5

    threads = max((None, 1), key=robust)
    out["thread_scores"] = {str(t): robust(t) for t in (None, 1)}
    grid: list[tuple[str, dict[str, Any]]] = [
        ("num_envs_per_env_runner=8", {"num_envs_per_env_runner": 8})
    ]
    if not quick:
        grid = [
            ("num_envs_per_env_runner=1", {"num_envs_per_env_runner": 1}),
            *grid,
            ("num_envs_per_env_runner=16", {"num_envs_per_env_runner": 16}),
            ("minibatch_size=128", {"minibatch_size": 128}),
            ("minibatch_size=512", {"minibatch_size": 512}),
        ]
    tuning = [
        {
            "name": f"default spec, {_threads_label(None)}",
            "change": {},
            "m": rllib(None),
        },
        {
            "name": f"default spec, {_threads_label(1)}",
            "change": {"torch_threads": 1},
            "m": rllib(1, profile=True),
        },
    ]
    for name, change in grid:
        tuning.append(
            {
                "name": f"{name}, {_threads_label(threads)}",
                "change": {**change, **({"torch_threads": threads} if threads else {})},
                "m": rllib(threads, **change),
            }
        )
    out["tuning"] = tuning
    out["tuning_threads"] = threads

    # 4. The fastest number of envs per runner at that thread setting among those that
    #    leave the learning setup as it is: envs and threads do not change the PPO update
    #    (minibatch size does), and every env still completes one whole episode per
    #    iteration (train_batch_size / envs >= episode_length; with more envs, episodes
    #    complete in bursts every few iterations).
    envs_rows = [t for t in tuning if "minibatch_size" not in t["change"]]
    envs_rows = [t for t in envs_rows if t["change"].get("torch_threads") == threads]
    per_env = default.train_batch_size / default.episode_length
    envs_rows = [t for t in envs_rows if parallel_envs(t["m"]["args"]) <= per_env]
    best = max(envs_rows, key=lambda t: t["m"]["steps_per_s"]["median"])
    out["tuned"] = {"change": best["change"], **compare(best["m"], threads)}
    out["sb3"] = list(sb3_cache.values())
    return out


def _split(m: dict[str, Any]) -> str:
    w = m["detail"]["windows"][-1]
    if "sampling_s" not in w:
        return ""
    return f"{w['sampling_s']:.2f} / {w['learner_s']:.2f}"


def _cells(m: dict[str, Any]) -> str:
    return (
        f"{_split(m)} | {m['detail']['torch_threads']} | {m['peak_rss_mib']:,.0f} | "
        f"{harness.fmt_load(m['load'])}"
    )


def _verdict(ratio: float) -> str:
    return "met" if ratio >= TARGET_RATIO else f"missed by {TARGET_RATIO - ratio:.2f}"


def markdown(r: dict[str, Any]) -> str:
    base, d, f = r["base"], r["default_spec"], harness.fmt
    lines = [
        "## 2. Training throughput",
        "",
        "Env steps per second of PPO (sampling and learning; synchronous), this project's "
        f"`build_ppo_config(TrainingSpec(...))`: train_batch_size {d['train_batch_size']}, "
        f"minibatch {d['minibatch_size']}, {d['num_epochs']} epochs, "
        f"{d['num_envs_per_env_runner']} envs per runner. Each row is one fresh process: one "
        f"warm-up iteration, then {base['windows']} windows of {base['iterations']} "
        "iteration(s); the figure is the median window (min-max over windows). "
        "Sampling / learner s: RLlib's own timers for one iteration (smoothed). Peak RSS: "
        "the whole process tree (driver, Ray daemons, remote runners), sampled. "
        "`torch threads default` is torch's own choice in the driver (one per core); "
        "Ray's remote env runners always run with OMP_NUM_THREADS=1.",
        "",
        "### RLlib by env-runner count against Stable-Baselines3 on the same work",
        "",
        "| env runners | parallel envs | torch threads (driver) | RLlib steps/s | "
        f"SB3 steps/s, same envs and threads | RLlib / SB3 | target >= {TARGET_RATIO} |",
        "|---:|---:|---|---:|---:|---:|---|",
    ]
    for c in r["runners"]:
        a = c["rllib"]["args"]
        lines.append(
            f"| {a['num_env_runners']} | {parallel_envs(a)} | "
            f"{c['threads'] or 'default'} | {f(c['rllib']['steps_per_s'])} | "
            f"{f(c['sb3']['steps_per_s'])} | {c['ratio']:.2f}x | {_verdict(c['ratio'])} |"
        )
    lines += [
        "",
        "| measurement | steps/s | sampling / learner s | torch threads | peak RSS MiB | load |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    seen = set()
    for c in r["runners"]:
        for m in (c["rllib"], c["sb3"]):
            if m["label"] not in seen:
                seen.add(m["label"])
                lines.append(f"| {m['label']} | {f(m['steps_per_s'])} | {_cells(m)} |")
    # Explained on the local runner at the thread setting that survives load.
    default = next(
        c for c in r["runners"] if c["rllib"]["args"]["num_env_runners"] == 0 and c["threads"] == 1
    )
    w = default["rllib"]["detail"]["windows"][-1]
    iteration_s = d["train_batch_size"] / default["rllib"]["steps_per_s"]["median"]
    sb3_iteration_s = d["train_batch_size"] / default["sb3"]["steps_per_s"]["median"]
    remote = [
        c for c in r["runners"] if c["rllib"]["args"]["num_env_runners"] > 0 and c["threads"] == 1
    ]
    lines += [
        "",
        f"Why RLlib misses {TARGET_RATIO}x (local runner, torch threads 1, where both "
        f"libraries are least disturbed by load): one iteration takes {iteration_s:.2f} s in "
        f"RLlib against {sb3_iteration_s:.2f} s in SB3 for the same {d['train_batch_size']} "
        f"steps and the same updates; RLlib's timers put {w['sampling_s']:.2f} s of it in "
        f"sampling and {w['learner_s']:.2f} s in the learner update. Sampling is the gap: "
        "RLlib runs its connector pipelines, episode bookkeeping and metrics logging around "
        "every vectorised env step, in Python.",
    ]
    prof = default["rllib"]["detail"].get("profile")
    if prof:
        lines += [
            "",
            "Profile of one sampling pass (same setup, after its windows; "
            f"{prof['total_s']:.2f} s "
            "under cProfile, which inflates Python call overhead; shares of it):",
            "",
            "| part | share of sampling time |",
            "|---|---:|",
            *[f"| {k} | {v:.1%} |" for k, v in prof.items() if k != "total_s"],
        ]
    if remote:
        best_remote = max(remote, key=lambda c: c["rllib"]["steps_per_s"]["median"])
        lines += [
            "",
            "Remote env runners on 2 cores, at the same torch threads: the best remote setup "
            f"({best_remote['rllib']['args']['num_env_runners']} runner(s)) reaches "
            f"{best_remote['rllib']['steps_per_s']['median']:,.0f} steps/s against "
            f"{default['rllib']['steps_per_s']['median']:,.0f} for the local runner, and each "
            "runner adds a process (see peak RSS). PPO here is synchronous: sampling and "
            "learning alternate, so on 2 cores a remote runner cannot overlap with the "
            "learner and adds the cost of shipping episodes between processes.",
        ]
    lines += [
        "",
        f"### Torch threads on a shared machine ({CONTENDING_HOGS} busy-looping processes "
        "beside the measurement)",
        "",
        "| torch threads | RLlib, 0 runners | SB3, 4 envs | RLlib / SB3 | load |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in r["contended"]:
        lines.append(
            f"| {c['threads'] or 'default'} | {f(c['rllib']['steps_per_s'])} | "
            f"{f(c['sb3']['steps_per_s'])} | {c['ratio']:.2f}x | "
            f"{harness.fmt_load(c['rllib']['load'])} |"
        )
    scores = r["thread_scores"]
    lines += [
        "",
        "Geometric mean of the quiet and the contended RLlib figure: torch threads default "
        f"{scores['None']:,.0f}, torch threads 1 {scores['1']:,.0f} steps/s; the tuning below "
        f"uses {_threads_label(r['tuning_threads'])}.",
    ]
    threads = r["tuning_threads"]
    ref_row = next(
        t
        for t in r["tuning"]
        if t["name"].startswith("default spec") and t["change"].get("torch_threads") == threads
    )
    ref = ref_row["m"]["steps_per_s"]["median"]
    lines += [
        "",
        "### Tuning RLlib for speed on 2 cores (local runner)",
        "",
        f"Relative figures are against `{ref_row['name']}`.",
        "",
        "| setting | steps/s | vs reference | sampling / learner s | torch threads | peak RSS MiB | load |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in r["tuning"]:
        m = t["m"]
        lines.append(
            f"| {t['name']} | {f(m['steps_per_s'])} | "
            f"{m['steps_per_s']['median'] / ref:.2f}x | {_cells(m)} |"
        )
    tuned = r["tuned"]
    lines += [
        "",
        "Fastest setting that leaves the learning setup as it is (same PPO update; every env "
        "still completes a whole episode each iteration, so "
        f"{d['train_batch_size'] / d['episode_length']:.0f} episodes complete per iteration "
        f"as before): **{tuned['change'] or 'the default'}**, "
        f"{f(tuned['rllib']['steps_per_s'])} steps/s, "
        f"{tuned['rllib']['steps_per_s']['median'] / ref:.2f}x `{ref_row['name']}`. Against "
        f"{tuned['sb3']['label']} ({f(tuned['sb3']['steps_per_s'])}): "
        f"**{tuned['ratio']:.2f}x** (target >= {TARGET_RATIO}: {_verdict(tuned['ratio'])}). "
        "More envs per runner than train_batch_size / episode_length make episodes complete "
        "in bursts every few iterations; a smaller minibatch or fewer epochs would change "
        "the update itself.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
