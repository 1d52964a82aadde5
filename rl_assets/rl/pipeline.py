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
import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.torch_utils import explained_variance


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


class TradingPPOLearner(PPOTorchLearner):
    """RLlib's PPO torch learner with the same loss, gradients and optimizer steps, and
    its per-minibatch bookkeeping done once per update.

    - The loss metrics (policy, value and unclipped value loss, explained variance,
      entropy, KL) are logged with ``window=1``, so RLlib reports only the last
      minibatch's values, and PPO's KL-coefficient update reads that last value too.
      RLlib computes and logs them on every minibatch (40 per iteration here); this
      learner keeps the last minibatch's tensors and logs them once, before the KL
      update: the same numbers reach the results and the KL coefficient.
    - The steps-trained metrics (sums, lifetime sums, mean minibatch size, weights
      version) and Ray's Prometheus counters of trained steps: RLlib logs them on every
      minibatch; this learner counts per minibatch and logs the same sums once.
    - RLlib checks every gradient tensor for non-finite values twice per minibatch
      (once before setting it, once before the optimizer step), 24 small checks and
      Python round trips for this model. Here one check covers all of them; if any
      value is not finite, RLlib's own handling runs unchanged (warn, set non-finite
      values to finite ones, step).

    The loss maths is RLlib's ``PPOTorchLearner.compute_loss_for_module`` line for
    line; rl_assets_tests/test_sampling.py checks that weights and reported metrics
    are bit-identical to RLlib's learner for the same seed.
    """

    def build(self) -> None:
        super().build()
        self._reset_tallies()

    def _reset_tallies(self) -> None:
        """What the minibatches of one update leave for ``after_gradient_based_update``."""
        self._last_loss_terms: dict[Any, dict[str, Any]] = {}
        self._trained_sizes: dict[Any, list[int]] = {}  # module -> minibatch sizes
        self._trained_env_steps = 0

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        module = self.module[module_id].unwrapped()
        if Columns.LOSS_MASK in batch:
            mask = batch[Columns.LOSS_MASK]
            num_valid = torch.sum(mask)

            def possibly_masked_mean(data_):
                return torch.sum(data_[mask]) / num_valid

        else:
            possibly_masked_mean = torch.mean

        curr_action_dist = module.get_train_action_dist_cls().from_logits(
            fwd_out[Columns.ACTION_DIST_INPUTS]
        )
        prev_action_dist = module.get_exploration_action_dist_cls().from_logits(
            batch[Columns.ACTION_DIST_INPUTS]
        )
        logp_ratio = torch.exp(
            curr_action_dist.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP]
        )
        if config.use_kl_loss:
            mean_kl_loss = possibly_masked_mean(prev_action_dist.kl(curr_action_dist))
        else:
            mean_kl_loss = torch.tensor(0.0, device=logp_ratio.device)
        curr_entropy = curr_action_dist.entropy()
        advantages = batch[Columns.ADVANTAGES]
        surrogate_loss = torch.min(
            advantages * logp_ratio,
            advantages * torch.clamp(logp_ratio, 1 - config.clip_param, 1 + config.clip_param),
        )
        if config.use_critic:
            value_fn_out = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
            vf_loss = torch.pow(value_fn_out - batch[Columns.VALUE_TARGETS], 2.0)
            vf_loss_clipped = torch.clamp(vf_loss, 0, config.vf_clip_param)
        else:
            value_fn_out = vf_loss = vf_loss_clipped = torch.tensor(
                0.0, device=surrogate_loss.device
            )
        total_loss = possibly_masked_mean(
            -surrogate_loss
            + config.vf_loss_coeff * vf_loss_clipped
            - (
                self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
                * curr_entropy
            )
        )
        if config.use_kl_loss:
            total_loss += self.curr_kl_coeffs_per_module[module_id] * mean_kl_loss
        # The metrics' inputs, detached; reduced once after the last minibatch.
        self._last_loss_terms[module_id] = {
            "mean": possibly_masked_mean,
            "surrogate": surrogate_loss.detach(),
            "vf_loss": vf_loss.detach(),
            "vf_loss_clipped": vf_loss_clipped.detach(),
            "values": value_fn_out.detach(),
            "targets": batch[Columns.VALUE_TARGETS],  # RLlib reads it whatever use_critic
            "entropy": curr_entropy.detach(),
            "kl": mean_kl_loss.detach(),
            "use_critic": config.use_critic,
        }
        return total_loss

    def _log_last_loss_terms(self) -> None:
        with torch.no_grad():
            for module_id, t in self._last_loss_terms.items():
                mean = t["mean"]  # the loss's own (masked) mean
                if t["use_critic"]:
                    vf_mean, vf_unclipped_mean = mean(t["vf_loss_clipped"]), mean(t["vf_loss"])
                else:
                    vf_mean = vf_unclipped_mean = t["vf_loss"]
                self.metrics.log_dict(
                    {
                        POLICY_LOSS_KEY: -mean(t["surrogate"]),
                        VF_LOSS_KEY: vf_mean,
                        LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: vf_unclipped_mean,
                        LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(
                            t["targets"], t["values"]
                        ),
                        ENTROPY_KEY: mean(t["entropy"]),
                        LEARNER_RESULTS_KL_KEY: t["kl"],
                    },
                    key=module_id,
                    window=1,
                )

    def _log_steps_trained_metrics(self, batch) -> None:
        """Counted per minibatch, logged once per update (``_log_steps_trained``)."""
        for module_id, module_batch in batch.policy_batches.items():
            self._trained_sizes.setdefault(module_id, []).append(len(module_batch))
        self._trained_env_steps += batch.env_steps()

    def _log_metrics(self, batch) -> None:
        """Ray's Prometheus counters of trained steps: summed, incremented once per update."""
        if int(batch.env_steps()) <= 0:
            super()._log_metrics(batch)  # RLlib's warning for an empty minibatch

    def _log_steps_trained(self) -> None:
        """What RLlib logs on every minibatch, once: the same sums, lifetime sums, mean
        minibatch size and weights version."""
        from ray.rllib.core import ALL_MODULES
        from ray.rllib.utils.metrics import (
            MODULE_TRAIN_BATCH_SIZE_MEAN,
            NUM_ENV_STEPS_TRAINED,
            NUM_ENV_STEPS_TRAINED_LIFETIME,
            NUM_MODULE_STEPS_TRAINED,
            NUM_MODULE_STEPS_TRAINED_LIFETIME,
            WEIGHTS_SEQ_NO,
        )

        log = self.metrics.log_value
        module_steps = 0
        for module_id, sizes in self._trained_sizes.items():
            steps = sum(sizes)
            module_steps += steps
            log((module_id, WEIGHTS_SEQ_NO), self._weights_seq_no, window=1)
            log((module_id, MODULE_TRAIN_BATCH_SIZE_MEAN), steps / len(sizes), reduce="mean")
            log((module_id, NUM_MODULE_STEPS_TRAINED), steps, reduce="sum")
            log(
                (module_id, NUM_MODULE_STEPS_TRAINED_LIFETIME),
                steps,
                reduce="lifetime_sum",
                with_throughput=True,
            )
            log((ALL_MODULES, NUM_MODULE_STEPS_TRAINED), steps, reduce="sum", with_throughput=True)
            log(
                (ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME),
                steps,
                reduce="lifetime_sum",
                with_throughput=True,
            )
        env_steps = int(self._trained_env_steps)
        if env_steps > 0:
            log((ALL_MODULES, NUM_ENV_STEPS_TRAINED), env_steps, reduce="sum", with_throughput=True)
            log(
                (ALL_MODULES, NUM_ENV_STEPS_TRAINED_LIFETIME),
                env_steps,
                reduce="lifetime_sum",
                with_throughput=True,
            )
            self._metrics_all_modules_num_env_steps_trained.inc(value=env_steps)
            self._metrics_all_modules_num_module_steps_trained.inc(value=module_steps)

    def before_gradient_based_update(self, *, timesteps):
        # Each update starts empty, also after one that raised part way.
        self._reset_tallies()
        super().before_gradient_based_update(timesteps=timesteps)

    def after_gradient_based_update(self, *, timesteps):
        self._log_last_loss_terms()  # before PPO's KL-coefficient update reads them
        self._log_steps_trained()
        super().after_gradient_based_update(timesteps=timesteps)

    def apply_gradients(self, gradients_dict) -> None:
        plain = (
            gradients_dict
            and self._grad_scalers is None
            and self._lr_scheduler_classes is None
            and not self.config.torch_skip_nan_gradients
            and bool(
                torch.isfinite(torch.cat([g.reshape(-1) for g in gradients_dict.values()])).all()
            )
        )
        if not plain:
            return super().apply_gradients(gradients_dict)
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()


class TradingEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner without the episode callbacks nobody registered.

    On every vector step RLlib builds a keyword dict per sub-env and calls each registered
    RLlibCallback's ``on_episode_step`` (or ``_start``/``_end``) with it, 16 calls per step
    at the default. With only RLlib's own callback class, whose methods do nothing, that
    is all the work there is: about 8% of sampling time here. A callback somebody did
    register (a ``callbacks_class`` overriding the method, or ``callbacks_on_episode_*``
    functions) is called exactly as RLlib calls it.
    """

    def _make_on_episode_callback(self, which, idx, episodes):
        if not self._episode_callback_registered(which):
            return
        super()._make_on_episode_callback(which, idx, episodes)

    def _episode_callback_registered(self, which: str) -> bool:
        registered = self.__dict__.setdefault("_registered_episode_callbacks", {})
        if which not in registered:
            registered[which] = bool(getattr(self.config, f"callbacks_{which}", None)) or any(
                getattr(type(callback), which) is not getattr(RLlibCallback, which)
                for callback in self._callbacks
            )
        return registered[which]
