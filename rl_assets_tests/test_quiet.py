"""rl_assets.rl.quiet drops RLlib's known notices by message and nothing else."""

import logging
import subprocess
import sys

import pytest

from rl_assets.rl.quiet import KNOWN_NOTICES, _DropKnownNotice, quiet_rllib


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def collect():
    """A handler on each logger quiet_rllib filters; the loggers' filters restored afterwards."""
    loggers = [logging.getLogger(name) for name, _ in KNOWN_NOTICES]
    saved = [(lg, list(lg.filters), lg.level) for lg in loggers]
    handler = _Collect()
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield handler
    for lg, filters, level in saved:
        lg.removeHandler(handler)
        lg.filters[:] = filters
        lg.setLevel(level)


def test_known_notices_are_dropped_other_warnings_pass(collect):
    from ray._common.deprecation import deprecation_warning

    quiet_rllib()
    quiet_rllib()  # idempotent: one filter per logger
    for name, _ in KNOWN_NOTICES:
        ours = [f for f in logging.getLogger(name).filters if isinstance(f, _DropKnownNotice)]
        assert len(ours) == 1, name

    # RLlib's own text (ray/rllib/core/rl_module/rl_module.py), through Ray's real function.
    deprecation_warning(
        old="RLModule(config=[RLModuleConfig object])",
        new="RLModule(observation_space=.., action_space=.., inference_only=.., "
        "model_config=.., catalog_class=..)",
        error=False,
    )
    deprecation_warning(old="Algorithm.compute_single_action()", error=False)
    api_stack = logging.getLogger("ray.rllib.algorithms.algorithm_config")
    api_stack.warning(
        "You are running PPO on the new API stack! This is the new default behavior for this "
        "algorithm. If you don't want to use the new API stack, set `config.api_stack(...)`."
    )
    api_stack.warning("You are running PPO with a custom Learner class but ...")
    tune_util = logging.getLogger("ray.tune.utils.util")
    tune_util.warning("Install gputil for GPU system monitoring.")
    tune_util.warning("Install psutil to monitor system performance.")

    assert collect.messages == [
        "DeprecationWarning: `Algorithm.compute_single_action()` has been deprecated. "
        "This will raise an error in the future!",
        "You are running PPO with a custom Learner class but ...",
        "Install psutil to monitor system performance.",
    ]


def test_importing_quiet_imports_neither_ray_nor_dagster():
    code = (
        "import sys, rl_assets.rl.quiet as q; q.quiet_rllib(); "
        "bad = [m for m in ('ray', 'dagster', 'torch') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rllibs_env_id_registered_again_is_quiet_and_any_other_id_still_warns():
    import warnings

    import gymnasium as gym

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_rllib()
        for env_id in ("rllib-single-agent-env-v0", "my-own-env-v0"):
            gym.register(env_id, entry_point="gymnasium.envs.classic_control:CartPoleEnv")
            gym.register(env_id, entry_point="gymnasium.envs.classic_control:CartPoleEnv")
            del gym.registry[env_id]
    overridden = [str(w.message) for w in caught if "Overriding environment" in str(w.message)]
    assert len(overridden) == 1 and "my-own-env-v0" in overridden[0], overridden
