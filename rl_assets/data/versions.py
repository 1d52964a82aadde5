"""Content hashes of price frames: data versions, and the record of a split a policy saw."""

import hashlib

import pandas as pd


def content_hash(df: pd.DataFrame) -> str:
    """16 hex digits of sha256 over the index, values and column names."""
    hashed = pd.util.hash_pandas_object(df, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(df.columns).encode()).hexdigest()[:16]


def split_record(df: pd.DataFrame) -> dict:
    """What identifies a split: its first and last date, its rows and its content hash."""
    return {
        "first_date": str(df.index[0].date()) if len(df) else "",
        "last_date": str(df.index[-1].date()) if len(df) else "",
        "rows": len(df),
        "content_hash": content_hash(df),
    }


def describe_split(record: dict) -> str:
    """'2020-01-02..2023-01-31 (780 rows, 1a2b3c4d5e6f7a8b)'."""
    return (
        f"{record.get('first_date', '?')}..{record.get('last_date', '?')} "
        f"({record.get('rows', '?')} rows, {record.get('content_hash', '?')})"
    )
