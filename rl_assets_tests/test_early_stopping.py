"""Early stopping: patience since the best, minimum and maximum iterations, budget."""

import pytest

from rl_assets.rl.early_stopping import BUDGET, MAXIMUM, PATIENCE, EarlyStopping


def run(stopper, scores, budget_at=None):
    for i, s in enumerate(scores, start=1):
        stopper.update(s, budget_reached=budget_at is not None and i >= budget_at)
        if stopper.should_stop:
            break
    return stopper


def test_stops_after_patience_without_improvement():
    s = run(EarlyStopping(patience=3, min_iterations=1), [1, 2, 1.5, 1.9, 1.8, 5])
    assert (s.stop_reason, s.iteration, s.best_iteration, s.best_score) == (PATIENCE, 5, 2, 2)


def test_never_stops_before_min_iterations():
    s = run(EarlyStopping(patience=1, min_iterations=5), [3, 1, 1, 1, 1, 1, 1])
    assert (s.stop_reason, s.iteration, s.best_iteration) == (PATIENCE, 5, 1)


def test_stops_at_maximum():
    s = run(EarlyStopping(patience=3, min_iterations=1, max_iterations=4), [1, 2, 3, 4, 5])
    assert (s.stop_reason, s.iteration, s.best_iteration) == (MAXIMUM, 4, 4)


def test_budget_stops_and_wins_over_maximum():
    s = run(EarlyStopping(max_iterations=3, min_iterations=1), [1, 2, 3], budget_at=3)
    assert (s.stop_reason, s.iteration) == (BUDGET, 3)


def test_min_improvement_ignores_small_gains():
    s = run(EarlyStopping(patience=2, min_iterations=1, min_improvement=0.5), [1.0, 1.2, 1.4, 9])
    assert (s.stop_reason, s.best_iteration, s.best_score) == (PATIENCE, 1, 1.0)


def test_the_first_score_is_always_the_best_so_far():
    s = EarlyStopping()
    assert s.update(float("-inf")) is True
    assert s.best_iteration == 1


def test_update_after_stop_is_an_error():
    s = run(EarlyStopping(max_iterations=1, min_iterations=1), [1])
    with pytest.raises(RuntimeError, match="already stopped"):
        s.update(2)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"patience": 0}, "patience=0"),
        ({"min_iterations": 6, "max_iterations": 5}, "max_iterations=5 is below min_iterations=6"),
        ({"min_improvement": -1}, "min_improvement=-1"),
    ],
)
def test_bad_settings_name_the_value(kw, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kw)


@pytest.mark.slow
def test_train_ppo_stops_by_patience_and_keeps_the_best_iteration(local_ray, closes, tmp_path):
    """Inside real training: a budget far away and patience 1, so only patience can stop it."""
    from rl_assets.rl.training import TrainingSpec, train_ppo, with_history
    from rl_assets_tests.conftest import TINY_SPEC

    spec = TrainingSpec(
        **{**TINY_SPEC, "target_episodes": 400},
        patience=1,
        min_iterations=2,
        max_iterations=100,
    )
    train, val = closes[:900], closes[900:1150]
    out = train_ppo(
        spec, train, with_history(train, val, spec.window), tmp_path, log=lambda _: None
    )
    scores = [row["validation/sharpe"] for row in out["history"]]
    assert out["stop_reason"] == PATIENCE
    assert out["episodes_total"] < spec.target_episodes and out["iterations"] < 100
    # It stopped at the first iteration (from the second on) that did not beat the best ...
    assert out["iterations"] >= 2 and scores[-1] <= max(scores[:-1])
    assert all(b > max(scores[:i]) for i, b in enumerate(scores[1:-1], start=1))
    # ... and kept the best iteration's checkpoint.
    assert out["best_iteration"] == 1 + scores.index(max(scores))
    assert out["best_validation_sharpe"] == max(scores)
