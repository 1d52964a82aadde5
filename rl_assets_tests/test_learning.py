"""Learning is real, and the gate knows luck from skill (a small version of the calibration).

Five seeds each of planted-momentum prices, a pure random walk and the realistic GARCH-t
null, default training budget (100 episodes) and default gate thresholds. The full 10+10 calibration is in
benchmarks/gate_calibration.py (make bench).
"""

import pytest

from benchmarks.gate_calibration import one

pytestmark = pytest.mark.slow

SEEDS = range(5)


@pytest.fixture(scope="module")
def outcomes(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    return {
        structure: [one(structure, seed, root) for seed in SEEDS]
        for structure in ("momentum", "random_walk", "garch_null")
    }


def beats(row) -> bool:
    return row["validation_sharpe"] > row["buy_and_hold_sharpe"]


def test_on_planted_structure_the_policy_beats_buy_and_hold_in_4_of_5_seeds(outcomes):
    rows = outcomes["momentum"]
    assert sum(beats(r) for r in rows) >= 4, rows


def test_on_a_random_walk_the_policy_does_not_reliably_beat_buy_and_hold(outcomes):
    rows = outcomes["random_walk"]
    assert sum(beats(r) for r in rows) <= 3, rows


def test_the_gate_promotes_skill_and_refuses_luck(outcomes):
    promoted = {s: sum(r["promoted"] for r in rows) for s, rows in outcomes.items()}
    assert promoted["random_walk"] <= 1, outcomes["random_walk"]
    assert promoted["garch_null"] <= 1, outcomes["garch_null"]  # the realistic null
    assert promoted["momentum"] >= 4, outcomes["momentum"]
