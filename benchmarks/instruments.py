"""The cost of many instruments: wall time for 1, 4 and 16 instruments, each trained in its
own run, with a local Ray started per run against one long-lived local Ray joined through
RAY_ADDRESS.

    .venv/bin/python -m benchmarks.instruments                 # 16 instruments, both setups
    .venv/bin/python -m benchmarks.instruments --instruments 4 --out /tmp/instruments.json

Each instrument is one `dg launch --assets 'key:"*"' --partition <instrument>`, the user's
command, run one after another (the training pool allows one at a time) on a fresh
DAGSTER_HOME and artifact store; instruments are generated momentum series (one file each in
a prices directory) with the default training budget. T(n) is the wall time to finish the
first n instruments, including, for the long-lived setup, starting and stopping that Ray
once. The marginal cost of an instrument is (T(16) - T(1)) / 15; its training loop is the
time trained_policy spent in its iterations (the sum of the per-iteration seconds it
records); the ratio of the two is the overhead factor (target: at most 1.5 with the
long-lived Ray).
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


def loop_seconds(home: Path, instrument: str) -> float:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("trained_policy"), asset_partitions=[instrument]
            ),
            limit=1,
        ).records
        history = records[0].asset_materialization.metadata["history"].value
    return float(sum(row["seconds"] for row in history))


def run_setup(name: str, count: int, long_lived: bool, work: Path) -> dict:
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
    started = time.perf_counter()
    state = None
    if long_lived:
        ray_root.mkdir()
        state = local_ray.up(ray_root)
        env.update(
            {"RAY_ADDRESS": state["address"], **local_ray.auth_env(Path(state["token_path"]))}
        )
    finished: list[float] = []
    loops: list[float] = []
    try:
        for key in keys:
            proc = subprocess.run(
                [str(BIN / "dg"), "launch", "--assets", 'key:"*"', "--partition", key,
                 "-c", str(REPO / "console_logging.yaml")],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if proc.returncode not in (0, 1):  # 1: the gate refused; still a finished run
                raise RuntimeError(f"{name} {key}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
            finished.append(time.perf_counter() - started)
            loops.append(loop_seconds(home, key))
    finally:
        if state is not None:
            local_ray.down(ray_root)
    total = time.perf_counter() - started
    wall = {n: (finished[n - 1] if n < count else total) for n in CHECKPOINTS if n <= count}
    last = max(wall)
    marginal = (wall[last] - wall[1]) / (last - 1) if last > 1 else float("nan")
    loop = statistics.mean(loops)
    return {
        "setup": name,
        "instruments": count,
        "wall_seconds": wall,
        "per_run_seconds": [b - a for a, b in zip([0.0, *finished], finished, strict=False)],
        "training_loop_seconds_mean": loop,
        "marginal_seconds_per_instrument": marginal,
        "overhead_factor": marginal / loop if loop else float("nan"),
        "load": os.getloadavg()[0],
    }


def run(quick: bool) -> dict:
    """The section for benchmarks.run (opt-in: --with-instruments)."""
    count = 4 if quick else 16
    rows = []
    for name, long_lived in (("local Ray per run", False), ("long-lived local Ray", True)):
        with tempfile.TemporaryDirectory(prefix="rl_assets_instruments_") as tmp:
            rows.append(run_setup(name, count, long_lived, Path(tmp)))
    return {"rows": rows}


def markdown(result: dict) -> str:
    rows = result["rows"]
    counts = sorted({int(n) for r in rows for n in r["wall_seconds"]})
    head = "| setup | " + " | ".join(f"{n} instrument{'s' if n > 1 else ''}" for n in counts)
    head += " | marginal s per instrument | its training loop s | overhead factor | load |\n"
    head += "|---|" + "---:|" * (len(counts) + 4) + "\n"
    body = "".join(
        f"| {r['setup']} | "
        + " | ".join(
            f"{r['wall_seconds'][n] if n in r['wall_seconds'] else r['wall_seconds'][str(n)]:.1f} s"
            for n in counts
        )
        + f" | {r['marginal_seconds_per_instrument']:.1f} | {r['training_loop_seconds_mean']:.1f}"
        f" | {r['overhead_factor']:.2f}x | {r['load']:.1f} |\n"
        for r in rows
    )
    per_run, shared = rows[0], rows[1]
    saving = per_run["marginal_seconds_per_instrument"] - shared["marginal_seconds_per_instrument"]
    return (
        "## 6. The cost of many instruments\n\n"
        "Each instrument is one `dg launch --assets 'key:\"*\"' --partition <instrument>` with "
        "the default budget, one after another, on a fresh instance; wall time to finish the "
        "first n instruments. Marginal cost = (T(last) - T(1)) / (last - 1); the training "
        "loop is the time trained_policy spent in its iterations; the overhead factor is "
        "their ratio (target: at most 1.5x with the long-lived Ray).\n\n"
        + head
        + body
        + f"\nThe long-lived Ray saves {saving:.1f} s per instrument. What remains per run "
        "is the CLI process: importing Dagster and loading the code location, the upstream "
        "assets, importing RLlib and building the algorithm, the report and the gate.\n"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for name, long_lived in (("local Ray per run", False), ("long-lived local Ray", True)):
        with tempfile.TemporaryDirectory(prefix="rl_assets_instruments_") as tmp:
            row = run_setup(name, args.instruments, long_lived, Path(tmp))
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"rows": rows}
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
