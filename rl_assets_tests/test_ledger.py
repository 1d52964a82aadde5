"""The trial ledger and the statistics it feeds: reference values for every function the
gate calls, the count of attempts on skill returns, idempotent and concurrent recording,
resets that are recorded, and the bar rising with attempts."""

import dataclasses
import json
import math
import multiprocessing
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy import stats as sps
from scipy.optimize import brentq

from rl_assets.promotion.gate import CostModel, GateThresholds
from rl_assets.promotion.judging import judge_and_record
from rl_assets.promotion.ledger import Ledger, series_of, skill_record, trial_count
from rl_assets.registry import Registry, main
from rl_assets.rl.stats import (
    benjamini_hochberg,
    effective_number_of_trials,
    effective_trials_of,
    expected_max_standard_normal,
    paired_difference_test,
    trial_correlation,
)
from rl_assets_tests.test_gate import measured, pooled_test_days

DAYS = pd.bdate_range("2021-01-04", periods=6)


def series(values, index=DAYS):
    return pd.Series(np.asarray(values, dtype=np.float64), index=index[: len(values)])


# --- reference values ----------------------------------------------------------------------


def test_trial_correlation_by_hand():
    a = series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = series([2.0, 1.0, 4.0, 3.0, 6.0, 5.0])
    rho, se, days = trial_correlation(a, b, min_overlap=3)
    # Deviations (-2.5..2.5) and (-1.5, -2.5, 0.5, -0.5, 2.5, 1.5): sum of products 14.5,
    # sums of squares 17.5 and 17.5, so rho = 14.5 / 17.5.
    assert days == 6 and rho == pytest.approx(14.5 / 17.5, rel=1e-12)
    za = (a - a.mean()) / a.std(ddof=0)
    zb = (b - b.mean()) / b.std(ddof=0)
    assert se == pytest.approx(math.sqrt(float(np.mean(za**2 * zb**2)) / 6), rel=1e-12)
    # Only the shared days count; too few of them: unrelated.
    assert trial_correlation(a, series([1.0, 2.0, 3.0]), min_overlap=3)[2] == 3
    assert trial_correlation(a, series([1.0, 2.0]), min_overlap=3) == (0.0, 0.0, 2)
    # Both flat (both never traded): identical behaviour; one flat: unrelated.
    flat = series([0.0] * 6)
    assert trial_correlation(flat, flat, min_overlap=3) == (1.0, 0.0, 6)
    assert trial_correlation(flat, a, min_overlap=3) == (0.0, 0.0, 6)


def worth(n: int, rho: float, q: float = 0.95) -> float:
    """Independent trials whose best has the q-quantile of the best of n correlated rho:
    written apart from the module (adaptive quadrature over the shared factor, Brent)."""
    a, b = math.sqrt(rho), math.sqrt(1 - rho)

    def cdf(x):
        inner = lambda z: sps.norm.pdf(z) * sps.norm.cdf((x - a * z) / b) ** n  # noqa: E731
        return integrate.quad(inner, -12, 12, limit=200, epsabs=1e-12)[0]

    x = brentq(lambda x: cdf(x) - q, 0.0, 10.0, xtol=1e-12)
    return math.log(q) / math.log(sps.norm.cdf(x))


def test_effective_number_of_trials_by_hand():
    assert effective_number_of_trials(np.eye(4)) == pytest.approx(4.0, abs=1e-9)
    assert effective_number_of_trials(np.ones((5, 5))) == 1.0
    assert effective_number_of_trials(np.ones((1, 1))) == 1.0
    # The reference itself: n unrelated trials are n (Sidak), and at rho 0.5 the 95% point
    # of the best of 20 is 2.644 (200,000 simulated: 2.644), what the best of 12.5
    # independent ones reaches 5% of the time.
    assert worth(7, 1e-9) == pytest.approx(7.0, abs=1e-4)
    assert worth(20, 0.5) == pytest.approx(12.53, abs=0.01)

    # Three at a common correlation 0.5: 2.59 trials.
    common = np.full((3, 3), 0.5)
    np.fill_diagonal(common, 1.0)
    assert effective_number_of_trials(common) == pytest.approx(worth(3, 0.5), abs=1e-4)
    assert worth(3, 0.5) == pytest.approx(2.5913, abs=1e-4)
    # Twenty at 0.5 count 12.5 (matching the expected best instead: 8.6; the design effect
    # of a mean: 1.9). Strongly correlated ones count little; the module's two integrals
    # (either side of rho 1/2) agree with the reference.
    for rho in (0.2, 0.5, 0.8, 0.97):
        twenty = np.full((20, 20), rho)
        np.fill_diagonal(twenty, 1.0)
        assert effective_number_of_trials(twenty) == pytest.approx(worth(20, rho), abs=1e-3)
    # Two copies beside one unrelated trial: mean correlation 1/3; over 2.
    block = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert 2.0 < effective_number_of_trials(block) == pytest.approx(worth(3, 1 / 3), abs=1e-4)
    # Shrinkage: 0.3 with a standard error of 0.1 is shrunk by 2 of them to 0.1.
    pair = np.array([[1.0, 0.3], [0.3, 1.0]])
    assert effective_number_of_trials(pair, 0.1) == pytest.approx(worth(2, 0.1), abs=1e-4)
    assert effective_number_of_trials(pair, 0.2) == pytest.approx(2.0, abs=1e-9)  # noise
    # Opposite trials are two trials.
    opposite = np.array([[1.0, -0.9], [-0.9, 1.0]])
    assert effective_number_of_trials(opposite) == pytest.approx(2.0, abs=1e-9)


def test_paired_difference_test_by_hand():
    candidate = series([0.03, 0.05, 0.04, 0.07, 0.06, 0.01])
    champion = series([0.02, 0.03, 0.01, 0.03, 0.01, 0.0])
    # d = (1, 2, 3, 4, 5, 1) / 100: mean 16/600, variance (ddof 1) 2.6667e-4 x ...
    d = np.array([1, 2, 3, 4, 5, 1]) / 100
    t = d.mean() / math.sqrt(d.var(ddof=1) / 6)
    out = paired_difference_test(candidate, champion, lags=0)
    assert out["days"] == 6 and out["lrv_ratio"] == 1.0
    assert out["t"] == pytest.approx(t, rel=1e-12)
    assert out["confidence"] == pytest.approx(sps.norm.cdf(t), rel=1e-12)
    assert out["annual_difference"] == pytest.approx(252 * d.mean())
    assert paired_difference_test(champion, champion)["confidence"] == 0.5
    assert paired_difference_test(champion + 0.01, champion)["confidence"] == 1.0
    assert paired_difference_test(champion, champion + 0.01)["confidence"] == 0.0


def test_benjamini_hochberg_by_hand():
    # Sorted p 0.01, 0.03, 0.04, 0.5: m p / rank = 0.04, 0.06, 0.0533, 0.5; running minimum
    # from the top: 0.04, 0.0533, 0.0533, 0.5.
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert benjamini_hochberg([0.9, 0.95]) == pytest.approx([0.95, 0.95])
    assert benjamini_hochberg([]).size == 0


def test_expected_maximum_has_no_cliff_near_one_trial():
    values = [expected_max_standard_normal(n) for n in (1.0, 1.01, 1.1, 1.5, 2.0)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(1 / math.sqrt(math.pi))
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    assert values[1] < 0.01  # continuous at 1, never below 0


# --- the count is of skill, not of the market -----------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_independent_mostly_long_policies_count_as_independent_trials(seed):
    """Nine policies, each long on an independent random 75% of days, flat otherwise: their
    raw returns all carry the market and look alike; their skill returns (over the
    exposure-matched benchmark) are unrelated, and that is what the ledger counts."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2019-01-01", periods=1000)
    market = 0.0004 + 0.01 * rng.standard_t(4, days.size) / math.sqrt(2)
    skill, raw = [], []
    for _ in range(9):
        position = (rng.random(days.size) < 0.75).astype(float)
        policy = position * market
        raw.append(pd.Series(policy, index=days))
        skill.append(pd.Series(policy - position.mean() * market, index=days))
    counted = effective_trials_of(skill)["trials"]
    assert counted >= 8.5, counted
    assert effective_trials_of(raw)["trials"] < 7.0  # what correlating raw returns gives (5.9)


def test_the_same_procedure_on_one_more_week_is_nearly_one_trial():
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2019-01-01", periods=1005)
    base = pd.Series(0.01 * rng.standard_normal(days.size), index=days)
    week_later = base.iloc[5:] + 0.001 * rng.standard_normal(1000)  # slightly different folds
    other_seed = pd.Series(0.01 * rng.standard_normal(days.size), index=days)
    # Correlation 0.995, shrunk by two standard errors (computed as if unrelated: generous
    # to the count) to about 0.89: 1.41 trials.
    assert effective_trials_of([base.iloc[:1000], week_later])["trials"] < 1.5
    assert effective_trials_of([base, week_later, other_seed])["trials"] > 1.9


# --- the ledger ----------------------------------------------------------------------------


def entry(key: str, values, first="2021-01-04", **extra) -> dict:
    index = pd.bdate_range(first, periods=len(values))
    return {"key": key, "skill_returns": skill_record(pd.Series(values, index=index)), **extra}


def test_an_entry_is_recorded_once_and_a_reset_is_recorded(tmp_path):
    ledger = Ledger(tmp_path / "SPY")
    rng = np.random.default_rng(0)
    with ledger.locked():
        first, new = ledger.record(entry("a", rng.standard_normal(50)))
        again, new_again = ledger.record(entry("a", rng.standard_normal(50)))
    assert new and not new_again and again == first
    assert series_of(first).index[0] == pd.Timestamp("2021-01-04")
    with ledger.locked():
        ledger.record(entry("b", rng.standard_normal(50)))
    assert [e["key"] for e in ledger.entries()] == ["a", "b"]
    with pytest.raises(ValueError, match="needs a reason"):
        ledger.reset("  ")
    reset = ledger.reset("new reward function")
    assert reset["attempts_before"] == 2 and ledger.entries() == []
    assert [line["event"] for line in ledger.lines()] == ["trial", "trial", "reset"]
    with open(ledger.file, "a") as f:
        f.write('{"event": "trial", "key": "torn')  # a writer killed mid-line
    assert ledger.entries() == []


def _append_many(root: str, worker: int) -> None:
    ledger = Ledger(root)
    for i in range(15):
        with ledger.locked():
            ledger.record(entry(f"{worker}-{i}", [0.001 * i] * 30, payload="x" * 20000))


def test_concurrent_writers_all_record(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    keys = [e["key"] for e in Ledger(tmp_path).entries()]
    assert sorted(keys) == sorted(f"{w}-{i}" for w in range(3) for i in range(15))
    for line in Ledger(tmp_path).file.read_text().splitlines():
        json.loads(line)  # no interleaved lines


def evidence_for(key: str) -> SimpleNamespace:
    """What judge_and_record reads of the gate's Evidence."""
    return SimpleNamespace(
        candidate={"checkpoint": key, "spec": {"seed": 0}, "data_version": "d1"},
        thresholds=GateThresholds(),
        cost=CostModel(),
    )


def test_every_attempt_raises_the_bar_for_the_next(tmp_path):
    """The same evidence judged as attempt 1, then after unrelated attempts: the Deflated
    Sharpe's trial count is the ledger's, and it falls as attempts accumulate. A candidate
    judged twice (the report, then promoted_policy) is one attempt."""
    registry = Registry(tmp_path / "SPY", "SPY")
    candidate = measured()
    first = dataclasses.replace(candidate)
    judge_and_record(first, evidence_for("ckpt-0"), registry, {"started_by": "manual"})
    assert first.attempts == 1 and first.pooled["trials"] == 1.0
    twice = dataclasses.replace(candidate)
    judge_and_record(twice, evidence_for("ckpt-0"), registry)
    assert twice.attempts == 1 and len(Ledger(registry.root).entries()) == 1
    rng = np.random.default_rng(5)
    days = pooled_test_days()["skill_returns"]["dates"]
    with Ledger(registry.root).locked():
        for k in range(1, 10):
            noise = list(0.01 * rng.standard_normal(len(days)))
            Ledger(registry.root).record({"key": f"other-{k}", "dsr": 0.3,
                                          "skill_returns": {"dates": days, "values": noise}})  # fmt: skip
    later = dataclasses.replace(candidate)
    judge_and_record(later, evidence_for("ckpt-10"), registry)
    assert later.attempts == 11
    assert 9.0 < later.pooled["trials"] <= 11.0
    assert later.pooled["benchmark_sharpe"] > 0.0 == first.pooled["benchmark_sharpe"]
    assert later.pooled["dsr"] < first.pooled["dsr"]
    entries = Ledger(registry.root).entries()
    assert entries[0]["origin"] == {"started_by": "manual"}
    assert entries[-1]["attempts"] == 11 and entries[-1]["trials"] == later.pooled["trials"]
    assert trial_count(entries)["attempts"] == 11


def test_q_values_are_taken_across_the_instruments_judged(tmp_path):
    root = tmp_path / "registry"
    for name, dsr in (("A", 0.999), ("B", 0.5), ("C", 0.2)):
        ledger = Ledger(root / name)
        with ledger.locked():
            ledger.record(entry(f"{name}-1", [0.0] * 30, dsr=dsr, passed=dsr > 0.95))
    m = measured()
    judge_and_record(m, evidence_for("D-1"), Registry(root / "D", "D"))
    assert set(m.universe) == {"A", "B", "C", "D"}
    p = [m.universe[n]["p"] for n in "ABCD"]
    assert m.universe["D"]["q"] == pytest.approx(benjamini_hochberg(p)[3])
    assert m.q_value == m.universe["D"]["q"]


def test_the_registry_cli_lists_resets_and_reports_the_universe(tmp_path, capsys):
    root = tmp_path / "registry"
    ledger = Ledger(root / "SPY")
    (root / "SPY" / "versions").mkdir(parents=True)
    with ledger.locked():
        ledger.record(entry("a", [0.001, -0.002] * 20, dsr=0.97, passed=True, seed=3))
    assert main(["--root", str(root), "--instrument", "SPY", "ledger"]) == 0
    out = capsys.readouterr().out
    assert "passed  seed 3" in out and "1 attempt(s), worth 1.00" in out
    assert main(["--root", str(root), "universe"]) == 0
    assert "SPY" in capsys.readouterr().out
    assert main(["--root", str(root), "--instrument", "SPY", "reset-ledger", "--reason", "v2"]) == 0
    assert "after 1 attempt(s)" in capsys.readouterr().out
    assert main(["--root", str(root), "--instrument", "SPY", "history"]) == 0
    assert "ledger-reset after 1 attempt(s): v2" in capsys.readouterr().out
    assert Ledger(root / "SPY").entries() == []


def test_series_on_the_same_days_are_counted_as_pair_by_pair():
    """The one-matrix path (every attempt on the same test days) gives the pairwise figures."""
    rng = np.random.default_rng(11)
    days = pd.bdate_range("2020-01-01", periods=300)
    common = rng.standard_normal(300)
    many = [pd.Series(0.6 * common + rng.standard_normal(300), index=days) for _ in range(5)]
    many.append(pd.Series(np.zeros(300), index=days))
    many.append(pd.Series(np.zeros(300), index=days))
    aligned = effective_trials_of(many)
    for i in range(len(many)):
        for j in range(i + 1, len(many)):
            rho, se, _ = trial_correlation(many[i], many[j])
            assert aligned["correlations"][i, j] == pytest.approx(rho, abs=1e-12)
            assert aligned["noise"][i, j] == pytest.approx(se, abs=1e-12)
    # Not aligned (the pairwise path): the two flat trials, on 299 shared days, are still
    # one behaviour, as on the aligned path; the copy adds less than a trial.
    shifted = [*many[:-1], many[-1].shift(1, freq="B")]
    assert effective_trials_of(shifted)["trials"] == pytest.approx(aligned["trials"], abs=1e-9)
    assert aligned["trials"] < effective_trials_of(many[:-1])["trials"] + 1
