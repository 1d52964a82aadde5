"""Reading a user's price file (CSV or Parquet) into the RawPrices layout."""

from pathlib import Path

import pandas as pd

PRICES_FILE_ENV_VAR = "RL_ASSETS_PRICES_FILE"
REQUIRED = ("open", "high", "low", "close", "volume")


def load_prices(path: str | Path) -> pd.DataFrame:
    """Daily OHLCV from ``path``: lower-case columns, a sorted DatetimeIndex named ``date``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"price file {path} does not exist; set raw_prices config source_path "
            f"(or ${PRICES_FILE_ENV_VAR}) to an existing CSV or Parquet file"
        )
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path)
    df.columns = [str(c).strip().lower().replace(" ", "_") for c in df.columns]
    if "date" not in df.columns:
        raise ValueError(f"{path} has no 'date' column (columns: {list(df.columns)}); add one")
    df["date"] = pd.to_datetime(df["date"])
    df = df.set_index("date")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path} lacks required column(s) {missing}; columns are {list(df.columns)}"
        )
    return df[list(REQUIRED)].astype(float)
