"""Env throughput: TradingEnv against a bare numpy loop, VectorTradingEnv against SyncVectorEnv.

    .venv/bin/python -m benchmarks.env_throughput '{"steps": 200000, "repeats": 5}'

runs one measurement (the child) and prints its JSON; ``run()`` is what benchmarks.run calls.
The bare loop reads the env's own prepared arrays (feature windows, the per-unit returns
of the old and the new position) and does the same per-step arithmetic: position from
the action, cost, net return, reward, the observation copy and the end-of-episode test,
without the gym.Env method calls, the info dict and the numpy-scalar conversions.

Every env here trades (open, close) bars of the benchmarks' train window
(``rl_assets.rl.env.bars``) with the default execution: a decision after close t is taken
at the open of t+1, so a day's net return is the old position over the night plus the new
one over the day, less costs (one more multiply-add per step than the close-to-close env
of earlier runs, in the env and in the bare loop alike).
"""

import sys
import time
from typing import Any

import numpy as np

from benchmarks import harness

TARGET_RATIO = 0.5


def bare_loop(env, actions: np.ndarray) -> float:
    """The same arithmetic as TradingEnv.step/_obs/reset over the env's arrays; seconds."""
    features, positions = env._features, env.positions
    old_leg, new_leg = env._old_leg, env._new_leg  # per execution (rl_assets.rl.env)
    tc, scale, window = env.transaction_cost, env.reward_scale, env.window
    last, length = env.last_index, env.episode_length
    rng = np.random.default_rng(0)
    high = last - length
    i, steps, position = window, 0, 0.0
    t0 = time.perf_counter()
    for a in actions:
        new_position = positions[a]
        cost = tc * abs(new_position - position)
        net = position * old_leg[i + 1] + new_position * new_leg[i + 1] - cost
        position = new_position
        i += 1
        steps += 1
        obs = np.empty(window + 1, dtype=np.float32)
        obs[:-1] = features[i]
        obs[-1] = position
        _reward = net * scale
        if i >= last or steps >= length:
            i, steps, position = int(rng.integers(window, high + 1)), 0, 0.0
            obs = np.empty(window + 1, dtype=np.float32)
            obs[:-1] = features[i]
            obs[-1] = position
    return time.perf_counter() - t0


def env_loop(env, actions: np.ndarray) -> float:
    """TradingEnv.step over the same actions, reset at every episode end; seconds."""
    env.reset(seed=0)
    step, reset = env.step, env.reset
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = step(a)
        if terminated or truncated:
            reset()
    return time.perf_counter() - t0


VECTOR_ENVS = 16


def vector_loops(prices, steps: int, n: int) -> tuple[float, float]:
    """Seconds for ``steps`` env steps (``steps / n`` vector steps, random actions, NEXT_STEP
    autoreset) of VectorTradingEnv and of gymnasium's SyncVectorEnv of TradingEnvs."""
    import gymnasium as gym

    from rl_assets.rl.env import TradingEnv, VectorTradingEnv

    cfg = {"closes": prices}  # (open, close) bars; the default next-open execution
    vector = VectorTradingEnv({**cfg, "num_envs": n})
    sync = gym.vector.SyncVectorEnv(
        [lambda: TradingEnv(cfg) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
    )
    actions = np.random.default_rng(0).integers(0, 3, (steps // n, n))
    out = []
    for env in (vector, sync):
        env.reset(seed=0)
        step = env.step
        t0 = time.perf_counter()
        for a in actions:
            step(a)
        out.append(time.perf_counter() - t0)
    return out[0], out[1]


def child(args: dict[str, Any]) -> None:
    from rl_assets import constants
    from rl_assets.data.synthetic import generate_prices
    from rl_assets.rl.env import TradingEnv, bars

    prices = generate_prices(constants.GENERATOR_START, constants.GENERATOR_END)
    train = bars(prices.loc[constants.TRAIN_START : constants.TRAIN_END])
    env = TradingEnv({"closes": train})
    steps = int(args["steps"])
    actions = np.random.default_rng(0).integers(0, env.action_space.n, steps)
    # Actions as RLlib hands them to a single env: numpy integers from the sampled batch.
    env_loop(env, actions[:2000])  # warm-up
    bare_loop(env, actions[:2000])
    # SyncVectorEnv runs at a fifth of the single env's speed: a quarter of the steps.
    vector_steps = steps // 4
    env_s, bare_s, vector_s, sync_s = [], [], [], []
    for _ in range(int(args["repeats"])):  # interleaved: all see the same load
        env_s.append(env_loop(env, actions))
        bare_s.append(bare_loop(env, actions))
        v, sy = vector_loops(train, vector_steps, VECTOR_ENVS)
        vector_s.append(v)
        sync_s.append(sy)
    harness.emit(
        {
            "env_steps_per_s": [steps / s for s in env_s],
            "bare_steps_per_s": [steps / s for s in bare_s],
            "vector_steps_per_s": [vector_steps / s for s in vector_s],
            "sync_steps_per_s": [vector_steps / s for s in sync_s],
            "steps": steps,
            "rows": len(train),
            "execution": env.execution,
        }
    )


def run(quick: bool) -> dict[str, Any]:
    args = {"steps": 20_000 if quick else 200_000, "repeats": 3 if quick else 7}
    proc = harness.python_child("benchmarks.env_throughput", args, timeout=600)
    res = proc["result"]
    ratios = [e / b for e, b in zip(res["env_steps_per_s"], res["bare_steps_per_s"], strict=True)]
    return {
        "args": args,
        "env": harness.summarize(res["env_steps_per_s"]),
        "bare": harness.summarize(res["bare_steps_per_s"]),
        "ratio": harness.summarize(ratios),
        "execution": res["execution"],
        "vector": harness.summarize(res["vector_steps_per_s"]),
        "sync": harness.summarize(res["sync_steps_per_s"]),
        "load": harness.load_of([proc]),
        "runs": [proc],
    }


def markdown(r: dict[str, Any]) -> str:
    ratio = r["ratio"]["median"]
    verdict = (
        f"met ({ratio:.0%} >= {TARGET_RATIO:.0%})"
        if ratio >= TARGET_RATIO
        else f"MISSED by {TARGET_RATIO - ratio:.0%} points ({ratio:.0%} < {TARGET_RATIO:.0%})"
    )
    return "\n".join(
        [
            "## 1. Env throughput",
            "",
            "TradingEnv on (open, close) bars of the benchmarks' train window "
            f"(2020-01-01..2023-01-31, execution `{r.get('execution', 'next_open')}`: a "
            "decision after a close is taken at the next open), "
            f"{r['args']['steps']:,} random actions per repeat, episodes of 252 steps, reset "
            f"at each end; load average {harness.fmt_load(r['load'])}.",
            "",
            "| loop | steps/s, median (min-max, n) |",
            "|---|---:|",
            f"| TradingEnv.step | {harness.fmt(r['env'])} |",
            f"| bare numpy loop, same arrays and arithmetic | {harness.fmt(r['bare'])} |",
            f"| ratio env / bare (per repeat) | {harness.fmt(r['ratio'], 2)} |",
            "",
            f"Target: env >= {TARGET_RATIO:.0%} of the bare loop: **{verdict}**. "
            f"One env step costs {1e6 / r['env']['median']:.1f} us, the bare loop "
            f"{1e6 / r['bare']['median']:.1f} us; the difference is the method calls, the "
            "`info` dict and the numpy-scalar conversions of `step`.",
            "",
            f"Vectorised, {VECTOR_ENVS} sub-envs (env steps/s, random actions, autoreset on "
            "the next step as RLlib needs it):",
            "",
            "| vector env | env steps/s |",
            "|---|---:|",
            f"| VectorTradingEnv (numpy, all sub-envs at once; training's env) | "
            f"{harness.fmt(r['vector'])} |",
            f"| gymnasium SyncVectorEnv of TradingEnvs (RLlib's default vectorisation) | "
            f"{harness.fmt(r['sync'])} |",
            "",
            f"VectorTradingEnv is {r['vector']['median'] / r['sync']['median']:.1f}x "
            "SyncVectorEnv here: one vector step costs "
            f"{1e6 * VECTOR_ENVS / r['vector']['median']:.0f} us against "
            f"{1e6 * VECTOR_ENVS / r['sync']['median']:.0f} us.",
            "",
        ]
    )


if __name__ == "__main__":
    import json

    child(json.loads(sys.argv[1]))
