"""Resources: where artifacts live, run-scoped asset values, how to reach Ray, the gate's rules."""

import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import dagster as dg

from rl_assets import constants
from rl_assets.failures import CONFIG, failure
from rl_assets.promotion.gate import (
    CostModel,
    GateConfigError,
    GateThresholds,
    deployment_cost_model,
    deployment_thresholds,
    tighten,
)
from rl_assets.registry import Registry

VALUES_DIR = "values"


def default_artifacts_root() -> str:
    return os.environ.get(constants.ARTIFACTS_ENV_VAR) or str(
        constants.REPO_ROOT / constants.DEFAULT_ARTIFACTS_DIR
    )


def deployment_root(root: str, where: str) -> Path:
    """The artifact store: $RL_ASSETS_ARTIFACTS, else ``<repo>/artifacts``, read at run time.
    It holds the registry and decides which pickles may be loaded, so it belongs to the
    deployment: a run config ``root`` elsewhere stops the run (``where`` names the key)."""
    path = Path(default_artifacts_root())
    if root and Path(root).resolve() != path.resolve():
        raise failure(
            CONFIG,
            f"run config {where}.root={root!r} is refused: the artifact store (registry, "
            f"checkpoints, asset values) is the deployment's, ${constants.ARTIFACTS_ENV_VAR}"
            f"={str(path)!r}; a run may not move it. To use another store, set "
            f"${constants.ARTIFACTS_ENV_VAR} in the environment of the Dagster daemon, "
            "webserver and CLI and restart them",
        )
    return path


class ArtifactStoreResource(dg.ConfigurableResource):
    """Checkpoints, reports, asset values and the champion registry live under
    $RL_ASSETS_ARTIFACTS (else ``<repo>/artifacts``), read at run time. ``root`` exists only
    to refuse a run that tries to move it (``deployment_root``)."""

    root: str = ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        deployment_root(self.root, "resources.artifacts.config")

    @property
    def path(self) -> Path:
        return deployment_root(self.root, "resources.artifacts.config")

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

    def registry_root(self) -> Path:
        return self.path / "registry"

    def registry(self, instrument: str) -> Registry:
        return Registry.for_instrument(self.registry_root(), instrument)


class RunScopedIOManager(dg.ConfigurableIOManager):
    """Asset values stored per run: ``<artifacts>/runs/<run_id>/values/<asset>/<partition>.pkl``.

    A step reads the value its own run wrote; a value its run did not write (an asset
    materialized alone) is the one of the latest materialization of that asset and
    partition. Two runs at once never read each other's candidate, splits or report, which
    a store keyed by asset alone (Dagster's default) cannot promise. Files appear whole
    (written aside, then renamed). Values are pickles: only this project writes them.
    """

    root: str = ""  # only to refuse a run that moves it (deployment_root)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        deployment_root(self.root, "resources.io_manager.config")

    def _file(self, run_id: str, asset_key: dg.AssetKey, partition: str | None) -> Path:
        base = deployment_root(self.root, "resources.io_manager.config") / "runs" / run_id
        base = base / VALUES_DIR
        return base / "__".join(asset_key.path) / f"{partition or '__unpartitioned__'}.pkl"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = self._file(context.run_id, context.asset_key, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as f:
                pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        context.add_output_metadata({"stored_at": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        partition = context.asset_partition_key if context.has_asset_partitions else None
        own = self._file(context.step_context.run_id, key, partition)
        if own.exists():
            return pickle.loads(own.read_bytes())
        records = context.step_context.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=[partition] if partition else None
            ),
            limit=1,
        ).records
        where = f"{key.to_user_string()}" + (f" for instrument {partition}" if partition else "")
        if not records:
            raise dg.Failure(
                description=f"{where} has never been materialized; materialize it first "
                "(e.g. select it and everything upstream of it)"
            )
        path = self._file(records[0].run_id, key, partition)
        if not path.exists():
            raise dg.Failure(
                description=f"the latest {where} (run {records[0].run_id}) is not in the "
                f"artifact store at {path}; materialize {key.to_user_string()} again"
            )
        context.log.info(f"{where}: using the value of run {records[0].run_id}")
        return pickle.loads(path.read_bytes())


class RayResource(dg.ConfigurableResource):
    """Empty ``address`` (and no ``RAY_ADDRESS``) starts a local Ray for the run with
    ``num_cpus`` CPUs (0: every core) and stops it afterwards; an address joins that cluster
    and leaves it running (``num_cpus`` then does not apply: the cluster has its own)."""

    address: str = ""
    num_cpus: int = 0


class GateResource(dg.ConfigurableResource):
    """The gate's thresholds for this run: the deployment's, which a run may only tighten.

    Leave a field empty to use the deployment's value ($RL_ASSETS_GATE_<NAME>, else the
    code default). The cost model is the deployment's alone: $RL_ASSETS_GATE_TRANSACTION_COST,
    $RL_ASSETS_GATE_RISK_FREE_RATE, $RL_ASSETS_GATE_ACTION_SET, $RL_ASSETS_GATE_EXECUTION.
    """

    min_test_days: float | None = None
    min_test_sharpe: float | None = None
    min_margin_over_buy_and_hold: float | None = None
    min_deflated_sharpe: float | None = None
    max_sharpe_gap: float | None = None
    min_confidence_over_champion: float | None = None
    max_q_value: float | None = None

    def thresholds(self) -> GateThresholds:
        """The thresholds, or a config failure naming the threshold and the fix."""
        try:
            return tighten(deployment_thresholds(), self.model_dump())
        except GateConfigError as err:
            raise failure(CONFIG, str(err)) from None

    def cost_model(self) -> CostModel:
        try:
            return deployment_cost_model()
        except GateConfigError as err:
            raise failure(CONFIG, str(err)) from None
