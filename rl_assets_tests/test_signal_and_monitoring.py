"""The champion in use: its signal equals a hand rollout, refusals leave no signal, the record
is atomic; monitoring flags an edge that disappears and not one that persists; decay retrains
are spaced by new data."""

import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, build_sensor_context

from rl_assets.assets.signal import read_latest_signal
from rl_assets.automation.decay import DECAY_SENSOR, champion_decay_sensor
from rl_assets.definitions import defs
from rl_assets.registry import Registry
from rl_assets.resources import ArtifactStoreResource
from rl_assets.rl.env import TradingEnv, bars
from rl_assets.rl.training import load_module
from rl_assets_tests.conftest import EDGE, NULL, TINY_RUN_CONFIG

pytestmark = pytest.mark.slow

FADING = "SYN_FADING"


def run(instance, partition, selection=None, config=TINY_RUN_CONFIG):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=config,
        instance=instance,
        partition_key=partition,
        raise_on_error=False,
        asset_selection=selection,
    )


def failure_message(result) -> str:
    return "\n".join(
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.event_type == DagsterEventType.STEP_FAILURE
    )


def check(result, name: str):
    return next(
        e.event_specific_data
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.check_name == name
    )


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with DagsterInstance.local_temp(str(tmp_path_factory.mktemp("home"))) as inst:
        inst.add_dynamic_partitions("instrument", [EDGE, NULL, FADING])
        yield inst


# Champions are promoted on prices ending here (SYN_FADING's edge is still there), then
# watched when the prices are extended to today: every later bar is one the promotion
# never saw.
PROMOTED_ON = "2023-12-29"


def promote(instance, partition):
    config = copy.deepcopy(TINY_RUN_CONFIG)
    config["ops"] |= {
        "raw_prices": {"config": {"end": PROMOTED_ON}},
        "trading_signal": {"config": {"as_of": PROMOTED_ON}},
    }
    result = run(instance, partition, config=config)
    assert result.success, failure_message(result)
    return result


def watch(instance, partition):
    """New bars land (the prices run to today) and the champion is watched on them."""
    return run(instance, partition, [AssetKey("raw_prices"), AssetKey("champion_performance")])


@pytest.fixture(scope="module")
def edge_run(local_ray, instance, artifacts):
    return promote(instance, EDGE)


@pytest.fixture(scope="module")
def fading_run(local_ray, instance, artifacts):
    return promote(instance, FADING)


@pytest.fixture(scope="module")
def edge_watch(edge_run, instance):
    return watch(instance, EDGE)


@pytest.fixture(scope="module")
def fading_watch(fading_run, instance):
    return watch(instance, FADING)


def test_the_signal_is_a_hand_rollout_of_the_champion_on_the_same_bars(edge_run, artifacts):
    record = edge_run.output_for_node("trading_signal")
    champion = Registry.for_instrument(artifacts / "registry", EDGE).champion()
    prices = edge_run.output_for_node("raw_prices")
    # By hand: the env over every bar, the champion acting greedily, then its action on the
    # observation at the last bar.
    import torch

    module = load_module(champion["checkpoint"])
    spec = champion["spec"]
    env = TradingEnv(
        {"closes": bars(prices), "window": spec["window"], "execution": "next_open",
         "action_set": spec["action_set"], "random_start": False, "episode_length": None}
    )  # fmt: skip
    obs, _ = env.reset(seed=0)

    def greedy(o):
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.as_tensor(o[None])})
        return int(out["action_dist_inputs"][0].argmax())

    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(greedy(obs))
        done = terminated or truncated
    assert env._i == len(prices) - 1  # the observation is at the last bar
    assert record["position"] == env.positions[greedy(obs)]
    assert record["held_into_last_bar"] == obs[-1]
    assert record["as_of"] == str(prices.index[-1].date()) == PROMOTED_ON
    assert record["execute_at"] == "enter at the open of 2024-01-01"
    assert record["session"] == "2024-01-01" and record["signal"] is True
    assert record["calendar"] == "24/5"  # the generator's bars include exchange holidays
    assert record["policy_probability"] == record["action_probabilities"][str(record["position"])]
    assert record["checkpoint_sha256"] == champion["checkpoint_sha256"]
    assert record["champion_version"] == champion["version"] == "v0001"
    assert sum(record["action_probabilities"].values()) == pytest.approx(1.0)
    assert max(record["action_probabilities"], key=record["action_probabilities"].get) == str(
        record["position"]
    )
    assert len(record["checkpoint_sha256"]) == 64 and len(record["data_version"]) == 16
    latest = read_latest_signal(artifacts, EDGE)
    assert latest == record
    history = list((artifacts / "signals" / EDGE / "history").glob("*.json"))
    assert [json.loads(p.read_text()) for p in history] == [record]


def test_stale_prices_missing_champion_and_bad_prices_give_no_signal(
    edge_run, instance, artifacts, tmp_path
):
    stale = copy.deepcopy(TINY_RUN_CONFIG)
    stale["ops"]["trading_signal"] = {"config": {"as_of": "2031-01-06"}}
    result = run(instance, EDGE, [AssetKey("trading_signal")], stale)
    assert not result.success
    message = failure_message(result)
    assert "the last bar is" in message and "before 2031-01-06 (limit 3)" in message
    assert "land newer prices" in message and "latest.json now says so" in message
    # The signal it supersedes is not left for downstream to keep trading.
    latest = read_latest_signal(artifacts, EDGE)
    assert latest["position"] is None and latest["signal"] is False
    assert latest["session"] == "2024-01-01" and "no signal: the last bar is" in latest["reason"]
    before = (artifacts / "signals" / EDGE / "latest.json").read_bytes()

    result = run(instance, NULL, [AssetKey("raw_prices"), AssetKey("trading_signal")])
    assert not result.success
    assert f"{NULL} has no champion yet, so no signal" in failure_message(result)
    assert read_latest_signal(artifacts, NULL) is None

    # Prices that fail their schema: materialize raw_prices from a bad file (its blocking
    # check fails, the asset is recorded), then ask for a signal from it.
    prices = edge_run.output_for_node("raw_prices").copy()
    prices.iloc[-3, prices.columns.get_loc("close")] = np.nan
    bad = tmp_path / "bad.csv"
    prices.to_csv(bad)
    with_bad = copy.deepcopy(TINY_RUN_CONFIG)
    with_bad["ops"]["raw_prices"] = {"config": {"source_path": str(bad)}}
    run(instance, EDGE, [AssetKey("raw_prices")], with_bad)
    result = run(instance, EDGE, [AssetKey("trading_signal")])
    assert not result.success
    assert "not_nullable on close" in failure_message(result)
    assert (artifacts / "signals" / EDGE / "latest.json").read_bytes() == before


def test_the_decay_check_fails_where_the_edge_disappears_and_passes_where_it_persists(
    edge_watch, fading_watch, artifacts
):
    """Both champions were promoted on prices ending 2023-12-29 (the same bars: SYN_FADING
    is SYN_MOMENTUM until then); after it, one edge persists and one stops."""
    persists = check(edge_watch, "champion_performance_within_expected_band")
    fades = check(fading_watch, "champion_performance_within_expected_band")
    assert persists.passed, persists.metadata["reason"].value
    assert not fades.passed, fades.metadata["reason"].value
    assert "the edge has decayed" in fades.metadata["reason"].value
    edge, fading = (r.output_for_node("champion_performance") for r in (edge_watch, fading_watch))
    assert edge["days"] == fading["days"] > 500  # every bar after the promotion's data
    assert edge["since"] == fading["since"] == "2024-01-01"
    assert edge["through"] == fading["through"]
    # The CUSUM of the fading champion's skill returns crossed h, after the minimum live
    # days and within its first half-year; the persisting one's stayed below it.
    alarm = fading["monitor"]
    assert alarm["alarm"] and 20 <= alarm["first_alarm_day"] <= 126
    assert alarm["first_alarm_date"] in fades.metadata["reason"].value
    assert alarm["statistic_max"] > alarm["h"] > 0
    assert alarm["live_skill_sharpe"] < alarm["expected_sharpe"]
    watch = edge["monitor"]
    assert not watch["alarm"] and watch["statistic_max"] <= watch["h"]
    # The verdict is in the registry lane, where the gate reads it.
    lane = Registry.for_instrument(artifacts / "registry", FADING)
    assert lane.champion_decayed()
    state = lane.monitoring()
    assert state["through"] == fading["through"] and state["data_version"] == fading["data_version"]
    assert not Registry.for_instrument(artifacts / "registry", EDGE).champion_decayed()


def test_decay_retrains_are_spaced_by_new_data(fading_watch, instance, artifacts):
    """One retrain per data version, and after a retrain of a champion the next waits for
    RL_ASSETS_DECAY_RETRAIN_SPACING_DAYS (21) business days of new data: a champion whose
    candidates keep being refused is not retrained on every new bar."""
    import pandas as pd
    from dagster import DagsterRun, DagsterRunStatus

    from rl_assets.automation.decay import CHAMPION_TAG, THROUGH_TAG

    resources = {"artifacts": ArtifactStoreResource()}

    def tick():
        context = build_sensor_context(instance=instance, resources=resources)
        result = champion_decay_sensor(context)
        skipped = result.skip_reason.skip_message if result.skip_reason else ""
        return list(result.run_requests or []), str(skipped)

    def launched(run_id: str, tags: dict, through: str, run_key: str) -> None:
        """What the daemon does with a request: a run carrying its tags."""
        instance.add_run(
            DagsterRun(
                job_name="retrain_job",
                run_id=run_id,
                tags={**tags, THROUGH_TAG: through, "dagster/run_key": run_key,
                      "dagster/sensor_name": DECAY_SENSOR, "dagster/partition": FADING},
                status=DagsterRunStatus.SUCCESS,
            )
        )  # fmt: skip

    [request], _ = tick()
    assert request.partition_key == FADING
    watched = fading_watch.output_for_node("champion_performance")
    data_version = watched["data_version"]
    assert request.run_key == f"decay:{FADING}:v0001:{data_version}"
    assert request.tags[CHAMPION_TAG] == "v0001"
    through = request.tags[THROUGH_TAG]
    assert through == watched["through"]
    split = request.run_config["ops"]["price_splits"]["config"]
    assert split == {"validation_days": 252, "train_days": 756}
    # A retrain of this champion on data 30 business days older: the data has moved on
    # enough since, so this data gets its retrain.
    month_ago = str((pd.Timestamp(through) - pd.offsets.BDay(30)).date())
    launched("decay-older", request.tags, month_ago, f"decay:{FADING}:v0001:older")
    [again], _ = tick()
    assert again.run_key == request.run_key
    # One on data 5 business days older (the candidate was refused): too recent; the
    # sensor says why and requests nothing, however often it ticks.
    week_ago = str((pd.Timestamp(through) - pd.offsets.BDay(5)).date())
    launched("decay-recent", request.tags, week_ago, f"decay:{FADING}:v0001:recent")
    for _ in range(2):
        requests, skipped = tick()
        assert requests == [] and "waits for 21 business days of new data (5 so far)" in skipped
    # The retrain on this very data: deduplicated by its run key.
    launched("decay-this", request.tags, through, request.run_key)
    requests, skipped = tick()
    assert requests == [] and "already retrained on this data (decay-this)" in skipped


def test_a_past_as_of_sees_only_its_bars_and_never_replaces_a_later_signal(
    edge_run, instance, artifacts
):
    from rl_assets.data.versions import content_hash

    prices = edge_run.output_for_node("raw_prices")
    before = (artifacts / "signals" / EDGE / "latest.json").read_bytes()
    past = copy.deepcopy(TINY_RUN_CONFIG)
    past["ops"]["trading_signal"] = {"config": {"as_of": "2023-06-30"}}
    result = run(instance, EDGE, [AssetKey("trading_signal")], past)
    assert result.success, failure_message(result)
    record = result.output_for_node("trading_signal")
    assert record["as_of"] == "2023-06-30" and record["session"] == "2023-07-03"
    assert record["data_version"] == content_hash(prices.loc[:"2023-06-30"])
    # Its record is in the history; latest.json still holds the signal for the later session.
    history = artifacts / "signals" / EDGE / "history"
    assert any(json.loads(p.read_text()) == record for p in history.glob("2023-06-30_*.json"))
    assert (artifacts / "signals" / EDGE / "latest.json").read_bytes() == before


def test_a_decayed_champion_gives_no_signal_unless_the_deployment_keeps_trading_it(
    fading_watch, instance, artifacts, monkeypatch
):
    signal_now = copy.deepcopy(TINY_RUN_CONFIG)
    result = run(instance, FADING, [AssetKey("trading_signal")], signal_now)
    assert result.success, failure_message(result)
    record = result.output_for_node("trading_signal")
    assert record["position"] is None and "is DECAYED by its monitoring" in record["reason"]
    assert record["monitoring"]["state"] == "DECAYED"
    assert read_latest_signal(artifacts, FADING) == record
    monkeypatch.setenv("RL_ASSETS_SIGNAL_TRADE_DECAYED_CHAMPIONS", "1")
    result = run(instance, FADING, [AssetKey("trading_signal")], signal_now)
    record = result.output_for_node("trading_signal")
    assert record["position"] in (-1, 0, 1) and record["champion_decayed"] is True
    assert record["monitoring"]["state"] == "DECAYED"


def test_a_champion_altered_after_promotion_gives_no_signal_and_says_why(
    edge_run, instance, artifacts
):
    champion = Registry.for_instrument(artifacts / "registry", EDGE).champion()
    weights = max(
        (p for p in Path(champion["checkpoint"]).rglob("*") if p.is_file() and p.name != "manifest.json"),
        key=lambda p: p.stat().st_size,
    )  # fmt: skip
    original = weights.read_bytes()
    try:
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0xFF
        weights.write_bytes(bytes(flipped))
        result = run(instance, EDGE, [AssetKey("trading_signal")])
        assert not result.success
        message = failure_message(result)
        assert "is not the policy that passed the gate" in message, message
        latest = read_latest_signal(artifacts, EDGE)
        assert (
            latest["position"] is None and "not the policy that passed the gate" in latest["reason"]
        )
        # In the history under a name of its own: it never overwrites a signal given.
        name = f"{latest['as_of']}_{latest['champion_version']}_{latest['data_version'][:8]}"
        history = artifacts / "signals" / EDGE / "history"
        assert json.loads((history / f"{name}_no-signal.json").read_text()) == latest
    finally:
        weights.write_bytes(original)


WRITER = """
import sys, time
from pathlib import Path
from rl_assets.assets.signal import write_signal
root = Path(sys.argv[1])
i = 0
while True:
    i += 1
    write_signal(root, "SPY", {"as_of": f"2026-01-{i % 28 + 1:02d}", "champion_version": "v0001",
                               "data_version": f"{i:016d}", "position": 1.0, "pad": "x" * 200000})
"""


def test_a_killed_writer_never_leaves_a_partial_signal(tmp_path):
    latest = tmp_path / "signals" / "SPY" / "latest.json"
    for attempt in range(5):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
        deadline = time.monotonic() + 60
        while not latest.exists():
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.05)
        time.sleep(0.1 + 0.07 * attempt)  # somewhere mid-write
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        record = json.loads(latest.read_text())  # whole, or the previous one: never half
        assert record["champion_version"] == "v0001" and len(record["pad"]) == 200000
        for path in (tmp_path / "signals" / "SPY" / "history").glob("*.json"):
            assert json.loads(path.read_text())["position"] == 1.0
