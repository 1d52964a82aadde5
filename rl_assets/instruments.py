"""Instruments: the partitions of every pipeline asset, their keys and where their prices come from.

An instrument's prices come from, in this order: the run's ``raw_prices`` config
``source_path`` (one instrument); ``$RL_ASSETS_PRICES_FILE`` (its file name, or each symbol
of a multi-ticker file); the prices directory ``$RL_ASSETS_PRICES_DIR`` (default
``<repo>/prices``: one file per instrument named after it, or multi-ticker files); the
latest content the landing sensor took in for it (``<artifacts>/incoming/landed/<key>.json``:
its immutable copy of the landed file); the embedded generator's instruments
(``constants.BUILTIN_INSTRUMENTS``).

    python -m rl_assets.instruments list            # registered and discoverable instruments
    python -m rl_assets.instruments scan            # register every instrument found in files
    python -m rl_assets.instruments add SPY QQQ     # register these (each must have prices)
    python -m rl_assets.instruments builtin         # register the generator's instruments
    python -m rl_assets.instruments remove SPY      # unregister (history and champion stay)
"""

import argparse
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster_shared.utils.warnings import PreviewWarning

from rl_assets import constants
from rl_assets.data.sources import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    PRICES_FILE_ENV_VAR,
    PriceSourceError,
    symbol_digests,
)

instrument_partitions = dg.DynamicPartitionsDefinition(name=constants.INSTRUMENT_PARTITIONS_NAME)


def partitioned_check(**kwargs):
    """``dg.asset_check`` partitioned by instrument, so each result belongs to its instrument.

    Partitioned checks are a preview in Dagster 1.13 and say so with a PreviewWarning each
    time one is defined. Without ``partitions_def`` a check on a partitioned asset records
    one unpartitioned result and may load every partition (FIELD_NOTES), so we use the
    preview on purpose and silence that one warning here, where it is raised.
    """

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*partitions_def on an AssetCheckSpec", category=PreviewWarning
            )
            return dg.asset_check(partitions_def=instrument_partitions, **kwargs)(fn)

    return decorate


# What a price file in a directory is called (a .txt file there is more likely notes).
PRICE_SUFFIXES = tuple(sorted({*CSV_SUFFIXES, *PARQUET_SUFFIXES} - {".txt"}, key=len, reverse=True))


class InstrumentError(ValueError):
    """An instrument key that cannot be used, or an instrument without prices; says the fix."""


@dataclass(frozen=True)
class InstrumentSource:
    """Where one instrument's daily bars come from."""

    instrument: str
    kind: str  # "file" or "generator"
    path: str = ""
    symbol: str = ""
    generator: dict = field(default_factory=dict)
    landed_from: str = ""  # the landing file whose copy ``path`` is

    def describe(self) -> str:
        if self.kind == "generator":
            return f"generator {self.generator}"
        where = f"{self.path}" + (f" (symbol {self.symbol})" if self.symbol else "")
        if self.landed_from:
            return f"landed {self.landed_from}, latest content copied to {where}"
        return where


LANDED_DIR = Path("incoming") / "landed"


def _artifacts_root() -> Path:
    from rl_assets.resources import default_artifacts_root

    return Path(default_artifacts_root())


def record_landed(
    artifacts_root: str | Path, instrument: str, copy: Path, symbol: str, content: str, landed: Path
) -> None:
    """The landing sensor's note that ``instrument``'s latest prices are ``copy`` (of the file
    ``landed``): the schedules, the decay sensor, the signal and ``list`` read it."""
    from rl_assets.rl.checkpoints import write_json_atomically

    write_json_atomically(
        Path(artifacts_root) / LANDED_DIR / f"{validate_key(instrument)}.json",
        {
            "instrument": instrument,
            "path": str(copy),
            "symbol": symbol,
            "content": content,
            "landed_from": str(landed),
            "landed_at": time.time(),
        },
    )


def landed_sources() -> dict[str, InstrumentSource]:
    """Every instrument the landing sensor took in, with its latest landed content."""
    import json

    directory = _artifacts_root() / LANDED_DIR
    if not directory.is_dir():
        return {}
    found = {}
    for note in sorted(directory.glob("*.json")):
        try:
            record = json.loads(note.read_text())
        except (OSError, ValueError):
            continue
        if Path(record["path"]).is_file():
            found[record["instrument"]] = InstrumentSource(
                record["instrument"], "file", record["path"], record.get("symbol", ""),
                landed_from=record.get("landed_from", ""),
            )  # fmt: skip
    return found


def validate_key(key: str, where: str = "") -> str:
    """``key`` if Dagster, file systems and URLs can all carry it; else a clear error."""
    if not isinstance(key, str) or not constants.INSTRUMENT_KEY_PATTERN.match(key):
        origin = f" (from {where})" if where else ""
        raise InstrumentError(
            f"instrument key {key!r}{origin} cannot be used: use 1-32 characters of letters, "
            "digits and . _ ^ = -, not starting with . or - (e.g. SPY, BRK-B, ^GSPC, "
            "EURUSD=X); rename the file or the symbol"
        )
    return key


def price_suffix(path: Path) -> str:
    """The price-file suffix of ``path`` ('.csv.gz', '.parquet', ...), or '' if it is none."""
    name = path.name.lower()
    return next((s for s in PRICE_SUFFIXES if name.endswith(s)), "")


def key_from_file(path: Path) -> str:
    """'landing/BRK-B.csv.gz' -> 'BRK-B' (validated)."""
    suffix = price_suffix(path)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.stem
    return validate_key(stem, where=f"file name {path.name}")


def instruments_in_file(path: str | Path) -> dict[str, InstrumentSource]:
    """One instrument for a single-ticker file (named after the file), one per symbol otherwise."""
    path = Path(path).expanduser().absolute()
    symbols = symbol_digests(path)
    if not symbols:
        key = key_from_file(path)
        return {key: InstrumentSource(key, "file", str(path))}
    return {
        validate_key(s, where=f"symbol in {path.name}"): InstrumentSource(s, "file", str(path), s)
        for s in symbols
    }


def prices_dir() -> Path:
    raw = os.environ.get(constants.PRICES_DIR_ENV_VAR, "").strip()
    return Path(raw).expanduser() if raw else constants.REPO_ROOT / constants.DEFAULT_PRICES_DIR


def price_files(directory: Path) -> list[Path]:
    """Top-level price files of ``directory`` (hidden files, e.g. copies in progress, skipped)."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and price_suffix(p)
    )


def discover() -> dict[str, InstrumentSource]:
    """Every instrument found in ``$RL_ASSETS_PRICES_FILE`` and the prices directory."""
    files = price_files(prices_dir())
    env_file = os.environ.get(PRICES_FILE_ENV_VAR, "").strip()
    if env_file:
        files.insert(0, Path(env_file).expanduser())
    found: dict[str, InstrumentSource] = {}
    for path in files:
        try:
            in_file = instruments_in_file(path)
        except PriceSourceError as err:
            raise InstrumentError(f"cannot list the instruments of {path}: {err}") from None
        for key, source in in_file.items():
            if key in found and found[key].path != source.path:
                raise InstrumentError(
                    f"instrument {key!r} has prices in two files, {found[key].path} and "
                    f"{source.path}; keep one of them"
                )
            found[key] = source
    return found


def builtin_source(key: str) -> InstrumentSource | None:
    params = constants.BUILTIN_INSTRUMENTS.get(key)
    return None if params is None else InstrumentSource(key, "generator", generator=dict(params))


def resolve(key: str, source_path: str = "", symbol: str = "") -> InstrumentSource:
    """Where ``key``'s prices come from (see the module docstring for the order)."""
    validate_key(key)
    if source_path:
        path = Path(source_path).expanduser().absolute()
        if not symbol and path.is_file():
            try:
                symbols = symbol_digests(path)
            except PriceSourceError:
                symbols = {}  # raw_prices reports the file's problem with its own message
            if key in symbols:
                symbol = key
        return InstrumentSource(key, "file", str(path), symbol)
    env_file = os.environ.get(PRICES_FILE_ENV_VAR, "").strip()
    if not env_file:
        # The common case, a file named after the instrument, without parsing the others.
        named = [p for p in price_files(prices_dir()) if p.name.startswith(f"{key}.")]
        named = [p for p in named if p.name[: len(p.name) - len(price_suffix(p))] == key]
        if len(named) == 1:
            return InstrumentSource(key, "file", str(named[0].absolute()))
    found = discover()
    if key in found:
        return found[key]
    landed = landed_sources().get(key)
    if landed is not None:
        return landed
    builtin = builtin_source(key)
    if builtin is not None:
        return builtin
    known = sorted({*found, *constants.BUILTIN_INSTRUMENTS})
    raise InstrumentError(
        f"instrument {key!r} has no prices: put {key}.csv (or .parquet) in {prices_dir()} "
        f"(${constants.PRICES_DIR_ENV_VAR}), or set raw_prices config source_path; known "
        f"instruments: {known}"
    )


def register(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Add ``keys`` as instrument partitions (each must resolve to prices); return the new ones."""
    for key in keys:
        resolve(key)
    existing = set(instance.get_dynamic_partitions(instrument_partitions.name))
    new = [k for k in dict.fromkeys(keys) if k not in existing]
    if new:
        instance.add_dynamic_partitions(instrument_partitions.name, new)
    return new


def registered(instance: dg.DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(instrument_partitions.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered instruments and those found in price files")
    sub.add_parser("scan", help="register every instrument found in price files")
    sub.add_parser("builtin", help="register the embedded generator's instruments")
    add = sub.add_parser("add", help="register instruments by key")
    add.add_argument("keys", nargs="+")
    rm = sub.add_parser("remove", help="unregister an instrument")
    rm.add_argument("key")
    args = parser.parse_args(argv)
    try:
        with dg.DagsterInstance.get() as instance:
            if args.command == "list":
                found = discover()
                landed = landed_sources()
                have = registered(instance)
                for key in sorted({*have, *found, *landed}):
                    source = found.get(key) or landed.get(key) or builtin_source(key)
                    mark = "registered" if key in have else "not registered"
                    where = source.describe() if source else "no prices found"
                    print(f"{key:<16} {mark:<15} {where}")
                return 0
            if args.command == "remove":
                instance.delete_dynamic_partition(instrument_partitions.name, args.key)
                print(f"unregistered {args.key}")
                return 0
            keys = {
                "scan": lambda: sorted(discover()),
                "builtin": lambda: sorted(constants.BUILTIN_INSTRUMENTS),
                "add": lambda: args.keys,
            }[args.command]()
            if not keys:
                print(f"no price files found in {prices_dir()} or ${PRICES_FILE_ENV_VAR}")
                return 1
            new = register(instance, keys)
            print(
                f"registered {', '.join(new) or 'nothing new'}; instruments: {registered(instance)}"
            )
            return 0
    except InstrumentError as err:
        print(f"error: {err}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
