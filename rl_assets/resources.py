"""Resources: where artifacts live, how to reach Ray, and the gate's thresholds."""

import os
from pathlib import Path

import dagster as dg

from rl_assets import constants
from rl_assets.promotion.gate import GateThresholds
from rl_assets.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_artifacts_root() -> str:
    return os.environ.get(constants.ARTIFACTS_ENV_VAR) or str(
        REPO_ROOT / constants.DEFAULT_ARTIFACTS_DIR
    )


class ArtifactStoreResource(dg.ConfigurableResource):
    """Checkpoints, reports and the champion registry live under ``root``.

    Empty ``root`` means $RL_ASSETS_ARTIFACTS, else ``<repo>/artifacts``, resolved at
    run time (not at code-location load).
    """

    root: str = ""

    @property
    def path(self) -> Path:
        return Path(self.root or default_artifacts_root())

    def trusted(self, checkpoint: str | Path) -> Path:
        """``checkpoint`` if it lies under this store; RLlib checkpoints are pickles, so
        nothing from elsewhere is ever restored."""
        path = Path(checkpoint).resolve()
        root = self.path.resolve()
        if not path.is_relative_to(root):
            raise ValueError(
                f"refusing to load checkpoint {path}: it is outside the artifact store {root}. "
                "RLlib checkpoints contain pickles; only checkpoints this project wrote are loaded"
            )
        return path

    def run_dir(self, run_id: str) -> Path:
        return self.path / "runs" / run_id

    def registry(self) -> Registry:
        return Registry(self.path / "registry")


class RayResource(dg.ConfigurableResource):
    """Empty ``address`` (and no ``RAY_ADDRESS``) starts a local Ray for the run and stops it
    afterwards; an address joins that cluster and leaves it running."""

    address: str = ""
    num_cpus: int = 0


class GateResource(dg.ConfigurableResource):
    """Thresholds of the promotion gate, shared by the blocking checks and `promoted_policy`."""

    min_validation_sharpe: float = constants.MIN_VALIDATION_SHARPE
    min_margin_over_buy_and_hold: float = constants.MIN_SHARPE_MARGIN_OVER_BUY_AND_HOLD
    min_deflated_sharpe: float = constants.MIN_DEFLATED_SHARPE
    max_sharpe_gap: float = constants.MAX_SHARPE_GAP
    min_margin_over_champion: float = constants.MIN_SHARPE_MARGIN_OVER_CHAMPION

    def thresholds(self) -> GateThresholds:
        return GateThresholds(**self.model_dump())
