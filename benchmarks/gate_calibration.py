"""Gate calibration and power of the walk-forward gate, traded at the next open.

    .venv/bin/python -m benchmarks.gate_calibration                 # everything (hours)
    .venv/bin/python -m benchmarks.gate_calibration --quick         # smoke test, ~2 minutes
    .venv/bin/python -m benchmarks.gate_calibration --tables calibration --seeds 20
    .venv/bin/python -m benchmarks.gate_calibration --render-only \\
        --results-md benchmarks/RESULTS.md                          # tables from the JSONL

Every instrument is generated prices (generator seed 1000 + seed) judged by the whole
procedure, ``rl_assets.promotion.procedure.judge_procedure`` with its defaults: the candidate
trained on the last 756 + 252 bars and every rolling walk-forward fold (train 756, validation
252, test 252, tiling the data backwards from its last bar), all trained concurrently as Ray
tasks by the default ``TrainingSpec`` (training seed = seed), then every gate with the
deployment's thresholds and cost model and no champion (a first promotion).

- Calibration: the nulls ``random_walk`` and ``garch_null`` (2019-01-01..2026-11-30, five
  folds, about 4.2 years of pooled test days). Target: a promotion rate of at most 5% with
  a one-sided 95% Clopper-Pearson upper bound of at most 8%.
- Overnight check: ``overnight_momentum`` (the whole edge is close to next open). Traded at
  the next open it is worth nothing and must not be promoted; trained and judged at the
  close just observed ("same_close", which the gate refuses by ``execution_tradable``) its
  skill Sharpe and DSR show what the edge would look like if one could.
- Power: ``garch_momentum`` with the autocorrelation whose sign-of-yesterday rule has a
  planted annual Sharpe s (before costs, at the same close), against y years of pooled test
  evidence (exactly y folds of 252 test days): the rate at which the pooled-evidence gates
  pass, the rate of promotion (every gate), and the edge rule's measured Sharpe on the pooled
  test days under next-open execution.

Each instrument's result is appended to a JSONL file as soon as it is done; a rerun skips
the instruments already there (resume). Checkpoints live in a temporary directory removed
after each instrument. Instruments run one after another in one process and one Ray
session (each ``judge_procedure`` already keeps both cores busy).
"""

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

SECTION_TITLE = "## Gate calibration and power (walk-forward, next-open execution)"
# Sections earlier versions of this benchmark (or benchmarks.run's placeholder) wrote.
OLD_TITLES = ("## Gate calibration and power", "## Gate calibration")

# The study period: fixed, so a rerun draws the same bars.
DATA_START = "2019-01-01"
DATA_END = "2026-11-30"
DATA_SEED_BASE = 1000  # generator seed = DATA_SEED_BASE + seed; training seed = seed
NULLS = ("random_walk", "garch_null")
OVERNIGHT = "overnight_momentum"
OVERNIGHT_EXECUTIONS = ("next_open", "same_close")
POWER_STRUCTURE = "garch_momentum"
SHARPES = (0.5, 1.0, 1.5, 2.0)  # planted annual Sharpe of the edge's own rule
YEARS = (1, 3, 5, 8)  # years (folds of 252 test days) of pooled test evidence
# judge_procedure's default windows; power data holds exactly y test windows after them,
# plus a few bars (fewer than a fold's minimum test days, so no extra short fold).
TRAIN_DAYS, VALIDATION_DAYS, TEST_DAYS = 756, 252, 252
EXTRA_DAYS = 10
# The gates that read the procedure's pooled test evidence (power's "evidence passes").
EVIDENCE_GATES = (
    "test_evidence_sufficient",
    "test_sharpe_at_least_minimum",
    "beats_buy_and_hold",
    "deflated_sharpe_at_least_confidence",
)
TARGET_RATE = 0.05  # calibration: observed promotion rate at most this
TARGET_UPPER = 0.08  # ... and its one-sided 95% upper bound at most this
DEFAULTS = {"seeds": 60, "power_seeds": 10, "overnight_seeds": 10}
QUICK = {
    "seeds": 2,
    "power_seeds": 1,
    "overnight_seeds": 1,
    "sharpes": (1.5,),
    "years": (1,),
}
TABLES = ("calibration", "overnight", "power")


@dataclass(frozen=True)
class Instrument:
    """One generated instrument judged once."""

    family: str  # "calibration", "overnight" or "power"
    structure: str
    seed: int
    execution: str = "next_open"  # training's and judging's
    sharpe: float | None = None  # power: planted annual Sharpe
    years: int | None = None  # power: folds of 252 test days

    @property
    def key(self) -> str:
        parts = [self.family, self.structure, self.execution]
        if self.sharpe is not None:
            parts.append(f"sharpe={self.sharpe:g}")
        if self.years is not None:
            parts.append(f"years={self.years}")
        return "/".join([*parts, f"seed={self.seed}"])

    @property
    def autocorrelation(self) -> float | None:
        from rl_assets import constants
        from rl_assets.data.synthetic import autocorrelation_for_annual_sharpe

        if self.sharpe is not None:
            return autocorrelation_for_annual_sharpe(self.sharpe)
        return constants.GENERATOR_AUTOCORRELATION if self.structure == OVERNIGHT else None

    def span(self) -> tuple[str, str]:
        """The data's first and last day: the study period, or for power exactly ``years``
        test windows after one train and validation window (plus EXTRA_DAYS bars)."""
        if self.years is None:
            return DATA_START, DATA_END
        import pandas as pd

        n = TRAIN_DAYS + VALIDATION_DAYS + TEST_DAYS * self.years + EXTRA_DAYS
        return str(pd.bdate_range(end=DATA_END, periods=n)[0].date()), DATA_END

    def trainings(self) -> int:
        """How many policies judge_procedure trains: its folds and the candidate."""
        import pandas as pd

        from rl_assets.rl.walk_forward import expected_fold_count

        n = len(pd.bdate_range(*self.span()))
        folds = expected_fold_count(n, TRAIN_DAYS, VALIDATION_DAYS, TEST_DAYS)
        return (min(folds, self.years) if self.years else folds) + 1


def plan(tables, seeds, overnight_seeds, power_seeds, sharpes, years) -> list[Instrument]:
    """Every instrument, in the order they run: the nulls first (seed by seed, both nulls
    together), then the overnight check, then power with the cheapest cells (fewest
    years) first, each cell complete before the next."""
    out: list[Instrument] = []
    if "calibration" in tables:
        out += [Instrument("calibration", s, seed) for seed in range(seeds) for s in NULLS]
    if "overnight" in tables:
        out += [
            Instrument("overnight", OVERNIGHT, seed, execution)
            for seed in range(overnight_seeds)
            for execution in OVERNIGHT_EXECUTIONS
        ]
    if "power" in tables:
        out += [
            Instrument("power", POWER_STRUCTURE, seed, sharpe=s, years=y)
            for y in sorted(years)
            for s in sharpes
            for seed in range(power_seeds)
        ]
    return out


def prices_for(inst: Instrument):
    from rl_assets.data.synthetic import generate_prices

    start, end = inst.span()
    extra = {} if inst.autocorrelation is None else {"autocorrelation": inst.autocorrelation}
    return generate_prices(
        start, end, seed=DATA_SEED_BASE + inst.seed, structure=inst.structure, **extra
    )


def edge_rule_sharpe(prices, plan_folds, spec, cost) -> float:
    """Sharpe, on the pooled test days, of holding the sign of yesterday's close-to-close
    return, decided at the close and executed as the policy is (same env, costs, days):
    what the planted edge pays a rule that knows it."""
    from rl_assets.promotion.gate import judging_spec
    from rl_assets.rl.env import ACTION_SETS, bars, rollout
    from rl_assets.rl.metrics import sharpe_ratio
    from rl_assets.rl.walk_forward import Fold, window_history

    env_config = judging_spec(spec, cost).env_config()
    positions = ACTION_SETS[env_config["action_set"]]

    def act(obs: np.ndarray) -> int:
        wanted = float(np.sign(obs[-2]))  # obs[-2]: the latest return (scaled)
        return positions.index(wanted if wanted in positions else 0.0)

    all_bars = bars(prices)
    returns = [
        rollout(act, window_history(all_bars, f.test, spec.window), env_config)[0]
        for f in (Fold.from_dict(d) for d in plan_folds)
    ]
    return sharpe_ratio(np.concatenate(returns), cost.risk_free_rate)


def judge_instrument(inst: Instrument, root: Path, command: str = "") -> dict[str, Any]:
    """Generate the instrument's prices, run judge_procedure on them, and return one row."""
    from rl_assets.promotion.gate import deployment_cost_model
    from rl_assets.promotion.procedure import judge_procedure
    from rl_assets.rl.training import TrainingSpec

    started = time.perf_counter()
    prices = prices_for(inst)
    spec = TrainingSpec(seed=inst.seed, execution=inst.execution)
    cost = dataclasses.replace(deployment_cost_model(), execution=inst.execution)
    result = judge_procedure(prices, spec, root, cost=cost, max_folds=inst.years or 0)
    evidence = result["evidence"]
    pooled = evidence["pooled"]
    if inst.years is not None:
        test_days = [f["test"][1] - f["test"][0] for f in evidence["plan"]]
        if test_days != [TEST_DAYS] * inst.years:
            raise RuntimeError(f"{inst.key}: fold test days {test_days}, wanted {inst.years}")
    gates = result["gates"]
    candidate = result["candidate"]
    start, end = inst.span()
    row = {
        "key": inst.key,
        **dataclasses.asdict(inst),
        "autocorrelation": inst.autocorrelation,
        "data_seed": DATA_SEED_BASE + inst.seed,
        "data_start": start,
        "data_end": end,
        "bars": len(prices),
        "promoted": bool(result["promoted"]),
        "failed": [g.name for g in gates if not g.passed],
        "evidence_passed": all(g.passed for g in gates if g.name in EVIDENCE_GATES),
        "gates": {g.name: {"passed": g.passed, "observed": g.observed} for g in gates},
        "folds": len(evidence["plan"]),
        "test_days": pooled["days"],
        "test_years": pooled["years"],
        "test_first_date": pooled["first_date"],
        "skill_sharpe": pooled["skill_sharpe"],
        "skill_sharpe_se": pooled["skill_sharpe_se"],
        "dsr": pooled["dsr"],
        "psr": pooled["psr"],
        "lrv_ratio": pooled["lrv_ratio"],
        "policy_sharpe": pooled["policy_sharpe"],
        "buy_and_hold_sharpe": pooled["buy_and_hold_sharpe"],
        "exposure": pooled["exposure"],
        "turnover": pooled["turnover"],
        "min_track_record_years": pooled["min_track_record_years"],
        "fold_skill_sharpes": [f["skill_sharpe"] for f in evidence["folds"]],
        "edge_rule_sharpe": edge_rule_sharpe(prices, evidence["plan"], spec, cost),
        "candidate_validation_sharpe": candidate["best_validation_sharpe"],
        "candidate_iterations": candidate["iterations"],
        "fold_iterations": [r["iterations"] for r in result["folds"]],
        "seconds": time.perf_counter() - started,
        "load": os.getloadavg()[0],
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
    }
    return clean(row)


def clean(obj: Any) -> Any:
    """JSON-safe: numpy scalars as Python numbers, non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --- the JSONL of results -------------------------------------------------------------


def read_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of a results JSONL by key (the last of a key wins); lines that do not
    parse (a write cut short) and rows of another study period are skipped."""
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "key" in row and row.get("data_end") == DATA_END:
            rows[row["key"]] = row
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row and make it durable before the next instrument starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    else:
        torn = False
    with path.open("a") as f:
        f.write(("\n" if torn else "") + json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --- summaries ---------------------------------------------------------------------------


def binomial_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of a binomial rate: k of n."""
    from scipy import stats

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def _spread(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates and spreads of a group of rows (an empty group: runs 0)."""
    from rl_assets.rl.stats import one_sided_upper_bound

    n = len(rows)
    if not n:
        return {"runs": 0}
    k = sum(r["promoted"] for r in rows)
    e = sum(r["evidence_passed"] for r in rows)
    failed: dict[str, int] = {}
    for r in rows:
        for name in r["failed"]:
            failed[name] = failed.get(name, 0) + 1
    return {
        "runs": n,
        "seeds": sorted(r["seed"] for r in rows),
        "promoted": k,
        "rate": k / n,
        "upper95": one_sided_upper_bound(k, n),
        "ci95": list(binomial_interval(k, n)),
        "evidence_passed": e,
        "evidence_rate": e / n,
        "evidence_ci95": list(binomial_interval(e, n)),
        "dsr_at_confidence": sum(
            r["gates"]["deflated_sharpe_at_least_confidence"]["passed"] for r in rows
        ),
        "failed": dict(sorted(failed.items(), key=lambda kv: -kv[1])),
        "skill_sharpe": _spread([r["skill_sharpe"] for r in rows]),
        "dsr": _spread([r["dsr"] for r in rows]),
        "policy_sharpe": _spread([r["policy_sharpe"] for r in rows]),
        "edge_rule_sharpe": _spread([r["edge_rule_sharpe"] for r in rows]),
        "test_years": _spread([r["test_years"] for r in rows]),
        "seconds": _spread([r["seconds"] for r in rows]),
        "promoted_runs": [
            {k2: r[k2] for k2 in ("key", "seed", "skill_sharpe", "dsr", "policy_sharpe")}
            for r in rows
            if r["promoted"]
        ],
    }


def summarize(
    rows: dict[str, dict[str, Any]], instruments: list[Instrument], meta: dict[str, Any]
) -> dict[str, Any]:
    """The JSON summary of the planned instruments that have a row."""
    from rl_assets.promotion.gate import deployment_cost_model, deployment_thresholds

    planned = {i.key: i for i in instruments}
    have = [rows[k] for k in planned if k in rows]

    def select(**match) -> list[dict[str, Any]]:
        return [r for r in have if all(r.get(k) == v for k, v in match.items())]

    out: dict[str, Any] = {
        **meta,
        "data": {
            "start": DATA_START,
            "end": DATA_END,
            "generator_seed": f"{DATA_SEED_BASE} + seed",
            "windows": {"train": TRAIN_DAYS, "validation": VALIDATION_DAYS, "test": TEST_DAYS},
        },
        "cost_model": dataclasses.asdict(deployment_cost_model()),
        "thresholds": dataclasses.asdict(deployment_thresholds()),
        "targets": {"rate_at_most": TARGET_RATE, "upper95_at_most": TARGET_UPPER},
        "planned": len(planned),
        "done": len(have),
        "instrument_seconds": sum(r["seconds"] for r in have),
        "load_during": _spread([r["load"] for r in have]),
        "row_commands": sorted({r.get("command", "") for r in have} - {""}),
        "last_finished": max((r["finished_at"] for r in have), default=""),
    }
    if any(i.family == "calibration" for i in instruments):
        cal = {s: group(select(family="calibration", structure=s)) for s in NULLS}
        cal["both nulls"] = group(select(family="calibration"))
        for g in cal.values():
            if g["runs"]:
                g["target_met"] = g["rate"] <= TARGET_RATE and g["upper95"] <= TARGET_UPPER
        out["calibration"] = cal
    if any(i.family == "overnight" for i in instruments):
        out["overnight"] = {
            e: group(select(family="overnight", execution=e)) for e in OVERNIGHT_EXECUTIONS
        }
    power = sorted(
        {(i.sharpe, i.years) for i in instruments if i.family == "power"},
        key=lambda sy: (sy[1], sy[0]),
    )
    if power:
        out["power"] = [
            {
                "sharpe": s,
                "years": y,
                "autocorrelation": Instrument(
                    "power", POWER_STRUCTURE, 0, sharpe=s
                ).autocorrelation,
                **group(select(family="power", sharpe=s, years=y)),
            }
            for s, y in power
        ]
    return out


# --- RESULTS.md ----------------------------------------------------------------------------


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _med(spread: dict[str, float] | None, fmt: str = ".2f", sign: bool = True) -> str:
    if not spread:
        return "-"
    f = ("+" if sign else "") + fmt
    return f"{spread['median']:{f}} ({spread['min']:{f}} to {spread['max']:{f}})"


def _failed(g: dict[str, Any]) -> str:
    if not g.get("failed"):
        return "none"
    return ", ".join(f"{name} {count}" for name, count in g["failed"].items())


def _verdict(g: dict[str, Any]) -> str:
    if g["target_met"]:
        return "met"
    if g["rate"] <= TARGET_RATE:
        return "not shown: too few seeds for the bound"
    return "MISSED"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def markdown(out: dict[str, Any]) -> str:
    """The self-contained RESULTS.md section: how it was measured and every table."""
    cost, t = out["cost_model"], out["thresholds"]
    load = out.get("load_during") or {}
    now = out.get("load_at_writing") or [math.nan] * 3
    commands = out.get("row_commands") or [out["command"]]
    lines = [
        SECTION_TITLE,
        "",
        (
            f"Measured by `{out['command']}`"
            if commands == [out["command"]]
            else f"Rows measured by {', '.join(f'`{c}`' for c in commands)}; this section "
            f"written by `{out['command']}`"
        )
        + f" on {out['date']} ({out['done']} of {out['planned']} planned "
        f"instruments done, the last finished {out['last_finished'] or '-'}). Wall time of the "
        f"writing invocation {_minutes(out.get('wall_s'))}; the instruments' own time "
        f"{_minutes(out['instrument_seconds'])} in all, one after another in one process and "
        f"one Ray session on {out['cores']} cores. 1-minute load average at the end of each "
        f"instrument: median {_f(load.get('median'), '.1f')} (max {_f(load.get('max'), '.1f')}); "
        f"`os.getloadavg()` when written: {now[0]:.2f}, {now[1]:.2f}, {now[2]:.2f}.",
        "",
        "Each instrument: generated prices (generator seed 1000 + seed; the calibration and "
        f"overnight data {DATA_START}..{DATA_END}), the default `TrainingSpec` with training "
        "seed = seed, judged by `rl_assets.promotion.procedure.judge_procedure` with its "
        f"defaults: the candidate trained on the last {TRAIN_DAYS} + {VALIDATION_DAYS} bars, "
        f"rolling walk-forward folds (train {TRAIN_DAYS}, validation {VALIDATION_DAYS}, test "
        f"{TEST_DAYS} bars, tiling the data backwards from its last bar), candidate and folds "
        f"trained concurrently as Ray tasks; every gate with the deployment's thresholds "
        f"(DSR >= {t['min_deflated_sharpe']:g}, at least {t['min_test_days']:g} pooled test "
        f"days, test Sharpe >= {t['min_test_sharpe']:g}, margin over buy-and-hold > "
        f"{t['min_margin_over_buy_and_hold']:g}) and cost model ({cost['transaction_cost']:g} "
        f"per unit of position change, execution `{cost['execution']}`), no champion. "
        "*Skill Sharpe*: annualised Sharpe of the pooled test days' returns over the "
        "exposure-matched benchmark; *DSR*: its autocorrelation-robust Deflated Sharpe (one "
        "trial); spreads are median (min to max) over seeds. *Evidence gates*: "
        + ", ".join(f"`{g}`" for g in EVIDENCE_GATES)
        + ".",
    ]
    if "calibration" in out:
        lines += [
            "",
            "### Calibration: the nulls (nothing to learn)",
            "",
            f"Target: promotion rate at most {TARGET_RATE:.0%} and its one-sided 95% "
            f"Clopper-Pearson upper bound at most {TARGET_UPPER:.0%} (with no promotion that "
            "needs 36 seeds; with one, 58).",
            "",
            "| data | runs | promoted | rate | 95% upper bound | verdict | evidence gates "
            "passed | skill Sharpe | DSR | test years | seconds per instrument | gates that "
            "refused (runs) |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        for name, g in out["calibration"].items():
            if not g["runs"]:
                lines.append(f"| {name} | 0 | - | - | - | not run | - | - | - | - | - | - |")
                continue
            lines.append(
                f"| {name} | {g['runs']} | {g['promoted']} | {g['rate']:.1%} | "
                f"{g['upper95']:.1%} | {_verdict(g)} | "
                f"{g['evidence_passed']} | {_med(g['skill_sharpe'])} | "
                f"{_med(g['dsr'], '.2f', False)} | {g['test_years']['median']:.2f} | "
                f"{g['seconds']['median']:.0f} | {_failed(g)} |"
            )
        lucky = [r for name in NULLS for r in out["calibration"][name].get("promoted_runs", [])]
        if lucky:
            lines += [
                "",
                "Promoted on a null: "
                + "; ".join(
                    f"{r['key']}: skill Sharpe {r['skill_sharpe']:.2f}, DSR {r['dsr']:.3f}, "
                    f"test Sharpe {r['policy_sharpe']:.2f}"
                    for r in lucky
                )
                + ".",
            ]
    if "overnight" in out:
        lines += [
            "",
            "### Overnight edge: worth nothing at the next open",
            "",
            f"`{OVERNIGHT}`: the whole predictable move happens from the close to the next "
            "open. `next_open` is the deployment's execution (training and judging); "
            "`same_close` trains and judges at the close just observed, which nobody can "
            "trade: the gate refuses it by `execution_tradable`, so its row shows the "
            "figures the edge would show if one could (evidence gates, skill Sharpe, DSR), "
            "not a promotion. Same seeds in both rows.",
            "",
            "| execution | runs | promoted | 95% upper bound | evidence gates passed | "
            "DSR >= threshold | skill Sharpe | DSR | test Sharpe | edge rule Sharpe | gates "
            "that refused (runs) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for execution, g in out["overnight"].items():
            if not g["runs"]:
                lines.append(f"| {execution} | 0 | - | - | - | - | - | - | - | - | - |")
                continue
            lines.append(
                f"| {execution} | {g['runs']} | {g['promoted']} | {g['upper95']:.1%} | "
                f"{g['evidence_passed']} | {g['dsr_at_confidence']} | {_med(g['skill_sharpe'])} | "
                f"{_med(g['dsr'], '.2f', False)} | {_med(g['policy_sharpe'])} | "
                f"{_med(g['edge_rule_sharpe'])} | {_failed(g)} |"
            )
    if "power" in out:
        cells = out["power"]
        sharpes = sorted({c["sharpe"] for c in cells})
        years = sorted({c["years"] for c in cells})
        by = {(c["sharpe"], c["years"]): c for c in cells}
        lines += [
            "",
            "### Power: planted momentum against years of pooled test evidence",
            "",
            f"`{POWER_STRUCTURE}` (GARCH-t volatility) with the lag-1 autocorrelation at which "
            "holding the sign of yesterday's return has the planted annual Sharpe s before "
            "costs at the same close (`autocorrelation_for_annual_sharpe`); the data end "
            f"{DATA_END} and hold exactly y folds of {TEST_DAYS} test days after "
            f"{TRAIN_DAYS} + {VALIDATION_DAYS} bars. Each cell: the pooled-evidence gates "
            "passed (k of n) / promoted (every gate, k of n). The edge rule's Sharpe is the "
            "same rule measured on the pooled test days entered at the next open with the "
            "deployment's costs: the planted strength as the deployment can trade it.",
            "",
            "| planted Sharpe (autocorrelation) | "
            + " | ".join(f"{y} year{'s' if y != 1 else ''}" for y in years)
            + " | edge rule Sharpe at the next open, median |",
            "|---|" + "---:|" * (len(years) + 1),
        ]
        for s in sharpes:
            row = [by.get((s, y), {"runs": 0}) for y in years]
            rule = [
                c["edge_rule_sharpe"]["median"] for c in row if c["runs"] and c["edge_rule_sharpe"]
            ]
            phi = next(c["autocorrelation"] for c in cells if c["sharpe"] == s)
            lines.append(
                f"| {s:g} ({phi:.3f}) | "
                + " | ".join(
                    f"{c['evidence_passed']}/{c['runs']} / {c['promoted']}/{c['runs']}"
                    if c["runs"]
                    else "-"
                    for c in row
                )
                + f" | {', '.join(f'{v:.2f}' for v in rule) or '-'} |"
            )
        lines += [
            "",
            "| planted Sharpe | years | runs | evidence gates passed (95% CI) | promoted | "
            "edge rule Sharpe | skill Sharpe | DSR | seconds per instrument | gates that "
            "refused (runs) |",
            "|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        for c in cells:
            if not c["runs"]:
                lines.append(f"| {c['sharpe']:g} | {c['years']} | 0 | - | - | - | - | - | - | - |")
                continue
            low, high = c["evidence_ci95"]
            lines.append(
                f"| {c['sharpe']:g} | {c['years']} | {c['runs']} | {c['evidence_passed']} "
                f"({low:.0%}-{high:.0%}) | {c['promoted']} | {_med(c['edge_rule_sharpe'])} | "
                f"{_med(c['skill_sharpe'])} | {_med(c['dsr'], '.2f', False)} | "
                f"{c['seconds']['median']:.0f} | {_failed(c)} |"
            )
    return "\n".join(lines) + "\n"


def _heading_at(text: str, title: str) -> int:
    """Where the line that is exactly ``title`` starts in ``text``, or -1."""
    match = re.search(rf"^{re.escape(title)}[ \t]*$", text, re.MULTILINE)
    return match.start() if match else -1


def _span(text: str) -> tuple[int, int] | None:
    """Where this benchmark's section (or an earlier one it replaces) lies in a
    RESULTS.md text: from its heading to the next second-level heading (or the end)."""
    for title in (SECTION_TITLE, *OLD_TITLES):
        start = _heading_at(text, title)
        if start >= 0:
            following = text.find("\n## ", start + len(title))
            return start, len(text) if following < 0 else following + 1
    return None


def section_of(text: str) -> str | None:
    """This benchmark's section of a RESULTS.md text, or None."""
    start = _heading_at(text, SECTION_TITLE)
    if start < 0:
        return None
    following = text.find("\n## ", start + len(SECTION_TITLE))
    return text[start : len(text) if following < 0 else following + 1]


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (or the one an earlier version or the
    placeholder left), or append it; every other section stays as it was."""
    text = path.read_text() if path.exists() else ""
    body = section.rstrip("\n") + "\n"
    span = _span(text)
    if span:
        rest = text[span[1] :]
        text = text[: span[0]] + body + ("\n" + rest if rest else "")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + body
    path.write_text(text)


# --- the run ----------------------------------------------------------------------------


def _numbers(text: str, kind):
    return tuple(kind(v) for v in text.split(",") if v.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gate_calibration", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tables", default=",".join(TABLES), help="any of " + ",".join(TABLES))
    parser.add_argument("--seeds", type=int, default=None, help="seeds per null (default 60)")
    parser.add_argument(
        "--power-seeds", type=int, default=None, help="seeds per power cell (default 10)"
    )
    parser.add_argument(
        "--overnight-seeds", type=int, default=None, help="overnight seeds (default 10)"
    )
    parser.add_argument(
        "--sharpes",
        "--strengths",
        dest="sharpes",
        default=None,
        help="planted annual Sharpes of the power table (default 0.5,1,1.5,2)",
    )
    parser.add_argument(
        "--years", default=None, help="years of pooled test evidence (default 1,3,5,8)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 seeds per null, 1 overnight seed, power s=1.5, y=1, 1 seed",
    )
    parser.add_argument(
        "--out-jsonl",
        type=Path,
        default=None,
        help="one row per instrument, resumed from (default benchmarks/gate_calibration.jsonl; "
        "with --quick benchmarks/gate_calibration.quick.jsonl)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON summary (default benchmarks/gate_calibration.json; with --quick "
        "benchmarks/gate_calibration.quick.json)",
    )
    parser.add_argument("--results-md", type=Path, default=None, help="(re)write the section")
    parser.add_argument(
        "--render-only", action="store_true", help="no training: summarise the JSONL as it is"
    )
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="parent of the per-instrument checkpoints"
    )
    args = parser.parse_args(argv)
    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    if not tables or set(tables) - set(TABLES):
        parser.error(f"--tables {args.tables!r}: choose from {','.join(TABLES)}")
    args.tables = tables
    preset = QUICK if args.quick else DEFAULTS
    for name in ("seeds", "power_seeds", "overnight_seeds"):
        if getattr(args, name) is None:
            setattr(args, name, preset[name])
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    args.sharpes = _numbers(args.sharpes, float) if args.sharpes else preset.get("sharpes", SHARPES)
    args.years = _numbers(args.years, int) if args.years else preset.get("years", YEARS)
    if any(y < 1 for y in args.years):
        parser.error("--years: each must be at least 1")
    try:
        for s in args.sharpes:
            Instrument("power", POWER_STRUCTURE, 0, sharpe=s).autocorrelation  # noqa: B018
    except ValueError as err:
        parser.error(f"--sharpes: {err}")
    suffix = ".quick" if args.quick else ""
    args.out_jsonl = args.out_jsonl or HERE / f"gate_calibration{suffix}.jsonl"
    args.out = args.out or HERE / f"gate_calibration{suffix}.json"
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(instruments: list[Instrument], args: argparse.Namespace, command: str) -> int:
    """Judge every instrument not yet in the JSONL; returns how many failed."""
    from rl_assets.rl.training import ray_session

    done = read_rows(args.out_jsonl)
    todo = [i for i in instruments if i.key not in done]
    log(
        f"[gate_calibration] {len(instruments)} planned, {len(instruments) - len(todo)} already "
        f"in {args.out_jsonl}, {len(todo)} to run"
    )
    if not todo:
        return 0
    weights = {i.key: math.ceil(i.trainings() / (os.cpu_count() or 1)) for i in todo}
    left = sum(weights.values())
    spent = rounds = 0.0
    failures = consecutive = 0
    with ray_session(None, os.cpu_count()):
        for n, inst in enumerate(todo, 1):
            try:
                with tempfile.TemporaryDirectory(
                    prefix="gate_calibration_", dir=args.tmp_dir
                ) as root:
                    row = judge_instrument(inst, Path(root), command)
            except Exception as err:  # keep going; a rerun retries it
                failures += 1
                consecutive += 1
                log(f"[{n}/{len(todo)}] {inst.key} FAILED: {type(err).__name__}: {err}")
                if consecutive >= 3:
                    log("[gate_calibration] three failures in a row: stopping")
                    break
                continue
            consecutive = 0
            append_row(args.out_jsonl, row)
            spent += row["seconds"]
            rounds += weights[inst.key]
            left -= weights[inst.key]
            log(
                f"[{n}/{len(todo)}] {inst.key}: promoted={row['promoted']} "
                f"evidence={row['evidence_passed']} skill={row['skill_sharpe']:+.2f} "
                f"dsr={row['dsr']:.3f} rule={row['edge_rule_sharpe']:+.2f} "
                f"years={row['test_years']:.2f} {row['seconds']:.0f}s load={row['load']:.1f}; "
                f"about {left * spent / rounds / 60:.0f} min left"
            )
    return failures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    command = "python -m benchmarks.gate_calibration " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    instruments = plan(
        args.tables,
        args.seeds,
        args.overnight_seeds,
        args.power_seeds,
        args.sharpes,
        args.years,
    )
    started = time.perf_counter()
    failures = 0 if args.render_only else run(instruments, args, command.strip())
    meta = {
        "command": command.strip(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "args": {
            "tables": list(args.tables),
            "seeds": args.seeds,
            "overnight_seeds": args.overnight_seeds,
            "power_seeds": args.power_seeds,
            "sharpes": list(args.sharpes),
            "years": list(args.years),
            "quick": args.quick,
        },
        "rows_file": str(args.out_jsonl),
        "wall_s": None if args.render_only else time.perf_counter() - started,
        "failures": failures,
        "load_at_writing": list(os.getloadavg()),
        "cores": os.cpu_count(),
    }
    out = clean(summarize(read_rows(args.out_jsonl), instruments, meta))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    section = markdown(out)
    if args.results_md:
        write_section(args.results_md, section)
    print(section)
    return out


if __name__ == "__main__":
    main()
