"""Prices: the raw daily bars and the leak-free train/validation split."""

import hashlib
import math
import os
import warnings

import dagster as dg
import pandas as pd

from rl_assets import constants
from rl_assets.sources import PRICE_COLUMNS, PRICES_FILE_ENV_VAR, PriceSourceError, load_prices
from rl_assets.synthetic import generate_prices

# The Output(data_version=...) calls below record the content hash as data version, which is
# what marks downstream assets stale; the parameter is beta in Dagster 1.13 and warns on every
# materialization. Only that one message is silenced.
warnings.filterwarnings(
    "ignore", r"Parameter `data_version` of initializer `Output\.__init__`", dg.BetaWarning
)


class RawPricesConfig(dg.Config):
    """Where prices come from: a CSV/Parquet file, else the embedded deterministic generator.

    ``source_path`` (or the RL_ASSETS_PRICES_FILE environment variable) names the
    file; empty means the generator with the settings below. ``symbol`` picks one
    instrument of a file with a symbol/ticker column; ``price_column`` is "close" or
    "adj_close" (then close is the adjusted close and open/high/low are scaled by
    adj_close/close); ``date_format`` (e.g. "%d/%m/%Y") overrides date detection.
    """

    source_path: str = ""
    symbol: str = ""
    price_column: str = "close"
    date_format: str = ""
    seed: int = constants.GENERATOR_SEED
    structure: str = "momentum"
    autocorrelation: float = constants.GENERATOR_AUTOCORRELATION
    start: str = constants.GENERATOR_START
    end: str = constants.GENERATOR_END


def content_hash(df: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(df, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(df.columns).encode()).hexdigest()[:16]


@dg.asset(group_name=constants.DATA_GROUP, kinds={"pandas"}, code_version="1")
def raw_prices(
    context: dg.AssetExecutionContext, config: RawPricesConfig
) -> dg.Output[pd.DataFrame]:
    """Daily OHLCV bars indexed by date, from a user's file or the seeded generator."""
    if config.price_column not in PRICE_COLUMNS:
        raise dg.Failure(
            description=f"raw_prices config price_column={config.price_column!r}; choose one "
            f"of {list(PRICE_COLUMNS)}"
        )
    path = config.source_path or os.environ.get(PRICES_FILE_ENV_VAR, "")
    via = "config source_path" if config.source_path else f"${PRICES_FILE_ENV_VAR}"
    details: dict[str, object] = {}
    if path:
        try:
            loaded = load_prices(
                path,
                symbol=config.symbol,
                price_column=config.price_column,
                date_format=config.date_format,
            )
        except PriceSourceError as err:
            # A data problem, not a code bug: the message is the whole story.
            raise dg.Failure(
                description=str(err), metadata={"source": str(path), "source_via": via}
            ) from None
        for note in loaded.warnings:
            context.log.warning(f"raw_prices: {note}")
        df, source = loaded.frame, loaded.source
        details = {
            "source_via": via,
            "file_format": loaded.file_format,
            "date_source": loaded.date_source,
            "date_format": loaded.date_format,
            "symbol": loaded.symbol,
            "ignored_columns": ", ".join(loaded.ignored_columns),
            "load_warnings": dg.MetadataValue.json(loaded.warnings),
        }
        price_column = loaded.price_column
    else:
        if config.symbol or config.date_format or config.price_column != "close":
            context.log.warning(
                "raw_prices: symbol, date_format and price_column apply to a price file; no "
                f"source_path or ${PRICES_FILE_ENV_VAR} is set, so the generator is used"
            )
        df = generate_prices(
            config.start,
            config.end,
            seed=config.seed,
            structure=config.structure,
            autocorrelation=config.autocorrelation,
        )
        source = f"generator(seed={config.seed}, structure={config.structure})"
        price_column = "close"  # generated prices have no splits or dividends to adjust
    version = content_hash(df)
    context.log.info(
        f"raw_prices: {len(df)} rows {df.index[0].date()}..{df.index[-1].date()} from {source}"
    )
    return dg.Output(
        df,
        data_version=dg.DataVersion(version),
        metadata={
            "rows": len(df),
            "first_date": str(df.index[0].date()),
            "last_date": str(df.index[-1].date()),
            "source": source,
            "price_column": price_column,
            "content_hash": version,
            **details,
        },
    )


class SplitConfig(dg.Config):
    """Inclusive date ranges (validation must start after train ends), or a fraction.

    ``validation_fraction`` > 0 ignores the dates: the last that fraction of the rows
    is validation, every earlier row is train.
    """

    train_start: str = constants.TRAIN_START
    train_end: str = constants.TRAIN_END
    validation_start: str = constants.VALIDATION_START
    validation_end: str = constants.VALIDATION_END
    validation_fraction: float = constants.VALIDATION_FRACTION


def _timestamp(config: SplitConfig, name: str) -> pd.Timestamp:
    value = getattr(config, name)
    try:
        return pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"price_splits config {name}={value!r} is not a date; write it as YYYY-MM-DD"
        ) from err


def _split_by_fraction(prices: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"price_splits config validation_fraction={fraction}; use a number between 0 and "
            "1 (e.g. 0.2), or 0 to split by the dates"
        )
    n_validation = max(1, math.ceil(len(prices) * fraction))
    cut = len(prices) - n_validation
    return prices.iloc[:cut], prices.iloc[cut:]


def _split_by_range(prices: pd.DataFrame, config: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = ("train_start", "train_end", "validation_start", "validation_end")
    dates = {name: _timestamp(config, name) for name in names}
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
    return train, validation


def split_by_dates(prices: pd.DataFrame, config: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Slice ``prices`` into train and validation: validation strictly after train.

    Refuses reversed or overlapping ranges, ranges outside the data and splits with
    fewer rows than constants.MIN_TRAIN_ROWS / MIN_VALIDATION_ROWS (conservative:
    trained_policy re-checks train rows against the real window + episode_length + 1).
    """
    if not prices.index.is_monotonic_increasing:
        raise ValueError(
            "raw_prices dates are not in increasing order; raw_prices_schema_valid should "
            "have stopped the run: materialize raw_prices again from a sorted source"
        )
    if config.validation_fraction:
        train, validation = _split_by_fraction(prices, config.validation_fraction)
        how = f"validation_fraction {config.validation_fraction}"
        widen = "lower validation_fraction or supply more data"
    else:
        train, validation = _split_by_range(prices, config)
        how = "the dates"
        widen = "widen its dates or supply more data"
    minimum = {"train": constants.MIN_TRAIN_ROWS, "validation": constants.MIN_VALIDATION_ROWS}
    for name, part in (("train", train), ("validation", validation)):
        if len(part) < minimum[name]:
            span = f" ({part.index[0].date()}..{part.index[-1].date()})" if len(part) else ""
            other = (
                "raise validation_fraction or supply more data"
                if name == "validation" and config.validation_fraction
                else widen
            )
            raise ValueError(
                f"the {name} split by {how} holds {len(part)} rows{span} of "
                f"{len(prices)} ({prices.index[0].date()}..{prices.index[-1].date()}); at "
                f"least {minimum[name]} are needed (constants.MIN_{name.upper()}_ROWS; "
                f"training also needs window + episode_length + 1 train rows): {other}"
            )
    if not validation.index[0] > train.index[-1]:  # guaranteed above; a leak if not
        raise ValueError(
            f"validation starts {validation.index[0].date()} but train ends "
            f"{train.index[-1].date()}; validation must start after train ends"
        )
    return train, validation


@dg.multi_asset(
    outs={
        "train_prices": dg.AssetOut(
            group_name=constants.DATA_GROUP,
            kinds={"pandas"},
            description="Daily bars of the train period: what the policy learns from.",
            code_version="1",
        ),
        "validation_prices": dg.AssetOut(
            group_name=constants.DATA_GROUP,
            kinds={"pandas"},
            description="Daily bars strictly after train: drives early stopping and the gate.",
            code_version="1",
        ),
    },
)
def price_splits(context: dg.AssetExecutionContext, config: SplitConfig, raw_prices: pd.DataFrame):
    """Split raw prices into train and validation, by dates or by a validation fraction."""
    try:
        train, validation = split_by_dates(raw_prices, config)
    except ValueError as err:
        raise dg.Failure(description=str(err)) from None
    method = (
        f"last {config.validation_fraction:.0%} of rows"
        if config.validation_fraction
        else f"dates {config.train_start}..{config.train_end} | "
        f"{config.validation_start}..{config.validation_end}"
    )
    for name, part in (("train_prices", train), ("validation_prices", validation)):
        yield dg.Output(
            part,
            output_name=name,
            data_version=dg.DataVersion(content_hash(part)),
            metadata={
                "rows": len(part),
                "first_date": str(part.index[0].date()),
                "last_date": str(part.index[-1].date()),
                "split": method,
            },
        )
