"""The calibration benchmark's bookkeeping: its RESULTS.md section, intervals and what-ifs."""

import pytest

from benchmarks import calibration
from benchmarks.gate_calibration import (
    SECTION_TITLE,
    binomial_interval,
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
