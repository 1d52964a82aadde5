"""Gate calibration and power: how often the gate promotes, from no edge to a strong one.

    .venv/bin/python -m benchmarks.gate_calibration                  # both tables, 10 seeds
    .venv/bin/python -m benchmarks.gate_calibration --tables calibration
    .venv/bin/python -m benchmarks.gate_calibration --tables power --power-seeds 5 \\
        --strengths 0,0.1,0.4
    .venv/bin/python -m benchmarks.gate_calibration --results-md benchmarks/RESULTS.md \\
        --out benchmarks/gate_calibration.json    # also (re)writes its section of RESULTS.md

Each run draws new prices (generator seed 1000 + seed) and trains with a new training
seed (seed), using the default TrainingSpec, the default date split and the gate with its
default thresholds and no champion (a first promotion), as `make demo` would.

- Calibration: the Gaussian random walk, the realistic null (GARCH-t volatility, fat
  tails, no predictable mean) and today's strong planted momentum (0.4, Gaussian).
  Targets: at most 1 of 10 promoted on each null, at least 8 of 10 on the momentum.
- Power: the planted lag-1 autocorrelation from 0 (the realistic null itself) to 0.4, on
  the same GARCH-t volatility, with the promotion rate and its exact binomial 95%
  interval, the validation Sharpe the policy reached over buy-and-hold's, and the
  Sharpe of the edge's own rule (hold the sign of yesterday's return, same env and costs).

Every training runs in this one process and one Ray session (start-up paid once).
"""

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rl_assets import constants
from rl_assets.data.synthetic import EDGE_STRUCTURES, generate_prices

SECTION_TITLE = "## Gate calibration and power"
# (label, generator structure, planted autocorrelation, target)
CALIBRATION = (
    ("random walk (Gaussian)", "random_walk", 0.0, ("at most", 0.1)),
    ("realistic null (GARCH-t)", "garch_null", 0.0, ("at most", 0.1)),
    (
        "strong momentum 0.4 (Gaussian)",
        "momentum",
        constants.GENERATOR_AUTOCORRELATION,
        ("at least", 0.8),
    ),
)
STRENGTHS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)


def judge(candidate: dict[str, Any], train: np.ndarray, validation: np.ndarray) -> dict[str, Any]:
    """The gate's verdict on a trained candidate: the one place this benchmark uses
    ``rl_assets.promotion.gate`` (default thresholds, no champion, a first promotion).

    Returns whether every gate passed, the names of those that failed, and each gate's
    observed value; ``dsr`` is the Deflated Sharpe the gate computed.
    """
    from rl_assets.promotion import gate

    results = gate.judge_training_result(candidate, train, validation)
    observed = {g.name: g.observed for g in results}
    return {
        "promoted": all(g.passed for g in results),
        "failed": [g.name for g in results if not g.passed],
        "observed": observed,
        "dsr": observed.get("deflated_sharpe_at_least_confidence"),
    }


# The gates whose thresholds the what-if table varies, by the gate's check name, and how
# each compares its observed value with a threshold. With judge(), the only code here that
# knows the gate's names.
WHAT_IF_GATES = {
    "dsr": ("deflated_sharpe_at_least_confidence", lambda value, t: value >= t),
    "margin": ("beats_buy_and_hold", lambda value, t: value > t),
}
# Alternative thresholds, judged on the observed values of the same runs (no retraining).
ALTERNATIVES = (
    ("defaults: DSR >= 0.95, margin over buy-and-hold > 0", {}),
    ("DSR >= 0.975", {"dsr": 0.975}),
    ("DSR >= 0.99", {"dsr": 0.99}),
    ("margin over buy-and-hold > 0.5", {"margin": 0.5}),
    ("DSR >= 0.975 and margin > 0.25", {"dsr": 0.975, "margin": 0.25}),
)


def promoted_under(row: dict[str, Any], changes: dict[str, float]) -> bool:
    """Would this run have been promoted with ``changes`` to the thresholds? Every other
    gate keeps the verdict it gave."""
    changed = {WHAT_IF_GATES[key][0] for key in changes}
    if set(row["failed"]) - changed:
        return False
    return all(
        WHAT_IF_GATES[key][1](row["observed"][WHAT_IF_GATES[key][0]], threshold)
        for key, threshold in changes.items()
    )


def prices_for(structure: str, autocorrelation: float, seed: int):
    return generate_prices(
        constants.GENERATOR_START,
        constants.GENERATOR_END,
        seed=1000 + seed,
        structure=structure,
        autocorrelation=autocorrelation,
    )


def edge_rule_sharpe(closes: np.ndarray, spec) -> float:
    """Validation Sharpe of holding the sign of yesterday's return: what the planted edge
    pays to a rule that knows it, through the same env, costs and days as the policy."""
    from rl_assets.rl.env import ACTION_SETS
    from rl_assets.rl.training import evaluate

    positions = ACTION_SETS[spec.action_set]

    def act(obs: np.ndarray) -> int:
        wanted = float(np.sign(obs[-2]))  # obs[-2]: the latest return (scaled)
        return positions.index(wanted if wanted in positions else 0.0)

    return evaluate(act, closes, spec)["sharpe"]


def one(
    structure: str,
    seed: int,
    root: Path,
    spec_overrides: dict | None = None,
    *,
    autocorrelation: float | None = None,
) -> dict[str, Any]:
    """Train on one seed's prices and ask the gate. ``autocorrelation`` defaults to the
    generator's planted momentum for the edge structures (ignored by the nulls)."""
    from rl_assets.rl.training import TrainingSpec, train_ppo, with_history

    if autocorrelation is None:
        autocorrelation = (
            constants.GENERATOR_AUTOCORRELATION if structure in EDGE_STRUCTURES else 0.0
        )
    prices = prices_for(structure, autocorrelation, seed)
    train = prices.loc[constants.TRAIN_START : constants.TRAIN_END, "close"].to_numpy()
    val = prices.loc[constants.VALIDATION_START : constants.VALIDATION_END, "close"].to_numpy()
    spec = TrainingSpec(**{**(spec_overrides or {}), "seed": seed})
    val_with_history = with_history(train, val, spec.window)
    t0 = time.perf_counter()
    result = train_ppo(
        spec,
        train,
        val_with_history,
        root / f"{structure}-{autocorrelation}-{seed}",
        log=lambda _: None,
    )
    verdict = judge(result, train, val)
    return {
        "structure": structure,
        "autocorrelation": autocorrelation,
        "seed": seed,
        **verdict,
        "validation_sharpe": result["best_validation_sharpe"],
        "buy_and_hold_sharpe": result["buy_and_hold_validation_sharpe"],
        "relative_sharpe": result["best_validation_sharpe"]
        - result["buy_and_hold_validation_sharpe"],
        "edge_rule_sharpe": edge_rule_sharpe(val_with_history, spec),
        "iterations": result["iterations"],
        "best_iteration": result["best_iteration"],
        "seconds": time.perf_counter() - t0,
        "load": os.getloadavg()[0],
    }


def binomial_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial rate: k promoted of n."""
    from scipy import stats

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    k, n = sum(r["promoted"] for r in rows), len(rows)
    low, high = binomial_interval(k, n)
    failed: dict[str, int] = {}
    for r in rows:
        for name in r["failed"]:
            failed[name] = failed.get(name, 0) + 1
    rel = [r["relative_sharpe"] for r in rows]
    return {
        "promoted": k,
        "runs": n,
        "rate": k / n,
        "ci95": [low, high],
        "relative_sharpe": {"median": statistics.median(rel), "min": min(rel), "max": max(rel)},
        "validation_sharpe_median": statistics.median(r["validation_sharpe"] for r in rows),
        "edge_rule_sharpe_median": statistics.median(r["edge_rule_sharpe"] for r in rows),
        "dsr_median": statistics.median(r["dsr"] for r in rows),
        "failed": failed,
    }


def _canonical(structure: str, autocorrelation: float) -> tuple[str, float]:
    # garch_momentum without an edge is the realistic null (the same bars): train it once.
    if structure == "garch_momentum" and autocorrelation == 0.0:
        return "garch_null", 0.0
    return structure, autocorrelation


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="calibration,power", help="calibration, power or both")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per calibration row")
    parser.add_argument("--power-seeds", type=int, default=None, help="default: --seeds")
    parser.add_argument("--strengths", default=",".join(str(s) for s in STRENGTHS))
    parser.add_argument("--spec", default="{}", help="JSON TrainingSpec overrides")
    parser.add_argument("--out", type=Path, default=None, help="raw results as JSON")
    parser.add_argument("--results-md", type=Path, default=None, help="write the section here")
    parser.add_argument(
        "--from-json", type=Path, default=None, help="re-render saved raw results (no training)"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return finish(tabulate(json.loads(args.from_json.read_text())), args)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = set(tables) - {"calibration", "power"}
    if unknown or not tables:
        parser.error(f"--tables {args.tables!r}: choose calibration, power or both")
    power_seeds = args.power_seeds if args.power_seeds is not None else args.seeds
    strengths = [float(s) for s in args.strengths.split(",") if s.strip()]
    if any(not 0.0 <= s < 1.0 for s in strengths):
        parser.error(f"--strengths {args.strengths}: each must lie in [0, 1)")

    # Every (structure, autocorrelation, seed) the chosen tables need, each trained once.
    wanted: list[tuple[str, float, int]] = []
    if "calibration" in tables:
        wanted += [(s, a, seed) for _, s, a, _ in CALIBRATION for seed in range(args.seeds)]
    if "power" in tables:
        wanted += [
            (*_canonical("garch_momentum", a), seed)
            for a in strengths
            for seed in range(power_seeds)
        ]
    wanted = list(dict.fromkeys(wanted))
    overrides = json.loads(args.spec)

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows: list[dict[str, Any]] = []
    from rl_assets.rl.training import ray_session

    with tempfile.TemporaryDirectory() as tmp, ray_session():
        for i, (structure, autocorrelation, seed) in enumerate(wanted, 1):
            row = one(structure, seed, Path(tmp), overrides, autocorrelation=autocorrelation)
            rows.append(row)
            print(
                f"[{i}/{len(wanted)}] {json.dumps({k: v for k, v in row.items() if k != 'observed'})}",
                file=sys.stderr,
                flush=True,
            )

    out: dict[str, Any] = {
        "command": "python -m benchmarks.gate_calibration "
        + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "date": date,
        "tables": tables,
        "seeds": args.seeds,
        "power_seeds": power_seeds,
        "strengths": strengths,
        "spec_overrides": overrides,
        "wall_s": time.perf_counter() - started,
        "load": {
            "start": load_start,
            "end": os.getloadavg()[0],
            "mean": statistics.fmean([load_start] + [r["load"] for r in rows]),
            "max": max([load_start] + [r["load"] for r in rows]),
        },
        "cores": os.cpu_count(),
        "rows": rows,
    }
    return finish(tabulate(out), args)


def tabulate(out: dict[str, Any]) -> dict[str, Any]:
    """Add the calibration, power and what-if summaries of ``out["rows"]``."""
    rows = out["rows"]

    def select(structure: str, autocorrelation: float, n: int) -> list[dict[str, Any]]:
        s, a = _canonical(structure, autocorrelation)
        return [
            r for r in rows if r["structure"] == s and r["autocorrelation"] == a and r["seed"] < n
        ]

    groups: dict[str, list[dict[str, Any]]] = {}
    if "calibration" in out["tables"]:
        out["calibration"] = {}
        for label, s, a, target in CALIBRATION:
            groups[label] = select(s, a, out["seeds"])
            out["calibration"][label] = {**summarize(groups[label]), "target": list(target)}
        # Kept for benchmarks.run and older readers: promoted counts per structure.
        out["promoted"] = {
            s: out["calibration"][label]["promoted"] for label, s, _, _ in CALIBRATION
        }
    if "power" in out["tables"]:
        out["power"] = []
        for a in out["strengths"]:
            chosen = select("garch_momentum", a, out["power_seeds"])
            # Strength 0 is the realistic null: one column, the calibration's if it ran.
            label = CALIBRATION[1][0] if a == 0.0 else f"GARCH-t momentum {a:g}"
            groups.setdefault(label, chosen)
            out["power"].append({"autocorrelation": a, **summarize(chosen)})
    out["what_if"] = {
        "groups": list(groups),
        "rows": [
            {
                "thresholds": label,
                "promoted": [sum(promoted_under(r, changes) for r in g) for g in groups.values()],
                "runs": [len(g) for g in groups.values()],
            }
            for label, changes in ALTERNATIVES
        ],
    }
    return out


def finish(out: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if args.out:
        args.out.write_text(json.dumps(out, indent=1, default=str))
    if args.results_md:
        write_section(args.results_md, markdown(out))
    print(markdown(out))
    return out


def _verdict(summary: dict[str, Any]) -> str:
    direction, rate = summary["target"]
    ok = summary["rate"] <= rate if direction == "at most" else summary["rate"] >= rate
    return "met" if ok else "MISSED"


def _failed(summary: dict[str, Any]) -> str:
    if not summary["failed"]:
        return "none"
    ranked = sorted(summary["failed"].items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {count}" for name, count in ranked)


def _ci(summary: dict[str, Any]) -> str:
    low, high = summary["ci95"]
    return f"{low:.0%}-{high:.0%}"


def _rel(summary: dict[str, Any]) -> str:
    r = summary["relative_sharpe"]
    return f"{r['median']:+.2f} ({r['min']:+.2f} to {r['max']:+.2f})"


def markdown(out: dict[str, Any], note: str = "") -> str:
    """The self-contained RESULTS.md section: command, date, load, both tables."""
    load = out["load"]
    lines = [
        SECTION_TITLE,
        "",
        f"Measured by `{out['command'].strip()}` on {out['date']}: "
        f"{len(out['rows'])} trainings in one process and one Ray session, "
        f"{out['wall_s'] / 60:.1f} min; 1-minute load average {load['mean']:.1f} "
        f"(max {load['max']:.1f}) on {out['cores']} cores. Each run: new prices (generator "
        "seed 1000 + seed, 2019-2023, default date split: train 2020-01..2023-01, validation "
        "2023-02..2023-12, about 230 days), new training seed, default TrainingSpec, the gate "
        "with its default thresholds and no champion. Rates carry an exact (Clopper-Pearson) "
        "binomial 95% interval; Sharpe figures are annualised, on the validation window; "
        "'policy - buy-and-hold' is the kept checkpoint's validation Sharpe minus "
        "buy-and-hold's, median (min to max) over seeds.",
    ]
    if out["spec_overrides"]:
        lines[-1] += f" TrainingSpec overrides: `{json.dumps(out['spec_overrides'])}`."
    if note:
        lines += ["", note]
    if "calibration" in out:
        lines += [
            "",
            "### Calibration",
            "",
            "| data | promoted | rate (95% CI) | target | verdict | policy - buy-and-hold "
            "Sharpe | DSR, median | gates that refused (runs) |",
            "|---|---:|---|---|---|---:|---:|---|",
        ]
        for label, s in out["calibration"].items():
            direction, rate = s["target"]
            lines.append(
                f"| {label} | {s['promoted']} of {s['runs']} | {s['rate']:.0%} ({_ci(s)}) | "
                f"{direction} {rate:.0%} | {_verdict(s)} | {_rel(s)} | {s['dsr_median']:.2f} | "
                f"{_failed(s)} |"
            )
        nulls = {s for _, s, _, (direction, _) in CALIBRATION if direction == "at most"}
        lucky = [r for r in out["rows"] if r["promoted"] and r["structure"] in nulls]
        if lucky:
            lines += [
                "",
                "Promoted on a null (every gate passed; nothing to learn): "
                + "; ".join(
                    f"{r['structure']} seed {r['seed']}: DSR {r['dsr']:.3f}, validation Sharpe "
                    f"{r['validation_sharpe']:.2f} vs buy-and-hold {r['buy_and_hold_sharpe']:.2f}, "
                    f"best of {r['iterations']} iterations"
                    for r in lucky
                )
                + ".",
            ]
    if "power" in out:
        lines += [
            "",
            "### Power against planted-edge strength (GARCH-t volatility)",
            "",
            "Planted lag-1 autocorrelation of daily returns on the realistic null's volatility "
            "(0 is the realistic null itself, the same runs as its calibration row). 'Edge "
            "rule' is the validation Sharpe of holding the sign of yesterday's return (what "
            "the edge pays a rule that knows it, same env and costs), median over seeds."
            + (
                f" {out['power_seeds']} seeds per strength, fewer than the calibration's "
                f"{out['seeds']}, to keep the run near 20 minutes on shared cores: read the "
                "intervals."
                if "calibration" in out and out["power_seeds"] < out["seeds"]
                else ""
            ),
            "",
            "| autocorrelation | seeds | promoted | rate (95% CI) | policy - buy-and-hold "
            "Sharpe | policy Sharpe, median | edge rule Sharpe, median | DSR, median | gates "
            "that refused (runs) |",
            "|---:|---:|---:|---|---:|---:|---:|---:|---|",
        ]
        for p in out["power"]:
            lines.append(
                f"| {p['autocorrelation']:g} | {p['runs']} | {p['promoted']} | {p['rate']:.0%} "
                f"({_ci(p)}) | {_rel(p)} | {p['validation_sharpe_median']:.2f} | "
                f"{p['edge_rule_sharpe_median']:.2f} | {p['dsr_median']:.2f} | {_failed(p)} |"
            )
    what_if = out.get("what_if")
    if what_if and what_if["groups"]:
        lines += [
            "",
            "### Promotions under other thresholds (same runs, no retraining)",
            "",
            "Each run re-judged with the changed thresholds on the values its gates observed; "
            "every other gate keeps its verdict. Chosen after seeing these runs, so a change "
            "must be confirmed on new seeds before it is adopted.",
            "",
            "| thresholds | " + " | ".join(what_if["groups"]) + " |",
            "|---|" + "---:|" * len(what_if["groups"]),
        ]
        for row in what_if["rows"]:
            cells = [f"{k} of {n}" for k, n in zip(row["promoted"], row["runs"], strict=True)]
            lines.append(f"| {row['thresholds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


OLD_TITLE = "## Gate calibration\n"  # the placeholder benchmarks.run wrote before


def _span(text: str) -> tuple[int, int] | None:
    """Where this benchmark's section lies in a RESULTS.md text: from its heading to the
    next second-level heading (or the end)."""
    for title in (SECTION_TITLE, OLD_TITLE):
        start = text.find(title)
        if start >= 0:
            following = text.find("\n## ", start + len(title))
            return start, len(text) if following < 0 else following + 1
    return None


def section_of(text: str) -> str | None:
    """This benchmark's section of a RESULTS.md text, or None."""
    span = _span(text)
    return text[span[0] : span[1]] if span and text.startswith(SECTION_TITLE, span[0]) else None


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (or the old placeholder), or append
    it; every other section stays as it was."""
    text = path.read_text() if path.exists() else ""
    body = section.rstrip("\n") + "\n"
    span = _span(text)
    if span:
        rest = text[span[1] :]
        text = text[: span[0]] + body + ("\n" + rest if rest else "")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + body
    path.write_text(text)


if __name__ == "__main__":
    main()
