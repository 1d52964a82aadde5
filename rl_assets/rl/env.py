"""A single-asset daily trading env (one and natively vectorised): past-only observations, trades as the signal is traded."""

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode

ACTION_SETS: dict[str, tuple[float, ...]] = {
    "long_flat": (0.0, 1.0),
    "short_flat_long": (-1.0, 0.0, 1.0),
}

# When a position decided from the bars up to close t is executed (``execution``):
# - "next_open": at the open of session t+1 (the default; what a signal written after the
#   close can be traded at). Day t+1 then earns the old position over the night (close t
#   to open t+1) plus the new one over the day (open t+1 to close t+1).
# - "next_close": at the close of session t+1 (a market-on-close order the next day): the
#   old position earns all of day t+1.
# - "same_close": at the close t just observed. Nobody can trade that (the signal is only
#   computed after that close); a labelled research option the promotion gate refuses.
# Every model charges ``transaction_cost`` per unit of position change on the day the
# trade executes (day t+1) and marks to closes, so every series is one return per session.
EXECUTIONS = ("next_open", "next_close", "same_close")
TRADABLE_EXECUTIONS = ("next_open", "next_close")

DEFAULTS: dict[str, Any] = {
    "window": 10,
    "episode_length": 252,
    "transaction_cost": 0.0002,
    "action_set": "short_flat_long",
    "return_scale": 100.0,
    "reward_scale": 100.0,
    "random_start": True,
    "execution": "next_open",
}


def simple_returns(closes: np.ndarray) -> np.ndarray:
    """r[i] = closes[i] / closes[i-1] - 1, with r[0] = 0."""
    closes = np.asarray(closes, dtype=np.float64)
    r = np.zeros_like(closes)
    r[1:] = closes[1:] / closes[:-1] - 1.0
    return r


def bars(frame) -> np.ndarray:
    """The (open, close) columns of a price frame as an ``(n, 2)`` float array: what every
    env, rollout and training function takes as its prices (1-D closes alone are enough
    only for the close-based executions)."""
    return np.ascontiguousarray(frame[["open", "close"]].to_numpy(dtype=np.float64))


def closes_of(prices) -> np.ndarray:
    """The closes of 1-D closes or ``(n, 2)`` (open, close) bars."""
    prices = np.asarray(prices, dtype=np.float64)
    return prices[:, 1] if prices.ndim == 2 else prices


def execution_legs(prices, execution: str) -> tuple[np.ndarray, np.ndarray]:
    """(old, new): per-unit returns of day i earned by the position held before the
    decision at close i-1 and by the position decided then, under ``execution``.

    Day i's net return is ``old_position * old[i] + new_position * new[i] - cost * |new_position
    - old_position|`` (see ``EXECUTIONS``); index 0 is 0. ``prices``: 1-D closes or
    ``(n, 2)`` (open, close) bars; "next_open" needs the opens.
    """
    if execution not in EXECUTIONS:
        raise ValueError(f"execution={execution!r}; choose one of {list(EXECUTIONS)}")
    prices = np.asarray(prices, dtype=np.float64)
    closes = closes_of(prices)
    close_to_close = simple_returns(closes)
    zero = np.zeros_like(closes)
    if execution == "same_close":
        return zero, close_to_close
    if execution == "next_close":
        return close_to_close, zero
    if prices.ndim != 2:
        raise ValueError(
            "execution='next_open' needs each session's open: pass (open, close) bars "
            "(rl_assets.rl.env.bars(prices_frame)), not closes alone, or choose "
            "execution='next_close'"
        )
    opens = prices[:, 0]
    night, day = zero.copy(), zero.copy()
    night[1:] = opens[1:] / closes[:-1] - 1.0
    day[1:] = closes[1:] / opens[1:] - 1.0
    return night, day


class TradingEnv(gym.Env):
    """Trade one asset on daily bars, executed as the signal can be traded.

    At index ``i`` (after close ``i``) the agent sees the last ``window`` close-to-close
    returns up to and including ``r[i]`` (scaled, clipped) and its current position; it
    picks a new position, executed per ``execution`` (default: at the open of session
    ``i + 1``), and earns day ``i + 1``'s return marked at the closes:
    ``old * night[i + 1] + new * day[i + 1] - transaction_cost * |new - old|`` for
    "next_open" (``execution_legs`` for every model). The reward is that net return
    times ``reward_scale``: costs are in the reward, not only in the reported profit.
    Nothing after ``i`` enters the observation, and a reward reaches one bar past its
    decision, never further: an env cut at a window's last bar uses no later price.

    ``config`` keys: ``closes`` (required: 1-D closes, or ``(n, 2)`` (open, close) bars,
    which "next_open" needs), and optionally the keys of ``DEFAULTS``.
    ``episode_length=None`` runs from the first tradable index to the end of the data;
    ``random_start`` draws the start from ``np_random``.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: dict | None = None):
        cfg = {**DEFAULTS, **dict(config or {})}
        prices = np.asarray(cfg["closes"], dtype=np.float64)
        self.window = int(cfg["window"])
        if self.window < 1:
            raise ValueError(f"window={self.window}; it must be at least 1")
        if not (prices.ndim == 1 or (prices.ndim == 2 and prices.shape[1] == 2)):
            raise ValueError(
                f"TradingEnv prices have shape {prices.shape}; pass 1-D closes or (n, 2) "
                "(open, close) bars"
            )
        if len(prices) < self.window + 2:
            raise ValueError(
                f"TradingEnv got {len(prices)} closes; one step needs at least "
                f"{self.window + 2} (window {self.window} + 2)"
            )
        if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
            raise ValueError("TradingEnv prices must be finite and positive")
        closes = closes_of(prices)
        self.execution = str(cfg["execution"])
        self._old_leg, self._new_leg = execution_legs(prices, self.execution)
        if cfg["action_set"] not in ACTION_SETS:
            raise ValueError(
                f"action_set={cfg['action_set']!r}; choose one of {sorted(ACTION_SETS)}"
            )
        self.positions = np.asarray(ACTION_SETS[cfg["action_set"]], dtype=np.float64)
        self.transaction_cost = float(cfg["transaction_cost"])
        self.reward_scale = float(cfg["reward_scale"])
        self.random_start = bool(cfg["random_start"])
        self.returns = simple_returns(closes)
        self.last_index = len(closes) - 1
        max_length = self.last_index - self.window
        length = cfg["episode_length"]
        self.episode_length = max_length if length is None else int(length)
        if not 1 <= self.episode_length <= max_length:
            raise ValueError(
                f"episode_length={self.episode_length} does not fit {len(closes)} closes "
                f"with window {self.window}; use 1..{max_length}"
            )
        # Row i holds returns r[i-window+1..i]: prepared once so a step is an index.
        scaled = np.clip(self.returns * float(cfg["return_scale"]), -10.0, 10.0)
        self._features = np.zeros((len(closes), self.window), dtype=np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(scaled, self.window)
        self._features[self.window - 1 :] = windows
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (self.window + 1,), np.float32)
        self.action_space = gym.spaces.Discrete(len(self.positions))
        self._i = self.window
        self._steps = 0
        self._position = 0.0

    def _obs(self) -> np.ndarray:
        obs = np.empty(self.window + 1, dtype=np.float32)
        obs[:-1] = self._features[self._i]
        obs[-1] = self._position
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.random_start:
            high = self.last_index - self.episode_length  # inclusive
            self._i = int(self.np_random.integers(self.window, high + 1))
        else:
            self._i = self.window
        self._steps = 0
        self._position = 0.0
        return self._obs(), {"index": self._i}

    def step(self, action):
        new_position = float(self.positions[int(action)])
        cost = self.transaction_cost * abs(new_position - self._position)
        j = self._i + 1
        net = self._position * self._old_leg[j] + new_position * self._new_leg[j] - cost
        self._position = new_position
        self._i += 1
        self._steps += 1
        terminated = self._i >= self.last_index
        truncated = (not terminated) and self._steps >= self.episode_length
        info = {"net_return": net, "position": new_position, "index": self._i}
        return self._obs(), float(net * self.reward_scale), terminated, truncated, info


class VectorTradingEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of :class:`TradingEnv` stepped together in numpy.

    Each sub-env has TradingEnv's observation, reward, costs, action set and episode
    rules, and its own random generator seeded as gymnasium's ``SyncVectorEnv`` seeds
    its sub-envs (``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``): with
    ``stagger=False`` it returns exactly what ``SyncVectorEnv`` of TradingEnvs returns
    for the same seed and actions (tested). Autoreset is NEXT_STEP, the only mode RLlib's
    env runner handles: the step after an episode ends resets that sub-env, ignores its
    action and returns its first observation with reward 0 (not a counted step).

    ``stagger=True`` (the default) ends the first episode of sub-env ``k`` after
    ``ceil(episode_length * (k + 1) / num_envs)`` steps (later episodes are full
    length), so episode ends spread evenly over time instead of all sub-envs ending
    together. ``infos`` are empty: per-step trading details come from ``rollout``.

    ``config``: TradingEnv's keys, plus ``num_envs`` (RLlib passes it with
    ``gym_env_vectorize_mode="vector_entry_point"``) and ``stagger``.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, config: dict | None = None):
        cfg = dict(config or {})
        self.num_envs = int(cfg.get("num_envs", 1))
        if self.num_envs < 1:
            raise ValueError(f"num_envs={self.num_envs}; it must be at least 1")
        self.stagger = bool(cfg.get("stagger", True))
        template = TradingEnv(cfg)  # validates the config; its prepared arrays are shared
        self.window = template.window
        self.episode_length = template.episode_length
        self.random_start = template.random_start
        self.last_index = template.last_index
        self.transaction_cost = template.transaction_cost
        self.reward_scale = template.reward_scale
        self._position_of_action = template.positions
        # [i] = day i + 1's per-unit returns of the old and the new position.
        self._next_old = np.append(template._old_leg[1:], 0.0)
        self._next_new = np.append(template._new_leg[1:], 0.0)
        self._features = template._features
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        n = self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._index = np.full(n, self.window, dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._length = np.full(n, self.episode_length, dtype=np.int64)
        self._position = np.zeros(n, dtype=np.float64)
        self._autoreset = np.zeros(n, dtype=bool)
        self._any_resetting = False

    def first_episode_lengths(self) -> np.ndarray:
        """Truncation length of each sub-env's first episode after ``reset``."""
        n, length = self.num_envs, self.episode_length
        if not self.stagger:
            return np.full(n, length, dtype=np.int64)
        return np.array([math.ceil(length * (k + 1) / n) for k in range(n)], dtype=np.int64)

    def _start(self, k: int) -> int:
        if not self.random_start:
            return self.window
        rng = self._rngs[k]
        if rng is None:
            rng, _ = seeding.np_random()
            self._rngs[k] = rng
        high = self.last_index - self.episode_length  # inclusive, as TradingEnv.reset
        return int(rng.integers(self.window, high + 1))

    def _obs(self) -> np.ndarray:
        obs = np.empty((self.num_envs, self.window + 1), dtype=np.float32)
        obs[:, :-1] = self._features[self._index]
        obs[:, -1] = self._position
        return obs

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, int):
            seeds = [seed + k for k in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"got {len(seeds)} seeds for num_envs={n}")
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
        for k, s in enumerate(seeds):
            if s is not None:
                self._rngs[k], _ = seeding.np_random(s)
        self._index[:] = [self._start(k) for k in range(n)]
        self._steps[:] = 0
        self._position[:] = 0.0
        self._length[:] = self.first_episode_lengths()
        self._autoreset[:] = False
        self._any_resetting = False
        return self._obs(), {}

    def step(self, actions):
        new_position = self._position_of_action[actions]
        resetting = self._autoreset
        if self._any_resetting:
            for k in np.flatnonzero(resetting):
                self._index[k] = self._start(int(k))
            self._steps[resetting] = 0
            self._length[resetting] = self.episode_length
            self._position[resetting] = 0.0
            new_position[resetting] = 0.0
        # The same arithmetic, in the same order, as TradingEnv.step.
        cost = self.transaction_cost * np.abs(new_position - self._position)
        index = self._index
        net = self._position * self._next_old[index] + new_position * self._next_new[index]
        reward = (net - cost) * self.reward_scale
        self._position = new_position
        if self._any_resetting:
            reward[resetting] = 0.0
            moved = ~resetting
            self._index += moved
            self._steps += moved
            terminated = moved & (self._index >= self.last_index)
        else:
            self._index += 1
            self._steps += 1
            terminated = self._index >= self.last_index
        truncated = self._steps >= self._length
        truncated &= ~terminated
        if self._any_resetting:
            truncated &= moved
        self._autoreset = terminated | truncated
        self._any_resetting = bool(self._autoreset.any())
        return self._obs(), reward, terminated, truncated, {}


def rollout(
    policy: Callable[[np.ndarray], int], closes: np.ndarray, env_config: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``policy`` once over all of ``closes`` (closes or (open, close) bars) from the
    first tradable index, executed per ``env_config``'s ``execution``.

    Returns (daily net returns, positions): one entry per traded day, i.e.
    ``len(closes) - 1 - window`` of each; ``positions[k]`` is the position decided at the
    close before day ``k`` (under "next_open" held from that day's open).
    """
    cfg = {**env_config, "closes": closes, "random_start": False, "episode_length": None}
    env = TradingEnv(cfg)
    obs, _ = env.reset(seed=0)
    rets, pos = [], []
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        rets.append(info["net_return"])
        pos.append(info["position"])
        done = terminated or truncated
    return np.asarray(rets), np.asarray(pos)


def constant_policy(env_config: dict, position: float) -> Callable[[np.ndarray], int]:
    """A policy that always holds ``position`` (e.g. 1.0 for buy-and-hold)."""
    positions = ACTION_SETS[{**DEFAULTS, **env_config}["action_set"]]
    if position not in positions:
        raise ValueError(f"position {position} is not in action set {positions}")
    action = positions.index(position)
    return lambda obs: action
