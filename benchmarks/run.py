"""Run every benchmark, each measurement in a fresh subprocess, and write benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.run                     # full run (make bench)
    .venv/bin/python -m benchmarks.run --quick             # smoke mode: tiny sizes, n=1
    .venv/bin/python -m benchmarks.run --with-calibration  # adds the gate calibration
    .venv/bin/python -m benchmarks.run --only env,learner  # some sections only

Every figure in RESULTS.md is measured by the run that writes it; RESULTS.json beside
it holds the raw numbers.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import (
    calibration,
    env_throughput,
    harness,
    instruments,
    learner_update,
    quality,
    scaling,
    time_to_budget,
    training_throughput,
)

HERE = Path(__file__).resolve().parent
SECTIONS = {
    "env": env_throughput,
    "training": training_throughput,
    "learner": learner_update,
    "budget": time_to_budget,
    "scaling": scaling,
    "quality": quality,
    "calibration": calibration,
    "instruments": instruments,
}
# Opt-in sections: each takes many minutes of training (their own flags below).
OPT_IN = ("calibration", "instruments")
PACKAGES = ("ray", "torch", "gymnasium", "numpy", "pandas", "dagster", "stable-baselines3")


def _clean(obj: Any) -> Any:
    """Raw results without the subprocess output tails (kept only for error messages)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if k not in ("stdout_tail", "stderr_tail")}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _targets(results: dict[str, Any]) -> list[str]:
    rows = []
    load = harness.fmt_load
    if "env" in results:
        r = results["env"]["ratio"]["median"]
        rows.append(
            f"| env step >= {env_throughput.TARGET_RATIO:.0%} of the bare numpy loop | "
            f"{r:.0%} | {'met' if r >= env_throughput.TARGET_RATIO else 'missed'} | "
            f"{load(results['env']['load'])} |"
        )
    if "training" in results:
        t = results["training"]
        target = training_throughput.TARGET_RATIO
        for m in t["vector"]:
            if m["args"]["n_envs"] in (8, t["default_row"]["args"]["n_envs"]):
                r = m["ratio"]["median"]
                is_default = m["args"]["n_envs"] == t["default_row"]["args"]["n_envs"]
                default = " (the default)" if is_default else ""
                rows.append(
                    f"| RLlib >= {target}x SB3, same envs and update, side by side: "
                    f"{m['args']['n_envs']} envs{default} | {r:.3f}x | "
                    f"{'met' if r >= target else f'missed by {target - r:.3f}'} | "
                    f"{load(m['load'])} |"
                )
        best = t["best_rllib"]["rllib"]["median"] / t["best_sb3"]["sb3"]["median"]
        rows.append(
            f"| RLlib's best setting ({t['best_rllib']['args']['n_envs']} envs) vs SB3's best "
            f"({t['best_sb3']['args']['n_envs']} envs) | {best:.3f}x | "
            f"{'met' if best >= target else f'missed by {target - best:.3f}'} | "
            f"{load(t['best_rllib']['load'])} / {load(t['best_sb3']['load'])} |"
        )
    if "budget" in results:
        b = results["budget"]
        v = b["vs_sb3"]["median"]
        limit = time_to_budget.TARGET_VS_SB3
        rows.append(
            f"| launch to trained policy (100 episodes): `dagster asset materialize --select "
            f"'*trained_policy'` with a long-lived Ray <= {limit}x an SB3 script | {v:.2f}x | "
            f"{'met' if v <= limit else f'missed by {v - limit:.2f}'} | "
            f"{load(b['dagster_ll']['load'])} / {load(b['sb3']['load'])} |"
        )
        o = b["overhead_to_trained"]["median"]
        limit = time_to_budget.TARGET_OVERHEAD
        rows.append(
            f"| Dagster overhead < {limit:.0%} of end-to-end (to trained policy, private Ray; "
            f"previous target) | {o:.1%} | {'met' if o < limit else 'missed'} | "
            f"{load(b['plain']['load'])} / {load(b['dagster']['load'])} |"
        )
    if not rows:
        return []
    return [
        "## Targets",
        "",
        "| target | measured (median) | verdict | load (RLlib or plain / peer) |",
        "|---|---:|---|---:|",
        *rows,
        "",
        "Each section below says by how much and why where a target is missed. A load above "
        "the core count inflates times, and torch's default threads suffer most from it "
        "(section 2): compare rows measured at similar loads.",
        "",
    ]


def _cross_notes(results: dict[str, Any]) -> list[str]:
    """Figures that relate two sections, computed from this run's numbers."""
    if "env" not in results or "training" not in results:
        return []
    env_us = 1e6 / results["env"]["vector"]["median"]
    row = results["training"]["default_row"]
    rl = row["rllib"]["median"]
    return [
        f"Env share of training: one env step of VectorTradingEnv costs {env_us:.2f} us; one "
        f"RLlib PPO env step (sampling and learning, default spec, "
        f"{row['args']['n_envs']} envs) costs {1e6 / rl:.0f} us, so the env itself is about "
        f"{env_us / (1e6 / rl):.2%} of training time.",
        "",
    ]


def _overhead_at_scale(results: dict[str, Any]) -> list[str]:
    """Dagster's gap (section 3) set against the largest budget of section 4 (an estimate)."""
    if "budget" not in results:
        return []
    b = results["budget"]
    gap = b["dagster"]["to_trained_s"]["median"] - b["plain"]["to_trained_s"]["median"]
    largest = max(
        (p for p in results["scaling"]["points"] if p["kind"] == "episodes"),
        key=lambda p: p["args"]["target_episodes"],
    )
    plain = largest["wall"]["median"]
    return [
        f"Dagster's gap to a trained policy (section 3: {gap:.1f} s) is mostly start-up "
        f"before training. If it stays the same at a larger budget, set against the "
        f"{largest['label']} plain run ({plain:.1f} s) it would be about "
        f"{gap / (plain + gap):.0%} of the Dagster path (an estimate from two measurements, "
        "not a measured Dagster run).",
        "",
    ]


def write(
    results: dict[str, Any],
    meta: dict[str, Any],
    out: Path,
) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python -m benchmarks.run{meta['flags']}` on {meta['date']}; total wall "
        f"time {meta['total_s'] / 60:.1f} min. Every figure was measured by this run "
        "(raw numbers in RESULTS.json); each is the median of several runs with the min-max "
        "spread and n. The 1-minute load average (os.getloadavg) during each figure is given "
        f"next to it: this machine has {meta['machine']['cores']} cores, so a load above "
        f"{meta['machine']['cores']} means other work shared the CPU and times are inflated.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {meta['machine']['cpu']} |",
        f"| cores / memory | {meta['machine']['cores']} / {meta['machine']['memory_gib']} GiB |",
        f"| kernel / Python | {meta['machine']['kernel']} / {meta['machine']['python']} |",
        "| versions | " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + " |",
        f"| load average at start / end | {meta['load_start']:.1f} / {meta['load_end']:.1f} |",
        "",
        *[
            f"**Section {name} failed and has no figures here:** {error[-500:]}\n"
            for name, error in meta.get("failed_sections", {}).items()
        ],
        "| section | wall time | load during it |",
        "|---|---:|---:|",
        *[
            f"| {name} | {s['wall_s'] / 60:.1f} min | {s['load_mean']:.1f} |"
            for name, s in meta["sections"].items()
        ],
        "",
    ]
    lines += _targets(results)
    for name, module in SECTIONS.items():
        if name in results:
            lines.append(module.markdown(results[name]))
            if name == "env":
                lines += _cross_notes(results)
            if name == "scaling" and "budget" in results:
                lines += _overhead_at_scale(results)
    if "calibration" not in results:
        # An earlier calibration (it states its own command and date) outlives this run.
        lines += calibration.previous_section(out)
    out.write_text("\n".join(lines).rstrip() + "\n")


def _run_sections(chosen, args, results, failed, meta) -> None:
    for name in chosen:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0, l0 = time.perf_counter(), os.getloadavg()[0]
        extra = {}
        if name == "scaling" and "budget" in results:
            extra["baseline"] = results["budget"]
        try:
            results[name] = SECTIONS[name].run(args.quick, **extra)
        except Exception as err:  # keep the other sections' figures; say which one failed
            failed[name] = f"{type(err).__name__}: {err}"
            print(f"[bench] {name} FAILED: {failed[name][-2000:]}", file=sys.stderr, flush=True)
            continue
        wall = time.perf_counter() - t0
        meta["sections"][name] = {"wall_s": wall, "load_mean": (l0 + os.getloadavg()[0]) / 2}
        print(f"[bench] {name} done in {wall:.0f} s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, n=1")
    parser.add_argument("--with-calibration", action="store_true")
    parser.add_argument(
        "--with-instruments", action="store_true", help="adds 1, 4, 16 instruments (about 10 min)"
    )
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    chosen = [s for s in SECTIONS if s not in OPT_IN]
    if args.only:
        chosen = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = set(chosen) - set(SECTIONS)
        if unknown:
            parser.error(f"unknown section(s) {sorted(unknown)}; choose from {list(SECTIONS)}")
    if args.with_calibration and "calibration" not in chosen:
        chosen.append("calibration")
    if args.with_instruments and "instruments" not in chosen:
        chosen.append("instruments")
    flags = "".join(
        f" {f}"
        for f, on in (
            ("--quick", args.quick),
            ("--with-calibration", args.with_calibration),
            ("--with-instruments", args.with_instruments),
        )
        if on
    ) + (f" --only {args.only}" if args.only else "")

    started = time.perf_counter()
    meta: dict[str, Any] = {
        "flags": flags,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": harness.machine(),
        "versions": versions(),
        "load_start": os.getloadavg()[0],
        "sections": {},
    }
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    # Every Ray the sections start (private ones, the long-lived one) keeps its session
    # files here, not in /tmp/ray, and torch's compile cache (by default
    # /tmp/torchinductor_<user>) goes here too; both go when the run ends. Short: Ray's
    # socket paths live under it.
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rlb-ray-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(os.environ["RAY_TMPDIR"], "inductor")
    try:
        _run_sections(chosen, args, results, failed, meta)
    finally:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR")
        shutil.rmtree(os.environ.pop("RAY_TMPDIR"), ignore_errors=True)
    meta["load_end"] = os.getloadavg()[0]
    meta["failed_sections"] = failed
    meta["total_s"] = time.perf_counter() - started
    write(results, meta, args.out)
    raw = args.out.with_suffix(".json")
    raw.write_text(json.dumps(_clean({"meta": meta, "results": results}), indent=1, default=str))
    print(f"[bench] wrote {args.out} and {raw} in {meta['total_s'] / 60:.1f} min", file=sys.stderr)
    if failed:
        sys.exit(f"[bench] failed sections (their figures are missing): {sorted(failed)}")
    return {"meta": meta, "results": results}


if __name__ == "__main__":
    main()
