"""Learning is real, and the gate knows luck from skill (a small version of the calibration).

Three seeds each of planted-momentum prices (AR 0.4) and the realistic GARCH-t null, the
default training budget and gate, walk-forward folds over 2019-2026, traded at the next
open: exactly what benchmarks/gate_calibration.py runs on 60 seeds per null (make bench).
"""

import pytest

from benchmarks.gate_calibration import Instrument, judge_instrument

pytestmark = pytest.mark.slow

SEEDS = range(3)


@pytest.fixture(scope="module")
def outcomes(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    return {
        structure: [
            judge_instrument(
                Instrument("calibration", structure, seed), root / f"{structure}{seed}"
            )
            for seed in SEEDS
        ]
        for structure in ("garch_momentum", "garch_null")
    }


def test_on_planted_structure_the_folds_show_skill_out_of_sample(outcomes):
    rows = outcomes["garch_momentum"]
    assert all(r["skill_sharpe"] > 1.0 for r in rows), [r["skill_sharpe"] for r in rows]


def test_the_gate_promotes_skill_and_refuses_luck(outcomes):
    promoted = {s: sum(r["promoted"] for r in rows) for s, rows in outcomes.items()}
    assert promoted["garch_null"] <= 1, outcomes["garch_null"]  # the realistic null
    assert promoted["garch_momentum"] >= 2, outcomes["garch_momentum"]
