"""PPO (Ray RLlib, torch) on TradingEnv with validation-Sharpe early stopping.

What it does: trains until about ``target_episodes`` episodes have completed across
all env runners, rolls the greedy policy out on the validation prices after every
iteration, keeps the best checkpoint by validation Sharpe (written atomically) and
stops early when validation stops improving.

Run it alone (no Dagster)::

    python -m rl_assets.rl.training

Expect, on the default generated momentum prices on 2 CPU cores: 13 iterations of
well under a second each after several seconds of start-up (RLlib's imports, Ray;
with ``RAY_ADDRESS`` of a long-lived local Ray, ``make ray-up``, Ray's start is
skipped), and a validation Sharpe well above buy-and-hold's.
"""

import contextlib
import functools
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rl_assets.rl import checkpoints
from rl_assets.rl.early_stopping import EarlyStopping
from rl_assets.rl.env import VectorTradingEnv, constant_policy, rollout
from rl_assets.rl.local_ray import SYSTEM_CONFIG
from rl_assets.rl.metrics import sharpe_ratio
from rl_assets.rl.quiet import quiet_rllib

quiet_rllib()  # RLlib's known harmless notices, dropped by message (see rl_assets/rl/quiet.py)

RL_MODULE_SUBDIR = Path("learner_group") / "learner" / "rl_module" / "default_policy"


@dataclass
class TrainingSpec:
    """Everything that decides a training run; recorded with every checkpoint."""

    window: int = 10
    episode_length: int = 252
    transaction_cost: float = 0.0002
    action_set: str = "short_flat_long"
    target_episodes: int = 100
    num_env_runners: int = 0
    # 16 sub-envs per runner: per-step RLlib costs (module call, connectors, metrics)
    # are shared by twice as many env steps as at 8, while every iteration still makes
    # 40 minibatch updates at the default batch (32 envs make 41: more episode chunks,
    # each adding a bootstrap row) and, staggered, completes 8 episodes
    # (benchmarks/RESULTS.md).
    num_envs_per_env_runner: int = 16
    train_batch_size: int = 2016
    minibatch_size: int = 256
    num_epochs: int = 5
    lr: float = 1e-3
    gamma: float = 0.9
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    seed: int = 0
    patience: int = 3
    min_iterations: int = 5
    max_iterations: int = 30
    min_improvement: float = 0.0
    risk_free_rate: float = 0.0
    # When a decision made after close t is executed (rl_assets.rl.env.EXECUTIONS): the
    # reward trains for the execution the signal is traded at.
    execution: str = "next_open"
    # A crashed env runner or sub-environment is rebuilt after this delay (RLlib's
    # default is 60 s) at most this many times.
    restart_delay_s: float = 1.0
    max_restarts: int = 5
    # Torch threads of the driver (the local env runner and learner). One is fastest on
    # small machines: PPO alternates sampling and learning, and a second thread mostly
    # contends with Ray's own processes (benchmarks/RESULTS.md: up to 6x on 2 cores).
    torch_threads: int = 1
    # Sub-env k of n ends its first episode after ceil(episode_length * (k + 1) / n)
    # steps, so episodes end evenly over iterations rather than all together
    # (VectorTradingEnv; RLlib-default TradingEnv sampling cannot stagger).
    stagger_episodes: bool = True

    def env_config(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "episode_length": self.episode_length,
            "transaction_cost": self.transaction_cost,
            "action_set": self.action_set,
            "execution": self.execution,
        }


def plan_budget(spec: TrainingSpec) -> dict[str, Any]:
    """Derived numbers, computed once: episodes per iteration and iterations to the target.

    Every iteration samples ``train_batch_size`` env steps in total (spread over
    ``max(1, num_env_runners) * num_envs_per_env_runner`` envs); every episode is
    ``episode_length`` steps, so on average ``train_batch_size / episode_length``
    episodes complete per iteration. With staggered first episodes
    (``stagger_episodes``) every iteration completes about that many, also when there
    are more envs than episodes per iteration; without, those envs all end their
    episodes on the same iteration.
    """
    if spec.target_episodes < 1:
        raise ValueError(f"target_episodes={spec.target_episodes}; it must be at least 1")
    if spec.train_batch_size < spec.episode_length:
        raise ValueError(
            f"train_batch_size={spec.train_batch_size} is smaller than one episode "
            f"(episode_length={spec.episode_length}); raise train_batch_size to at least "
            f"{spec.episode_length} or shorten episode_length"
        )
    if spec.num_env_runners < 0 or spec.num_envs_per_env_runner < 1:
        raise ValueError(
            f"num_env_runners={spec.num_env_runners}, num_envs_per_env_runner="
            f"{spec.num_envs_per_env_runner}; use >= 0 runners and >= 1 env per runner"
        )
    per_iteration = spec.train_batch_size / spec.episode_length
    needed = math.ceil(spec.target_episodes / per_iteration)
    if needed < spec.min_iterations:
        raise ValueError(
            f"target_episodes={spec.target_episodes} is reached after {needed} iteration(s) "
            f"({per_iteration:.2f} episodes each), fewer than min_iterations="
            f"{spec.min_iterations}; raise target_episodes or lower min_iterations/train_batch_size"
        )
    return {
        "episodes_per_iteration": per_iteration,
        "iterations_for_target": needed,
        "max_iterations": min(spec.max_iterations, needed),
        "env_steps_per_iteration": spec.train_batch_size,
        "parallel_envs": max(1, spec.num_env_runners) * spec.num_envs_per_env_runner,
    }


def simulated_episodes(
    spec: TrainingSpec, train_closes: np.ndarray, iterations: int = 3
) -> list[int]:
    """Episodes completed in each of ``iterations`` iterations, replaying RLlib's sampling
    schedule on the real (vectorised) env with random actions.

    As RLlib's env runner does: every runner steps its vector env (``stagger_episodes``
    as in training) whole vector steps at a time until it has ``rollout_fragment_length
    * num_envs`` env steps (``"auto"``: ``train_batch_size`` split over all envs), the
    step that resets a finished sub-env does not count, and episodes continue across
    iterations. Episode ends do not depend on the actions.
    """
    plan = plan_budget(spec)
    runners = max(1, spec.num_env_runners)
    n = spec.num_envs_per_env_runner
    fragment = max(1, math.ceil(spec.train_batch_size / plan["parallel_envs"]))
    done = [0] * iterations
    for runner in range(runners):
        env = VectorTradingEnv(
            {
                **spec.env_config(),
                "closes": train_closes,
                "num_envs": n,
                "stagger": spec.stagger_episodes,
            }
        )
        env.reset(seed=spec.seed + runner)
        env.action_space.seed(spec.seed + runner)
        resetting = 0
        for it in range(iterations):
            counted = 0
            while counted < fragment * n:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                counted += n - resetting
                resetting = int(np.count_nonzero(terminated | truncated))
                done[it] += resetting
    return done


def simulate_episodes_per_iteration(
    spec: TrainingSpec, train_closes: np.ndarray, iterations: int = 3
) -> float:
    """Mean episodes per iteration over ``iterations`` replayed iterations
    (``simulated_episodes``)."""
    return sum(simulated_episodes(spec, train_closes, iterations)) / iterations


def with_history(
    train_closes: np.ndarray, validation_closes: np.ndarray, window: int
) -> np.ndarray:
    """Validation closes preceded by the last ``window + 1`` train closes.

    The first validation decision is taken at the last train close and sees only
    past returns; every validation day's return is traded exactly once.
    """
    train_closes = np.asarray(train_closes, dtype=np.float64)
    if len(train_closes) < window + 1:
        raise ValueError(
            f"train split has {len(train_closes)} rows; the validation window needs "
            f"{window + 1} rows of history before it"
        )
    return np.concatenate([train_closes[-(window + 1) :], np.asarray(validation_closes)])


def greedy_policy(module) -> Callable[[np.ndarray], int]:
    """The deterministic (argmax) action of an RLlib torch RLModule."""
    import torch

    def act(obs: np.ndarray) -> int:
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.as_tensor(obs[None])})
        return int(out["action_dist_inputs"][0].argmax())

    return act


def load_module(checkpoint: Path):
    """Restore the policy network (RLModule) of a complete checkpoint, no Ray runtime needed.

    RLlib checkpoints contain pickles: only load checkpoints this project wrote.
    """
    from ray.rllib.core.rl_module.rl_module import RLModule

    checkpoints.read_manifest(checkpoint)  # refuses incomplete checkpoints
    # Absolute: RLlib reads the path as a URI, and a relative one has no scheme.
    return RLModule.from_checkpoint(str(Path(checkpoint).absolute() / RL_MODULE_SUBDIR))


def load_policy(checkpoint: Path) -> Callable[[np.ndarray], int]:
    """The greedy policy of a complete checkpoint (see ``load_module``)."""
    return greedy_policy(load_module(checkpoint))


def evaluate(policy, closes: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
    """Greedy rollout over ``closes``: daily net returns, positions and Sharpe."""
    returns, positions = rollout(policy, closes, spec.env_config())
    return {
        "returns": returns,
        "positions": positions,
        "sharpe": sharpe_ratio(returns, spec.risk_free_rate),
    }


def evaluate_module(module, closes: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
    """``evaluate`` of an RLModule's greedy policy, with the module in eval mode for the
    whole rollout: RLlib's forward_inference otherwise switches a training-mode module to
    eval and back on every one of the rollout's steps (no dropout or batch norm here, so
    the mode changes no number)."""
    was_training = module.training
    module.eval()
    try:
        return evaluate(greedy_policy(module), closes, spec)
    finally:
        module.train(was_training)


def buy_and_hold(closes: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
    return evaluate(constant_policy(spec.env_config(), 1.0), closes, spec)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[str]:
    """Use a running Ray (already initialised, or ``address``/``RAY_ADDRESS``), else start a
    local one without dashboard and shut it down afterwards. Yields how Ray was reached."""
    import ray

    if ray.is_initialized():
        yield "existing-session"
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as e:
            raise ConnectionError(
                f"could not join the Ray cluster at {address}: {e}. For the long-lived local "
                "Ray of `make ray-up`, `source .ray_env` first (it also sets RAY_AUTH_MODE and "
                "RAY_AUTH_TOKEN_PATH, which that Ray requires); if it was stopped, unset "
                "RAY_ADDRESS"
            ) from e
        try:
            yield f"cluster:{address}"
        finally:
            ray.shutdown()  # disconnects; the cluster keeps running
        return
    _quiet_default_auth_notice()
    ray.init(
        address="local",  # never join a stray `ray start` cluster by accident
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        # Workers at this process's priority (local_ray). A copy: Ray writes into the dict
        # it is given, and a second start would read the first's spilling dir as set by us.
        _system_config=dict(SYSTEM_CONFIG),
    )
    # If this process is killed, the watchdog kills the Ray processes it started.
    reaper = subprocess.Popen(
        [sys.executable, "-m", "rl_assets.rl.reaper", str(os.getpid())],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield "local"
    finally:
        ray.shutdown()
        stop_watchdog(reaper)


# Ray's logger of its token-auth notice (a test fails if it moves: the notice reappears).
RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


class _DefaultAuthNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token authentication is enabled for this Ray")


def _quiet_default_auth_notice() -> None:
    """A private local Ray starts with Ray's default auth (token) when RAY_AUTH_MODE is unset,
    and Ray prints a WARNING saying so on every start. That default is this project's choice
    (`make demo` names it; RAY_AUTH_MODE cannot be set once Ray is imported): drop the notice,
    nothing else. An explicit RAY_AUTH_MODE is left to Ray."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    logger = logging.getLogger(RAY_AUTH_LOGGER)
    if not any(isinstance(f, _DefaultAuthNotice) for f in logger.filters):
        logger.addFilter(_DefaultAuthNotice())


# How long the watchdog gets to exit after SIGTERM before it is killed.
WATCHDOG_EXIT_SECONDS = 10.0


def stop_watchdog(reaper: subprocess.Popen) -> None:
    """Stop the watchdog; never raise. A watchdog that does not exit in time (a loaded
    machine, or one that ignores SIGTERM) is killed and logged: teardown must not turn a
    trained, reported candidate into an infrastructure failure."""
    reaper.terminate()
    try:
        reaper.wait(timeout=WATCHDOG_EXIT_SECONDS)
        return
    except subprocess.TimeoutExpired:
        pass
    logging.getLogger(__name__).warning(
        "Ray watchdog (pid %s) did not exit within %.0f s of SIGTERM; killed it",
        reaper.pid,
        WATCHDOG_EXIT_SECONDS,
    )
    reaper.kill()
    try:
        reaper.wait(timeout=WATCHDOG_EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        logging.getLogger(__name__).warning(
            "Ray watchdog (pid %s) still alive after SIGKILL; left to the system", reaper.pid
        )


def is_vector_env(env_class: type) -> bool:
    import gymnasium as gym

    return isinstance(env_class, type) and issubclass(env_class, gym.vector.VectorEnv)


def build_ppo_config(
    spec: TrainingSpec, train_closes: np.ndarray, env_class: type = VectorTradingEnv
):
    """The PPO config of a run, as one chain.

    A natively vectorised ``env_class`` (the default, VectorTradingEnv) is built by RLlib
    through its ``vector_entry_point`` (RLlib passes ``num_envs``) and sampled with one
    connector piece each way plus a learner pipeline without RLlib's stateful-model
    pieces (rl_assets/rl/pipeline.py). A plain ``gym.Env`` class (TradingEnv, or a test
    double) runs through gymnasium's SyncVectorEnv and RLlib's default pipelines. Both
    give bit-identical results for the same seed when sampling order is the same
    (``stagger_episodes=False``; rl_assets_tests/test_sampling.py).
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rl_assets.rl import pipeline

    vectorised = is_vector_env(env_class)
    env_config = {**spec.env_config(), "closes": train_closes}
    if vectorised:
        env_config["stagger"] = spec.stagger_episodes
    config = PPOConfig()
    return (
        config.environment(env_class, env_config=env_config)
        .env_runners(
            num_env_runners=spec.num_env_runners,
            num_envs_per_env_runner=spec.num_envs_per_env_runner,
            rollout_fragment_length="auto",
            gym_env_vectorize_mode="vector_entry_point" if vectorised else "sync",
            env_runner_cls=pipeline.TradingEnvRunner if vectorised else None,
            env_to_module_connector=pipeline.env_to_module if vectorised else None,
            module_to_env_connector=pipeline.module_to_env if vectorised else None,
            add_default_connectors_to_env_to_module_pipeline=not vectorised,
            add_default_connectors_to_module_to_env_pipeline=not vectorised,
        )
        .training(
            train_batch_size=spec.train_batch_size,
            minibatch_size=spec.minibatch_size,
            num_epochs=spec.num_epochs,
            lr=spec.lr,
            gamma=spec.gamma,
        )
        .learners(
            learner_connector=(
                functools.partial(
                    pipeline.learner_pipeline, gamma=spec.gamma, lambda_=config.lambda_
                )
                if vectorised
                else None
            ),
            add_default_connectors_to_learner_pipeline=not vectorised,
            learner_class=pipeline.TradingPPOLearner if vectorised else None,
        )
        .rl_module(
            model_config={"fcnet_hiddens": list(spec.hidden_sizes)},
            rl_module_spec=RLModuleSpec(module_class=pipeline.TradingPPOModule)
            if vectorised
            else None,
        )
        .fault_tolerance(
            restart_failed_env_runners=True,
            restart_failed_sub_environments=True,
            max_num_env_runner_restarts=spec.max_restarts,
            delay_between_env_runner_restarts_s=spec.restart_delay_s,
        )
        .reporting(metrics_num_episodes_for_smoothing=10)
        .debugging(seed=spec.seed, log_level="ERROR")
    )


# PPO's learner figures of an iteration (RLlib reports the last minibatch's): how the
# update went, next to the returns and the validation Sharpe.
LEARNER_METRICS = {
    "learner/policy_loss": "policy_loss",
    "learner/vf_loss": "vf_loss",
    "learner/vf_explained_var": "vf_explained_var",
    "learner/entropy": "entropy",
    "learner/mean_kl": "mean_kl_loss",
}


def learner_metrics(learner_results: dict[str, Any]) -> dict[str, float]:
    from ray.rllib.core import DEFAULT_MODULE_ID

    module = learner_results.get(DEFAULT_MODULE_ID, {})
    return {
        name: float(module[key]) if key in module else float("nan")
        for name, key in LEARNER_METRICS.items()
    }


def library_versions() -> dict[str, str]:
    import gymnasium
    import ray
    import torch

    return {
        "python": platform.python_version(),
        "ray": ray.__version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
    }


def train_ppo(
    spec: TrainingSpec,
    train_closes: np.ndarray,
    validation_closes: np.ndarray,
    checkpoint_root: Path,
    data_version: str = "",
    log: Callable[[str], None] = print,
    ray_address: str | None = None,
    env_class: type = VectorTradingEnv,
    provenance: dict[str, Any] | None = None,
    num_cpus: int | None = None,
) -> dict[str, Any]:
    """Train, early-stop on validation Sharpe, keep the best checkpoint; return a summary.

    ``validation_closes`` must already carry ``window + 1`` rows of past history
    (see ``with_history``). The best checkpoint lies under ``checkpoint_root`` and
    ``checkpoint_root / "best.json"`` points at it. ``provenance`` (what the policy was
    trained and selected on: instrument, split dates and content hashes) is recorded in
    every checkpoint's manifest. ``num_cpus`` sizes a locally started Ray (None: all cores).
    """
    from ray.rllib.utils.metrics import (
        ENV_RUNNER_RESULTS,
        EPISODE_RETURN_MEAN,
        LEARNER_RESULTS,
        NUM_ENV_STEPS_SAMPLED_LIFETIME,
        NUM_EPISODES,
    )

    plan = plan_budget(spec)
    if spec.minibatch_size > spec.train_batch_size:
        raise ValueError(
            f"minibatch_size={spec.minibatch_size} exceeds train_batch_size="
            f"{spec.train_batch_size}; lower minibatch_size"
        )
    min_rows = spec.window + spec.episode_length + 1
    if len(train_closes) < min_rows:
        raise ValueError(
            f"train split has {len(train_closes)} rows; one episode needs at least {min_rows} "
            f"(window {spec.window} + episode_length {spec.episode_length} + 1); "
            "widen the train dates or shorten episode_length"
        )
    stopper = EarlyStopping(
        patience=spec.patience,
        min_iterations=spec.min_iterations,
        max_iterations=plan["max_iterations"],
        min_improvement=spec.min_improvement,
    )
    checkpoint_root = Path(checkpoint_root)
    checkpoint_root.mkdir(parents=True, exist_ok=True)
    checkpoints.remove_stale_temp_dirs(checkpoint_root)
    bh = buy_and_hold(validation_closes, spec)
    versions = library_versions()
    rows: list[dict[str, Any]] = []
    best_path: Path | None = None
    episodes_total = 0
    started = time.perf_counter()
    import torch

    torch.set_num_threads(spec.torch_threads)
    with ray_session(ray_address, num_cpus) as ray_mode:
        algo = build_ppo_config(
            spec, np.asarray(train_closes, dtype=np.float64), env_class
        ).build_algo()
        try:
            while not stopper.should_stop:
                t0 = time.perf_counter()
                result = algo.train()
                runner = result.get(ENV_RUNNER_RESULTS, {})
                episodes = int(runner.get(NUM_EPISODES, 0))
                episodes_total += episodes
                train_return = runner.get(EPISODE_RETURN_MEAN, float("nan"))
                val = evaluate_module(algo.get_module(), validation_closes, spec)
                improved = stopper.update(
                    val["sharpe"], budget_reached=episodes_total >= spec.target_episodes
                )
                row = {
                    "iteration": stopper.iteration,
                    "episodes": episodes,
                    "episodes_total": episodes_total,
                    "env_steps_total": int(result.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0)),
                    "train/episode_return_mean": float(train_return),
                    "validation/sharpe": val["sharpe"],
                    **learner_metrics(result.get(LEARNER_RESULTS, {})),
                    "seconds": time.perf_counter() - t0,
                }
                rows.append(row)
                if improved:
                    manifest = {
                        "iteration": stopper.iteration,
                        "validation_sharpe": val["sharpe"],
                        "data_version": data_version,
                        "provenance": provenance or {},
                        "spec": asdict(spec),
                        "library_versions": versions,
                        "created_at": time.time(),
                    }
                    dest = checkpoint_root / f"iter_{stopper.iteration:04d}"
                    best_path = checkpoints.publish_directory(
                        dest, lambda tmp: algo.save_to_path(str(tmp)), manifest
                    )
                    checkpoints.write_json_atomically(
                        checkpoint_root / "best.json", {"checkpoint": best_path.name, **manifest}
                    )
                log(
                    f"iteration {stopper.iteration}: episodes {episodes} "
                    f"(total {episodes_total}/{spec.target_episodes}), train return "
                    f"{train_return:.3f}, validation Sharpe {val['sharpe']:.3f}"
                    f"{' (new best)' if improved else ''}, {row['seconds']:.2f}s"
                )
        finally:
            algo.stop()
    # Only the best checkpoint is kept; older bests are superseded.
    for old in checkpoint_root.glob("iter_*"):
        if old != best_path:
            shutil.rmtree(old, ignore_errors=True)
    first_episodes = rows[0]["episodes"] if rows else 0
    return {
        "checkpoint": str(best_path),
        "data_version": data_version,
        "provenance": provenance or {},
        "best_iteration": stopper.best_iteration,
        "best_validation_sharpe": stopper.best_score,
        "stop_reason": stopper.stop_reason,
        "iterations": stopper.iteration,
        "episodes_total": episodes_total,
        "episodes_target": spec.target_episodes,
        "episodes_error": (episodes_total - spec.target_episodes) / spec.target_episodes,
        "episodes_first_iteration": first_episodes,
        "buy_and_hold_validation_sharpe": bh["sharpe"],
        "history": rows,
        "plan": plan,
        "ray": ray_mode,
        "num_env_runners": spec.num_env_runners,
        "env_class": env_class.__name__,
        "seconds": time.perf_counter() - started,
        "spec": asdict(spec),
        "library_versions": versions,
    }


if __name__ == "__main__":  # pragma: no cover - manual entry point
    import tempfile

    from rl_assets.constants import TRAIN_END, TRAIN_START, VALIDATION_END, VALIDATION_START
    from rl_assets.data.synthetic import generate_prices

    prices = generate_prices("2019-01-01", VALIDATION_END)
    train = prices.loc[TRAIN_START:TRAIN_END, "close"].to_numpy()
    val = prices.loc[VALIDATION_START:VALIDATION_END, "close"].to_numpy()
    spec = TrainingSpec()
    out = train_ppo(spec, train, with_history(train, val, spec.window), Path(tempfile.mkdtemp()))
    print({k: v for k, v in out.items() if k not in ("history", "spec")})
