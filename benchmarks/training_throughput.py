"""Training throughput: RLlib PPO as configured here against Stable-Baselines3, side by side.

    .venv/bin/python -m benchmarks.training_throughput '{"n_envs": 16, "path": "vector"}'

runs one measurement (the child) and prints its JSON; ``run()`` is what benchmarks.run calls.
One fresh process per configuration holds both libraries at the same number of envs and
the same PPO update: RLlib from ``build_ppo_config`` (``path`` "vector": the project's
VectorTradingEnv and minimal pipelines; "default": TradingEnv through RLlib's defaults,
the previous configuration) and Stable-Baselines3 PPO with rollouts of
``train_batch_size / n_envs`` steps over ``n_envs`` TradingEnvs (DummyVecEnv), the same
minibatch, epochs, learning rate, gamma, GAE lambda, clip and value-loss coefficients and
64x64 tanh networks. After one warm-up iteration each, measurement windows alternate
between the libraries (A B B A ...), so both see the same load; a window's figure is
env steps sampled / wall seconds of its iterations (sampling plus learning).

Both libraries train the same env: (open, close) bars of the benchmarks' train window
(``rl_assets.rl.env.bars``) with the default execution, a decision after close t taken at
the open of t+1 (``execution="next_open"``). That env does one more multiply-add per step
than the close-to-close env of earlier runs (the old position over the night, the new one
over the day), on both sides alike, so the ratio keeps its meaning.
"""

import json
import math
import sys
import time
from dataclasses import replace
from typing import Any

from benchmarks import harness

TARGET_RATIO = 0.8
CONTENDING_HOGS = 2  # busy-looping processes beside the contended measurements
# 8 (the issue's comparison), 16 (the default) and 64 (SB3's best); 32 changed nothing and
# made RLlib's update differ (41 minibatch updates), so it left the default run for time.
ENV_COUNTS = (8, 16, 64)
DEFAULT_PATH_ENV_COUNTS = (8, 16)


def _train_bars():
    """(open, close) bars of the benchmarks' train window (the fixed-dates layout's train
    dates of the generated momentum series): what every env here trains on."""
    from rl_assets import constants
    from rl_assets.data.synthetic import generate_prices
    from rl_assets.rl.env import bars

    prices = generate_prices(constants.GENERATOR_START, constants.GENERATOR_END)
    return bars(prices.loc[constants.TRAIN_START : constants.TRAIN_END])


def _set_threads(args: dict[str, Any]) -> int:
    import torch

    if args.get("torch_threads"):
        torch.set_num_threads(int(args["torch_threads"]))
    return torch.get_num_threads()


def build_sb3(spec, prices, n_envs: int):
    """SB3 PPO doing the same PPO work as ``build_ppo_config(spec, prices)`` on ``n_envs``
    TradingEnvs of the same config and ``prices`` ((open, close) bars for the default
    next-open execution; hyperparameters read from the RLlib config, not restated)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rl_assets.rl.env import TradingEnv
    from rl_assets.rl.training import build_ppo_config

    cfg = build_ppo_config(spec, prices)
    env_config = {**spec.env_config(), "closes": prices}
    venv = DummyVecEnv([lambda: TradingEnv(env_config) for _ in range(n_envs)])
    rollout = math.ceil(spec.train_batch_size / n_envs)
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
    # A logger without outputs: SB3's default one leaves an SB3-<date> folder in /tmp.
    model.set_logger(Logger(folder=None, output_formats=[]))
    hyper = {
        "n_envs": n_envs,
        "n_steps": rollout,
        "batch_size": cfg.minibatch_size,
        "n_epochs": cfg.num_epochs,
        "learning_rate": cfg.lr,
        "gamma": cfg.gamma,
        "gae_lambda": cfg.lambda_,
        "clip_range": cfg.clip_param,
        "vf_coef": cfg.vf_loss_coeff,
    }
    return model, rollout * n_envs, hyper


class _Timed:
    """Wraps a bound method and sums its wall time."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **kw)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def child_side_by_side(args: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    from ray.rllib.core import ALL_MODULES
    from ray.rllib.utils.metrics import (
        ENV_RUNNER_RESULTS,
        LEARNER_RESULTS,
        NUM_ENV_STEPS_SAMPLED_LIFETIME,
        NUM_EPISODES,
        NUM_MODULE_STEPS_TRAINED,
    )

    from rl_assets.rl.env import TradingEnv, VectorTradingEnv
    from rl_assets.rl.training import TrainingSpec, build_ppo_config, ray_session

    n = int(args["n_envs"])
    spec = replace(TrainingSpec(), num_envs_per_env_runner=n)
    prices = _train_bars()
    threads = _set_threads(args)
    env_class = VectorTradingEnv if args.get("path", "vector") == "vector" else TradingEnv
    windows, iterations = int(args.get("windows", 4)), int(args.get("iterations", 2))
    out: dict[str, Any] = {"torch_threads": threads, "n_envs": n}
    with ray_session(num_cpus=2):
        algo = build_ppo_config(spec, prices, env_class).build_algo()
        sb3, sb3_steps, out["sb3_hyperparameters"] = build_sb3(spec, prices, n)
        train_timer = _Timed(sb3.train)
        collect_timer = _Timed(sb3.collect_rollouts)
        sb3.train, sb3.collect_rollouts = train_timer, collect_timer
        out["build_s"] = time.perf_counter() - t_start
        try:
            result = algo.train()  # warm-up: first sampling and learner update
            sb3.learn(sb3_steps)
            # Timers from here on (not the warm-up), wall time per call: RLlib's own timers
            # are smoothed over iterations and still carry the slow first one.
            collect_timer.seconds = collect_timer.calls = 0
            train_timer.seconds = train_timer.calls = 0
            rl_sample = _Timed(algo.env_runner.sample)
            rl_update = _Timed(algo.learner_group.update)
            algo.env_runner.sample, algo.learner_group.update = rl_sample, rl_update
            rl_windows, sb3_windows, updates, episodes = [], [], [], []
            for w in range(windows):
                order = ("rllib", "sb3") if w % 2 == 0 else ("sb3", "rllib")
                for lib in order:
                    if lib == "rllib":
                        before = result[NUM_ENV_STEPS_SAMPLED_LIFETIME]
                        t0 = time.perf_counter()
                        for _ in range(iterations):
                            result = algo.train()
                            updates.append(
                                int(result[LEARNER_RESULTS][ALL_MODULES][NUM_MODULE_STEPS_TRAINED])
                                // spec.minibatch_size
                            )
                            episodes.append(int(result[ENV_RUNNER_RESULTS][NUM_EPISODES]))
                        seconds = time.perf_counter() - t0
                        steps = result[NUM_ENV_STEPS_SAMPLED_LIFETIME] - before
                        rl_windows.append({"steps": steps, "seconds": seconds})
                    else:
                        before = sb3.num_timesteps
                        t0 = time.perf_counter()
                        sb3.learn(iterations * sb3_steps, reset_num_timesteps=False)
                        seconds = time.perf_counter() - t0
                        sb3_windows.append(
                            {"steps": sb3.num_timesteps - before, "seconds": seconds}
                        )
            out.update(
                {
                    "rllib_windows": rl_windows,
                    "sb3_windows": sb3_windows,
                    "rllib_sampling_s": rl_sample.seconds / rl_sample.calls,
                    "rllib_learner_s": rl_update.seconds / rl_update.calls,
                    "sb3_collect_s": collect_timer.seconds / collect_timer.calls,
                    "sb3_train_s": train_timer.seconds / train_timer.calls,
                    "minibatch_updates": updates,
                    "episodes": episodes,
                    "sb3_minibatch_updates": spec.num_epochs
                    * math.ceil(sb3_steps / spec.minibatch_size),
                }
            )
            if args.get("profile"):
                out["profile"] = _profile_sampling(algo)
        finally:
            algo.stop()
    return out


def _profile_sampling(algo) -> dict[str, float]:
    """Where one iteration's sampling time goes (cProfile, local env runner): shares."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    algo.env_runner.sample()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)

    def cumulative(path: str, name: str) -> float:
        return sum(v[3] for k, v in stats.items() if k[0].endswith(path) and k[2] == name)

    def own(fragment: str) -> float:
        return sum(v[2] for k, v in stats.items() if fragment in k[0])

    total = cumulative("single_agent_env_runner.py", "_sample")
    parts = {
        "env step (VectorTradingEnv.step, or gymnasium's SyncVectorEnv of TradingEnvs)": (
            cumulative("rl_assets/rl/env.py", "step") or cumulative("sync_vector_env.py", "step")
        ),
        "RLModule forward_exploration (the 64x64 policy, torch)": cumulative(
            "torch/torch_rl_module.py", "forward_exploration"
        ),
        "connector pipelines (env-to-module, module-to-env; includes action sampling)": (
            cumulative("connector_pipeline_v2.py", "__call__")
        ),
        "SingleAgentEpisode add_env_step / add_env_reset": cumulative(
            "single_agent_episode.py", "add_env_step"
        )
        + cumulative("single_agent_episode.py", "add_env_reset"),
        "unbatch (per-env observations and actions)": cumulative("space_utils.py", "unbatch"),
        "episode callbacks (none registered; the calls)": cumulative(
            "single_agent_env_runner.py", "_make_on_episode_callback"
        ),
        "RLlib metrics logging (own time)": own("rllib/utils/metrics/"),
        "Ray metrics counters (own time)": own("ray/util/metrics.py"),
    }
    return {"total_s": total, **{k: v / total for k, v in parts.items()}}


def child(args: dict[str, Any]) -> None:
    harness.emit(child_side_by_side(args))


def _rate(windows: list[dict[str, float]]) -> list[float]:
    return [w["steps"] / w["seconds"] for w in windows]


def _measure(args: dict[str, Any], label: str, hogs: int = 0) -> dict[str, Any]:
    print(f"  training throughput: {label} ...", file=sys.stderr, flush=True)
    with harness.cpu_hogs(hogs):
        proc = harness.python_child("benchmarks.training_throughput", args, timeout=1800)
    res = proc["result"]
    rl, sb = _rate(res["rllib_windows"]), _rate(res["sb3_windows"])
    # Ratio per adjacent pair of windows (they ran back to back), then the median.
    ratios = [a / b for a, b in zip(rl, sb, strict=True)]
    return {
        "label": label,
        "args": args,
        "rllib": harness.summarize(rl),
        "sb3": harness.summarize(sb),
        "ratio": harness.summarize(ratios),
        "load": harness.load_of([proc]),
        "detail": res,
        "peak_rss_mib": proc["tree_peak_rss_mib"],
        "wall_s": proc["wall_s"],
    }


def run(quick: bool) -> dict[str, Any]:
    from rl_assets.rl.training import TrainingSpec

    default = TrainingSpec()
    # Windows are short (an iteration is 0.1-0.5 s): 7 pairs of 3 iterations keep the
    # ratio's spread within a few hundredths on a quiet machine.
    base = {"windows": 2 if quick else 7, "iterations": 1 if quick else 3, "torch_threads": 1}
    out: dict[str, Any] = {
        "base": base,
        "default_spec": {
            "num_envs_per_env_runner": default.num_envs_per_env_runner,
            "minibatch_size": default.minibatch_size,
            "train_batch_size": default.train_batch_size,
            "num_epochs": default.num_epochs,
            "episode_length": default.episode_length,
            "execution": default.execution,
        },
    }
    counts = (8, default.num_envs_per_env_runner) if quick else ENV_COUNTS
    out["vector"] = [
        _measure(
            {
                **base,
                "n_envs": n,
                "path": "vector",
                "profile": n == default.num_envs_per_env_runner,
            },
            f"RLlib project path vs SB3, {n} envs",
        )
        for n in sorted(set(counts))
    ]
    out["default_path"] = [
        _measure(
            {**base, "n_envs": n, "path": "default", "profile": n == 8},
            f"RLlib default path (TradingEnv, default connectors) vs SB3, {n} envs",
        )
        for n in (DEFAULT_PATH_ENV_COUNTS[:1] if quick else DEFAULT_PATH_ENV_COUNTS)
    ]
    short = {**base, "windows": 2, "iterations": 1}
    out["contended"] = [
        _measure(
            {**short, "n_envs": default.num_envs_per_env_runner, "torch_threads": threads},
            f"{CONTENDING_HOGS} busy processes beside, torch threads {threads or 'default'}",
            hogs=CONTENDING_HOGS,
        )
        for threads in (None, 1)
    ]
    # The best RLlib setting that keeps the update (the same minibatch updates per
    # iteration as the old default) against SB3's best setting over all env counts.
    reference_updates = out["default_path"][0]["detail"]["minibatch_updates"]
    same_update = [
        m for m in out["vector"] if set(m["detail"]["minibatch_updates"]) <= set(reference_updates)
    ]
    rows = same_update or out["vector"]
    out["best_rllib"] = max(rows, key=lambda m: m["rllib"]["median"])
    out["best_sb3"] = max(out["vector"], key=lambda m: m["sb3"]["median"])
    out["default_row"] = next(
        m for m in out["vector"] if m["args"]["n_envs"] == default.num_envs_per_env_runner
    )
    return out


def _verdict(ratio: float) -> str:
    return "met" if ratio >= TARGET_RATIO else f"missed by {TARGET_RATIO - ratio:.3f}"


def _row(m: dict[str, Any]) -> str:
    d, f = m["detail"], harness.fmt
    ups = sorted(set(d["minibatch_updates"]))
    eps = d["episodes"]
    return (
        f"| {d['n_envs']} | {f(m['rllib'])} | {f(m['sb3'])} | **{m['ratio']['median']:.2f}x** | "
        f"{d['rllib_sampling_s']:.3f} / {d['rllib_learner_s']:.3f} | "
        f"{d['sb3_collect_s']:.3f} / {d['sb3_train_s']:.3f} | {', '.join(map(str, ups))} / "
        f"{d['sb3_minibatch_updates']} | {min(eps)}-{max(eps)} | "
        f"{harness.fmt_load(m['load'])} |"
    )


HEADER = [
    "| envs | RLlib steps/s | SB3 steps/s | RLlib / SB3 | RLlib sampling / learner s "
    "per iteration | SB3 collect / train s | minibatch updates per iteration RLlib / SB3 "
    "| RLlib episodes per iteration | load |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def markdown(r: dict[str, Any]) -> str:
    base, d = r["base"], r["default_spec"]
    default = r["default_row"]
    lines = [
        "## 2. Training throughput (side by side in one process)",
        "",
        "Env steps per second of PPO (sampling and learning; synchronous), RLlib from this "
        f"project's `build_ppo_config(TrainingSpec(...))` (train_batch_size "
        f"{d['train_batch_size']}, minibatch {d['minibatch_size']}, {d['num_epochs']} epochs, "
        "64x64, torch threads 1, local env runner) and Stable-Baselines3 PPO on the same "
        "number of TradingEnvs (DummyVecEnv) with the same update, both on the same env: "
        "(open, close) bars of the benchmarks' train window (2020-01-01..2023-01-31), "
        f"execution `{d.get('execution', 'next_open')}` (a decision after a close is "
        "taken at the next open). **One process per "
        "row**: one warm-up iteration each, then "
        f"{base['windows']} windows of {base['iterations']} iteration(s) alternating "
        "RLlib and SB3 (A B B A), so both see the same load. Figures: median window "
        "(min-max, n); the ratio is the median of the per-pair ratios. Timers are wall "
        "seconds per iteration after the warm-up (RLlib's env runner sample and learner "
        "group update, SB3's collect_rollouts and train, each wrapped). Minibatch updates: RLlib's own count (modules steps trained / "
        "minibatch size); SB3 makes epochs x ceil(rollout / minibatch).",
        "",
        "### The project's path: VectorTradingEnv, one connector piece each way, "
        "trimmed learner pipeline",
        "",
        *HEADER,
        *[_row(m) for m in r["vector"]],
        "",
        "### RLlib's default path (the previous configuration): TradingEnv through "
        "gymnasium's SyncVectorEnv and RLlib's default connectors",
        "",
        *HEADER,
        *[_row(m) for m in r["default_path"]],
        "",
    ]
    ratio = default["ratio"]["median"]
    old8 = r["default_path"][0]
    new8 = next((m for m in r["vector"] if m["args"]["n_envs"] == 8), None)
    lines += [
        f"**At the project's default ({default['args']['n_envs']} envs per runner): RLlib "
        f"{default['rllib']['median']:,.0f} against SB3 {default['sb3']['median']:,.0f} "
        f"steps/s, {ratio:.3f}x** (target >= {TARGET_RATIO}: {_verdict(ratio)}).",
    ]
    if new8:
        lines[-1] += (
            f" At 8 envs: {new8['ratio']['median']:.3f}x ({_verdict(new8['ratio']['median'])}"
            f"), against {old8['ratio']['median']:.2f}x for RLlib's default path at 8 envs "
            f"(the previous configuration: {old8['rllib']['median']:,.0f} steps/s; the project "
            f"path is {new8['rllib']['median'] / old8['rllib']['median']:.2f}x faster there, "
            f"{default['rllib']['median'] / old8['rllib']['median']:.2f}x at its default)."
        )
    best_rl, best_sb = r["best_rllib"], r["best_sb3"]
    best_ratio = best_rl["rllib"]["median"] / best_sb["sb3"]["median"]
    lines += [
        "",
        f"**Best against best:** RLlib's fastest setting that keeps the update "
        f"({best_rl['args']['n_envs']} envs: {best_rl['rllib']['median']:,.0f} steps/s) "
        f"against SB3's fastest ({best_sb['args']['n_envs']} envs: "
        f"{best_sb['sb3']['median']:,.0f} steps/s): **{best_ratio:.2f}x**. Env counts whose "
        "minibatch updates per iteration differ from the previous configuration's are shown "
        "but not chosen: more envs make more episode chunks per batch, each with one "
        "bootstrap row, and past 2048 rows RLlib makes a 41st minibatch update.",
        "",
    ]
    w = default["detail"]
    iteration_s = d["train_batch_size"] / default["rllib"]["median"]
    sb3_iteration_s = d["train_batch_size"] / default["sb3"]["median"]
    lines += [
        f"Where the time goes at {default['args']['n_envs']} envs: one iteration takes "
        f"{iteration_s:.3f} s in RLlib ({w['rllib_sampling_s']:.3f} s sampling, "
        f"{w['rllib_learner_s']:.3f} s learner update) against {sb3_iteration_s:.3f} s in "
        f"SB3 ({w['sb3_collect_s']:.3f} s collecting, {w['sb3_train_s']:.3f} s training): "
        f"of the difference, {w['rllib_learner_s'] - w['sb3_train_s']:.3f} s is the learner "
        f"update ({w['rllib_learner_s'] / w['sb3_train_s']:.1f}x SB3's for the same "
        f"minibatch updates, section 2b) and {w['rllib_sampling_s'] - w['sb3_collect_s']:.3f}"
        " s sampling (RLlib's per-step bookkeeping around the module call: connector "
        "pipelines, episode objects, unbatching, callbacks and metrics, profile below; the "
        "env itself is a few percent).",
    ]
    prof = default["detail"].get("profile")
    if prof:
        lines += [
            "",
            f"Profile of one RLlib sampling pass at {default['args']['n_envs']} envs "
            f"({prof['total_s']:.2f} s under cProfile, which inflates Python call overhead; "
            "shares of it, overlapping where one part calls another):",
            "",
            "| part | share of sampling time |",
            "|---|---:|",
            *[f"| {k} | {v:.1%} |" for k, v in prof.items() if k != "total_s"],
        ]
    old_prof = old8["detail"].get("profile")
    if old_prof:
        lines += [
            "",
            "The same profile on RLlib's default path at 8 envs, for comparison "
            f"({old_prof['total_s']:.2f} s):",
            "",
            "| part | share of sampling time |",
            "|---|---:|",
            *[f"| {k} | {v:.1%} |" for k, v in old_prof.items() if k != "total_s"],
        ]
    lines += [
        "",
        f"### Torch threads on a shared machine ({CONTENDING_HOGS} busy-looping processes "
        "beside, side by side)",
        "",
        "| torch threads | RLlib steps/s | SB3 steps/s | RLlib / SB3 | load |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {m['detail']['torch_threads']}{' (default)' if not m['args']['torch_threads'] else ''}"
            f" | {harness.fmt(m['rllib'])} | {harness.fmt(m['sb3'])} | "
            f"{m['ratio']['median']:.2f}x | {harness.fmt_load(m['load'])} |"
            for m in r["contended"]
        ],
        "",
        "Training uses one torch thread by default (`TrainingSpec.torch_threads`): with "
        "other work on the cores, torch's default pool (one thread per core) waits on "
        "itself.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
