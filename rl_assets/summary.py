"""Print what the latest run of each instrument did: data, training, the gate, the champion.

    python -m rl_assets.summary [--instrument KEY ...] [--exit-status N]

With ``--exit-status`` (the worst exit code of the CLI runs), runs that failed only because
the gate refused a candidate count as success: a refusal is a result, not a crash.
"""

import argparse
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType

from rl_assets.assets.monitoring import DECAY_CHECK
from rl_assets.assets.signal import read_latest_signal
from rl_assets.automation.retries import failure_kind
from rl_assets.instruments import registered
from rl_assets.outcomes import OUTCOME_TAG, REFUSED, outcome_of
from rl_assets.registry import Registry
from rl_assets.resources import default_artifacts_root


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


def _checks(instance: dg.DagsterInstance, run_id: str) -> list:
    return [
        r.dagster_event.event_specific_data
        for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    ]


def _failure(instance: dg.DagsterInstance, run_id: str) -> str:
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.event_specific_data
        user = data.user_failure_data
        text = (
            user.description
            if user and user.description
            else (data.error.message if data.error else "")
        )
        if "blocking asset check" not in text:
            return f"{record.dagster_event.step_key}: {text.strip().splitlines()[0][:300]}"
    return ""


def describe(instance: dg.DagsterInstance, instrument: str) -> tuple[list[str], str]:
    """Lines about the instrument's latest run, and how it ended: 'promoted', 'refused',
    'failed' or 'no run'."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": instrument}), limit=1)
    if not runs:
        return [f"{instrument}: no run yet"], "no run"
    run = runs[0]
    mats = _materializations(instance, run.run_id)
    raw, train, val = (mats.get(k, {}) for k in ("raw_prices", "train_prices", "validation_prices"))
    budget, policy = mats.get("episodes_per_iteration", {}), mats.get("trained_policy", {})
    report, promoted = mats.get("validation_report", {}), mats.get("promoted_policy")
    status = run.status.value.lower()
    if outcome_of(run):  # a refused run is a FAILURE to Dagster, a verdict to us
        status = f"{status}, {OUTCOME_TAG}={outcome_of(run)}"
    lines = [f"{instrument}: run {run.run_id[:8]} ({status})"]
    if raw:
        lines.append(
            f"  data:        {raw['rows']} rows {raw['first_date']}..{raw['last_date']} ({raw['source']})"
        )
    if train and val:
        lines.append(
            f"  splits:      train {train['first_date']}..{train['last_date']} ({train['rows']} rows), "
            f"validation {val['first_date']}..{val['last_date']} ({val['rows']} rows)"
        )
    if budget and policy:
        lines.append(
            f"  training:    {policy['iterations']} iterations, stopped by {policy['stop_reason']}; "
            f"{policy['episodes_total']} episodes (target {policy['episodes_target']}, "
            f"{_fmt(budget['episodes_per_iteration'], '.1f')}/iteration); best iteration "
            f"{policy['best_iteration']}"
        )
    evidence = mats.get("walk_forward_evidence", {})
    if evidence.get("summary"):
        lines.append(f"  out of sample: {evidence['summary']}")
    if report.get("validation_sharpe") is not None:
        lines.append(
            f"  validation:  Sharpe {_fmt(report['validation_sharpe'])} vs buy-and-hold "
            f"{_fmt(report['buy_and_hold_sharpe'])}; train Sharpe {_fmt(report['train_sharpe'])} "
            "(the candidate's own windows, which chose its checkpoint)"
        )
    checks = _checks(instance, run.run_id)
    data_checks = [
        c
        for c in checks
        if not c.check_name.startswith("candidate_") and c.check_name != DECAY_CHECK
    ]
    bad_data = [c.check_name for c in data_checks if not c.passed]
    if data_checks:
        lines.append(
            f"  data checks: {len(data_checks) - len(bad_data)} of {len(data_checks)} passed"
            + (f"; failed: {', '.join(bad_data)}" if bad_data else "")
        )
    gate = [c for c in checks if c.check_name.startswith("candidate_")]
    refused = [c for c in gate if not c.passed]
    if gate:
        lines.append(f"  gate:        {len(gate) - len(refused)} of {len(gate)} passed")
        for c in refused:
            observed = getattr(c.metadata.get("observed"), "value", "")
            threshold = getattr(c.metadata.get("threshold"), "value", "")
            reason = getattr(c.metadata.get("reason"), "value", "")
            lines.append(
                f"    refused by {c.check_name.removeprefix('candidate_')}: {reason} "
                f"(observed {observed}, threshold {threshold})"
            )
    if report:
        lines.append(f"  report:      {report['report_file']}")
    kind = failure_kind(instance, run.run_id) if run.status == dg.DagsterRunStatus.FAILURE else ""
    if promoted:
        lines.append(f"  promoted:    yes, {promoted['version']} (replaced {promoted['replaced']})")
        outcome = "promoted"
    elif kind == "gate" or outcome_of(run) == REFUSED:
        lines.append(
            "  promoted:    no: the gate refused the candidate; the champion is unchanged "
            f"(run tag {OUTCOME_TAG}={REFUSED})"
        )
        outcome = "refused"
    else:
        reason = _failure(instance, run.run_id)
        if reason:
            lines.append(f"  failed:      {reason}")
        failed = run.status == dg.DagsterRunStatus.FAILURE
        outcome = "failed" if failed else run.status.value.lower()
    return lines + _in_use(mats, instrument), outcome


def _in_use(mats: dict[str, dict], instrument: str) -> list[str]:
    """The latest signal downstream systems read, and how the champion fares since validation."""
    registry = Registry.for_instrument(Path(default_artifacts_root()) / "registry", instrument)
    signal = read_latest_signal(default_artifacts_root(), instrument)
    if signal is not None and signal.get("position") is None:
        line = f"  signal:      NONE for {signal['session']}: {signal.get('reason', '')}"
    elif signal is not None:
        probability = (
            signal.get("policy_probability")
            or signal["action_probabilities"][str(signal["position"])]
        )
        line = (
            f"  signal:      position {signal['position']:+.0f}, {signal.get('execute_at', '')} "
            f"(policy's own probability {probability:.2f}, not a calibrated confidence; "
            f"champion {signal['champion_version']})"
        )
    elif registry.champion() is None:
        line = "  signal:      none: no champion yet"
    else:
        line = "  signal:      none yet: materialize trading_signal"
    lines = [line]
    watch = mats.get("champion_performance")
    if watch:
        verdict = "DECAYED" if watch["decayed"] else "edge holding"
        lines.append(
            f"  monitoring:  {verdict} over {watch['days']} live days: {watch.get('reason', '')}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instrument", action="append", default=[])
    parser.add_argument("--exit-status", type=int, default=0)
    args = parser.parse_args(argv)
    with dg.DagsterInstance.get() as instance:
        instruments = args.instrument or registered(instance)
        if not instruments:
            print("No instrument registered: run `make demo`.")
            return 1
        outcomes = []
        for instrument in instruments:
            lines, outcome = describe(instance, instrument)
            outcomes.append(outcome)
            print("\n".join(lines))
    if args.exit_status != 0 and all(o in ("promoted", "refused") for o in outcomes):
        return 0  # every failure was a refusal by the gate: a result, not a crash
    return args.exit_status


if __name__ == "__main__":
    raise SystemExit(main())
