"""Training: the episode budget and the PPO policy with validation-Sharpe early stopping."""

import dataclasses
from typing import Any

import dagster as dg
import pandas as pd

from rl_assets import constants, display, plots, run_guard
from rl_assets.data.versions import split_record
from rl_assets.failures import CONFIG, failure
from rl_assets.instruments import instrument_partitions
from rl_assets.resources import ArtifactStoreResource, GateResource, RayResource
from rl_assets.rl.env import bars
from rl_assets.rl.training import (
    TrainingSpec,
    plan_budget,
    simulate_episodes_per_iteration,
    train_ppo,
    with_history,
)

_DEFAULT = TrainingSpec()


class EpisodesConfig(dg.Config):
    """What one episode is and how much is sampled per iteration."""

    target_episodes: int = constants.TARGET_EPISODES
    episode_length: int = _DEFAULT.episode_length
    window: int = _DEFAULT.window
    train_batch_size: int = _DEFAULT.train_batch_size
    num_env_runners: int = _DEFAULT.num_env_runners
    num_envs_per_env_runner: int = _DEFAULT.num_envs_per_env_runner


@dg.asset(partitions_def=instrument_partitions, group_name=constants.TRAINING_GROUP)
def episodes_per_iteration(
    context: dg.AssetExecutionContext, config: EpisodesConfig, train_prices: pd.DataFrame
) -> dg.Output[dict[str, Any]]:
    """Episodes completed per training iteration across all env runners, and iterations to the budget."""
    sampling = config.model_dump()
    spec = TrainingSpec(**sampling)
    min_rows = spec.window + spec.episode_length + 1
    if len(train_prices) < min_rows:
        raise failure(
            CONFIG,
            f"train_prices has {len(train_prices)} rows; one episode needs at least "
            f"{min_rows} (window {spec.window} + episode_length {spec.episode_length} + 1): widen "
            "the train dates (price_splits config), lower validation_fraction, or shorten "
            "episode_length",
        )
    try:
        plan = plan_budget(spec)
    except ValueError as err:
        raise failure(CONFIG, f"episodes_per_iteration config: {err}") from None
    measured = simulate_episodes_per_iteration(spec, bars(train_prices))
    value = {**plan, "measured_episodes_per_iteration": measured, "sampling": sampling}
    context.log.info(
        f"{plan['episodes_per_iteration']:.2f} episodes/iteration from config, {measured:.2f} "
        f"measured; {plan['iterations_for_target']} iterations reach {config.target_episodes}"
    )
    return dg.Output(
        value,
        metadata={
            "episodes_per_iteration": display.ratio(plan["episodes_per_iteration"]),
            "measured_episodes_per_iteration": display.ratio(measured),
            "iterations_for_target": plan["iterations_for_target"],
            "target_episodes": config.target_episodes,
            "parallel_envs": plan["parallel_envs"],
            "method": (
                "config: train_batch_size / episode_length; measured: RLlib's sampling "
                "schedule replayed on the real env for 3 iterations"
            ),
        },
    )


class TrainingConfig(dg.Config):
    """PPO, env and early-stopping settings (sampling settings come from episodes_per_iteration)."""

    transaction_cost: float = _DEFAULT.transaction_cost
    action_set: str = _DEFAULT.action_set
    minibatch_size: int = _DEFAULT.minibatch_size
    num_epochs: int = _DEFAULT.num_epochs
    lr: float = _DEFAULT.lr
    gamma: float = _DEFAULT.gamma
    hidden_sizes: list[int] = _DEFAULT.hidden_sizes
    seed: int = _DEFAULT.seed
    patience: int = constants.PATIENCE
    min_iterations: int = constants.MIN_ITERATIONS
    max_iterations: int = constants.MAX_ITERATIONS
    min_improvement: float = _DEFAULT.min_improvement
    risk_free_rate: float = _DEFAULT.risk_free_rate
    torch_threads: int = _DEFAULT.torch_threads
    # When the reward's trades execute; empty: the deployment's ($RL_ASSETS_GATE_EXECUTION).
    execution: str = ""


def _history_table(rows: list[dict[str, Any]]) -> str:
    header = "| iteration | episodes | total | env steps | train return | validation Sharpe | s |\n"
    header += "|---:|---:|---:|---:|---:|---:|---:|\n"
    return header + "".join(
        f"| {r['iteration']} | {r['episodes']} | {r['episodes_total']} | {r['env_steps_total']} "
        f"| {r['train/episode_return_mean']:.3f} | {r['validation/sharpe']:.3f} "
        f"| {r['seconds']:.2f} |\n"
        for r in rows
    )


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.TRAINING_GROUP,
    kinds={"ray", "pytorch"},
    pool=constants.TRAINING_POOL,
)
def trained_policy(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    artifacts: ArtifactStoreResource,
    ray: RayResource,
    gate_thresholds: GateResource,
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
    episodes_per_iteration: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    """RLlib PPO policy: best checkpoint by validation Sharpe, with early stopping."""
    run_guard.ensure(context)  # a killed run must not keep its pool slot
    # A run config that would loosen the gate fails here, before minutes of training.
    gate_thresholds.thresholds()
    cost = gate_thresholds.cost_model()
    instrument = context.partition_key
    settings = config.model_dump()
    settings["execution"] = settings["execution"] or cost.execution
    try:
        spec = TrainingSpec(**episodes_per_iteration["sampling"], **settings)
    except (TypeError, ValueError) as err:
        raise failure(CONFIG, f"trained_policy config: {err}") from None
    train = bars(train_prices)
    validation = with_history(train, bars(validation_prices), spec.window)
    run_dir = artifacts.run_dir(context.run_id)
    splits = {"train": split_record(train_prices), "validation": split_record(validation_prices)}
    data_version = f"{splits['train']['content_hash']}+{splits['validation']['content_hash']}"
    try:
        result = train_ppo(
            spec,
            train,
            validation,
            run_dir / "checkpoints",
            data_version=data_version,
            log=context.log.info,
            ray_address=ray.address or None,
            provenance={"instrument": instrument, "run_id": context.run_id, "splits": splits},
            num_cpus=ray.num_cpus or None,
        )
    except ValueError as err:  # an impossible setting, named with its fix by train_ppo
        raise failure(CONFIG, f"trained_policy: {err}") from None
    b64 = plots.training_curve(
        result["history"], result["best_iteration"], run_dir / "training_curve.png"
    )
    context.log.info(
        f"stopped after {result['iterations']} iterations ({result['stop_reason']}); best "
        f"validation Sharpe {result['best_validation_sharpe']:.3f} at iteration "
        f"{result['best_iteration']}; {result['episodes_total']} episodes"
    )
    return dg.Output(
        result,
        metadata={
            "instrument": instrument,
            "checkpoint": dg.MetadataValue.path(result["checkpoint"]),
            "best_iteration": result["best_iteration"],
            "best_validation_sharpe": display.ratio(result["best_validation_sharpe"]),
            "buy_and_hold_validation_sharpe": display.ratio(
                result["buy_and_hold_validation_sharpe"]
            ),
            "stop_reason": result["stop_reason"],
            "iterations": result["iterations"],
            "episodes_total": result["episodes_total"],
            "episodes_target": result["episodes_target"],
            "episodes_error": display.fraction(result["episodes_error"]),
            "num_env_runners": result["num_env_runners"],
            "ray": result["ray"],
            "seconds": display.seconds(result["seconds"]),
            "train_split": dg.MetadataValue.json(splits["train"]),
            "validation_split": dg.MetadataValue.json(splits["validation"]),
            "iterations_table": dg.MetadataValue.md(_history_table(result["history"])),
            "history": dg.MetadataValue.json(result["history"]),
            "training_curve": dg.MetadataValue.md(plots.markdown_image(b64, "training curve")),
            "spec": dg.MetadataValue.json(dataclasses.asdict(spec)),
        },
    )
