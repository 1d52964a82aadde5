"""make demo: register the embedded instruments, run every asset and check of each in its own
run, then print the summary.

    python -m rl_assets.demo [--instrument KEY ...] [-c run_config.yaml ...]

Each instrument is one Dagster run on the instance at $DAGSTER_HOME (in the UI's *Runs*),
exactly what `dg launch --assets 'key:"*"' --partition KEY` executes, but every run shares
this one process: Python, Dagster, RLlib and one local Ray start once, not once per
instrument. A run refused by the gate is a result (exit 0); any other failure exits 1.
"""

import argparse
import sys

import dagster as dg
import yaml

from rl_assets import summary
from rl_assets.automation.jobs import _deep_merge
from rl_assets.definitions import defs
from rl_assets.instruments import register
from rl_assets.outcomes import tag_failure_class

DEFAULT_INSTRUMENTS = ("SYN_MOMENTUM", "SYN_NULL")


def run_config(files: list[str]) -> dict:
    """Several run-config files merged, a later one winning where two set the same value."""
    merged: dict = {}
    for path in files:
        with open(path) as f:
            merged = _deep_merge(merged, yaml.safe_load(f) or {})
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instrument", action="append", default=[])
    parser.add_argument("-c", "--config", action="append", default=[])
    args = parser.parse_args(argv)
    instruments = args.instrument or list(DEFAULT_INSTRUMENTS)
    config = run_config(args.config)
    from rl_assets.rl.training import ray_session

    with dg.DagsterInstance.get() as instance:
        register(instance, instruments)
        print(f"instruments: {', '.join(instruments)}", flush=True)
        job = defs.resolve_implicit_global_asset_job_def()
        status = 0
        # One local Ray for every run (each run's training joins it and leaves it running).
        with ray_session(address=None):
            for instrument in instruments:
                print(f"== {instrument}: train, gate, promote, signal, monitor", flush=True)
                result = job.execute_in_process(
                    run_config=config,
                    instance=instance,
                    partition_key=instrument,
                    raise_on_error=False,
                )
                status = status or (0 if result.success else 1)
                if not result.success:  # no daemon here to tag why: tag it now
                    tag_failure_class(instance, result.dagster_run)
    print(flush=True)
    args_summary = [a for i in instruments for a in ("--instrument", i)]
    return summary.main([*args_summary, "--exit-status", str(status)])


if __name__ == "__main__":
    sys.exit(main())
