"""Each gate check passes and fails on a real (tiny) checkpoint."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rl_assets.promotion import gate
from rl_assets.rl import checkpoints
from rl_assets.rl.training import RL_MODULE_SUBDIR, TrainingSpec, train_ppo, with_history
from rl_assets_tests.conftest import TINY_SPEC

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(local_ray, momentum_prices, tmp_path_factory):
    train = momentum_prices.loc["2020-01-01":"2023-01-31", "close"].to_numpy()
    val = momentum_prices.loc["2023-02-01":"2023-12-31", "close"].to_numpy()
    spec = TrainingSpec(**TINY_SPEC)
    root = tmp_path_factory.mktemp("gate")
    result = train_ppo(spec, train, with_history(train, val, spec.window), root / "ckpt")
    return result, train, val, root


def inputs(trained, champion=None, **thresholds) -> gate.GateInputs:
    result, train, val, _ = trained
    return gate.GateInputs(result, train, val, gate.GateThresholds(**thresholds), champion)


def run(name, gi) -> gate.GateResult:
    return gate.GATES[name][1](gi)


def test_restores_and_acts_passes_and_fails_on_a_broken_checkpoint(trained):
    assert run("restores_and_acts", inputs(trained)).passed
    result, train, val, root = trained
    broken = root / "broken"
    shutil.copytree(result["checkpoint"], broken)
    shutil.rmtree(broken / RL_MODULE_SUBDIR)
    outcome = run(
        "restores_and_acts", inputs(({**result, "checkpoint": str(broken)}, train, val, root))
    )
    assert not outcome.passed and "restore failed" in outcome.reason


def test_weights_finite_passes_and_fails_on_nan_weights(trained):
    assert run("weights_finite", inputs(trained)).passed
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    result, train, val, root = trained
    poisoned = root / "poisoned"
    shutil.copytree(result["checkpoint"], poisoned)
    module = RLModule.from_checkpoint(str(poisoned / RL_MODULE_SUBDIR))
    with torch.no_grad():
        next(iter(module.parameters()))[0, 0] = float("nan")
    module.save_to_path(str(poisoned / RL_MODULE_SUBDIR))
    outcome = run(
        "weights_finite", inputs(({**result, "checkpoint": str(poisoned)}, train, val, root))
    )
    assert not outcome.passed and outcome.observed.startswith("1 non-finite")


@pytest.mark.parametrize(
    "name, passing, failing",
    [
        (
            "validation_sharpe_at_least_minimum",
            {"min_validation_sharpe": -100},
            {"min_validation_sharpe": 100},
        ),
        (
            "beats_buy_and_hold",
            {"min_margin_over_buy_and_hold": -100},
            {"min_margin_over_buy_and_hold": 100},
        ),
        (
            "deflated_sharpe_at_least_confidence",
            {"min_deflated_sharpe": 0.0},
            {"min_deflated_sharpe": 1.01},
        ),
        ("train_validation_gap_within_limit", {"max_sharpe_gap": 100}, {"max_sharpe_gap": -100}),
    ],
)
def test_threshold_gates_pass_and_fail_with_observed_and_threshold(trained, name, passing, failing):
    ok = run(name, inputs(trained, **passing))
    bad = run(name, inputs(trained, **failing))
    assert ok.passed and not bad.passed
    assert bad.observed == ok.observed  # the same measurement, judged against two thresholds
    assert bad.threshold == next(iter(failing.values()))
    assert set(bad.metadata()) == {"observed", "threshold", "reason"}


def test_beats_champion_passes_without_one_and_fails_against_itself(trained):
    assert run("beats_champion", inputs(trained)).passed
    result = trained[0]
    itself = {"version": "v0001", "checkpoint": result["checkpoint"], "spec": result["spec"]}
    outcome = run("beats_champion", inputs(trained, champion=itself))
    assert not outcome.passed and outcome.observed == 0.0
    assert "champion v0001" in outcome.reason
    weaker = run("beats_champion", inputs(trained, champion=itself, min_margin_over_champion=-1))
    assert weaker.passed


def test_the_deflated_sharpe_deflates_by_the_iterations_chosen_among(trained):
    result, train, val, root = trained
    many = {**result, "history": result["history"] * 6}  # same spread, 6x the trials
    one = run("deflated_sharpe_at_least_confidence", inputs(trained))
    more = run("deflated_sharpe_at_least_confidence", inputs((many, train, val, root)))
    assert more.observed <= one.observed
    assert np.isfinite(one.observed)


def test_a_checkpoint_without_manifest_is_refused_everywhere(trained):
    result, train, val, root = trained
    half = root / "half"
    shutil.copytree(result["checkpoint"], half)
    (half / checkpoints.MANIFEST).unlink()
    outcome = run(
        "restores_and_acts", inputs(({**result, "checkpoint": str(half)}, train, val, root))
    )
    assert not outcome.passed and "not a complete checkpoint" in outcome.observed
    assert json.loads((Path(result["checkpoint"]) / checkpoints.MANIFEST).read_text())
