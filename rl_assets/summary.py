"""Print what the latest run did: data, splits, budget, training, gate verdicts, champion.

    python -m rl_assets.summary [--exit-status N]

With ``--exit-status`` (the CLI's exit code), a run that failed only because the gate
refused the candidate exits 0: a refusal is a result, not a crash.
"""

import argparse

import dagster as dg
from dagster import DagsterEventType


def _materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    out = {}
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        mat = record.dagster_event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    return out


def _fmt(value, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exit-status", type=int, default=0)
    args = parser.parse_args(argv)
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(limit=1)
    if not runs:
        print("No run yet: run `make demo`.")
        return 1
    run = runs[0]
    mats = _materializations(instance, run.run_id)
    raw, train, val = (mats.get(k, {}) for k in ("raw_prices", "train_prices", "validation_prices"))
    budget, policy = mats.get("episodes_per_iteration", {}), mats.get("trained_policy", {})
    report, promoted = mats.get("validation_report", {}), mats.get("promoted_policy")
    print(f"rl_assets summary of run {run.run_id} ({run.status.value})")
    if raw:
        print(
            f"  data:       {raw['rows']} rows {raw['first_date']}..{raw['last_date']} ({raw['source']})"
        )
    for name, part in (("train", train), ("validation", val)):
        if part:
            print(
                f"  {name + ':':<11} {part['rows']} rows {part['first_date']}..{part['last_date']}"
            )
    if budget:
        print(
            f"  budget:     {_fmt(budget['episodes_per_iteration'], '.2f')} episodes/iteration "
            f"(measured {_fmt(budget['measured_episodes_per_iteration'], '.2f')}), "
            f"{budget['iterations_for_target']} iterations for {budget['target_episodes']} episodes"
        )
    if policy:
        print(
            f"  training:   {policy['iterations']} iterations, stopped by {policy['stop_reason']}; "
            f"{policy['episodes_total']} episodes (target {policy['episodes_target']}); "
            f"best iteration {policy['best_iteration']}"
        )
        print(
            f"  validation: best Sharpe {_fmt(policy['best_validation_sharpe'])} vs buy-and-hold "
            f"{_fmt(policy['buy_and_hold_validation_sharpe'])}"
            + (
                f"; train Sharpe {_fmt(report.get('train_sharpe'))}, deflated Sharpe "
                f"{_fmt(report.get('deflated_sharpe'))}"
                if report
                else ""
            )
        )
    gate_failed = False
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = record.dagster_event.event_specific_data
        observed = ev.metadata.get("observed")
        status = "passed" if ev.passed else ev.severity.value
        if not ev.passed and ev.asset_key.to_user_string() == "trained_policy":
            gate_failed = True
        reason = ev.metadata.get("reason")
        detail = getattr(reason, "value", None) or getattr(observed, "value", "")
        print(f"  check:      {ev.check_name}: {status} ({detail})")
    if promoted:
        print(f"  promoted:   yes, {promoted['version']} at {promoted['checkpoint']}")
    elif policy:
        print(f"  promoted:   no; the candidate stays at {policy['checkpoint']}")
    if report:
        print(f"  report:     {report['report_file']}")
    if args.exit_status != 0 and gate_failed and policy:
        print("  the gate refused the candidate; the champion is unchanged")
        return 0
    return args.exit_status


if __name__ == "__main__":
    raise SystemExit(main())
