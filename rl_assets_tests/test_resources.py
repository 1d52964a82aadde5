"""Resources do what their settings say: RayResource.num_cpus sizes the local Ray."""

import sys

import dagster as dg
import pytest

from rl_assets.assets import training
from rl_assets.assets.prices import SplitConfig, split_by_dates
from rl_assets.assets.training import EpisodesConfig, TrainingConfig, trained_policy
from rl_assets.data.synthetic import generate_prices
from rl_assets.resources import ArtifactStoreResource, GateResource, RayResource
from rl_assets.rl import training as rl_training


class Stop(Exception):
    pass


def test_num_cpus_reaches_the_local_ray(monkeypatch, tmp_path):
    seen = {}

    def fake_train_ppo(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(training, "train_ppo", fake_train_ppo)
    monkeypatch.setenv("RL_ASSETS_ARTIFACTS", str(tmp_path))
    prices = generate_prices("2019-01-01", "2023-12-31")
    train, validation = split_by_dates(prices, SplitConfig())
    sampling = EpisodesConfig().model_dump()
    with pytest.raises(Stop):
        trained_policy(
            dg.build_asset_context(partition_key="SPY"),
            TrainingConfig(),
            ArtifactStoreResource(),
            RayResource(num_cpus=1),
            GateResource(),
            train,
            validation,
            {"sampling": sampling},
        )
    assert seen["num_cpus"] == 1 and seen["ray_address"] is None
    assert seen["provenance"]["instrument"] == "SPY"

    started = {}

    class FakeRay:
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(**kwargs):
            started.update(kwargs)

        @staticmethod
        def shutdown():
            started["stopped"] = True

    monkeypatch.setitem(sys.modules, "ray", FakeRay)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with rl_training.ray_session(None, 1) as mode:
        assert mode == "local"
    assert started["num_cpus"] == 1 and started["address"] == "local" and started["stopped"]


STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


def test_ray_session_survives_a_watchdog_that_ignores_sigterm(monkeypatch, caplog):
    """The work succeeded; a watchdog slow to exit is killed and logged, never raised."""
    import subprocess

    class FakeRay:
        is_initialized = staticmethod(lambda: False)
        init = staticmethod(lambda **kwargs: None)
        shutdown = staticmethod(lambda: None)

    spawned = []
    popen = subprocess.Popen

    def stubborn_watchdog(args, **kwargs):
        proc = popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"  # SIGTERM is ignored from here on
        spawned.append(proc)
        return proc

    monkeypatch.setitem(sys.modules, "ray", FakeRay)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(rl_training.subprocess, "Popen", stubborn_watchdog)
    monkeypatch.setattr(rl_training, "WATCHDOG_EXIT_SECONDS", 0.5)
    with caplog.at_level("WARNING"), rl_training.ray_session(None, 1) as mode:
        assert mode == "local"
    [watchdog] = spawned
    assert watchdog.returncode == -9  # killed, after ignoring SIGTERM
    assert "did not exit within 0 s of SIGTERM; killed it" in caplog.text
    watchdog.stdout.close()
