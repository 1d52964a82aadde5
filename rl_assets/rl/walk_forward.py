"""Walk-forward folds: a plan of train/validation/test windows, folds trained in parallel on Ray, and each fold's test-day returns.

Fold k trains on its train window, early-stops and keeps its checkpoint by its validation
window, and is then tested on the window after that, which nothing in fold k has seen.
The test windows tile the data backwards from its last bar without overlap; training
windows roll (each fold trains on as many bars as the deployed candidate does, so the
pooled test evidence judges exactly the procedure that is deployed).

Windows meet without a gap: every env and rollout is cut at its window's last bar and a
reward reaches one bar past its decision (``rl_assets.rl.env.TradingEnv``), so no training
or selection reward uses a price of the window after it; the bars before a window only
ever enter as observations (the past).
"""

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rl_assets.rl.env import execution_legs
from rl_assets.rl.metrics import TRADING_DAYS

# What a fold's training window must hold at least (one episode of the spec is checked by
# train_ppo itself) and what a test window must hold to say anything.
MIN_FOLD_TEST_DAYS = 20


class FoldPlanError(ValueError):
    """A split plan that cannot be built from these prices; the message names the fix."""


@dataclass(frozen=True)
class Fold:
    """One fold: row ranges ``[start, stop)`` into the instrument's prices and their dates."""

    index: int
    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]
    train_dates: tuple[str, str]
    validation_dates: tuple[str, str]
    test_dates: tuple[str, str]

    @property
    def test_days(self) -> int:
        return self.test[1] - self.test[0]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fold":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _dates(index: pd.DatetimeIndex, span: tuple[int, int]) -> tuple[str, str]:
    return (str(index[span[0]].date()), str(index[span[1] - 1].date()))


def _fold(index: pd.DatetimeIndex, k: int, train, validation, test) -> Fold:
    return Fold(
        index=k,
        train=train,
        validation=validation,
        test=test,
        train_dates=_dates(index, train),
        validation_dates=_dates(index, validation),
        test_dates=_dates(index, test),
    )


def plan_rolling_folds(
    dates: pd.DatetimeIndex,
    train_days: int,
    validation_days: int,
    test_days: int,
    max_folds: int = 0,
) -> tuple[Fold, ...]:
    """Folds whose test windows of ``test_days`` bars tile ``dates`` backwards from its last
    bar; each test window follows ``validation_days`` of validation and ``train_days`` of
    training (rolling). The earliest test window may be shorter than ``test_days`` when
    the bars before it cannot fill one, but never shorter than ``MIN_FOLD_TEST_DAYS``.
    ``max_folds`` > 0 keeps the most recent folds. Folds are returned oldest first.
    """
    for name, value in (
        ("train_days", train_days),
        ("validation_days", validation_days),
        ("test_days", test_days),
    ):
        if value < 1:
            raise FoldPlanError(f"walk-forward {name}={value}; it must be at least 1")
    n = len(dates)
    folds: list[Fold] = []
    stop = n
    while True:
        first_test = train_days + validation_days  # the earliest a test window can start
        start = max(stop - test_days, first_test)
        if stop - start < MIN_FOLD_TEST_DAYS:
            break
        val_start = start - validation_days
        folds.append(
            _fold(
                dates,
                0,
                (val_start - train_days, val_start),
                (val_start, start),
                (start, stop),
            )
        )
        stop = start
        if max_folds and len(folds) >= max_folds:
            break
    if not folds:
        need = train_days + validation_days + MIN_FOLD_TEST_DAYS
        raise FoldPlanError(
            f"{n} bars ({dates[0].date()}..{dates[-1].date()}) hold no walk-forward fold: one "
            f"needs {need} (train {train_days} + validation {validation_days} + at least "
            f"{MIN_FOLD_TEST_DAYS} test days). Supply more history, or shorten the windows "
            "(price_splits config train_days / validation_days, walk_forward config test_days)"
        )
    folds.reverse()
    return tuple(dataclasses.replace(f, index=k) for k, f in enumerate(folds))


def plan_one_fold(
    dates: pd.DatetimeIndex, train: tuple[int, int], validation: tuple[int, int], max_test_days=0
) -> tuple[Fold, ...]:
    """The fixed-dates layout: one fold, the given train and validation rows, tested on
    every bar after validation (at most ``max_test_days`` when > 0)."""
    stop = len(dates) if not max_test_days else min(len(dates), validation[1] + max_test_days)
    if stop - validation[1] < MIN_FOLD_TEST_DAYS:
        raise FoldPlanError(
            f"validation ends {dates[validation[1] - 1].date()} and the data "
            f"{dates[-1].date()}: {stop - validation[1]} test days after it, fewer than "
            f"{MIN_FOLD_TEST_DAYS}. Nothing could judge the procedure on days no choice has "
            "seen: end validation earlier, supply later prices, or use the rolling layout "
            "(price_splits config without dates)"
        )
    return (_fold(dates, 0, tuple(train), tuple(validation), (validation[1], stop)),)


def folds_table(folds) -> str:
    """Markdown: one row per fold with its three windows."""
    head = "| fold | train | validation | test | test days |\n|---:|---|---|---|---:|\n"
    return head + "".join(
        f"| {f.index} | {f.train_dates[0]}..{f.train_dates[1]} | "
        f"{f.validation_dates[0]}..{f.validation_dates[1]} | "
        f"{f.test_dates[0]}..{f.test_dates[1]} | {f.test_days} |\n"
        for f in folds
    )


def procedure_digest(spec: dict[str, Any]) -> str:
    """16 hex digits identifying a training procedure (its whole spec, seed included)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def window_history(prices: np.ndarray, span: tuple[int, int], window: int) -> np.ndarray:
    """The bars of ``span`` preceded by ``window + 1`` bars before it (see ``with_history``)."""
    start = span[0] - (window + 1)
    if start < 0:
        raise FoldPlanError(
            f"a window starting at row {span[0]} needs {window + 1} bars of history before it"
        )
    return prices[start : span[1]]


def _train_fold(spec_dict, prices, fold_dict, root, data_version, provenance):
    """One fold's training, run in a Ray worker (or in process): the procedure of
    ``train_ppo`` on the fold's train window, early-stopped on its validation window."""
    import ray

    from rl_assets.rl.training import TrainingSpec, train_ppo

    spec = TrainingSpec(**spec_dict)
    fold = Fold.from_dict(fold_dict)
    started = time.time()
    result = train_ppo(
        spec,
        prices[fold.train[0] : fold.train[1]],
        window_history(prices, fold.validation, spec.window),
        Path(root) / f"fold_{fold.index:03d}",
        data_version=data_version,
        log=lambda message: None,
        provenance={**provenance, "fold": fold.as_dict()},
    )
    context = ray.get_runtime_context() if ray.is_initialized() else None
    return {
        **result,
        "fold": fold.as_dict(),
        "started_at": started,
        "finished_at": time.time(),
        "node_id": context.get_node_id() if context else "",
        "worker_pid": os.getpid(),
    }


def train_folds(
    spec: dict[str, Any],
    prices: np.ndarray,
    folds,
    root: Path,
    data_version: str = "",
    provenance: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    cpus_per_fold: float = 1.0,
) -> list[dict[str, Any]]:
    """Train every fold concurrently as a Ray task (Ray must be initialised: a local Ray or a
    cluster reached through ``RAY_ADDRESS``; on a cluster the folds spread over its nodes).
    Each fold keeps ``train_ppo``'s guarantees: early stopping, the best checkpoint by its
    validation written whole, reproducible by seed, every iteration's metrics. Results come
    back in fold order; a fold that fails fails the whole call with its fold named."""
    import ray

    remote = ray.remote(num_cpus=cpus_per_fold, max_retries=0)(_train_fold)
    prices_ref = ray.put(np.asarray(prices, dtype=np.float64))
    pending = {
        remote.remote(spec, prices_ref, f.as_dict(), str(root), data_version, provenance or {}): f
        for f in folds
    }
    results: dict[int, dict[str, Any]] = {}
    refs = list(pending)
    while refs:
        done, refs = ray.wait(refs, num_returns=1)
        fold = pending[done[0]]
        try:
            result = ray.get(done[0])
        except Exception as err:  # name the fold; the others are cancelled
            for ref in refs:
                ray.cancel(ref, force=True)
            raise RuntimeError(
                f"fold {fold.index} (train {fold.train_dates[0]}..{fold.train_dates[1]}) "
                f"failed: {err}"
            ) from err
        results[fold.index] = result
        log(
            f"fold {fold.index}: test {fold.test_dates[0]}..{fold.test_dates[1]}; best "
            f"validation Sharpe {result['best_validation_sharpe']:.3f} at iteration "
            f"{result['best_iteration']} of {result['iterations']}, "
            f"{result['finished_at'] - result['started_at']:.1f}s"
        )
    return [results[f.index] for f in folds]


def exposure_matched(
    policy_returns: np.ndarray,
    positions: np.ndarray,
    unit_returns: np.ndarray,
    risk_free_rate: float = 0.0,
) -> dict[str, np.ndarray | float]:
    """The policy's returns against the exposure-matched benchmark of one window.

    The benchmark holds the policy's mean position of the window all along (no trading
    costs: a constant exposure trades once), earning ``unit_returns`` (one unit held, on
    the same execution basis). ``skill_returns`` = (policy - rf) - mean position x (unit - rf),
    daily: what timing added beyond the average exposure. A policy with no timing skill,
    whatever its average exposure, has skill returns of mean zero (less its costs).
    """
    rf = risk_free_rate / TRADING_DAYS
    exposure = float(np.mean(positions)) if len(positions) else 0.0
    benchmark = exposure * np.asarray(unit_returns, dtype=np.float64)
    skill = (np.asarray(policy_returns) - rf) - exposure * (np.asarray(unit_returns) - rf)
    return {"exposure": exposure, "benchmark_returns": benchmark, "skill_returns": skill}


def fold_test_series(
    policy,
    prices: np.ndarray,
    dates: pd.DatetimeIndex,
    fold: Fold,
    env_config: dict[str, Any],
    window: int,
    risk_free_rate: float = 0.0,
) -> pd.DataFrame:
    """One fold's test days: the policy's, buy-and-hold's, the benchmark's and the skill
    returns, under ``env_config``'s execution and costs (the deployment's)."""
    from rl_assets.rl.env import constant_policy, rollout

    bars = window_history(prices, fold.test, window)
    policy_returns, positions = rollout(policy, bars, env_config)
    held, _ = rollout(constant_policy(env_config, 1.0), bars, env_config)
    old, new = execution_legs(bars, env_config["execution"])
    unit = (old + new)[window + 1 :]  # one unit held through each test day
    matched = exposure_matched(policy_returns, positions, unit, risk_free_rate)
    index = dates[fold.test[0] : fold.test[1]]
    return pd.DataFrame(
        {
            "fold": fold.index,
            "position": positions,
            "policy_returns": policy_returns,
            "buy_and_hold_returns": held,
            "unit_returns": unit,
            "benchmark_returns": matched["benchmark_returns"],
            "skill_returns": matched["skill_returns"],
        },
        index=index,
    )


def expected_fold_count(n_bars: int, train_days: int, validation_days: int, test_days: int) -> int:
    """How many folds ``plan_rolling_folds`` makes of ``n_bars`` (without ``max_folds``)."""
    room = n_bars - train_days - validation_days
    if room < MIN_FOLD_TEST_DAYS:
        return 0
    full, rest = divmod(room, test_days)
    return full + (1 if rest >= MIN_FOLD_TEST_DAYS else 0)
