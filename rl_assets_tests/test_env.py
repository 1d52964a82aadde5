"""TradingEnv: gymnasium API, seeding, costs in the reward, no look-ahead."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rl_assets.rl.env import TradingEnv, constant_policy, rollout, simple_returns


def make(closes, **kw):
    return TradingEnv({"closes": closes, "window": 5, "episode_length": 50, **kw})


def test_passes_gymnasium_env_checker(closes):
    check_env(make(closes), skip_render_check=True)


def test_same_seed_same_trajectory(closes):
    def trajectory(seed):
        env = make(closes)
        obs, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        out = [info["index"]]
        for _ in range(30):
            obs, reward, *_ = env.step(env.action_space.sample())
            out.append(reward)
        return out

    assert trajectory(3) == trajectory(3)
    assert trajectory(3) != trajectory(4)


def test_reward_is_next_return_times_position_minus_cost():
    closes = np.array([100, 101, 102, 100, 103, 104, 105, 106, 107, 108.0])
    env = TradingEnv(
        {
            "closes": closes,
            "window": 2,
            "episode_length": None,
            "random_start": False,
            "transaction_cost": 0.001,
            "reward_scale": 1.0,
        }
    )
    env.reset(seed=0)
    long_action = 2  # short_flat_long
    _, reward, *_, info = env.step(long_action)
    # Decision at index 2 (close 102) earns the move to index 3 (close 100), minus entry cost.
    assert reward == pytest.approx((100 / 102 - 1) - 0.001)
    _, reward, *_ = env.step(0)  # long -> short: two units of cost
    assert reward == pytest.approx(-(103 / 100 - 1) - 0.002)
    _, reward, *_ = env.step(0)  # hold short: no cost
    assert reward == pytest.approx(-(104 / 103 - 1))


def test_observation_sees_only_the_past(closes):
    """Changing prices after index i must not change the observation at i."""
    env = make(closes, random_start=False, episode_length=None)
    obs_before, _ = env.reset(seed=0)
    for _ in range(10):
        obs_before, *_ = env.step(1)
    i = env._i
    future_changed = closes.copy()
    future_changed[i + 1 :] *= 1.5
    env2 = make(future_changed, random_start=False, episode_length=None)
    obs_after, _ = env2.reset(seed=0)
    for _ in range(10):
        obs_after, *_ = env2.step(1)
    np.testing.assert_array_equal(obs_before, obs_after)
    # And the last feature is today's return, not tomorrow's.
    r = simple_returns(closes)
    assert obs_before[-2] == pytest.approx(np.clip(r[i] * 100, -10, 10), rel=1e-5)


def test_rollout_trades_every_day_once(closes):
    cfg = {"window": 5, "action_set": "long_flat", "transaction_cost": 0.0}
    rets, positions = rollout(constant_policy(cfg, 1.0), closes[:100], cfg)
    assert len(rets) == 100 - 1 - 5
    np.testing.assert_allclose(rets, simple_returns(closes[:100])[6:])
    assert set(positions) == {1.0}


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"window": 0}, "window=0"),
        ({"action_set": "leveraged"}, "action_set='leveraged'"),
        ({"episode_length": 10_000}, "episode_length=10000"),
    ],
)
def test_bad_config_names_the_value(closes, kw, message):
    with pytest.raises(ValueError, match=message):
        make(closes, **kw)
