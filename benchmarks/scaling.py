"""Scaling: wall time and peak memory of a plain training run as history and budget grow.

Each point is the plain path of benchmarks.time_to_budget (fresh process: imports,
prices, split, Ray start, train_ppo to the budget on (open, close) bars with the default
next-open execution) with a longer price history (last 20% of rows as validation, like
``price_splits`` with ``validation_fraction=0.2``) or a larger episode budget (the
benchmarks' generated prices and fixed date split). Peak memory is measured from outside:
the largest single process (``wait4`` maxrss, in practice the driver) and the summed RSS
of the whole process tree including Ray's daemons (sampled every 0.5 s).
"""

import sys
from typing import Any

from benchmarks import harness
from benchmarks.time_to_budget import budget_args, measure_plain


def _point(
    kind: str, label: str, args: dict[str, Any], repeats: int, runs: list | None = None
) -> dict[str, Any]:
    if runs is None:
        runs = []
        for i in range(repeats):
            print(f"  scaling: {label} {i + 1}/{repeats} ...", file=sys.stderr, flush=True)
            runs.append(measure_plain(args))
    return {
        "kind": kind,
        "label": label,
        "args": args,
        "rows": runs[0]["rows"],
        "wall": harness.summarize([r["wall_s"] for r in runs]),
        "train_loop": harness.summarize([r["train_loop_s"] for r in runs]),
        "per_iteration": harness.summarize([r["train_loop_s"] / r["iterations"] for r in runs]),
        "peak_tree_rss": harness.summarize([r["peak_rss_mib"] for r in runs]),
        "peak_process_rss": harness.summarize([r["max_process_rss_mib"] for r in runs]),
        "episodes": [r["episodes_total"] for r in runs],
        "iterations": [r["iterations"] for r in runs],
        "load": harness.load_of(runs),
    }


def run(quick: bool, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """``baseline``: time_to_budget's result; its plain runs are the default-data point of
    the same budget, so they are reused instead of measured again."""
    repeats = 1  # a trend over sizes, not a ratio: one run per point keeps make bench short
    base_episodes = 40 if quick else 100
    sizes = (1_000, 5_000) if quick else (1_000, 5_000, 20_000)
    budgets = (40, 80) if quick else (100, 400)
    points = []
    for rows in sizes:
        args = {**budget_args(base_episodes), "rows": rows}
        points.append(_point("rows", f"{rows:,} rows", args, repeats))
    for episodes in budgets:
        args = budget_args(episodes)
        runs = None
        if baseline and baseline["args"] == args:
            runs = baseline["runs"]["plain"]
        label = f"{episodes} episodes" + (" (section 3's plain runs)" if runs else "")
        points.append(_point("episodes", label, args, repeats, runs))
    return {"repeats": repeats, "base_episodes": base_episodes, "points": points}


def markdown(r: dict[str, Any]) -> str:
    f = harness.fmt
    lines = [
        "## 4. Scaling",
        "",
        "Plain `train_ppo` run in a fresh process (imports, prices, split, Ray start, training "
        "to the budget on (open, close) bars, executed at the next open, validation rollout "
        "every iteration), as the price history and the episode budget grow. Rows: generated "
        "business days ending 2023-12-31, last 20% validation, "
        f"{r['base_episodes']} episodes. Episodes: the benchmarks' generated prices and fixed "
        "date split (section 3). Median (min-max, n).",
        "",
        "| point | rows | iterations | episodes done | wall s | training loop s | s per iteration | "
        "peak RSS, process tree MiB | peak RSS, largest process MiB | load |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in r["points"]:
        lines.append(
            f"| {p['label']} | {p['rows']:,} | {', '.join(map(str, p['iterations']))} | "
            f"{', '.join(map(str, p['episodes']))} | {f(p['wall'], 1)} | "
            f"{f(p['train_loop'], 1)} | {f(p['per_iteration'], 2)} | "
            f"{f(p['peak_tree_rss'])} | {f(p['peak_process_rss'])} | "
            f"{harness.fmt_load(p['load'])} |"
        )
    rows = [p for p in r["points"] if p["kind"] == "rows"]
    eps = [p for p in r["points"] if p["kind"] == "episodes"]
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        lines += [
            "",
            f"History x{b['rows'] / a['rows']:.0f} ({a['rows']:,} to {b['rows']:,} rows): wall "
            f"time x{b['wall']['median'] / a['wall']['median']:.2f}, seconds per iteration "
            f"x{b['per_iteration']['median'] / a['per_iteration']['median']:.2f}, peak tree "
            f"RSS x{b['peak_tree_rss']['median'] / a['peak_tree_rss']['median']:.2f}. Each "
            "iteration samples a fixed train_batch_size whatever the history; what grows with "
            "the rows is the greedy validation rollout after every iteration (one forward pass "
            "per validation day) and the arrays each env holds.",
        ]
    if len(eps) >= 2:
        a, b = eps[0], eps[-1]
        fixed = a["wall"]["median"] - a["train_loop"]["median"]
        lines += [
            "",
            f"Budget x{b['args']['target_episodes'] / a['args']['target_episodes']:.0f} "
            f"({a['args']['target_episodes']} to {b['args']['target_episodes']} episodes): wall "
            f"time x{b['wall']['median'] / a['wall']['median']:.2f}, training loop "
            f"x{b['train_loop']['median'] / a['train_loop']['median']:.2f}; the fixed part "
            f"(process, imports, Ray, build) is about {fixed:.0f} s of the smaller run.",
        ]
    lines.append("")
    return "\n".join(lines)
