"""Learner update: RLlib's PPO update against Stable-Baselines3's for the same minibatches.

    .venv/bin/python -m benchmarks.learner_update '{"repeats": 7}'

runs one measurement (the child) and prints its JSON; ``run()`` is what benchmarks.run calls.
One process holds every contender; each update runs on one iteration's data (the default
spec: 2016 env steps, minibatch 256, 5 epochs, 40 minibatch updates) and the contenders
take turns, so they see the same load:

- RLlib, this project's learner (TradingPPOLearner, trimmed learner pipeline,
  ``build_ppo_config``);
- RLlib's own PPOTorchLearner on the trimmed pipeline;
- RLlib's PPOTorchLearner with its default learner pipeline (the previous configuration);
- SB3 ``PPO.train()`` on a full rollout buffer of the same size (40 minibatch updates);
- a bare torch loop doing the same PPO maths as RLlib (clipped surrogate, clipped value
  loss, KL penalty, entropy) on the same 64x64 networks and Adam: the floor for any
  Python PPO update of this size.

Then one cProfile pass of the project's RLlib update says where its time goes.

The iteration's data is sampled from (open, close) bars of the benchmarks' train window
with the default next-open execution (``rl_assets.rl.env.bars``), the env SB3's buffer is
filled from too. The execution changes the rewards in the batch, not its size or the
update's work.
"""

import copy
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

from benchmarks import harness
from benchmarks.training_throughput import _set_threads, _Timed, _train_bars, build_sb3


def bare_torch_update(obs_dim: int, n_actions: int, rows: int, cfg, seed: int = 0):
    """A closure running one PPO update (cfg's epochs and minibatch) in plain torch."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    def mlp(out: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out)
        )

    pi, vf = mlp(n_actions), mlp(1)
    opt = torch.optim.Adam([*pi.parameters(), *vf.parameters()], lr=cfg.lr)
    obs = torch.randn(rows, obs_dim)
    actions = torch.randint(0, n_actions, (rows,))
    old_logits = torch.randn(rows, n_actions)
    old_logp = torch.distributions.Categorical(logits=old_logits).log_prob(actions)
    advantages, targets = torch.randn(rows), torch.randn(rows)
    mb, clip, kl_coeff = cfg.minibatch_size, cfg.clip_param, cfg.kl_coeff

    def update() -> int:
        n = 0
        for _ in range(cfg.num_epochs):
            perm = torch.randperm(rows)
            for start in range(0, rows, mb):
                idx = perm[start : start + mb]
                logits = pi(obs[idx])
                dist = torch.distributions.Categorical(logits=logits, validate_args=False)
                prev = torch.distributions.Categorical(logits=old_logits[idx], validate_args=False)
                ratio = torch.exp(dist.log_prob(actions[idx]) - old_logp[idx])
                adv = advantages[idx]
                surrogate = torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip, 1 + clip))
                values = vf(obs[idx]).squeeze(-1)
                vf_loss = torch.clamp((values - targets[idx]) ** 2, 0, cfg.vf_clip_param)
                kl = torch.distributions.kl_divergence(prev, dist).mean()
                loss = (-surrogate + cfg.vf_loss_coeff * vf_loss).mean() + kl_coeff * kl
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n += 1
        return n

    return update


def _profile_update(learner_group, episodes, kw) -> dict[str, float]:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    learner_group.update(episodes=episodes, **kw)
    profiler.disable()
    stats = pstats.Stats(profiler).stats

    def cumulative(path: str, name: str) -> float:
        return sum(v[3] for k, v in stats.items() if k[0].endswith(path) and k[2] == name)

    def own(fragment: str) -> float:
        return sum(v[2] for k, v in stats.items() if fragment in k[0])

    def builtin(name: str) -> float:
        return sum(v[2] for k, v in stats.items() if k[0] == "~" and name in k[2])

    total = cumulative("core/learner/learner.py", "update")
    parts = {
        "backward (autograd)": cumulative("torch/_tensor.py", "backward"),
        "optimizer step (Adam)": cumulative("torch/optim/adam.py", "step"),
        "forward of the policy and value networks": cumulative(
            "rl_module/torch/torch_rl_module.py", "forward_train"
        ),
        "PPO loss terms (and their metrics, reduced once per update)": cumulative(
            "rl_assets/rl/pipeline.py", "compute_loss_for_module"
        )
        + cumulative("rl_assets/rl/pipeline.py", "_log_last_loss_terms"),
        "non-finite gradient checks (torch.isfinite, all)": builtin("isfinite")
        + builtin("method 'all'"),
        "minibatch slicing, shuffling, concatenation": cumulative(
            "utils/minibatch_utils.py", "__iter__"
        ),
        "learner connector pipeline (episodes to batch, GAE)": cumulative(
            "learner_connector_pipeline.py", "__call__"
        ),
        "steps-trained metrics and Ray counters per minibatch": cumulative(
            "core/learner/learner.py", "_log_steps_trained_metrics"
        )
        + cumulative("core/learner/learner.py", "_log_metrics"),
        "RLlib metrics logging (own time)": own("rllib/utils/metrics/"),
    }
    return {"total_s": total, **{k: v / total for k, v in parts.items()}}


def child(args: dict[str, Any]) -> None:
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from rl_assets.rl.training import TrainingSpec, build_ppo_config, ray_session

    threads = _set_threads(args)
    spec = replace(TrainingSpec(), **args.get("spec", {}))
    prices = _train_bars()
    repeats = int(args.get("repeats", 7))
    with ray_session(num_cpus=2):
        base = build_ppo_config(spec, prices)
        algos = {
            "rllib_project": base.copy(copy_frozen=False).build_algo(),
            "rllib_ppo_learner": base.copy(copy_frozen=False)
            .learners(learner_class=None)
            .build_algo(),
            "rllib_default_learner_pipeline": base.copy(copy_frozen=False)
            .learners(
                learner_class=None,
                add_default_connectors_to_learner_pipeline=True,
                learner_connector=None,
            )
            .build_algo(),
        }
        try:
            project = algos["rllib_project"]
            project.train()  # warm-up: a realistic mid-run batch and a built learner
            episodes = project.env_runner.sample()
            kw = {
                "timesteps": {NUM_ENV_STEPS_SAMPLED_LIFETIME: 10_000},
                "num_epochs": spec.num_epochs,
                "minibatch_size": spec.minibatch_size,
                "shuffle_batch_per_epoch": True,
            }
            # The learner pipeline extends episodes in place (one bootstrap step each), so
            # every update gets a fresh copy, made outside the timing.
            rows = sum(len(e) + 1 for e in episodes)
            updates = {}
            for name, algo in algos.items():  # warm-up, counting RLlib's minibatch updates
                learner = algo.learner_group._learner
                counter = _Timed(learner._update)
                learner._update = counter
                algo.learner_group.update(episodes=copy.deepcopy(episodes), **kw)
                learner._update = counter.fn
                updates[name] = counter.calls
            sb3, sb3_steps, hyper = build_sb3(spec, prices, spec.num_envs_per_env_runner)
            sb3.learn(sb3_steps)  # fills the rollout buffer (and trains once: warm-up)
            bare = bare_torch_update(spec.window + 1, 3, rows, base)
            bare()
            timings: dict[str, list[float]] = {
                **{k: [] for k in algos},
                "sb3_train": [],
                "bare_torch": [],
            }
            for _ in range(repeats):
                for name, algo in algos.items():
                    fresh = copy.deepcopy(episodes)
                    t0 = time.perf_counter()
                    algo.learner_group.update(episodes=fresh, **kw)
                    timings[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                sb3.train()
                timings["sb3_train"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                bare_updates = bare()
                timings["bare_torch"].append(time.perf_counter() - t0)
            profile = _profile_update(project.learner_group, copy.deepcopy(episodes), kw)
        finally:
            for algo in algos.values():
                algo.stop()
    harness.emit(
        {
            "torch_threads": threads,
            "timings": timings,
            "minibatch_updates": {
                **updates,
                "sb3_train": spec.num_epochs * math.ceil(sb3_steps / spec.minibatch_size),
                "bare_torch": bare_updates,
            },
            "rows": rows,
            "sb3_hyperparameters": hyper,
            "profile": profile,
        }
    )


LABELS = {
    "rllib_project": "RLlib, this project's learner (TradingPPOLearner, trimmed pipeline)",
    "rllib_ppo_learner": "RLlib's PPOTorchLearner, trimmed pipeline",
    "rllib_default_learner_pipeline": "RLlib's PPOTorchLearner and default pipeline",
    "sb3_train": "Stable-Baselines3 PPO.train()",
    "bare_torch": "bare torch loop, same PPO maths (the floor)",
}


def run(quick: bool) -> dict[str, Any]:
    print("  learner update: side by side ...", file=sys.stderr, flush=True)
    proc = harness.python_child(
        "benchmarks.learner_update",
        {"repeats": 3 if quick else 9, "torch_threads": 1},
        timeout=1800,
    )
    res = proc["result"]
    summaries = {k: harness.summarize(v) for k, v in res["timings"].items()}
    sb3 = statistics.median(res["timings"]["sb3_train"])
    ratios = {
        k: harness.summarize([a / b for a, b in zip(v, res["timings"]["sb3_train"], strict=True)])
        for k, v in res["timings"].items()
    }
    return {
        "summaries": summaries,
        "ratios_to_sb3": ratios,
        "sb3_median_s": sb3,
        "detail": res,
        "load": harness.load_of([proc]),
        "wall_s": proc["wall_s"],
    }


def markdown(r: dict[str, Any]) -> str:
    d, f = r["detail"], harness.fmt
    ups = d["minibatch_updates"]
    lines = [
        "## 2b. Learner update: RLlib against Stable-Baselines3 for the same minibatches",
        "",
        "One process, one iteration's data of the default spec (RLlib: "
        f"{d['rows']} rows incl. one bootstrap row per episode chunk; SB3: a full rollout "
        "buffer of the same env steps), 5 epochs of minibatch 256, torch threads 1; the "
        "contenders take turns, each figure is the median of "
        f"{r['summaries']['sb3_train']['n']} updates (min-max). Load "
        f"{harness.fmt_load(r['load'])}.",
        "",
        "| update | seconds per update | minibatch updates | ms per minibatch | vs SB3 |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in LABELS.items():
        s = r["summaries"][key]
        lines.append(
            f"| {label} | {f(s, 3)} | {ups[key]} | {1000 * s['median'] / ups[key]:.2f} | "
            f"{r['ratios_to_sb3'][key]['median']:.2f}x |"
        )
    proj, ppo, default = (
        r["summaries"]["rllib_project"],
        r["summaries"]["rllib_ppo_learner"],
        r["summaries"]["rllib_default_learner_pipeline"],
    )
    bare = r["summaries"]["bare_torch"]
    lines += [
        "",
        "Trimming RLlib's learner (the learner connector pipeline without its stateful-model "
        "pieces and without columns the loss never reads; TradingPPOLearner, which reduces "
        "the loss metrics once per update and checks all gradients for non-finite values "
        "in one call) takes the update from "
        f"{default['median']:.3f} s to {proj['median']:.3f} s "
        f"({1 - proj['median'] / default['median']:.0%}; RLlib's PPOTorchLearner on the "
        f"trimmed pipeline: {ppo['median']:.3f} s). Weights and reported figures are "
        "bit-identical to RLlib's learner. What is left is RLlib's per-minibatch Python "
        "(batch slicing into SampleBatch objects, the RLModule and distribution wrappers, "
        "steps-trained metrics and Prometheus counters) around the same torch work: the "
        f"bare torch loop doing the same maths takes {bare['median']:.3f} s.",
    ]
    prof = d.get("profile")
    if prof:
        lines += [
            "",
            f"Profile of one project update ({prof['total_s']:.2f} s under cProfile, which "
            "inflates Python call overhead; shares, overlapping where one part calls "
            "another):",
            "",
            "| part | share of the update |",
            "|---|---:|",
            *[f"| {k} | {v:.1%} |" for k, v in prof.items() if k != "total_s"],
        ]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
