"""The calibration benchmark's bookkeeping: its RESULTS.md section, intervals and what-ifs."""

import pytest

from benchmarks import calibration
from benchmarks.gate_calibration import (
    SECTION_TITLE,
    binomial_interval,
    promoted_under,
    section_of,
    write_section,
)

OTHERS = "# Benchmarks\n\nintro\n\n## 1. Env throughput\n\nfigures\n"


def test_writing_the_section_leaves_every_other_section_as_it_was(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text(OTHERS + "\n## Gate calibration\n\nNot run.\n\n## 5. Later\n\nmore\n")
    write_section(results, f"{SECTION_TITLE}\n\nfirst\n")
    assert results.read_text() == OTHERS + f"\n{SECTION_TITLE}\n\nfirst\n\n## 5. Later\n\nmore\n"
    write_section(results, f"{SECTION_TITLE}\n\nsecond\n\n### Power\n\ntable\n")
    text = results.read_text()
    assert text.startswith(OTHERS) and text.endswith("\n## 5. Later\n\nmore\n")
    assert "first" not in text and section_of(text).startswith(f"{SECTION_TITLE}\n\nsecond")


def test_a_run_without_calibration_keeps_the_earlier_section_and_says_so(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text(OTHERS)
    write_section(results, f"{SECTION_TITLE}\n\nMeasured by X on 2026-11-27.\n")
    kept = calibration.previous_section(results)
    assert kept[0] == SECTION_TITLE and calibration.KEPT_NOTE in kept
    assert "Measured by X on 2026-11-27." in "\n".join(kept)
    # Kept twice: the note is not repeated.
    results.write_text(OTHERS + "\n" + "\n".join(kept))
    assert calibration.previous_section(results) == kept
    assert "Not run" in "\n".join(calibration.previous_section(tmp_path / "missing.md"))


def test_binomial_interval_is_the_exact_clopper_pearson_interval():
    assert binomial_interval(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert binomial_interval(1, 10) == pytest.approx((0.0025, 0.4450), abs=1e-4)
    assert binomial_interval(10, 10) == pytest.approx((0.6915, 1.0), abs=1e-4)


def row(failed, dsr, margin):
    return {
        "failed": failed,
        "observed": {"deflated_sharpe_at_least_confidence": dsr, "beats_buy_and_hold": margin},
    }


def test_what_if_rejudges_only_the_changed_gates():
    passed = row([], 0.96, 0.1)
    assert promoted_under(passed, {})
    assert not promoted_under(passed, {"dsr": 0.975})
    assert not promoted_under(passed, {"margin": 0.5})
    assert promoted_under(row([], 0.99, 0.6), {"dsr": 0.975, "margin": 0.5})
    refused_by_dsr = row(["deflated_sharpe_at_least_confidence"], 0.94, 0.8)
    assert not promoted_under(refused_by_dsr, {})
    assert promoted_under(refused_by_dsr, {"dsr": 0.9})
    # A gate that is not changed keeps its refusal.
    assert not promoted_under(row(["train_validation_gap_within_limit"], 0.99, 1.0), {"dsr": 0.9})
