"""A TradingEnv and a VectorTradingEnv that crash once, for fault-tolerance tests."""

import os
from pathlib import Path

from rl_assets.rl.env import TradingEnv, VectorTradingEnv

MARKER_ENV_VAR = "RL_ASSETS_TEST_FAIL_MARKER"


class FlakyTradingEnv(TradingEnv):
    """Raises on its 40th step unless the marker file (path in $RL_ASSETS_TEST_FAIL_MARKER)
    exists; creates the marker first, so exactly one crash happens across restarts."""

    def __init__(self, config=None):
        super().__init__(config)
        self.fail_marker = Path(os.environ[MARKER_ENV_VAR])
        self._count = 0

    def step(self, action):
        self._count += 1
        if self._count == 40 and not self.fail_marker.exists():
            self.fail_marker.write_text("crashed once")
            raise RuntimeError("injected env crash")
        return super().step(action)


class FlakyVectorTradingEnv(VectorTradingEnv):
    """The vector env (training's default) with the same single crash on its 40th step."""

    def __init__(self, config=None):
        super().__init__(config)
        self.fail_marker = Path(os.environ[MARKER_ENV_VAR])
        self._count = 0

    def step(self, actions):
        self._count += 1
        if self._count == 40 and not self.fail_marker.exists():
            self.fail_marker.write_text("crashed once")
            raise RuntimeError("injected env crash")
        return super().step(actions)
