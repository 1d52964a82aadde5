"""PNG pictures for the UI: training curve, equity, drawdown and position."""

import base64
import io
from pathlib import Path

import numpy as np


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _figure().close(fig)
    data = buf.getvalue()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return base64.b64encode(data).decode()


def markdown_image(b64: str, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{b64})"


def training_curve(history: list[dict], best_iteration: int, path: Path) -> str:
    """Train return and validation Sharpe per iteration; returns the PNG as base64."""
    plt = _figure()
    it = [r["iteration"] for r in history]
    fig, ax1 = plt.subplots(figsize=(7, 3.2))
    ax1.plot(it, [r["train/episode_return_mean"] for r in history], "o-", color="tab:blue")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("train episode return (mean)", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(it, [r["validation/sharpe"] for r in history], "s-", color="tab:orange")
    ax2.set_ylabel("validation Sharpe", color="tab:orange")
    ax2.axvline(best_iteration, color="grey", linestyle="--", label="best checkpoint")
    ax2.legend(loc="lower right")
    fig.suptitle("Training curve")
    return _save(fig, path)


def report_figure(
    dates,
    curves: dict[str, np.ndarray],
    positions: np.ndarray,
    path: Path,
    title: str = "Validation: policy vs baselines",
) -> str:
    """Equity of policy vs baselines, the policy's drawdown and position, on validation."""
    from rl_assets.rl.metrics import drawdown_curve, equity_curve

    plt = _figure()
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True, height_ratios=[3, 1.5, 1])
    for name, rets in curves.items():
        axes[0].plot(dates, equity_curve(rets), label=name)
    axes[0].set_ylabel("equity (start 1.0)")
    axes[0].legend()
    axes[0].set_title(title)
    axes[1].fill_between(dates, drawdown_curve(curves["policy"]), 0, color="tab:red", alpha=0.4)
    axes[1].set_ylabel("policy drawdown")
    axes[2].step(dates, positions, where="post")
    axes[2].set_ylabel("position")
    axes[2].set_yticks([-1, 0, 1])
    fig.autofmt_xdate()
    return _save(fig, path)


def champion_figure(
    dates, live_returns: np.ndarray, expected_daily: float, daily_sd: float, z: float, path: Path
) -> str:
    """Equity since the validation window against the band the validation result implied:
    log equity expected to grow by ``expected_daily`` a day, within +-z sd sqrt(t)."""
    plt = _figure()
    log_equity = np.cumsum(np.log1p(np.asarray(live_returns, dtype=np.float64)))
    t = np.arange(1, len(log_equity) + 1)
    centre = expected_daily * t
    width = z * daily_sd * np.sqrt(t)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.fill_between(dates, np.exp(centre - width), np.exp(centre + width), color="tab:green",
                    alpha=0.15, label=f"validation implied ({z:.2f} sd band)")  # fmt: skip
    ax.plot(dates, np.exp(centre), color="tab:green", linestyle="--", linewidth=1)
    ax.plot(dates, np.exp(log_equity), color="tab:blue", label="champion, paper trading")
    ax.set_ylabel("equity (start 1.0)")
    ax.set_title("Champion since its validation window")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    return _save(fig, path)


def walk_forward_figure(series, path: Path, title: str) -> str:
    """The folds' test days stitched together: the policy's equity against buy-and-hold's
    and the exposure-matched benchmark's, fold boundaries marked, and the position."""
    from rl_assets.rl.metrics import equity_curve

    plt = _figure()
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, height_ratios=[3, 1])
    dates = series.index
    for column, label in (
        ("policy_returns", "policy (out of sample)"),
        ("buy_and_hold_returns", "buy-and-hold"),
        ("benchmark_returns", "exposure-matched benchmark"),
    ):
        axes[0].plot(dates, equity_curve(series[column].to_numpy()), label=label)
    starts = series.index[series["fold"].ne(series["fold"].shift())][1:]
    for start in starts:
        for ax in axes:
            ax.axvline(start, color="grey", linestyle=":", linewidth=1)
    axes[0].set_ylabel("equity (start 1.0)")
    axes[0].legend(loc="upper left")
    axes[0].set_title(title)
    axes[1].step(dates, series["position"].to_numpy(), where="post")
    axes[1].set_ylabel("position")
    axes[1].set_yticks([-1, 0, 1])
    fig.autofmt_xdate()
    return _save(fig, path)


def cusum_figure(
    dates,
    skill_returns: np.ndarray,
    expected_daily_mean: float,
    statistic: np.ndarray,
    h: float,
    first_alarm_day: int | None,
    min_live_days: int,
    path: Path,
) -> str:
    """The champion since promotion: cumulative skill return against the expected drift,
    and the CUSUM statistic against its threshold h, the first alarm marked."""
    plt = _figure()
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.2), sharex=True, height_ratios=[1, 1])
    cumulative = np.cumsum(np.asarray(skill_returns, dtype=np.float64))
    t = np.arange(1, len(cumulative) + 1)
    axes[0].plot(dates, cumulative, color="tab:blue", label="live skill return (cumulative)")
    axes[0].plot(dates, expected_daily_mean * t, color="tab:green", linestyle="--",
                 label="expected at promotion")  # fmt: skip
    axes[0].axhline(0.0, color="grey", linewidth=0.8)
    axes[0].set_ylabel("skill return (sum)")
    axes[0].set_title("Champion since promotion: skill over its exposure-matched benchmark")
    axes[0].legend(loc="upper left")
    axes[1].plot(dates, statistic, color="tab:purple", label="CUSUM")
    axes[1].axhline(h, color="tab:red", linestyle="--", label=f"h = {h:.2f}")
    if min_live_days > 1 and len(dates) >= min_live_days:
        axes[1].axvline(dates[min_live_days - 1], color="grey", linestyle=":", linewidth=1)
    if first_alarm_day is not None:
        day = dates[first_alarm_day - 1]
        for ax in axes:
            ax.axvline(day, color="tab:red", linewidth=1)
        axes[1].annotate("edge decayed", (day, h), textcoords="offset points", xytext=(4, 6))
    axes[1].set_ylabel("CUSUM (sd units)")
    axes[1].legend(loc="upper left")
    fig.autofmt_xdate()
    return _save(fig, path)
