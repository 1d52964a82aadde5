"""A single-asset daily trading env: observations from the past only, costs in the reward."""

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

ACTION_SETS: dict[str, tuple[float, ...]] = {
    "long_flat": (0.0, 1.0),
    "short_flat_long": (-1.0, 0.0, 1.0),
}

DEFAULTS: dict[str, Any] = {
    "window": 10,
    "episode_length": 252,
    "transaction_cost": 0.0002,
    "action_set": "short_flat_long",
    "return_scale": 100.0,
    "reward_scale": 100.0,
    "random_start": True,
}


def simple_returns(closes: np.ndarray) -> np.ndarray:
    """r[i] = closes[i] / closes[i-1] - 1, with r[0] = 0."""
    closes = np.asarray(closes, dtype=np.float64)
    r = np.zeros_like(closes)
    r[1:] = closes[1:] / closes[:-1] - 1.0
    return r


class TradingEnv(gym.Env):
    """Trade one asset at daily closes.

    At index ``i`` the agent sees the last ``window`` daily returns up to and
    including ``r[i]`` (scaled, clipped) and its current position; it picks a
    position held from close ``i`` to close ``i + 1`` and earns
    ``position * r[i + 1] - transaction_cost * |position change|``. The reward is
    that net return times ``reward_scale``: costs are in the reward, not only in
    the reported profit. Nothing after ``i`` enters the observation.

    ``config`` keys: ``closes`` (required, 1-D array), and optionally the keys of
    ``DEFAULTS``. ``episode_length=None`` runs from the first tradable index to
    the end of the data; ``random_start`` draws the start from ``np_random``.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: dict | None = None):
        cfg = {**DEFAULTS, **dict(config or {})}
        closes = np.asarray(cfg["closes"], dtype=np.float64)
        self.window = int(cfg["window"])
        if self.window < 1:
            raise ValueError(f"window={self.window}; it must be at least 1")
        if closes.ndim != 1 or len(closes) < self.window + 2:
            raise ValueError(
                f"TradingEnv got {len(closes)} closes; one step needs at least "
                f"{self.window + 2} (window {self.window} + 2)"
            )
        if not np.all(np.isfinite(closes)) or np.any(closes <= 0):
            raise ValueError("TradingEnv closes must be finite and positive")
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
        net = new_position * self.returns[self._i + 1] - cost
        self._position = new_position
        self._i += 1
        self._steps += 1
        terminated = self._i >= self.last_index
        truncated = (not terminated) and self._steps >= self.episode_length
        info = {"net_return": net, "position": new_position, "index": self._i}
        return self._obs(), float(net * self.reward_scale), terminated, truncated, info


def rollout(
    policy: Callable[[np.ndarray], int], closes: np.ndarray, env_config: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``policy`` once over all of ``closes`` from the first tradable index.

    Returns (daily net returns, positions): one entry per traded day, i.e.
    ``len(closes) - 1 - window`` of each.
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
