"""Group names and seed defaults: split dates, budgets, early stopping, gate thresholds."""

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

DATA_GROUP = "data"
TRAINING_GROUP = "training"
EVALUATION_GROUP = "evaluation"
PROMOTION_GROUP = "promotion"
SIGNAL_GROUP = "signal"
MONITORING_GROUP = "monitoring"

# Instruments are the partitions of every pipeline asset (rl_assets/instruments.py).
INSTRUMENT_PARTITIONS_NAME = "instrument"
# Keys a partition, a file name and a URL can all carry: tickers such as SPY, BRK-B,
# ^GSPC, EURUSD=X, BTC-USD. No leading dot or dash, at most 32 characters.
INSTRUMENT_KEY_PATTERN = re.compile(r"^[A-Za-z0-9^][A-Za-z0-9._^=-]{0,31}$")
PRICES_DIR_ENV_VAR = "RL_ASSETS_PRICES_DIR"
DEFAULT_PRICES_DIR = "prices"
# A registry written before instruments existed is moved to this instrument on first use.
LEGACY_INSTRUMENT = "default"

# The generator covers the splits plus a year of history for the observation window.
GENERATOR_START = "2019-01-01"
# The generated study period of the benchmarks and calibration. The pipeline's generated
# instruments run to the latest business day instead (raw_prices config end empty), so their
# signals are fresh and their champions are watched on the days after validation; the
# bars of shared dates are the same whatever the end (the generator is prefix-stable).
GENERATOR_END = "2023-12-31"
GENERATOR_SEED = 7
# Planted momentum: r_t = drift + phi * r_{t-1} + noise. 0.4 makes a learned policy
# significant within one validation year (Sharpe about 5 before costs; at 0.2-0.3 the
# one-year validation noise hid it in a third of the seeds).
GENERATOR_AUTOCORRELATION = 0.4
# The embedded default: generated instruments, so a fresh machine runs the whole pipeline
# with no data. One carries a planted edge, one is a null with nothing to learn.
BUILTIN_INSTRUMENTS: dict[str, dict] = {
    "SYN_MOMENTUM": {"structure": "momentum", "seed": GENERATOR_SEED},
    "SYN_NULL": {"structure": "garch_null", "seed": 11},
    # Not in the demo: the momentum edge of SYN_MOMENTUM, gone after the default validation
    # window, so its champion is seen to decay (rl_assets.instruments add SYN_FADING).
    "SYN_FADING": {"structure": "momentum", "seed": GENERATOR_SEED, "edge_until": "2023-12-31"},
    # Not in the demo: a predictable move that happens only overnight (close to next open).
    # Traded at the close just observed it looks like a strong edge; entered at the next
    # open, as the signal is traded, it is worth nothing and the gate refuses it.
    "SYN_OVERNIGHT": {"structure": "overnight_momentum", "seed": GENERATOR_SEED},
}

# The fixed-dates layout of the original pipeline (price_splits config with these dates):
# one walk-forward fold, tested on every bar after validation. The benchmarks' study period.
TRAIN_START = "2020-01-01"
TRAIN_END = "2023-01-31"
VALIDATION_START = "2023-02-01"
VALIDATION_END = "2023-12-31"
# The default layout: the candidate to deploy trains on the TRAIN_DAYS bars before the last
# VALIDATION_DAYS bars of the data (three years, then one), and the same procedure is
# judged on walk-forward folds of the same lengths whose TEST_DAYS-bar test windows tile
# the data backwards from its last bar (rl_assets/rl/walk_forward.py). The embedded
# instruments (2019 to today) give about four years of pooled test evidence; a 20-year
# file about 16 folds.
TRAIN_DAYS = 756
VALIDATION_DAYS = 252
TEST_DAYS = 252
# Split dates may fall up to this many calendar days outside the data (weekends, holidays).
SPLIT_EDGE_TOLERANCE_DAYS = 6
# Business days without prices allowed between train and validation (and validation and a
# test window): the first return after a longer gap would book a multi-week move as one day.
MAX_SPLIT_GAP_BUSINESS_DAYS = 5

TARGET_EPISODES = 100
PATIENCE = 3
MIN_ITERATIONS = 5
MAX_ITERATIONS = 30

# Gate (on the pooled walk-forward test days): at least half a year of test evidence, a
# Sharpe of at least 0, above buy-and-hold's by this margin, and a Deflated Sharpe of the
# skill returns (over the exposure-matched benchmark) of at least 0.95.
MIN_TEST_DAYS = 126
MIN_SHARPE_MARGIN_OVER_BUY_AND_HOLD = 0.0
MIN_TEST_SHARPE = 0.0
MIN_DEFLATED_SHARPE = 0.95
# Train Sharpe may exceed validation Sharpe by at most this much (about 2 standard deviations
# of the gap between an 800-day train and a 238-day validation Sharpe of the same policy).
MAX_SHARPE_GAP = 2.5
# A candidate replaces a champion only when its procedure's daily skill returns beat the
# champion's on their shared test days with at least this one-sided confidence (paired).
MIN_CONFIDENCE_OVER_CHAMPION = 0.95
# The largest Benjamini-Hochberg q-value across the instruments judged in the period a
# candidate may have; 1.0 reports the q-value without gating on it.
MAX_Q_VALUE = 1.0
# The period, in days before now, whose judged instruments the q-values are taken across
# ($RL_ASSETS_Q_VALUE_PERIOD_DAYS).
Q_VALUE_PERIOD_DAYS = 365
# The cost model every candidate, champion and baseline is judged under (the deployment's;
# $RL_ASSETS_GATE_TRANSACTION_COST, _RISK_FREE_RATE and _ACTION_SET override these).
GATE_TRANSACTION_COST = 0.0002  # per unit of position change, 2 bp
GATE_RISK_FREE_RATE = 0.0  # annual
GATE_ACTION_SET = "short_flat_long"  # the positions a promoted policy may take
# When a decision made after close t is executed: the open of the next session (the signal
# is written after the close; rl_assets.rl.env.EXECUTIONS). $RL_ASSETS_GATE_EXECUTION=
# next_close trades a market-on-close order the next day instead; same_close is refused.
GATE_EXECUTION = "next_open"
# Signals: refuse prices whose last bar is more than this many business days old.
MAX_SIGNAL_STALENESS_BUSINESS_DAYS = 3
# Monitoring: no alarm is raised before this many live days (rl_assets/rl/sequential.py).
MIN_LIVE_DAYS = 20
# A retrain on decay rolls the splits forward: the last year is validation, the three
# years before it train.
DECAY_VALIDATION_DAYS = 252
DECAY_TRAIN_DAYS = 756
# A decayed champion is retrained at most once per this many business days of new data
# ($RL_ASSETS_DECAY_RETRAIN_SPACING_DAYS): each retrain is another attempt in the ledger.
DECAY_RETRAIN_SPACING_DAYS = 21
# Concurrency pools (dagster.yaml `concurrency: pools`): how many trainings and promotions
# may run at once across every run, CLI included.
TRAINING_POOL = "rl_assets_training"
PROMOTION_POOL = "rl_assets_promotion"

ARTIFACTS_ENV_VAR = "RL_ASSETS_ARTIFACTS"
DEFAULT_ARTIFACTS_DIR = "artifacts"

# Data quality (see rl_assets/data/checks.py). Warning checks on raw_prices; the defaults
# live here and a run can override them with `resources: data_quality: config: ...`.
MAX_GAP_BUSINESS_DAYS = 5  # missing business days between two rows (exchange holidays: 1-2)
MAX_UNCHANGED_CLOSES = 5  # consecutive days with exactly the previous close (stale feed)
MAX_ABS_DAILY_RETURN = 0.25  # |close / previous close - 1| (unadjusted splits show as -50%)
# Conservative minimum rows per split, checked by price_splits before any training: one
# episode needs window + episode_length + 1 train rows, re-checked by trained_policy with
# the real window (episodes_per_iteration config); validation needs a month for a Sharpe.
MIN_TRAIN_ROWS = 64
MIN_VALIDATION_ROWS = 20
# validation_fraction > 0 splits by rows instead of dates (0 means: use the dates).
VALIDATION_FRACTION = 0.0
# Monitoring (rl_assets/rl/sequential.py): a CUSUM of the champion's daily skill returns,
# its threshold set so that a champion whose edge persists is flagged in its first year of
# daily looks with this probability (average run length to a false alarm about 4,900 days),
# by a Monte Carlo of this many paths from this seed (deterministic).
FALSE_ALARM_RATE_PER_YEAR = 0.05
CUSUM_CALIBRATION_PATHS = 20_000
CUSUM_CALIBRATION_SEED = 1954
