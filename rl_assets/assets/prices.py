"""Prices: the raw daily bars and the date-based train/validation split."""

import hashlib
import os

import dagster as dg
import pandas as pd

from rl_assets import constants
from rl_assets.sources import PRICES_FILE_ENV_VAR, load_prices
from rl_assets.synthetic import generate_prices


class RawPricesConfig(dg.Config):
    """Where prices come from: a CSV/Parquet file, else the embedded deterministic generator.

    ``source_path`` (or the RL_ASSETS_PRICES_FILE environment variable) names the
    file; empty means the generator with the settings below.
    """

    source_path: str = ""
    seed: int = constants.GENERATOR_SEED
    structure: str = "momentum"
    autocorrelation: float = 0.2
    start: str = constants.GENERATOR_START
    end: str = constants.GENERATOR_END


def content_hash(df: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(df, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(df.columns).encode()).hexdigest()[:16]


@dg.asset(group_name=constants.DATA_GROUP, kinds={"pandas"})
def raw_prices(
    context: dg.AssetExecutionContext, config: RawPricesConfig
) -> dg.Output[pd.DataFrame]:
    """Daily OHLCV bars indexed by date, from a user's file or the seeded generator."""
    path = config.source_path or os.environ.get(PRICES_FILE_ENV_VAR, "")
    if path:
        df = load_prices(path)
        source = str(path)
    else:
        df = generate_prices(
            config.start,
            config.end,
            seed=config.seed,
            structure=config.structure,
            autocorrelation=config.autocorrelation,
        )
        source = f"generator(seed={config.seed}, structure={config.structure})"
    version = content_hash(df)
    context.log.info(f"raw_prices: {len(df)} rows {df.index[0].date()}..{df.index[-1].date()}")
    return dg.Output(
        df,
        data_version=dg.DataVersion(version),
        metadata={
            "rows": len(df),
            "first_date": str(df.index[0].date()),
            "last_date": str(df.index[-1].date()),
            "source": source,
            "content_hash": version,
        },
    )


class SplitConfig(dg.Config):
    """Inclusive date ranges; validation must start after train ends."""

    train_start: str = constants.TRAIN_START
    train_end: str = constants.TRAIN_END
    validation_start: str = constants.VALIDATION_START
    validation_end: str = constants.VALIDATION_END


def split_by_dates(prices: pd.DataFrame, config: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Slice ``prices`` into train and validation, refusing reversed or overlapping ranges."""
    dates = {k: pd.Timestamp(v) for k, v in config.model_dump().items()}
    if dates["train_start"] > dates["train_end"]:
        raise ValueError(
            f"train_start {config.train_start} is after train_end {config.train_end}; swap them"
        )
    if dates["validation_start"] > dates["validation_end"]:
        raise ValueError(
            f"validation_start {config.validation_start} is after validation_end "
            f"{config.validation_end}; swap them"
        )
    if dates["validation_start"] <= dates["train_end"]:
        raise ValueError(
            f"validation_start {config.validation_start} is not after train_end "
            f"{config.train_end}; the splits would overlap: start validation after train ends"
        )
    first, last = prices.index[0], prices.index[-1]
    # Weekends and holidays at either end are fine; a week or more of missing data is not.
    slack = pd.Timedelta(days=constants.SPLIT_EDGE_TOLERANCE_DAYS)
    if dates["train_start"] < first - slack or dates["validation_end"] > last + slack:
        raise ValueError(
            f"requested {config.train_start}..{config.validation_end} but the data covers "
            f"{first.date()}..{last.date()}; choose dates inside the data or supply more data"
        )
    train = prices.loc[dates["train_start"] : dates["train_end"]]
    validation = prices.loc[dates["validation_start"] : dates["validation_end"]]
    for name, part in (("train", train), ("validation", validation)):
        if len(part) < 2:
            raise ValueError(f"the {name} split holds {len(part)} rows; widen its dates")
    return train, validation


@dg.multi_asset(
    outs={
        "train_prices": dg.AssetOut(
            group_name=constants.DATA_GROUP,
            kinds={"pandas"},
            description="Daily bars of the train period: what the policy learns from.",
        ),
        "validation_prices": dg.AssetOut(
            group_name=constants.DATA_GROUP,
            kinds={"pandas"},
            description="Daily bars strictly after train: drives early stopping and the gate.",
        ),
    },
)
def price_splits(context: dg.AssetExecutionContext, config: SplitConfig, raw_prices: pd.DataFrame):
    """Split raw prices by date into train and validation."""
    train, validation = split_by_dates(raw_prices, config)
    for name, part in (("train_prices", train), ("validation_prices", validation)):
        yield dg.Output(
            part,
            output_name=name,
            metadata={
                "rows": len(part),
                "first_date": str(part.index[0].date()),
                "last_date": str(part.index[-1].date()),
            },
        )
