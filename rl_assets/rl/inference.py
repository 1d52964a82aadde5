"""A trained policy in use: its position for the next session, from the same observation the
env builds at the last bar (no Dagster here)."""

from dataclasses import dataclass
from typing import Any

import numpy as np

from rl_assets.rl.env import ACTION_SETS, TradingEnv


@dataclass
class NextPosition:
    position: float  # to enter at the next execution (the next session's open by default)
    action: int
    probabilities: dict[str, float]  # position -> probability under the policy
    held: float  # the position the policy held into the last bar
    observation: list[float]


def next_position(module, closes: np.ndarray, env_config: dict[str, Any]) -> NextPosition:
    """Roll the greedy policy over all of ``closes`` ((open, close) bars, or closes for the
    close-based executions; its own position evolves as in the env), then act on the
    observation at the last bar: the position to execute next (per ``execution``)."""
    import torch

    env = TradingEnv(
        {**env_config, "closes": closes, "random_start": False, "episode_length": None}
    )
    obs, _ = env.reset(seed=0)

    def logits(observation: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.as_tensor(observation[None])})
        return out["action_dist_inputs"][0].numpy().astype(np.float64)

    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(int(np.argmax(logits(obs))))
        done = terminated or truncated
    scores = logits(obs)  # the observation at the last bar: returns up to it and the position
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    action = int(np.argmax(scores))
    positions = ACTION_SETS[env_config["action_set"]]
    return NextPosition(
        position=float(positions[action]),
        action=action,
        probabilities={str(p): float(q) for p, q in zip(positions, probs, strict=True)},
        held=float(obs[-1]),
        observation=[float(x) for x in obs],
    )
