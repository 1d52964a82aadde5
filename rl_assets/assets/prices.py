"""Prices: each instrument's raw daily bars and its leak-free train/validation split."""

import math
import warnings

import dagster as dg
import numpy as np
import pandas as pd

from rl_assets import constants, run_guard
from rl_assets.data.sources import PRICE_COLUMNS, PriceSourceError, load_prices
from rl_assets.data.synthetic import generate_prices, latest_business_day
from rl_assets.data.versions import content_hash, split_record
from rl_assets.failures import CONFIG, DATA, failure
from rl_assets.instruments import InstrumentError, instrument_partitions, resolve


def versioned_output(value: pd.DataFrame, **kwargs) -> dg.Output:
    """An Output whose data version is its content hash: what marks downstream assets stale
    when the data changed, and only then. ``data_version`` is a beta parameter in Dagster
    1.13 that warns on every materialization; that one warning is silenced here, where the
    parameter is used."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"Parameter `data_version` of initializer `Output\.__init__`", dg.BetaWarning
        )
        return dg.Output(value, data_version=dg.DataVersion(content_hash(value)), **kwargs)


class RawPricesConfig(dg.Config):
    """Where the instrument's prices come from, and how to read them.

    ``source_path`` names a CSV/Parquet file for this run (else the instrument's file in
    $RL_ASSETS_PRICES_DIR or $RL_ASSETS_PRICES_FILE, else the embedded generator's
    instrument). ``symbol`` picks one ticker of a multi-ticker file (default: the
    instrument key when the file holds it); ``price_column`` is "close" or "adj_close"
    (then close is the adjusted close and open/high/low are scaled by adj_close/close);
    ``date_format`` (e.g. "%d/%m/%Y") overrides date detection. The generator settings
    override a generated instrument's own (empty: the instrument's).
    """

    source_path: str = ""
    symbol: str = ""
    price_column: str = "close"
    date_format: str = ""
    seed: int | None = None
    structure: str = ""
    autocorrelation: float | None = None
    edge_until: str = ""
    start: str = constants.GENERATOR_START
    end: str = ""  # empty: the latest business day


def generated(params: dict, config: RawPricesConfig) -> tuple[pd.DataFrame, str]:
    settings = {
        **params,
        **{
            k: v
            for k, v in (("seed", config.seed), ("autocorrelation", config.autocorrelation))
            if v is not None
        },
        **({"structure": config.structure} if config.structure else {}),
        **({"edge_until": config.edge_until} if config.edge_until else {}),
    }
    df = generate_prices(config.start, config.end or latest_business_day(), **settings)
    described = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    return df, f"generator({described})"


@dg.asset(
    partitions_def=instrument_partitions,
    group_name=constants.DATA_GROUP,
    kinds={"pandas"},
    code_version="2",
)
def raw_prices(
    context: dg.AssetExecutionContext, config: RawPricesConfig
) -> dg.Output[pd.DataFrame]:
    """Daily OHLCV bars of one instrument, indexed by date, from its file or the seeded generator."""
    run_guard.ensure(context)  # a killed run must not keep its pool slot
    instrument = context.partition_key
    if config.price_column not in PRICE_COLUMNS:
        raise failure(
            CONFIG,
            f"raw_prices config price_column={config.price_column!r}; choose one of "
            f"{list(PRICE_COLUMNS)}",
        )
    try:
        source = resolve(instrument, config.source_path, config.symbol)
    except InstrumentError as err:
        raise failure(DATA, str(err)) from None
    details: dict[str, object] = {"instrument": instrument}
    if source.kind == "file":
        try:
            loaded = load_prices(
                source.path,
                symbol=source.symbol,
                price_column=config.price_column,
                date_format=config.date_format,
            )
        except PriceSourceError as err:
            # A data problem, not a code bug: the message is the whole story.
            raise failure(DATA, str(err), {"source": source.path}) from None
        for note in loaded.warnings:
            context.log.warning(f"raw_prices: {note}")
        df, described = loaded.frame, loaded.source
        details |= {
            "source_via": "config source_path" if config.source_path else "instrument file",
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
                "raw_prices: symbol, date_format and price_column apply to a price file; "
                f"{instrument} is generated"
            )
        df, described = generated(source.generator, config)
        price_column = "close"  # generated prices have no splits or dividends to adjust
    version = content_hash(df)
    context.log.info(
        f"raw_prices {instrument}: {len(df)} rows {df.index[0].date()}..{df.index[-1].date()} "
        f"from {described}"
    )
    return versioned_output(
        df,
        metadata={
            "rows": len(df),
            "first_date": str(df.index[0].date()),
            "last_date": str(df.index[-1].date()),
            "source": described,
            "price_column": price_column,
            "content_hash": version,
            **details,
        },
    )


class SplitConfig(dg.Config):
    """The windows the candidate to deploy trains and early-stops on.

    Default (rolling): the last ``validation_days`` rows are validation and the
    ``train_days`` rows before them train (0: every earlier row), so the candidate learns
    from the most recent bars; its walk-forward folds (the walk_forward asset) use the same
    lengths. Dates (all four inclusive, validation after train) give the fixed layout
    instead: one fold, tested on every bar after validation. ``validation_fraction`` > 0
    takes the last that fraction of the rows as validation and every earlier row as train.
    """

    train_start: str = ""
    train_end: str = ""
    validation_start: str = ""
    validation_end: str = ""
    validation_fraction: float = constants.VALIDATION_FRACTION
    validation_days: int = constants.VALIDATION_DAYS
    train_days: int = constants.TRAIN_DAYS
    max_gap_business_days: int = constants.MAX_SPLIT_GAP_BUSINESS_DAYS

    def uses_dates(self) -> bool:
        return any((self.train_start, self.train_end, self.validation_start, self.validation_end))


def missing_business_days(before: pd.Timestamp, after: pd.Timestamp) -> int:
    """Business days strictly between two dates (weekends do not count)."""
    start = np.datetime64(before.date()) + np.timedelta64(1, "D")
    return int(np.busday_count(start, np.datetime64(after.date())))


def refuse_long_gap(
    earlier: pd.DataFrame, later: pd.DataFrame, names: tuple[str, str], limit: int, setting: str
) -> None:
    """A move across a long gap would be booked as one day's return: refuse it, naming both dates."""
    end, start = earlier.index[-1], later.index[0]
    missing = missing_business_days(end, start)
    if missing > limit:
        raise ValueError(
            f"{names[0]} ends {end.date()} and {names[1]} starts {start.date()}: {missing} "
            f"business days without prices between them (limit {limit}). The first "
            f"{names[1]} return would book that whole move as one day. Start {names[1]} at "
            f"the first date after {end.date()}, fill the gap in the data, or raise {setting}"
        )


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


def _split_by_days(
    prices: pd.DataFrame, validation_days: int, train_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if validation_days < 1 or train_days < 0:
        raise ValueError(
            f"price_splits config validation_days={validation_days}, train_days={train_days}; "
            "use validation_days >= 1 and train_days >= 0 (0: every earlier row)"
        )
    cut = max(len(prices) - validation_days, 0)
    start = max(cut - train_days, 0) if train_days else 0
    return prices.iloc[start:cut], prices.iloc[cut:]


def _split_by_range(prices: pd.DataFrame, config: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = ("train_start", "train_end", "validation_start", "validation_end")
    # A date left empty beside others takes the original layout's (constants.TRAIN_START...).
    config = config.model_copy(
        update={name: getattr(config, name) or getattr(constants, name.upper()) for name in names}
    )
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
    if config.uses_dates():
        train, validation = _split_by_range(prices, config)
        how = "the dates"
        widen = "widen its dates or supply more data"
    elif config.validation_fraction:
        train, validation = _split_by_fraction(prices, config.validation_fraction)
        how = f"validation_fraction {config.validation_fraction}"
        widen = "lower validation_fraction or supply more data"
    else:
        train, validation = _split_by_days(prices, config.validation_days, config.train_days)
        how = f"validation_days {config.validation_days}, train_days {config.train_days}"
        widen = "lower validation_days / train_days or supply more data"
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
    refuse_long_gap(
        train,
        validation,
        ("train", "validation"),
        config.max_gap_business_days,
        "price_splits config max_gap_business_days",
    )
    return train, validation


@dg.multi_asset(
    outs={
        "train_prices": dg.AssetOut(
            group_name=constants.DATA_GROUP,
            kinds={"pandas"},
            description="Daily bars of the train period: what the policy learns from.",
            code_version="2",
        ),
        "validation_prices": dg.AssetOut(
            group_name=constants.DATA_GROUP,
            kinds={"pandas"},
            description="Daily bars strictly after train: drives early stopping and the gate.",
            code_version="2",
        ),
    },
    partitions_def=instrument_partitions,
)
def price_splits(context: dg.AssetExecutionContext, config: SplitConfig, raw_prices: pd.DataFrame):
    """Split raw prices into train and validation, by dates or by a validation fraction."""
    try:
        train, validation = split_by_dates(raw_prices, config)
    except ValueError as err:
        raise failure(DATA, f"{context.partition_key}: {err}") from None
    method = (
        f"dates {config.train_start}..{config.train_end} | "
        f"{config.validation_start}..{config.validation_end}"
        if config.uses_dates()
        else f"last {config.validation_fraction:.0%} of rows"
        if config.validation_fraction
        else f"last {config.validation_days} rows (train: the {config.train_days or 'all'} before)"
    )
    for name, part in (("train_prices", train), ("validation_prices", validation)):
        yield versioned_output(
            part, output_name=name, metadata={**split_record(part), "split": method}
        )
