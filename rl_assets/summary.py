"""Print what the latest pipeline run did: data, splits, budget, training, gate, champion."""

import dagster as dg
from dagster import DagsterEventType


def _metadata(instance: dg.DagsterInstance, key: str) -> tuple[dict, str | None]:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None:
        return {}, None
    meta = event.asset_materialization.metadata
    return {k: getattr(v, "value", v) for k, v in meta.items()}, event.run_id


def main() -> int:
    instance = dg.DagsterInstance.get()
    raw, _ = _metadata(instance, "raw_prices")
    train, _ = _metadata(instance, "train_prices")
    val, _ = _metadata(instance, "validation_prices")
    budget, _ = _metadata(instance, "episodes_per_iteration")
    policy, run_id = _metadata(instance, "trained_policy")
    report, _ = _metadata(instance, "validation_report")
    if not policy:
        print("No trained_policy materialization yet: run `make demo`.")
        return 1
    print("rl_assets demo summary")
    print(
        f"  data:        {raw.get('rows')} rows {raw.get('first_date')}..{raw.get('last_date')} ({raw.get('source')})"
    )
    print(
        f"  train:       {train.get('rows')} rows {train.get('first_date')}..{train.get('last_date')}"
    )
    print(f"  validation:  {val.get('rows')} rows {val.get('first_date')}..{val.get('last_date')}")
    print(
        f"  budget:      {budget.get('episodes_per_iteration')} episodes/iteration "
        f"(measured {budget.get('measured_episodes_per_iteration')}), "
        f"{budget.get('iterations_for_target')} iterations for {budget.get('target_episodes')} episodes"
    )
    print(
        f"  training:    {policy.get('iterations')} iterations, stopped by {policy.get('stop_reason')}; "
        f"{policy.get('episodes_total')} episodes; best iteration {policy.get('best_iteration')}"
    )
    print(
        f"  validation:  best Sharpe {policy.get('best_validation_sharpe'):.3f} vs buy-and-hold "
        f"{policy.get('buy_and_hold_validation_sharpe'):.3f}; train Sharpe {report.get('train_sharpe', float('nan')):.3f}"
    )
    checks = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    for record in checks:
        evaluation = record.dagster_event.event_specific_data
        status = "passed" if evaluation.passed else "FAILED"
        observed = evaluation.metadata.get("observed")
        print(
            f"  check:       {evaluation.check_name}: {status} ({getattr(observed, 'value', observed)})"
        )
    promoted, promoted_run = _metadata(instance, "promoted_policy")
    if promoted and promoted_run == run_id:
        print(f"  promoted:    yes, {promoted.get('version')} at {promoted.get('checkpoint')}")
    else:
        print(f"  promoted:    no; candidate checkpoint stays at {policy.get('checkpoint')}")
    print(f"  report:      {report.get('report_file')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
