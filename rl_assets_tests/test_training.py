"""The training loop with a real local Ray: budget, early stopping, best checkpoint, reproducibility."""

import json
from pathlib import Path

import numpy as np
import pytest

from rl_assets.rl import checkpoints
from rl_assets.rl.env import bars
from rl_assets.rl.training import (
    TrainingSpec,
    evaluate,
    load_policy,
    plan_budget,
    simulate_episodes_per_iteration,
    simulated_episodes,
    train_ppo,
    with_history,
)
from rl_assets_tests.conftest import TINY_SPEC


def split(prices):
    train = bars(prices.loc["2020-01-01":"2023-01-31"])
    val = bars(prices.loc["2023-02-01":"2023-12-31"])
    return train, val


def test_plan_budget_derives_iterations_from_episodes():
    plan = plan_budget(TrainingSpec())
    assert plan["episodes_per_iteration"] == 2016 / 252
    assert plan["iterations_for_target"] == 13  # ceil(100 / 8)
    assert plan["max_iterations"] == 13  # never more than the budget needs


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"train_batch_size": 100}, "train_batch_size=100 is smaller than one episode"),
        ({"target_episodes": 8}, "reached after 1 iteration.*fewer than min_iterations=5"),
        ({"num_envs_per_env_runner": 0}, "num_envs_per_env_runner=0"),
        ({"target_episodes": 0}, "target_episodes=0"),
    ],
)
def test_impossible_budgets_are_refused_with_the_fix(kw, message):
    with pytest.raises(ValueError, match=message):
        plan_budget(TrainingSpec(**kw))


@pytest.mark.parametrize(
    "kw",
    [{}, TINY_SPEC, {"num_envs_per_env_runner": 32}, {**TINY_SPEC, "num_envs_per_env_runner": 8}],
)
def test_replayed_sampling_completes_the_estimated_episodes_every_iteration(closes, kw):
    """Staggered first episodes: every iteration completes about train_batch_size /
    episode_length episodes, also with more envs than that."""
    spec = TrainingSpec(**kw)
    estimate = plan_budget(spec)["episodes_per_iteration"]
    per_iteration = simulated_episodes(spec, closes[:800], iterations=8)
    assert all(abs(done - estimate) <= 1 for done in per_iteration), per_iteration
    assert simulate_episodes_per_iteration(spec, closes[:800], iterations=8) == pytest.approx(
        estimate, rel=0.05
    )


def test_without_stagger_more_envs_than_episodes_end_together(closes):
    """Why the stagger: 32 envs, 8 episodes' worth of steps per iteration, all ends at once."""
    spec = TrainingSpec(num_envs_per_env_runner=32, stagger_episodes=False)
    assert simulated_episodes(spec, closes[:800], iterations=8) == [0, 0, 0, 32] * 2


def test_validation_history_ends_at_the_last_train_close():
    train, val = np.arange(1.0, 21.0), np.arange(100.0, 110.0)
    joined = with_history(train, val, window=5)
    np.testing.assert_array_equal(joined[:6], train[-6:])
    np.testing.assert_array_equal(joined[6:], val)


def test_a_minibatch_larger_than_the_batch_is_refused(momentum_prices, tmp_path):
    train, val = split(momentum_prices)
    spec = TrainingSpec(**{**TINY_SPEC, "minibatch_size": 4096})
    with pytest.raises(ValueError, match="minibatch_size=4096 exceeds train_batch_size=252"):
        train_ppo(spec, train, with_history(train, val, 5), tmp_path)


def test_a_train_split_shorter_than_one_episode_is_refused(momentum_prices, tmp_path):
    train, val = split(momentum_prices)
    spec = TrainingSpec(**{**TINY_SPEC, "episode_length": 63})
    with pytest.raises(ValueError, match="train split has 50 rows; one episode needs at least 69"):
        train_ppo(spec, train[:50], with_history(train, val, 5), tmp_path)


@pytest.fixture(scope="module")
def tiny_run(local_ray, momentum_prices, tmp_path_factory):
    train, val = split(momentum_prices)
    spec = TrainingSpec(**TINY_SPEC)
    root = tmp_path_factory.mktemp("ckpt")
    result = train_ppo(spec, train, with_history(train, val, spec.window), root, data_version="abc")
    return spec, root, result, with_history(train, val, spec.window)


@pytest.mark.slow
def test_training_keeps_only_the_best_checkpoint_with_its_manifest(tiny_run):
    spec, root, result, _ = tiny_run
    history = result["history"]
    assert result["iterations"] == len(history) >= spec.min_iterations
    best = max(history, key=lambda r: r["validation/sharpe"])
    assert result["best_iteration"] == best["iteration"]
    assert result["best_validation_sharpe"] == best["validation/sharpe"]
    kept = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert kept == [f"iter_{best['iteration']:04d}"]
    manifest = checkpoints.read_manifest(root / kept[0])
    assert manifest["iteration"] == best["iteration"]
    assert manifest["data_version"] == "abc"
    assert manifest["spec"]["window"] == 5
    assert {"ray", "torch", "gymnasium"} <= set(manifest["library_versions"])
    assert json.loads((root / "best.json").read_text())["checkpoint"] == kept[0]


@pytest.mark.slow
def test_the_restored_checkpoint_reproduces_its_validation_sharpe(tiny_run):
    spec, root, result, validation = tiny_run
    policy = load_policy(root / f"iter_{result['best_iteration']:04d}")
    assert evaluate(policy, validation, spec)["sharpe"] == pytest.approx(
        result["best_validation_sharpe"]
    )


@pytest.mark.slow
def test_episode_budget_is_met_when_early_stopping_did_not_fire(tiny_run):
    spec, _, result, _ = tiny_run
    rows = result["history"]
    assert result["episodes_total"] == sum(r["episodes"] for r in rows)
    assert rows[-1]["env_steps_total"] == spec.train_batch_size * len(rows)
    # min_iterations equals the iterations the budget needs, so patience cannot fire first.
    assert result["stop_reason"] == "budget"
    assert abs(result["episodes_error"]) <= 0.15


@pytest.mark.slow
def test_same_seed_same_validation_sharpe_sequence(tiny_run, momentum_prices, tmp_path):
    spec, _, first, validation = tiny_run
    train, _ = split(momentum_prices)
    again = train_ppo(spec, train, validation, tmp_path, data_version="abc")
    assert [r["validation/sharpe"] for r in again["history"]] == [
        r["validation/sharpe"] for r in first["history"]
    ]


@pytest.mark.slow
@pytest.mark.parametrize("flaky", ["FlakyVectorTradingEnv", "FlakyTradingEnv"])
def test_a_crashing_sub_environment_is_restarted_and_training_completes(
    local_ray, momentum_prices, tmp_path, monkeypatch, flaky
):
    """The default vector env and gymnasium's vectorised TradingEnv both recover."""
    from rl_assets_tests import flaky_env

    marker = tmp_path / "crashed"
    monkeypatch.setenv(flaky_env.MARKER_ENV_VAR, str(marker))
    train, val = split(momentum_prices)
    spec = TrainingSpec(**TINY_SPEC)
    result = train_ppo(
        spec,
        train,
        with_history(train, val, spec.window),
        tmp_path / "ckpt",
        env_class=getattr(flaky_env, flaky),
    )
    assert marker.read_text() == "crashed once"  # the crash did happen
    assert result["iterations"] >= spec.min_iterations
    assert checkpoints.is_complete(Path(result["checkpoint"]))
