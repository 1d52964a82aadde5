"""The gate: each gate's direction on measured numbers, the deployment's rules, and real checkpoints."""

import dataclasses
import shutil

import numpy as np
import pytest

from rl_assets.promotion import gate
from rl_assets.promotion.gate import CostModel, GateThresholds, Measurements
from rl_assets.rl import checkpoints
from rl_assets.rl.env import bars
from rl_assets.rl.training import RL_MODULE_SUBDIR, TrainingSpec, train_ppo, with_history
from rl_assets_tests.conftest import TINY_SPEC

SPLITS = {
    "train": {
        "first_date": "2020-01-02",
        "last_date": "2023-01-31",
        "rows": 800,
        "content_hash": "aaaa",
    },
    "validation": {
        "first_date": "2023-02-01",
        "last_date": "2023-12-29",
        "rows": 230,
        "content_hash": "bbbb",
    },
}


def pooled_test_days(skill=0.004, market=0.0005, days=504, exposure=0.5) -> dict:
    """Walk-forward evidence over ``days`` test days: the policy earns ``skill`` a day over
    holding its mean position ``exposure`` in a market that drifts ``market`` a day."""
    import pandas as pd

    from rl_assets.promotion.evidence import pooled_evidence
    from rl_assets.promotion.ledger import skill_record

    rng = np.random.default_rng(1)
    unit = market + 0.01 * rng.standard_normal(days)
    positions = np.where(rng.random(days) < (1 + exposure) / 2, 1.0, -1.0)
    policy = exposure * unit + skill + 0.01 * rng.standard_normal(days)
    series = pd.DataFrame(
        {
            "fold": np.repeat([0, 1], days // 2),
            "position": positions,
            "policy_returns": policy,
            "buy_and_hold_returns": unit,
            "unit_returns": unit,
            "benchmark_returns": positions.mean() * unit,
            "skill_returns": policy - positions.mean() * unit,
        },
        index=pd.bdate_range("2021-01-04", periods=days),
    )
    return {
        **pooled_evidence(series),
        "skill_returns": skill_record(series["skill_returns"]),
        "procedure_digest": "p1",
        "execution": "next_open",
        "deploy_splits": SPLITS,
    }


def measured(**changes) -> Measurements:
    """A candidate that passes every default gate; ``changes`` alter one measurement."""
    rng = np.random.default_rng(0)
    base = Measurements(
        deterministic=True,
        days=230,
        parameters=5000,
        nonfinite=0,
        positions=(-1.0, 0.0, 1.0),
        validation_returns=0.004 + 0.01 * rng.standard_normal(230),
        buy_and_hold_returns=0.0005 + 0.01 * rng.standard_normal(230),
        validation_sharpe=3.0,
        train_sharpe=3.5,
        buy_and_hold_sharpe=1.0,
        trial_sharpes=[0.5, 1.0, 2.0, 3.0, 2.5],
        recorded_splits=SPLITS,
        current_splits=SPLITS,
        candidate_procedure="p1",
        walk_forward=pooled_test_days(),
    )
    return dataclasses.replace(base, **changes)


def champion(walk_forward: dict, version: str = "v0001") -> dict:
    """A champion record as the registry keeps it: its procedure's test skill returns."""
    return {"version": version, "skill_returns": walk_forward["skill_returns"]}


def verdict(name: str, m: Measurements, thresholds=None, cost=None) -> gate.GateResult:
    return gate.GATES[name][1](m, thresholds or GateThresholds(), cost or CostModel())


def test_the_reference_candidate_passes_every_default_gate():
    results = gate.judge(measured(), GateThresholds(), CostModel())
    assert [r.name for r in results if not r.passed] == []
    assert gate.verdict(results) == "passes every gate"


@pytest.mark.parametrize(
    "name, passing, failing",
    [
        # Overfitting is train minus validation: a train Sharpe far above validation fails,
        # a validation Sharpe far above train (no overfitting) passes.
        ("train_validation_gap_within_limit", {"train_sharpe": 1.0, "validation_sharpe": 4.0},
         {"train_sharpe": 6.0, "validation_sharpe": 3.0}),
        # The procedure's pooled test days: the policy's Sharpe against buy-and-hold's ...
        ("beats_buy_and_hold", {}, {"walk_forward": pooled_test_days(skill=0.0, market=0.002)}),
        ("test_sharpe_at_least_minimum", {},
         {"walk_forward": pooled_test_days(skill=-0.002, market=0.0)}),
        ("test_evidence_sufficient", {}, {"walk_forward": pooled_test_days(days=100)}),
        # The champion's procedure, paired on the same test days: one that earned 0.4% a
        # day less is beaten; the same procedure's evidence again is not.
        ("beats_champion", {"champion": champion(pooled_test_days(skill=0.0))},
         {"champion": champion(pooled_test_days())}),
        ("deflated_sharpe_at_least_confidence", {},
         {"walk_forward": pooled_test_days(skill=-0.001)}),
        # Skill is relative: a policy that only holds the market, however well the market
        # did, has none (its Sharpe ratio is high, its skill returns are noise).
        ("deflated_sharpe_at_least_confidence", {},
         {"walk_forward": pooled_test_days(skill=0.0, market=0.004, exposure=0.8)}),
        ("evidence_from_this_procedure", {}, {"candidate_procedure": "another"}),
        ("evidence_from_this_procedure", {}, {"current_splits": {
            **SPLITS, "train": {**SPLITS["train"], "content_hash": "zzzz"}}}),
        ("execution_tradable", {}, {"walk_forward": {**pooled_test_days(),
                                                     "execution": "next_close"}}),
        ("weights_finite", {}, {"nonfinite": 1}),
        ("restores_and_acts", {}, {"deterministic": False}),
        ("positions_allowed", {"positions": (0.0, 1.0)}, {"positions": (-1.0, 0.0, 1.0, 2.0)}),
    ],
)  # fmt: skip
def test_each_gate_has_the_right_direction(name, passing, failing):
    assert verdict(name, measured(**passing)).passed, verdict(name, measured(**passing))
    bad = verdict(name, measured(**failing))
    assert not bad.passed, bad


def test_a_candidate_equal_to_the_champion_does_not_beat_it():
    tie = verdict("beats_champion", measured(champion=champion(pooled_test_days(), "v0003")))
    assert not tie.passed and tie.observed == 0.5 and "champion v0003" in tie.reason
    first = verdict("beats_champion", measured())
    assert first.passed and first.observed == "no champion yet"


def test_champions_do_not_change_on_noise():
    """A candidate a little better than the champion by chance (another draw of the same
    noise around the same skill) does not replace it: the paired test needs confidence."""
    mine = pooled_test_days()
    values = np.asarray(mine["skill_returns"]["values"])
    noise = np.random.default_rng(3).standard_normal(values.size)
    noise -= noise.mean()  # the candidate is better by exactly 0.05% a day: t about 1.1
    other = {**mine, "skill_returns": {**mine["skill_returns"], "values": list(
        values - 0.0005 + 0.01 * noise)}}  # fmt: skip
    result = verdict("beats_champion", measured(champion=champion(other)))
    assert not result.passed and 0.5 < result.observed < 0.95, result


def test_a_decayed_champion_no_longer_blocks():
    same = champion(pooled_test_days())
    assert not verdict("beats_champion", measured(champion=same)).passed
    result = verdict("beats_champion", measured(champion=same, champion_decayed=True))
    assert result.passed and "decayed" in result.observed and "no longer blocks" in result.reason


def test_a_champion_sharing_too_few_test_days_is_not_beaten_by_default():
    short = pooled_test_days(days=60)
    shifted = {**short, "skill_returns": {"dates": [f"2030-01-{d:02d}" for d in range(1, 29)],
                                          "values": [0.0] * 28}}  # fmt: skip
    result = verdict("beats_champion", measured(champion=champion(shifted)))
    assert not result.passed and "0 shared test days" in result.observed


def test_each_attempt_in_the_ledger_raises_the_deflated_sharpe_bar():
    m = measured()
    one, twenty = dataclasses.replace(m), dataclasses.replace(m)
    gate.account_for_attempts(one, 1.0, 1)
    gate.account_for_attempts(twenty, 20.0, 20)
    assert one.pooled["dsr"] == pytest.approx(m.pooled["dsr"])  # one trial: unchanged
    assert twenty.pooled["benchmark_sharpe"] > one.pooled["benchmark_sharpe"] == 0.0
    assert twenty.pooled["dsr"] < one.pooled["dsr"]
    assert twenty.pooled["attempts"] == 20


def test_the_q_value_gate_is_off_until_the_deployment_sets_a_maximum():
    m = measured(q_value=0.3, universe={"A": {"q": 0.3}, "B": {"q": 0.3}})
    assert verdict("q_value_within_limit", m).passed
    assert not verdict("q_value_within_limit", m, GateThresholds(max_q_value=0.1)).passed


def test_a_long_only_deployment_refuses_a_policy_that_can_short():
    result = verdict("positions_allowed", measured(), cost=CostModel(action_set="long_flat"))
    assert not result.passed and "-1.0" in result.reason and "long_flat" in result.reason


def test_changed_splits_are_refused_naming_both_versions():
    resplit = {**SPLITS, "validation": {**SPLITS["validation"], "content_hash": "cccc"}}
    result = verdict("trained_on_these_splits", measured(current_splits=resplit))
    assert not result.passed
    assert "cccc" in result.observed and "bbbb" in result.threshold
    assert "retrain" in result.reason


def test_an_unmeasured_candidate_fails_every_gate_that_needs_a_rollout():
    results = gate.judge(
        Measurements(restore_error="FileNotFoundError: no manifest"), GateThresholds(), CostModel()
    )
    # Only the execution setting, the champion (there is none) and the universe's q-value
    # (not gated by default) can be judged without the checkpoint and its evidence.
    assert [r.name for r in results if r.passed] == [
        "execution_tradable",
        "beats_champion",
        "q_value_within_limit",
    ]
    assert all(
        "restore failed" in r.reason or "no pooled test evidence" in r.reason
        for r in results
        if not r.passed
    )


def test_without_walk_forward_evidence_no_candidate_passes():
    results = gate.judge(measured(walk_forward={}), GateThresholds(), CostModel())
    failed = {r.name for r in results if not r.passed}
    assert failed == {
        "evidence_from_this_procedure",
        "test_evidence_sufficient",
        "test_sharpe_at_least_minimum",
        "beats_buy_and_hold",
        "deflated_sharpe_at_least_confidence",
    }


def test_the_gate_never_accepts_the_same_close_research_execution():
    evidence = {**pooled_test_days(), "execution": "same_close"}
    result = verdict(
        "execution_tradable",
        measured(walk_forward=evidence),
        cost=CostModel(execution="same_close"),
    )
    assert not result.passed and "nobody can trade" in result.reason
    assert "RL_ASSETS_GATE_EXECUTION" in result.reason


# --- the deployment owns the gate ------------------------------------------------------------


def test_the_deployment_reads_thresholds_and_costs_from_the_environment():
    env = {
        "RL_ASSETS_GATE_MIN_DEFLATED_SHARPE": "0.99",
        "RL_ASSETS_GATE_TRANSACTION_COST": "0.001",
        "RL_ASSETS_GATE_ACTION_SET": "long_flat",
    }
    assert gate.deployment_thresholds(env).min_deflated_sharpe == 0.99
    assert gate.deployment_thresholds({}) == GateThresholds()
    cost = gate.deployment_cost_model(env)
    assert (cost.transaction_cost, cost.action_set) == (0.001, "long_flat")
    with pytest.raises(gate.GateConfigError, match="RL_ASSETS_GATE_MAX_SHARPE_GAP='wide'"):
        gate.deployment_thresholds({"RL_ASSETS_GATE_MAX_SHARPE_GAP": "wide"})
    with pytest.raises(gate.GateConfigError, match="is not a valid action_set"):
        gate.deployment_cost_model({"RL_ASSETS_GATE_ACTION_SET": "leveraged"})


@pytest.mark.parametrize(
    "name, looser, tighter",
    [
        ("min_deflated_sharpe", 0.5, 0.99),
        ("min_test_sharpe", -1.0, 0.5),
        ("min_margin_over_buy_and_hold", -0.5, 0.25),
        ("min_confidence_over_champion", 0.5, 0.99),
        ("max_q_value", 1.5, 0.1),
        ("max_sharpe_gap", 5.0, 1.0),
    ],
)
def test_a_run_may_tighten_a_threshold_but_never_loosen_it(name, looser, tighter):
    deployment = GateThresholds()
    assert getattr(gate.tighten(deployment, {name: tighter}), name) == tighter
    with pytest.raises(gate.GateConfigError) as err:
        gate.tighten(deployment, {name: looser})
    message = str(err.value)
    assert f"gate_thresholds.{name}={looser}" in message
    assert f"RL_ASSETS_GATE_{name.upper()}" in message and "loosen" in message


# --- real checkpoints --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(local_ray, random_walk_prices, tmp_path_factory):
    """A tiny policy trained on a pure random walk: nothing to learn."""
    train = bars(random_walk_prices.loc["2020-01-01":"2023-01-31"])
    val = bars(random_walk_prices.loc["2023-02-01":"2023-12-31"])
    spec = TrainingSpec(**TINY_SPEC)
    root = tmp_path_factory.mktemp("gate")
    result = train_ppo(spec, train, with_history(train, val, spec.window), root / "ckpt")
    return result, train, val, root


def judged(trained, **changes) -> dict[str, gate.GateResult]:
    result, train, val, _ = trained
    results = gate.judge_training_result({**result, **changes}, train, val)
    return {r.name: r for r in results}


@pytest.mark.slow
def test_default_thresholds_refuse_a_policy_trained_on_a_random_walk(trained):
    results = judged(trained)
    assert not all(r.passed for r in results.values()), results
    assert results["restores_and_acts"].passed and results["weights_finite"].passed


@pytest.mark.slow
def test_a_broken_or_poisoned_or_half_written_checkpoint_is_refused(trained):
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    result, _, _, root = trained
    broken = root / "broken"
    shutil.copytree(result["checkpoint"], broken)
    shutil.rmtree(broken / RL_MODULE_SUBDIR)
    outcome = judged(trained, checkpoint=str(broken))["restores_and_acts"]
    assert not outcome.passed and outcome.reason == "restore failed"

    poisoned = root / "poisoned"
    shutil.copytree(result["checkpoint"], poisoned)
    module = RLModule.from_checkpoint(str(poisoned / RL_MODULE_SUBDIR))
    with torch.no_grad():
        next(iter(module.parameters()))[0, 0] = float("nan")
    module.save_to_path(str(poisoned / RL_MODULE_SUBDIR))
    outcome = judged(trained, checkpoint=str(poisoned))["weights_finite"]
    assert not outcome.passed and outcome.observed.startswith("1 non-finite")

    half = root / "half"
    shutil.copytree(result["checkpoint"], half)
    (half / checkpoints.MANIFEST).unlink()
    outcome = judged(trained, checkpoint=str(half))["restores_and_acts"]
    assert not outcome.passed and "not a complete checkpoint" in outcome.observed


@pytest.mark.slow
def test_the_candidate_is_judged_under_the_deployments_costs(trained):
    from rl_assets.rl.training import evaluate, load_policy

    result, train, val, _ = trained
    costly = CostModel(transaction_cost=0.01)
    judged_costly = {r.name: r for r in gate.judge_training_result(result, train, val, cost=costly)}
    spec = TrainingSpec(**result["spec"])
    closes = with_history(train, val, spec.window)
    policy = load_policy(result["checkpoint"])

    def sharpe_at(cost: float, on=closes) -> float:
        return evaluate(policy, on, dataclasses.replace(spec, transaction_cost=cost))["sharpe"]

    # The checkpoint's own figures (its train/validation gap) are measured at the
    # deployment's costs, not the 2 bp it trained with.
    observed = judged_costly["train_validation_gap_within_limit"].observed
    assert observed == pytest.approx(sharpe_at(0.01, train) - sharpe_at(0.01), abs=1e-4)
    assert spec.transaction_cost == 0.0002 and sharpe_at(0.0002) != sharpe_at(0.01)
