"""The RLlib pieces this model needs: one connector piece each way, a learner pipeline
without stateful-model pieces, and the PPO module without per-step mode switches.

RLlib's default pipelines (env-to-module: observations from episodes, time rank, states,
batching, tensors; module-to-env: actions, numpy, unbatching, time rank, clipping,
listing) run in Python around every vector-env step and cost about half of sampling
time here (benchmarks/RESULTS.md). For this project's model (no RNN state, one agent, a
flat float32 observation, a categorical action) each way reduces to one piece that does
the same arithmetic, so a run gives bit-identical results to the default pipelines
(rl_assets_tests/test_sampling.py). The learner pipeline keeps RLlib's own pieces minus
the two that only act on stateful (RNN) modules, and drops the columns PPO's loss never
reads before minibatching.
"""

from typing import Any

import numpy as np
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns


class BatchObservations(ConnectorV2):
    """env-to-module: the env's latest observation of every sub-env as one float32 tensor.

    Does what RLlib's AddObservationsFromEpisodesToBatch, BatchIndividualItems and
    NumpyToTensor do for a single-agent, stateless module with a Box observation, from
    the observations the env runner hands every connector call.
    """

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        import torch

        observations = kwargs.get(Columns.OBS)
        if observations is None:  # called without the env's output: read the episodes
            observations = [episode.get_observations(-1) for episode in episodes]
        batch[Columns.OBS] = torch.from_numpy(np.stack(observations))
        return batch


class SampleActions(ConnectorV2):
    """module-to-env: actions drawn from the module's action distribution, as numpy.

    Does what RLlib's GetActions and TensorToNumpy do (the same distribution class,
    the same sampling call, hence the same torch random stream); the env runner indexes
    the numpy arrays by sub-env, which the default unbatch/listify pieces prepare as
    lists. No action normalisation or clipping applies to a Discrete action.
    """

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        if Columns.ACTIONS not in batch:
            if explore:
                dist_class = rl_module.get_exploration_action_dist_cls()
            else:
                dist_class = rl_module.get_inference_action_dist_cls()
            dist = dist_class.from_logits(batch[Columns.ACTION_DIST_INPUTS])
            if not explore:
                dist = dist.to_deterministic()
            actions = dist.sample()
            batch[Columns.ACTIONS] = actions
            if Columns.ACTION_LOGP not in batch:
                batch[Columns.ACTION_LOGP] = dist.logp(actions)
        return {key: value.numpy() for key, value in batch.items()}


def env_to_module(env=None, spaces=None, device=None) -> list[ConnectorV2]:
    return [BatchObservations()]


def module_to_env(env=None, spaces=None) -> list[ConnectorV2]:
    return [SampleActions()]


def learner_pipeline(
    input_observation_space=None, input_action_space=None, *, gamma: float, lambda_: float
) -> list[ConnectorV2]:
    """RLlib's default PPO learner pieces in RLlib's order, without the two that only act
    on stateful modules (AddTimeDimToBatchAndZeroPad, AddStatesFromEpisodesToBatch) and
    the multi-agent mapping. For ``learner_connector=functools.partial(learner_pipeline,
    gamma=..., lambda_=...)`` with ``add_default_connectors_to_learner_pipeline=False``:
    PPO then adds neither the bootstrap timestep nor GAE itself, so both are here, where
    PPO would put them (first and last)."""
    from ray.rllib.connectors.common import (
        AddObservationsFromEpisodesToBatch,
        BatchIndividualItems,
        NumpyToTensor,
    )
    from ray.rllib.connectors.learner import (
        AddColumnsFromEpisodesToTrainBatch,
        AddOneTsToEpisodesAndTruncate,
        GeneralAdvantageEstimation,
    )

    return [
        AddOneTsToEpisodesAndTruncate(),
        AddObservationsFromEpisodesToBatch(as_learner_connector=True),
        AddColumnsFromEpisodesToTrainBatch(),
        BatchIndividualItems(multi_agent=False),
        NumpyToTensor(as_learner_connector=True),
        GeneralAdvantageEstimation(gamma=gamma, lambda_=lambda_),
        KeepLossColumns(),
    ]


class KeepLossColumns(ConnectorV2):
    """learner: drop the columns PPO's loss never reads once GAE has used them (rewards,
    terminateds, truncateds) and the sampler's weights version, whose only use is a
    per-minibatch "off-policyness" metric. Every minibatch slices and concatenates each
    column, so fewer columns make each minibatch cheaper; the loss sees the same data."""

    KEEP = frozenset(
        {
            Columns.OBS,
            Columns.ACTIONS,
            Columns.ACTION_LOGP,
            Columns.ACTION_DIST_INPUTS,
            Columns.LOSS_MASK,
            Columns.ADVANTAGES,
            Columns.VALUE_TARGETS,
        }
    )

    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], **kwargs):
        for module_batch in batch.values():
            for column in list(module_batch):
                if column not in self.KEEP:
                    del module_batch[column]
        return batch


class TradingPPOModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO torch module (same networks, same initialisation, same forward
    passes) that stays in eval mode when it only samples.

    RLlib's ``forward_exploration`` calls ``eval()`` before and ``train()`` after every
    forward pass; on a module left in training mode each call walks all 13 submodules
    twice, which cost about a third of the module's time per sampling step here. The
    sampling copy (``inference_only``) is put in eval mode once, and switching to the
    mode a module is already in returns at once (nothing here switches a submodule on
    its own, and the networks have no dropout or batch norm, so the mode changes no
    number).
    """

    def setup(self):
        super().setup()
        if self.inference_only:
            self.eval()

    def train(self, mode: bool = True):
        if mode == self.training:
            return self
        return super().train(mode)
