"""Reading a user's price file (CSV or Parquet) into the RawPrices layout."""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow

PRICES_FILE_ENV_VAR = "RL_ASSETS_PRICES_FILE"
REQUIRED = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("close", "adj_close")
CSV_SUFFIXES = (".csv", ".txt", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz")
PARQUET_SUFFIXES = (".parquet", ".pq")

# Spellings seen in exports (after lower-casing, spaces and dashes to "_").
COLUMN_ALIASES = {
    "adj_close": "adj_close",
    "adjclose": "adj_close",
    "adjusted_close": "adj_close",
    "adj_close_price": "adj_close",
    "close_price": "close",
    "open_price": "open",
    "datetime": "date",
    "timestamp": "date",
    "trade_date": "date",
    "vol": "volume",
    "ticker": "symbol",
}
SYMBOL_COLUMN = "symbol"
DATE_COLUMN = "date"
SHOWN = 5  # how many offending rows an error message quotes

_OFFSET = re.compile(
    r"^(?P<local>.*\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?P<offset>Z|[+-]\d{2}:?\d{2})$"
)
_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_YMD_SLASH = re.compile(r"^\d{4}/\d{1,2}/\d{1,2}$")
_NUMERIC_YMD = re.compile(r"^\d{8}$")
_DAY_MONTH = re.compile(r"^(?P<a>\d{1,2})[/.-](?P<b>\d{1,2})[/.-](?P<year>\d{4})$")
FORMAT_HELP = (
    "accepted date formats: YYYY-MM-DD (ISO, optional time and UTC offset), YYYY/MM/DD, "
    "YYYYMMDD, MM/DD/YYYY (US) and DD/MM/YYYY when a day above 12 settles which is which; "
    "for anything else set raw_prices config date_format (e.g. '%d-%b-%Y')"
)


class PriceSourceError(ValueError):
    """The price file cannot be turned into daily bars; the message says what, where and the fix."""


@dataclass
class LoadedPrices:
    """The daily bars read from a file and how they were read (recorded as asset metadata)."""

    frame: pd.DataFrame
    source: str
    file_format: str
    date_source: str
    date_format: str
    symbol: str
    price_column: str
    ignored_columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def normalize_column(name: object) -> str:
    """'Adj Close' -> 'adj_close', ' Volume ' -> 'volume', 'Ticker' -> 'symbol'."""
    text = str(name).replace("\ufeff", "").strip().lower()
    text = re.sub(r"[\s\-.]+", "_", text).strip("_")
    return COLUMN_ALIASES.get(text, text)


def _is_unnamed(name: object) -> bool:
    text = str(name).strip()
    return text == "" or text.lower().startswith("unnamed:") or text.lower() == "index"


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in PARQUET_SUFFIXES + CSV_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _check_path(path: Path) -> str:
    hint = (
        f"set raw_prices config source_path (or ${PRICES_FILE_ENV_VAR}) to an existing "
        "CSV or Parquet file"
    )
    if not path.exists():
        raise PriceSourceError(f"price file {path} does not exist; {hint}")
    if not path.is_file():
        raise PriceSourceError(f"price file {path} is not a file (a directory?); {hint}")
    suffix = _suffix(path)
    if suffix in PARQUET_SUFFIXES:
        kind = "parquet"
    elif suffix in CSV_SUFFIXES:
        kind = "csv"
    else:
        raise PriceSourceError(
            f"price file {path} has the extension {suffix or '(none)'!r}, which is neither CSV "
            "nor Parquet; export it as CSV (.csv) or Parquet (.parquet) (accepted: "
            f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)})"
        )
    if path.stat().st_size == 0:
        raise PriceSourceError(
            f"price file {path} is empty (0 bytes); export the prices again "
            "(a header line and one line per trading day)"
        )
    return kind


def _read_csv(path: Path) -> tuple[pd.DataFrame, int]:
    """The raw table and the file line of its first data row."""
    try:
        df = pd.read_csv(
            path, float_precision="round_trip", skipinitialspace=True, low_memory=False
        )
    except pd.errors.EmptyDataError as err:
        raise PriceSourceError(
            f"price file {path} holds no columns (blank?); export the prices again with a "
            "header line such as Date,Open,High,Low,Close,Adj Close,Volume"
        ) from err
    except UnicodeDecodeError as err:
        raise PriceSourceError(
            f"price file {path} is not UTF-8 text (byte {err.start}: {err.reason}); it may be "
            "corrupt or not a CSV (a spreadsheet?): save it as CSV (UTF-8) or Parquet"
        ) from err
    except (pd.errors.ParserError, OSError, ValueError) as err:
        raise PriceSourceError(
            f"price file {path} cannot be read as CSV ({err}); check that it is a "
            "comma-separated text file with one header line, or save it as Parquet"
        ) from err
    return df, 2


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowException, OSError, ValueError) as err:
        raise PriceSourceError(
            f"price file {path} cannot be read as Parquet ({err}); it may be corrupt or "
            "another format with a .parquet name: write it again, e.g. with "
            "DataFrame.to_parquet(), or export a CSV"
        ) from err


def _yfinance_header(df: pd.DataFrame) -> bool:
    """yfinance >= 0.2.51 writes 'Price,...' / 'Ticker,...' / 'Date,,,' header lines."""
    return (
        len(df.columns) > 1
        and len(df) > 0
        and normalize_column(df.columns[0]) == "price"
        and normalize_column(df.iloc[0, 0]) == SYMBOL_COLUMN
    )


def _long_from_wide(
    dates: pd.Series | pd.Index, fields: list[str], tickers: list[str], values: pd.DataFrame, where
) -> pd.DataFrame:
    """One (date, field..., symbol) frame per ticker from columns labelled (field, ticker)."""
    parts = []
    for ticker in dict.fromkeys(tickers):
        cols = [i for i, t in enumerate(tickers) if t == ticker]
        part = pd.DataFrame({fields[i]: values.iloc[:, i].to_numpy() for i in cols})
        part.insert(0, DATE_COLUMN, pd.Series(dates).reset_index(drop=True))
        part[SYMBOL_COLUMN] = ticker
        part["_where"] = list(where)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _flatten_yfinance_csv(df: pd.DataFrame, first_line: int, path: Path) -> pd.DataFrame:
    """yfinance CSV: field names in the header, tickers on the next line, then 'Date,,,'."""
    tickers = [str(t).strip() for t in df.iloc[0, 1:]]
    start = 2 if len(df) > 1 and normalize_column(df.iloc[1, 0]) == DATE_COLUMN else 1
    data = df.iloc[start:].reset_index(drop=True)
    # The header repeats each field once per ticker; read_csv renamed repeats to 'Open.1'.
    header = pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0]
    fields = [normalize_column(c) for c in header.iloc[1:]]
    where = [f"line {first_line + start + i}" for i in range(len(data))]
    return _long_from_wide(data.iloc[:, 0], fields, tickers, data.iloc[:, 1:], where)


def _flatten_multiindex(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Parquet written from a yfinance download: columns (Price, Ticker), dates in the index."""
    levels = [[normalize_column(v) for v in df.columns.get_level_values(i)] for i in range(2)]
    if df.columns.nlevels != 2 or not any("close" in level for level in levels):
        raise PriceSourceError(
            f"{path} has {df.columns.nlevels} column header levels without a (field, ticker) "
            "pair; write one header row (Date, Open, High, Low, Close, Volume) instead"
        )
    field_level = 0 if "close" in levels[0] else 1
    tickers = [str(v) for v in df.columns.get_level_values(1 - field_level)]
    where = [f"row {i + 1}" for i in range(len(df))]
    return _long_from_wide(df.index, levels[field_level], tickers, df, where)


def _normalize_columns(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    names = [c if c == "_where" else normalize_column(c) for c in df.columns]
    seen: dict[str, object] = {}
    for original, name in zip(df.columns, names, strict=True):
        if name in seen and not _is_unnamed(original):
            raise PriceSourceError(
                f"{path}: columns {seen[name]!r} and {original!r} both mean {name!r}; "
                "keep one of them"
            )
        seen[name] = original
    return df.set_axis(names, axis=1)


def _date_values(
    df: pd.DataFrame, raw_columns: list[object], path: Path
) -> tuple[pd.Series, str, pd.DataFrame]:
    """The date values, where they came from, and the frame without them (positional index)."""
    if DATE_COLUMN in df.columns:
        original = raw_columns[list(df.columns).index(DATE_COLUMN)]
        dates, source, rest = df[DATE_COLUMN], f"column {original!r}", df.drop(columns=DATE_COLUMN)
    elif isinstance(df.index, pd.DatetimeIndex) or (
        df.index.name is not None and normalize_column(df.index.name) == DATE_COLUMN
    ):
        dates, source, rest = pd.Series(df.index), "index", df
    elif len(df.columns) and _is_unnamed(raw_columns[0]):
        first = df.columns[0]
        dates, source, rest = df[first], "first (unnamed) column", df.drop(columns=first)
    else:
        shown = [str(c) for c in raw_columns if c != "_where"]
        raise PriceSourceError(
            f"{path} has no date column (columns: {shown}); name the date column 'Date', "
            "put the dates in the first column without a header, or (Parquet) in a "
            "DatetimeIndex"
        )
    return dates.reset_index(drop=True), source, rest.reset_index(drop=True)


def _offset_minutes(offset: str) -> int:
    if offset == "Z":
        return 0
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    return sign * (int(digits[:2]) * 60 + int(digits[2:]))


def _strip_offsets(text: pd.Series, where: pd.Series, notes: list[str]) -> pd.Series:
    """Drop UTC offsets (keeping each row's local date); refuse zones that really differ.

    One exchange's zone shows two offsets an hour apart across daylight saving (yfinance
    writes -05:00 and -04:00 for New York); any other mix of offsets, or some rows with
    an offset and some without, means the dates come from different clocks.
    """
    parts = text.str.extract(_OFFSET.pattern)
    has = parts["offset"].notna()
    if not has.any():
        return text
    if not has.all():
        naive, aware = (~has).idxmax(), has.idxmax()
        raise PriceSourceError(
            f"mixed time zones: {where[naive]} {text[naive]!r} has no UTC offset but "
            f"{where[aware]} {text[aware]!r} has one; export every date in one zone "
            "(or all without a zone)"
        )
    minutes = parts["offset"].map(_offset_minutes)
    distinct = sorted(set(minutes))
    if len(distinct) > 2 or (len(distinct) == 2 and distinct[1] - distinct[0] != 60):
        examples = [minutes[minutes == m].index[0] for m in distinct[:3]]
        shown = ", ".join(f"{where[i]} {text[i]!r}" for i in examples)
        raise PriceSourceError(
            f"mixed time zones: the dates carry UTC offsets {sorted(set(parts['offset']))} "
            f"({shown}), more than one zone's daylight-saving pair; convert every date to "
            "the exchange's local date (one zone) before exporting"
        )
    notes.append(
        f"dates carried UTC offsets {sorted(set(parts['offset']))}; used each row's local date"
    )
    return parts["local"].str.strip()


def _bad_date_error(text: pd.Series, parsed: pd.Series, where: pd.Series, fmt: str) -> None:
    bad = parsed.isna()
    if bad.any():
        shown = "; ".join(f"{where[i]}: {text[i]!r}" for i in bad[bad].index[:SHOWN])
        raise PriceSourceError(
            f"{int(bad.sum())} date(s) cannot be read as {fmt}: {shown}; fix these dates "
            f"({FORMAT_HELP})"
        )


def _day_month_format(text: pd.Series, where: pd.Series) -> str:
    parts = text.str.extract(_DAY_MONTH.pattern)
    a, b = parts["a"].astype(int), parts["b"].astype(int)
    month_first = bool((a <= 12).all())  # US: MM/DD/YYYY
    day_first = bool((b <= 12).all())
    if month_first and day_first:
        raise PriceSourceError(
            f"ambiguous dates: {where[0]} {text[0]!r} and every other date can be read as "
            "month/day/year (US) or day/month/year, since no part exceeds 12; set raw_prices "
            "config date_format to '%m/%d/%Y' (US) or '%d/%m/%Y', or export ISO dates "
            "(YYYY-MM-DD)"
        )
    if not month_first and not day_first:
        i, j = (a > 12).idxmax(), (b > 12).idxmax()
        raise PriceSourceError(
            f"inconsistent dates: {where[i]} {text[i]!r} reads only as day/month/year but "
            f"{where[j]} {text[j]!r} only as month/day/year; export the dates in one "
            "format, ideally ISO (YYYY-MM-DD)"
        )
    return "%m/%d/%Y" if month_first else "%d/%m/%Y"


def _as_text(value: object) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip()


def parse_dates(
    values: pd.Series, where: pd.Series, date_format: str = ""
) -> tuple[pd.DatetimeIndex, str, list[str]]:
    """Naive midnight dates from ``values``, the format used, and notes for the log.

    ``where`` labels each row ("line 7" of a CSV, "row 5" of a Parquet file) for errors.
    """
    notes: list[str] = []
    values = values.reset_index(drop=True)
    where = where.reset_index(drop=True)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        notes.append(f"dates were in time zone {values.dt.tz}; used each row's local date")
        parsed, fmt = values.dt.tz_localize(None), f"datetime ({values.dt.tz})"
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        parsed, fmt = values, "datetime"
    else:
        missing = values.isna()
        if missing.any():
            shown = ", ".join(str(where[i]) for i in missing[missing].index[:SHOWN])
            raise PriceSourceError(
                f"{int(missing.sum())} row(s) have no date ({shown}); fill in the dates or "
                "delete these rows"
            )
        text = values.map(_as_text).astype(str)
        if date_format:
            fmt = date_format
        else:
            text = _strip_offsets(text, where, notes)
            styles = {
                "YYYY-MM-DD": text.str.match(_ISO.pattern),
                "YYYY/MM/DD": text.str.match(_YMD_SLASH.pattern),
                "YYYYMMDD": text.str.match(_NUMERIC_YMD.pattern),
                "MM/DD/YYYY or DD/MM/YYYY": text.str.match(_DAY_MONTH.pattern),
            }
            unknown = ~pd.concat(styles, axis=1).any(axis=1)
            if unknown.any():
                shown = "; ".join(f"{where[i]}: {text[i]!r}" for i in unknown[unknown].index[:3])
                raise PriceSourceError(f"unrecognised date(s) {shown}; {FORMAT_HELP}")
            matched = {name: m for name, m in styles.items() if m.any()}
            if len(matched) > 1:
                shown = " and ".join(
                    f"{where[m.idxmax()]} {text[m.idxmax()]!r}" for m in matched.values()
                )
                raise PriceSourceError(
                    f"dates mix formats ({', '.join(matched)}): {shown}; export every date "
                    "in one format, ideally ISO (YYYY-MM-DD)"
                )
            style = next(iter(matched))
            if style == "MM/DD/YYYY or DD/MM/YYYY":
                text = text.str.replace(r"[.-]", "/", regex=True)
                fmt = _day_month_format(text, where)
            else:
                fmt = {"YYYY-MM-DD": "ISO8601", "YYYY/MM/DD": "%Y/%m/%d"}.get(style, "%Y%m%d")
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        what = f"date_format {fmt!r}" if date_format else fmt
        _bad_date_error(text, parsed, where, what)
    index = pd.DatetimeIndex(parsed, name=DATE_COLUMN)
    if (index != index.normalize()).any():
        notes.append("dates carried times of day; kept the date only")
    return index.normalize().as_unit("us"), fmt, notes


def _pick_symbol(df: pd.DataFrame, symbol: str, path: Path) -> tuple[pd.DataFrame, str]:
    if SYMBOL_COLUMN not in df.columns:
        if symbol:
            raise PriceSourceError(
                f"raw_prices config symbol={symbol!r} but {path} has no symbol/ticker column "
                "(it holds one instrument); remove symbol from the config"
            )
        return df, ""
    present = df[SYMBOL_COLUMN].astype("string").str.strip()
    available = sorted(present.dropna().unique())
    if not symbol:
        if len(available) == 1:
            return df.drop(columns=SYMBOL_COLUMN), available[0]
        example = available[0] if available else "AAPL"
        raise PriceSourceError(
            f"{path} holds {len(available)} symbols {available}; choose one with raw_prices "
            f"config symbol (e.g. symbol: {example})"
        )
    chosen = symbol.strip()
    if chosen not in available:
        by_case = [s for s in available if s.lower() == chosen.lower()]
        if len(by_case) != 1:
            raise PriceSourceError(
                f"symbol {symbol!r} is not in {path}; available symbols: {available}; set "
                "raw_prices config symbol to one of them"
            )
        chosen = by_case[0]
    return df.loc[(present == chosen).fillna(False)].drop(columns=SYMBOL_COLUMN), chosen


def _to_numbers(
    df: pd.DataFrame, columns: list[str], dates: pd.DatetimeIndex, path: Path
) -> pd.DataFrame:
    """Float columns; names every value that is not a number (row, date, column)."""
    df = df.copy()
    problems = []
    for col in columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
            text = s.astype("string").str.strip()
            numbers = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
            bad = text.fillna("").ne("") & numbers.isna()
            problems += [(int(i), col, s[i]) for i in bad[bad].index]
            df[col] = numbers.astype(float)
        else:
            df[col] = s.astype(float)
    if problems:
        problems.sort()
        shown = "; ".join(
            f"{df.at[i, '_where']} ({dates[i].date()}) column {col!r}: {value!r}"
            for i, col, value in problems[:SHOWN]
        )
        raise PriceSourceError(
            f"{path}: {len(problems)} value(s) are not numbers: {shown}; correct them "
            "(a missing value may be left empty)"
        )
    return df


def _adjust(df: pd.DataFrame, dates: pd.DatetimeIndex, path: Path) -> pd.DataFrame:
    """Close becomes adj_close; open/high/low scaled by adj_close/close so OHLC relations hold."""
    bad = ~(df["close"] > 0)
    if bad.any():
        shown = "; ".join(
            f"{df.at[i, '_where']} ({dates[i].date()}): close {float(df.at[i, 'close'])}"
            for i in bad[bad].index[:SHOWN]
        )
        raise PriceSourceError(
            f"{path}: price_column 'adj_close' scales by adj_close/close, but {int(bad.sum())} "
            f"close value(s) are missing or not positive: {shown}; fix these rows or use "
            "price_column 'close'"
        )
    df = df.copy()
    factor = df["adj_close"] / df["close"]
    for col in ("open", "high", "low"):
        df[col] = df[col] * factor
    df["close"] = df["adj_close"]
    return df


def _read_table(path: Path) -> tuple[str, pd.DataFrame, list]:
    """(format, the rows with normalised column names and a ``_where`` column, raw names)."""
    kind = _check_path(path)
    if kind == "csv":
        df, first_line = _read_csv(path)
        if _yfinance_header(df):
            df = _flatten_yfinance_csv(df, first_line, path)
        else:
            df["_where"] = [f"line {first_line + i}" for i in range(len(df))]
    else:
        df = _read_parquet(path)
        if isinstance(df.columns, pd.MultiIndex):
            df = _flatten_multiindex(df, path)
        else:
            df["_where"] = [f"row {i + 1}" for i in range(len(df))]
    raw_columns = list(df.columns)
    return kind, _normalize_columns(df, path), raw_columns


def symbol_digests(path: str | Path) -> dict[str, str]:
    """Symbol -> sha256 of that symbol's rows, for a file holding several tickers (a symbol
    column or yfinance's two-row header); {} for a file holding one instrument.

    The digest covers the rows as read (before dates and numbers are parsed), so it changes
    exactly when a symbol's rows change, whatever happens to the other symbols.
    """
    path = Path(path).expanduser().absolute()
    _, df, _ = _read_table(path)
    if SYMBOL_COLUMN not in df.columns:
        return {}
    symbols = df[SYMBOL_COLUMN].astype("string").str.strip()
    rows = df.drop(columns=["_where", SYMBOL_COLUMN]).astype("string").fillna("")
    lines = rows.apply(lambda r: ",".join(r.to_numpy()), axis=1)
    digests = {}
    for symbol in sorted(symbols.dropna().unique()):
        text = "\n".join(lines[(symbols == symbol).fillna(False)].to_numpy())
        digests[str(symbol)] = hashlib.sha256(text.encode()).hexdigest()
    return digests


def load_prices(
    path: str | Path, symbol: str = "", price_column: str = "close", date_format: str = ""
) -> LoadedPrices:
    """Daily OHLCV from ``path``: float columns open..volume, a DatetimeIndex named ``date``.

    Input that cannot be turned into bars raises ``PriceSourceError``; value rules
    (no missing or non-positive prices, unique dates, high/low consistent) are left to
    the RawPrices schema check so that all of them are reported at once. Rows out of
    date order are sorted, with a note in ``LoadedPrices.warnings``.
    """
    if price_column not in PRICE_COLUMNS:
        raise PriceSourceError(
            f"raw_prices config price_column={price_column!r}; choose one of {PRICE_COLUMNS}"
        )
    path = Path(path).expanduser().absolute()
    kind, df, raw_columns = _read_table(path)
    needed = [*REQUIRED, "adj_close"] if price_column == "adj_close" else list(REQUIRED)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        found = [str(c) for c in raw_columns if c != "_where"]
        hint = ""
        if len(found) == 1 and ";" in found[0]:
            hint = " (the header holds ';': save the file with ',' as the separator)"
        elif "adj_close" in missing:
            hint = " (or set raw_prices config price_column: close)"
        elif "volume" in missing:
            hint = " (no volume data? add a volume column of zeros)"
        raise PriceSourceError(
            f"{path} lacks required column(s) {missing}; its columns are {found}{hint}. "
            "Expected Date, Open, High, Low, Close, Volume (any case or spacing; 'Adj Close' "
            "too for price_column adj_close)"
        )
    if len(df) == 0:
        raise PriceSourceError(
            f"{path} has a header but no data rows; export the prices again with one row "
            "per trading day"
        )
    df, chosen = _pick_symbol(df, symbol, path)
    dates, date_source, rest = _date_values(df, raw_columns, path)
    try:
        index, fmt, notes = parse_dates(dates, rest["_where"], date_format)
    except PriceSourceError as err:
        raise PriceSourceError(f"{path}, dates in {date_source}: {err}") from None
    rest = _to_numbers(rest, needed, index, path)
    if price_column == "adj_close":
        rest = _adjust(rest, index, path)
    rest = rest.set_axis(index, axis=0)
    if not rest.index.is_monotonic_increasing:
        position = int(np.argmax(np.diff(rest.index.asi8) < 0)) + 1
        notes.append(
            f"rows were not in date order ({rest['_where'].iloc[position]}: "
            f"{rest.index[position].date()} comes after {rest.index[position - 1].date()}); "
            "sorted them by date"
        )
        rest = rest.sort_index(kind="stable")
    used = {*needed, "_where"}
    ignored = [str(c) for c in rest.columns if c not in used]
    return LoadedPrices(
        frame=rest[list(REQUIRED)].astype(float),
        source=str(path),
        file_format=kind,
        date_source=date_source,
        date_format=fmt,
        symbol=chosen,
        price_column=price_column,
        ignored_columns=ignored,
        warnings=notes,
    )
