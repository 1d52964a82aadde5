"""The cost of many instruments: wall time for 1, 4 and 16 instruments, each trained in its
own run, with a local Ray started per run against one long-lived local Ray joined through
RAY_ADDRESS, and against every run in one process (what `make demo` does).

    .venv/bin/python -m benchmarks.instruments                 # 16 instruments, both setups
    .venv/bin/python -m benchmarks.instruments --instruments 4 --out /tmp/instruments.json

Each instrument is one `dg launch --assets 'key:"*"' --partition <instrument>`, the user's
command (or, in the third setup, one run of `python -m rl_assets.demo --instrument ...`, which
executes the same job for each instrument in one Python process and one Ray), run one after another (the training pool allows one at a time) on a fresh
DAGSTER_HOME and artifact store; instruments are generated momentum series (one file each in
a prices directory, 2019-01-01..2023-12-31, 1,304 bars) with the default training budget and
the default rolling split. T(n) is the wall time to finish the first n instruments,
including, for the long-lived setup, starting and stopping that Ray once. The marginal cost
of an instrument is (T(16) - T(1)) / 15.

Every run of the whole graph now also trains the walk-forward folds after trained_policy
(fold_policies: on these bars two folds, 252 and 44 test days, trained concurrently as Ray
tasks by the candidate's procedure) and judges their pooled test days, so an instrument's
training is the candidate's and its folds'. Its training time is therefore trained_policy's
training loop (the sum of the per-iteration seconds it records) plus fold_policies' wall
time (the folds' Ray tasks, first start to last finish, as the step records it); the
overhead factor is the marginal cost over that training time (target: at most 1.5 with the
long-lived Ray). Earlier runs, whose graph trained the candidate only, divided by the
candidate's loop alone; the factor over that loop alone is still reported, now including
the folds in the overhead.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECKPOINTS = (1, 4, 16)


def write_prices(directory: Path, count: int) -> list[str]:
    from rl_assets import constants
    from rl_assets.data.synthetic import generate_prices

    directory.mkdir(parents=True, exist_ok=True)
    keys = []
    for i in range(count):
        key = f"MOM{i:02d}"
        prices = generate_prices(constants.GENERATOR_START, constants.GENERATOR_END, seed=100 + i)
        prices.to_csv(directory / f"{key}.csv")
        keys.append(key)
    return keys


def _metadata(instance, asset: str, instrument: str) -> dict:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[instrument]),
        limit=1,
    ).records
    return records[0].asset_materialization.metadata if records else {}


def loop_seconds(home: Path, instrument: str) -> float:
    """trained_policy's training loop: the sum of its per-iteration seconds."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        history = _metadata(instance, "trained_policy", instrument)["history"].value
    return float(sum(row["seconds"] for row in history))


def fold_seconds(home: Path, instrument: str) -> tuple[float, int]:
    """fold_policies' wall time (its folds' Ray tasks, first start to last finish) and how
    many folds it trained; (nan, 0) when it did not materialize."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        meta = _metadata(instance, "fold_policies", instrument)
    if not meta:
        return float("nan"), 0
    return float(meta["wall_seconds"].value), int(meta["trained"].value)


def run_end_times(home: Path, keys: list[str]) -> list[float]:
    """When each instrument's run ended (from the instance's run records), in key order."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        ends = []
        for key in keys:
            records = instance.get_run_records(
                filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1
            )
            assert records and records[0].end_time, f"no finished run for {key}"
            ends.append(float(records[0].end_time))
    return ends


def step_seconds(home: Path, keys: list[str]) -> dict[str, float]:
    """Median seconds per step of the instruments' runs (step start to its end), and of each
    whole run (run start to end): what a run spends outside its steps is process start,
    imports and run set-up."""
    import dagster as dg

    per_step: dict[str, list[float]] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in keys:
            record = instance.get_run_records(
                filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1
            )[0]
            per_step.setdefault("(whole run)", []).append(record.end_time - record.start_time)
            starts: dict[str, float] = {}
            for entry in instance.all_logs(record.dagster_run.run_id):
                event = entry.dagster_event
                if event is None or event.step_key is None:
                    continue
                if event.event_type == dg.DagsterEventType.STEP_START:
                    starts[event.step_key] = entry.timestamp
                elif (
                    event.event_type
                    in (
                        dg.DagsterEventType.STEP_SUCCESS,
                        dg.DagsterEventType.STEP_FAILURE,
                    )
                    and event.step_key in starts
                ):
                    per_step.setdefault(event.step_key, []).append(
                        entry.timestamp - starts[event.step_key]
                    )
    return {step: statistics.median(values) for step, values in per_step.items()}


SETUPS = (
    ("local Ray per run", "per_run"),
    ("long-lived local Ray", "long_lived"),
    ("one process, one Ray (make demo)", "one_process"),
)


def run_setup(name: str, count: int, mode: str, work: Path) -> dict:
    from rl_assets.rl import local_ray

    home, artifacts, prices = work / "home", work / "artifacts", work / "prices"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    keys = write_prices(prices, count)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RL_ASSETS_ARTIFACTS": str(artifacts),
        "RL_ASSETS_PRICES_DIR": str(prices),
        "VIRTUAL_ENV": sys.prefix,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    for var in ("RAY_ADDRESS", "RL_ASSETS_PRICES_FILE", "RAY_AUTH_TOKEN_PATH"):
        env.pop(var, None)
    scan = subprocess.run(
        [sys.executable, "-m", "rl_assets.instruments", "scan"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stdout + scan.stderr
    ray_root = work / "ray"
    started_wall = time.time()
    started = time.perf_counter()
    state = None
    if mode == "long_lived":
        ray_root.mkdir()
        state = local_ray.up(ray_root)
        env.update(
            {"RAY_ADDRESS": state["address"], **local_ray.auth_env(Path(state["token_path"]))}
        )
    try:
        if mode == "one_process":
            args = [a for key in keys for a in ("--instrument", key)]
            proc = subprocess.run(
                [sys.executable, "-m", "rl_assets.demo", *args,
                 "-c", str(REPO / "console_logging.yaml")],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=900 * count,
            )  # fmt: skip
            if proc.returncode not in (0, 1):  # 1: a run failed or was refused; see below
                raise RuntimeError(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        else:
            for key in keys:
                proc = subprocess.run(
                    [str(BIN / "dg"), "launch", "--assets", 'key:"*"', "--partition", key,
                     "-c", str(REPO / "console_logging.yaml")],
                    cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
                )  # fmt: skip
                if proc.returncode not in (0, 1):  # 1: the gate refused; still a finished run
                    raise RuntimeError(
                        f"{name} {key}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
                    )
    finally:
        if state is not None:
            local_ray.down(ray_root)
    total = time.perf_counter() - started
    # Every run must have trained (a refusal is fine; a crash before training is not).
    loops = [loop_seconds(home, key) for key in keys]
    folds = [fold_seconds(home, key) for key in keys]
    finished = [end - started_wall for end in run_end_times(home, keys)]
    wall = {n: (finished[n - 1] if n < count else total) for n in CHECKPOINTS if n <= count}
    last = max(wall)
    marginal = (wall[last] - wall[1]) / (last - 1) if last > 1 else float("nan")
    loop = statistics.mean(loops)
    fold_wall = statistics.mean(w for w, _ in folds)
    training = loop + fold_wall
    steps = step_seconds(home, keys[1:] or keys)  # the first run also pays the first imports
    return {
        "setup": name,
        "instruments": count,
        "wall_seconds": wall,
        "per_run_seconds": [b - a for a, b in zip([0.0, *finished], finished, strict=False)],
        "training_loop_seconds_mean": loop,
        "fold_seconds_mean": fold_wall,
        "folds_trained": [n for _, n in folds],
        "training_seconds_mean": training,
        "marginal_seconds_per_instrument": marginal,
        "overhead_factor": marginal / training if training else float("nan"),
        "overhead_factor_candidate_loop": marginal / loop if loop else float("nan"),
        "load": os.getloadavg()[0],
        "median_step_seconds": steps,
    }


def run(quick: bool) -> dict:
    """The section for benchmarks.run (opt-in: --with-instruments)."""
    count = 4 if quick else 16
    rows = []
    for name, mode in SETUPS:
        with tempfile.TemporaryDirectory(prefix="rl_assets_instruments_") as tmp:
            rows.append(run_setup(name, count, mode, Path(tmp)))
    return {"rows": rows}


def markdown(result: dict) -> str:
    rows = result["rows"]
    counts = sorted({int(n) for r in rows for n in r["wall_seconds"]})
    head = "| setup | " + " | ".join(f"{n} instrument{'s' if n > 1 else ''}" for n in counts)
    head += (
        " | marginal s per instrument | candidate's training loop s | folds' wall s (folds) "
        "| overhead factor | over the candidate's loop alone | load |\n"
    )
    head += "|---|" + "---:|" * (len(counts) + 6) + "\n"
    body = "".join(
        f"| {r['setup']} | "
        + " | ".join(
            f"{r['wall_seconds'][n] if n in r['wall_seconds'] else r['wall_seconds'][str(n)]:.1f} s"
            for n in counts
        )
        + f" | {r['marginal_seconds_per_instrument']:.1f} | {r['training_loop_seconds_mean']:.1f}"
        f" | {_folds(r)} | {r['overhead_factor']:.2f}x | {_candidate_only(r)} | {r['load']:.1f} |\n"
        for r in rows
    )
    per_run, shared = rows[0], rows[1]
    fold_note = (
        "Each run also trains the instrument's walk-forward folds (fold_policies, Ray tasks "
        "after trained_policy) and judges their pooled test days: the overhead factor is the "
        "marginal cost over the candidate's training loop plus the folds' wall time; the "
        "column after it divides by the candidate's loop alone, as runs before the "
        "walk-forward graph did (their graph trained the candidate only).\n\n"
        if "fold_seconds_mean" in rows[0]
        else ""
    )
    saving = per_run["marginal_seconds_per_instrument"] - shared["marginal_seconds_per_instrument"]
    one_process = (
        f"Running every instrument's run in one process (`python -m rl_assets.demo --instrument "
        f"...`, what `make demo` does) costs {rows[2]['marginal_seconds_per_instrument']:.1f} s "
        f"per instrument ({rows[2]['overhead_factor']:.2f}x its training): Python, "
        "Dagster, RLlib and Ray are imported and started once.\n"
        if len(rows) > 2
        else ""
    )
    return (
        "## 6. The cost of many instruments\n\n"
        "Each instrument is one Dagster run of every asset and check of its partition with "
        "the default budget, one after another, on a fresh instance; the first two setups "
        "run `dg launch --assets 'key:\"*\"' --partition <instrument>` once per instrument "
        "(one CLI process each), the third runs them all in one process. Wall time to finish "
        "the first n instruments (from the runs' end times). Marginal cost = "
        "(T(last) - T(1)) / (last - 1); the candidate's training loop is the time "
        "trained_policy spent in its iterations; the folds' wall is fold_policies' (first "
        "fold start to last fold end); the overhead factor is the marginal cost over their "
        "sum (target: at most 1.5x with the long-lived Ray).\n\n"
        + fold_note
        + head
        + body
        + f"\nThe long-lived Ray saves {saving:.1f} s per instrument. What remains per CLI run "
        "is the process: importing Dagster and loading the code location, the upstream "
        "assets, importing RLlib and building the algorithm, the folds' test days and pooled "
        "evidence, the report and the gate.\n" + one_process + step_table(rows)
    )


def _folds(r: dict) -> str:
    if "fold_seconds_mean" not in r:
        return "-"
    trained = sorted(set(r["folds_trained"]))
    return f"{r['fold_seconds_mean']:.1f} ({', '.join(map(str, trained))})"


def _candidate_only(r: dict) -> str:
    value = r.get("overhead_factor_candidate_loop")
    return "-" if value is None else f"{value:.2f}x"


def step_table(rows: list[dict]) -> str:
    """Where a run's time goes: median seconds per step (runs after the first)."""
    steps = [s for s in rows[0].get("median_step_seconds", {}) if s != "(whole run)"]
    if not steps:
        return ""
    order = ["(whole run)", *sorted(steps, key=lambda s: -rows[0]["median_step_seconds"][s])]
    head = "| step | " + " | ".join(r["setup"] for r in rows) + " |\n"
    head += "|---|" + "---:|" * len(rows) + "\n"
    body = "".join(
        f"| {step} | "
        + " | ".join(f"{r['median_step_seconds'].get(step, float('nan')):.1f} s" for r in rows)
        + " |\n"
        for step in order
    )
    outside = " | ".join(
        f"{r['median_step_seconds']['(whole run)'] - sum(v for k, v in r['median_step_seconds'].items() if k != '(whole run)'):.1f} s"
        for r in rows
    )
    before = " | ".join(
        f"{statistics.median(r['per_run_seconds'][1:] or r['per_run_seconds']) - r['median_step_seconds']['(whole run)']:.1f} s"
        for r in rows
    )
    return (
        "\nWhere a run's time goes (median seconds per step over the runs after the first; "
        "steps of one run execute one after another in one process):\n\n"
        + head
        + body
        + f"| (in the run, outside steps) | {outside} |\n"
        + f"| (before the run starts: process, imports, code location) | {before} |\n"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for name, mode in SETUPS:
        with tempfile.TemporaryDirectory(prefix="rl_assets_instruments_") as tmp:
            row = run_setup(name, args.instruments, mode, Path(tmp))
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"rows": rows}
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
