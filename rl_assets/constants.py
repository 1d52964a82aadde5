"""Group names and seed defaults: split dates, budgets, early stopping, gate thresholds."""

DATA_GROUP = "data"
TRAINING_GROUP = "training"
EVALUATION_GROUP = "evaluation"
PROMOTION_GROUP = "promotion"

# The generator covers the splits plus a year of history for the observation window.
GENERATOR_START = "2019-01-01"
GENERATOR_END = "2023-12-31"
GENERATOR_SEED = 7

TRAIN_START = "2020-01-01"
TRAIN_END = "2023-01-31"
VALIDATION_START = "2023-02-01"
VALIDATION_END = "2023-12-31"
# Split dates may fall up to this many calendar days outside the data (weekends, holidays).
SPLIT_EDGE_TOLERANCE_DAYS = 6

TARGET_EPISODES = 100
PATIENCE = 3
MIN_ITERATIONS = 5
MAX_ITERATIONS = 30

# Gate: the candidate must beat buy-and-hold's validation Sharpe by this margin.
MIN_SHARPE_MARGIN_OVER_BUY_AND_HOLD = 0.0
MIN_VALIDATION_SHARPE = 0.0

ARTIFACTS_ENV_VAR = "RL_ASSETS_ARTIFACTS"
DEFAULT_ARTIFACTS_DIR = "artifacts"
