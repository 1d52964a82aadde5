"""Training: the episode budget and the PPO policy with validation-Sharpe early stopping."""

import dataclasses
from typing import Any

import dagster as dg
import pandas as pd

from rl_assets import constants, plots
from rl_assets.assets.prices import content_hash
from rl_assets.resources import ArtifactStoreResource, RayResource
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


@dg.asset(group_name=constants.TRAINING_GROUP)
def episodes_per_iteration(
    context: dg.AssetExecutionContext, config: EpisodesConfig, train_prices: pd.DataFrame
) -> dg.Output[dict[str, Any]]:
    """Episodes completed per training iteration across all env runners, and iterations to the budget."""
    sampling = config.model_dump()
    spec = TrainingSpec(**sampling)
    min_rows = spec.window + spec.episode_length + 1
    if len(train_prices) < min_rows:
        raise dg.Failure(
            description=f"train_prices has {len(train_prices)} rows; one episode needs at least "
            f"{min_rows} (window {spec.window} + episode_length {spec.episode_length} + 1): widen "
            "the train dates (price_splits config), lower validation_fraction, or shorten "
            "episode_length"
        )
    plan = plan_budget(spec)
    measured = simulate_episodes_per_iteration(spec, train_prices["close"].to_numpy())
    value = {**plan, "measured_episodes_per_iteration": measured, "sampling": sampling}
    context.log.info(
        f"{plan['episodes_per_iteration']:.2f} episodes/iteration from config, {measured:.2f} "
        f"measured; {plan['iterations_for_target']} iterations reach {config.target_episodes}"
    )
    return dg.Output(
        value,
        metadata={
            "episodes_per_iteration": plan["episodes_per_iteration"],
            "measured_episodes_per_iteration": measured,
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


def _history_table(rows: list[dict[str, Any]]) -> str:
    header = "| iteration | episodes | total | env steps | train return | validation Sharpe | s |\n"
    header += "|---:|---:|---:|---:|---:|---:|---:|\n"
    return header + "".join(
        f"| {r['iteration']} | {r['episodes']} | {r['episodes_total']} | {r['env_steps_total']} "
        f"| {r['train/episode_return_mean']:.3f} | {r['validation/sharpe']:.3f} "
        f"| {r['seconds']:.2f} |\n"
        for r in rows
    )


@dg.asset(group_name=constants.TRAINING_GROUP, kinds={"ray", "pytorch"})
def trained_policy(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    artifacts: ArtifactStoreResource,
    ray: RayResource,
    train_prices: pd.DataFrame,
    validation_prices: pd.DataFrame,
    episodes_per_iteration: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    """RLlib PPO policy: best checkpoint by validation Sharpe, with early stopping."""
    spec = TrainingSpec(**episodes_per_iteration["sampling"], **config.model_dump())
    train = train_prices["close"].to_numpy()
    validation = with_history(train, validation_prices["close"].to_numpy(), spec.window)
    run_dir = artifacts.run_dir(context.run_id)
    result = train_ppo(
        spec,
        train,
        validation,
        run_dir / "checkpoints",
        data_version=content_hash(pd.concat([train_prices, validation_prices])),
        log=context.log.info,
        ray_address=ray.address or None,
    )
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
            "checkpoint": dg.MetadataValue.path(result["checkpoint"]),
            "best_iteration": result["best_iteration"],
            "best_validation_sharpe": result["best_validation_sharpe"],
            "buy_and_hold_validation_sharpe": result["buy_and_hold_validation_sharpe"],
            "stop_reason": result["stop_reason"],
            "iterations": result["iterations"],
            "episodes_total": result["episodes_total"],
            "episodes_target": result["episodes_target"],
            "episodes_error": result["episodes_error"],
            "num_env_runners": result["num_env_runners"],
            "ray": result["ray"],
            "seconds": result["seconds"],
            "iterations_table": dg.MetadataValue.md(_history_table(result["history"])),
            "history": dg.MetadataValue.json(result["history"]),
            "training_curve": dg.MetadataValue.md(plots.markdown_image(b64, "training curve")),
            "spec": dg.MetadataValue.json(dataclasses.asdict(spec)),
        },
    )
