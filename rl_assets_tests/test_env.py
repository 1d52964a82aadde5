"""TradingEnv and VectorTradingEnv: gymnasium API, seeding, costs in the reward, no look-ahead."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils import env_checker as checker
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import check_obs, env_reset_passive_checker

from rl_assets.rl.env import (
    TradingEnv,
    VectorTradingEnv,
    constant_policy,
    rollout,
    simple_returns,
)


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
            "execution": "same_close",  # the research model; next open: test_walk_forward.py
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


def test_closes_alone_cannot_be_traded_at_the_next_open():
    closes = np.array([100, 101, 102, 100, 103, 104, 105, 106, 107, 108.0])
    with pytest.raises(ValueError, match=r"execution='next_open' needs each session's open"):
        TradingEnv({"closes": closes, "window": 2})
    with pytest.raises(ValueError, match=r"execution='at_noon'; choose one of"):
        TradingEnv({"closes": closes, "window": 2, "execution": "at_noon"})


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
    r = simple_returns(closes[:, 1])
    assert obs_before[-2] == pytest.approx(np.clip(r[i] * 100, -10, 10), rel=1e-5)


def test_rollout_trades_every_day_once(closes):
    """Held long from the first decision: the first day earns only its session (entered at
    its open), every later day its night and its session."""
    cfg = {"window": 5, "action_set": "long_flat", "transaction_cost": 0.0}
    rets, positions = rollout(constant_policy(cfg, 1.0), closes[:100], cfg)
    assert len(rets) == 100 - 1 - 5
    opens, close = closes[:100, 0], closes[:100, 1]
    night, day = opens[1:] / close[:-1] - 1, close[1:] / opens[1:] - 1
    expected = day[5:] + np.concatenate([[0.0], night[6:]])
    np.testing.assert_allclose(rets, expected)
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


# VectorTradingEnv: the same env, natively vectorised (what RLlib samples in training).


def make_vector(closes, num_envs=4, **kw):
    return VectorTradingEnv(
        {"closes": closes, "window": 5, "episode_length": 50, "num_envs": num_envs, **kw}
    )


def sync_trading_envs(closes, num_envs=4, **kw):
    """gymnasium's own vectorisation of TradingEnv, as RLlib's default path builds it."""
    cfg = {"closes": closes, "window": 5, "episode_length": 50, **kw}
    return gym.vector.SyncVectorEnv(
        [lambda: TradingEnv(cfg) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
    )


def test_vector_env_passes_the_gymnasium_checks_that_apply_to_vector_envs(closes):
    """gymnasium's check_env takes single envs only; its space, reset and observation
    checks apply to a vector env as they are, the step checks are done here per array."""
    env = make_vector(closes)
    checker.check_action_space(env.action_space)
    checker.check_observation_space(env.observation_space)
    checker.check_space_limit(env.observation_space, "observation")
    checker.check_reset_return_type(env)
    checker.check_reset_options(env)
    env_reset_passive_checker(env, seed=0)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    env.action_space.seed(0)
    for _ in range(120):  # through episode ends and autoresets
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        check_obs(obs, env.observation_space, "step")
        assert reward.shape == terminated.shape == truncated.shape == (env.num_envs,)
        assert reward.dtype == np.float64 and np.all(np.isfinite(reward))
        assert terminated.dtype == truncated.dtype == np.bool_
        assert not np.any(terminated & truncated)
        assert isinstance(info, dict)
    # Each sub-env is a TradingEnv, which passes the full checker itself.
    check_env(make(closes), skip_render_check=True)


@pytest.mark.parametrize("num_envs", [1, 3, 8])
def test_vector_env_equals_gymnasium_sync_vector_env_of_trading_envs(closes, num_envs):
    """Without stagger: the same observations, rewards, ends and autoresets, bit for bit,
    for the same seed and actions (also across re-seeded resets)."""
    vec, sync = make_vector(closes, num_envs, stagger=False), sync_trading_envs(closes, num_envs)
    rng = np.random.default_rng(1)
    for seed in (11, 12):
        a, b = vec.reset(seed=seed)[0], sync.reset(seed=seed)[0]
        assert a.dtype == b.dtype and np.array_equal(a, b)
        for _ in range(400):
            actions = rng.integers(0, 3, num_envs)
            got, want = vec.step(actions), sync.step(actions)
            for x, y in zip(got[:4], want[:4], strict=True):
                assert x.dtype == y.dtype and np.array_equal(x, y)


def test_vector_env_staggers_first_episodes_then_runs_full_episodes(closes):
    length, n = 50, 4
    env = make_vector(closes, n, episode_length=length)
    np.testing.assert_array_equal(env.first_episode_lengths(), [13, 25, 38, 50])
    env.reset(seed=0)
    ends: list[list[int]] = [[] for _ in range(n)]
    for t in range(1, 3 * length + 1):
        _, _, terminated, truncated, _ = env.step(np.ones(n, dtype=np.int64))
        for k in np.flatnonzero(terminated | truncated):
            ends[k].append(t)
    for k in range(n):
        first = math.ceil(length * (k + 1) / n)
        # After an end, one step resets (not an env step), then a full episode.
        assert ends[k][:2] == [first, first + 1 + length]


def test_vector_env_same_seed_same_trajectory(closes):
    def trajectory(seed):
        env = make_vector(closes)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        out = [(obs,)]
        for _ in range(120):
            out.append(env.step(env.action_space.sample())[:2])
        return out

    def same(a, b):
        return all(
            np.array_equal(x, y)
            for p, q in zip(a, b, strict=True)
            for x, y in zip(p, q, strict=True)
        )

    assert same(trajectory(3), trajectory(3))
    assert not same(trajectory(3), trajectory(4))


def test_vector_env_reward_is_next_return_times_position_minus_cost():
    closes = np.array([100, 101, 102, 100, 103, 104, 105, 106, 107, 108.0])
    env = VectorTradingEnv(
        {
            "closes": closes,
            "window": 2,
            "episode_length": None,
            "random_start": False,
            "transaction_cost": 0.001,
            "reward_scale": 1.0,
            "num_envs": 2,
            "execution": "same_close",
        }
    )
    env.reset(seed=0)
    # Sub-env 0 goes long then short; sub-env 1 stays flat.
    _, reward, *_ = env.step([2, 1])
    assert reward[0] == pytest.approx((100 / 102 - 1) - 0.001) and reward[1] == 0.0
    _, reward, *_ = env.step([0, 1])
    assert reward[0] == pytest.approx(-(103 / 100 - 1) - 0.002)


def vector_observations(closes, seed=5, steps=300):
    """Every (sub-env, data index, observation) a seeded vector env shows over ``steps``."""
    env = make_vector(closes[:300], num_envs=3)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    seen = []
    for _ in range(steps):
        obs, *_ = env.step(rng.integers(0, 3, env.num_envs))
        seen += [(k, int(env._index[k]), obs[k].copy()) for k in range(env.num_envs)]
    return seen


@pytest.mark.parametrize("cut", [120, 200])
def test_vector_env_observation_sees_only_the_past(closes, cut):
    """Changing prices after index ``cut`` changes no observation shown at index <= cut."""
    changed = closes.copy()
    changed[cut + 1 :] *= 1.5
    checked = 0
    for (k, i, a), (k2, i2, b) in zip(
        vector_observations(closes), vector_observations(changed), strict=True
    ):
        assert (k, i) == (k2, i2)  # episode starts and ends do not depend on prices
        if i <= cut:
            np.testing.assert_array_equal(a, b)
            checked += 1
    assert checked > 100


def test_the_vector_guard_catches_a_planted_one_day_look_ahead(closes, monkeypatch):
    """If the vector env showed tomorrow's return, the test above would fail."""

    def leaky_obs(self: VectorTradingEnv) -> np.ndarray:
        obs = np.empty((self.num_envs, self.window + 1), dtype=np.float32)
        obs[:, :-1] = self._features[np.minimum(self._index + 1, self.last_index)]
        obs[:, -1] = self._position
        return obs

    monkeypatch.setattr(VectorTradingEnv, "_obs", leaky_obs)
    with pytest.raises(AssertionError):
        test_vector_env_observation_sees_only_the_past(closes, 120)


def test_vector_env_bad_config_names_the_value(closes):
    with pytest.raises(ValueError, match="num_envs=0"):
        make_vector(closes, num_envs=0)
    with pytest.raises(ValueError, match="window=0"):
        make_vector(closes, window=0)
