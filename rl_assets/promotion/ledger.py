"""The trial ledger: every candidate judged for an instrument, refused ones included.

A gate at 95% promotes noise about 5% of the time *per attempt*, and a platform makes
attempts all the time: sensor runs, the weekly schedule, decay retrains, manual reruns
with another seed or split. Each is a draw at the same gate. The ledger remembers them,
so the Deflated Sharpe deflates by every procedure variant judged for the instrument,
not by one (Bailey and Lopez de Prado 2014, sec. 3: the number of trials is every
configuration tried, not just the one reported).

It lies in the instrument's registry lane, ``<registry>/<instrument>/ledger.jsonl``, one
JSON line per judged candidate, appended under the lane's ledger lock (``.ledger.lock``;
the champion pointer has its own lock, so a promotion's compare-and-swap can read the
ledger while it holds that one). A line holds what the gate needs again later: the
candidate's pooled walk-forward test **skill returns** by date, its procedure digest,
seed, folds, data version, the run, what started it, and the verdict. A candidate is
recorded once however often it is judged (the report and ``promoted_policy`` both judge
it): the key is its checkpoint.

Attempts are not all independent. The same procedure rerun on one more week of data has
nearly the same test returns and is nearly one trial; another seed, config or split is
another. The count is ``stats.effective_number_of_trials`` (independent trials whose best
has the same 95% point as the attempts' best) of the attempts' skill returns on the days
they share (never their raw returns, which share the market and would
collapse the count).

A reset (``python -m rl_assets.registry --instrument X reset-ledger --reason ...``) starts
the count again for a new procedure or universe. It deletes nothing: it appends a reset
line, and the lane's history records it.
"""

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rl_assets.registry import file_lock
from rl_assets.rl.checkpoints import append_jsonl, read_jsonl
from rl_assets.rl.stats import benjamini_hochberg, effective_trials_of

LEDGER_FILE = "ledger.jsonl"
LOCK_FILE = ".ledger.lock"


def series_of(entry: dict[str, Any]) -> pd.Series:
    """An entry's (or a champion record's) pooled test skill returns, indexed by date."""
    skill = entry.get("skill_returns") or {"dates": [], "values": []}
    return pd.Series(
        np.asarray(skill["values"], dtype=np.float64),
        index=pd.DatetimeIndex(np.asarray(skill["dates"], dtype="datetime64[D]")).as_unit("ns"),
        name=entry.get("key", ""),
    )


def skill_record(series: pd.Series) -> dict[str, list]:
    """Dated skill returns as JSON: ISO dates and floats."""
    return {
        "dates": np.datetime_as_string(series.index.to_numpy(), unit="D").tolist(),
        "values": series.to_numpy(dtype=np.float64).tolist(),
    }


class Ledger:
    """One instrument's trial ledger (see the module docstring)."""

    def __init__(self, lane: str | Path):
        self.root = Path(lane)
        self.file = self.root / LEDGER_FILE

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the ledger: judge and append in one step, so no two candidates are judged
        without seeing each other."""
        with file_lock(self.root, LOCK_FILE):
            yield

    def lines(self) -> list[dict[str, Any]]:
        """Every line, resets included, oldest first. A torn last line (a killed writer) is
        skipped."""
        return read_jsonl(self.file)

    def entries(self) -> list[dict[str, Any]]:
        """The attempts since the last reset."""
        current: list[dict[str, Any]] = []
        for line in self.lines():
            if line.get("event") == "reset":
                current = []
            elif line.get("event") == "trial":
                current.append(line)
        return current

    def find(self, key: str) -> dict[str, Any] | None:
        return next((e for e in self.entries() if e["key"] == key), None)

    def _append(self, line: dict[str, Any]) -> None:
        append_jsonl(self.file, line)

    def record(
        self, entry: dict[str, Any], entries: list[dict[str, Any]] | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Append ``entry`` (must hold ``key``) unless a trial with that key is already
        there (among ``entries``, if the caller has just read them); (the recorded entry,
        whether it was appended now). Call it inside ``locked()``."""
        current = self.entries() if entries is None else entries
        existing = next((e for e in current if e["key"] == entry["key"]), None)
        if existing is not None:
            return existing, False
        line = {"event": "trial", "recorded_at": time.time(), **entry}
        self._append(line)
        return line, True

    def trial(self, key: str) -> dict[str, Any] | None:
        """The first judgment of the candidate ``key`` (across resets), or None."""
        return next(
            (e for e in self.lines() if e.get("event") == "trial" and e.get("key") == key), None
        )

    def reset(self, reason: str, by: str = "") -> dict[str, Any]:
        """Start counting again (a new procedure or universe). Nothing is deleted."""
        if not reason.strip():
            raise ValueError(
                "a ledger reset needs a reason (e.g. --reason 'new reward function'); it is "
                "recorded with the reset"
            )
        with self.locked():
            line = {
                "event": "reset",
                "reason": reason,
                "by": by or os.environ.get("USER", ""),
                "recorded_at": time.time(),
                "attempts_before": len(self.entries()),
            }
            self._append(line)
            return line


def trial_count(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The effective number of trials among ``entries`` (each with ``skill_returns``): how
    many independent procedure variants the attempts are worth."""
    found = effective_trials_of([series_of(e) for e in entries])
    return {"trials": float(found["trials"]), "attempts": int(found["attempts"])}


def universe_q_values(
    registry_root: str | Path,
    since: float,
    candidate: tuple[str, float] | None = None,
) -> dict[str, dict[str, float]]:
    """Benjamini-Hochberg q-values across the instruments judged since ``since`` (a Unix
    time): each instrument's latest attempt's p-value (1 - its Deflated Sharpe), with
    ``candidate`` = (instrument, p-value) in place of that instrument's latest.
    {instrument: {"p": .., "q": .., "promoted": ..}}."""
    registry_root = Path(registry_root)
    latest: dict[str, dict[str, float]] = {}
    if registry_root.is_dir():
        for lane in sorted(p for p in registry_root.iterdir() if p.is_dir()):
            recent = [e for e in Ledger(lane).entries() if e.get("recorded_at", 0) >= since]
            if recent:
                last = recent[-1]
                latest[lane.name] = {
                    "p": 1.0 - float(last.get("dsr", 0.0)),
                    "promoted": bool(last.get("passed", False)),
                }
    if candidate is not None:
        latest[candidate[0]] = {"p": float(candidate[1]), "promoted": False}
    names = sorted(latest)
    q = benjamini_hochberg([latest[n]["p"] for n in names])
    return {n: {**latest[n], "q": float(qi)} for n, qi in zip(names, q, strict=True)}
