"""The champion registry: one lane per instrument, versioned checkpoints and an atomic pointer.

Layout under the registry root (``$RL_ASSETS_ARTIFACTS/registry``)::

    <instrument>/versions/v0001/   a complete copy of a promoted checkpoint (manifest.json last);
                                   numbers are never reused, even after a folder is removed
    <instrument>/champion.json     the pointer to the instrument's champion, replaced atomically,
                                   with the sha256 of the policy that passed the gate
    <instrument>/history.jsonl     one line per promotion, rollback or ledger reset
    <instrument>/ledger.jsonl      the trial ledger: every candidate judged (rl_assets.promotion.ledger)
    <instrument>/monitoring.json   the champion's latest monitoring verdict

A registry written before instruments existed (``champion.json`` at the root) is moved,
whole, into the lane ``default`` the first time it is opened.

    python -m rl_assets.registry instruments
    python -m rl_assets.registry --instrument SPY list
    python -m rl_assets.registry --instrument SPY history
    python -m rl_assets.registry --instrument SPY rollback v0001
    python -m rl_assets.registry --instrument SPY ledger
    python -m rl_assets.registry --instrument SPY reset-ledger --reason "new reward function"
    python -m rl_assets.registry universe
"""

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rl_assets import constants
from rl_assets.rl import checkpoints

LEGACY_ITEMS = ("versions", "champion.json", "history.jsonl")


class PromotionRefused(RuntimeError):
    """The champion in place when the promotion committed beat the candidate."""

    def __init__(self, verdict: Any, champion: dict[str, Any] | None):
        self.verdict = verdict
        self.champion = champion
        super().__init__(f"{verdict.name}: {verdict.reason} (observed {verdict.observed})")


class ChampionUnusable(RuntimeError):
    """A version's files are gone or are not the bytes that were promoted."""


VERSION = re.compile(r"^v(\d+)$")


@contextlib.contextmanager
def file_lock(directory: Path, name: str = ".lock") -> Iterator[None]:
    """One writer at a time across processes (an flock on ``directory/name``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migrate_legacy(root: Path) -> Path | None:
    """Move a single-lane registry at ``root`` into the lane ``default``; return its new path."""
    root = Path(root)
    if not (root / "champion.json").exists() and not (root / "versions").is_dir():
        return None
    with file_lock(root):
        if not (root / "champion.json").exists() and not (root / "versions").is_dir():
            return None  # another process migrated it while we waited
        dest = root / constants.LEGACY_INSTRUMENT
        if dest.exists():
            raise FileExistsError(
                f"{root} holds a registry from before instruments and a lane "
                f"'{constants.LEGACY_INSTRUMENT}' already exists; move {root}/versions, "
                f"champion.json and history.jsonl into one instrument's folder by hand"
            )
        tmp = root / f"{checkpoints.TMP_MARK}{constants.LEGACY_INSTRUMENT}"
        tmp.mkdir(exist_ok=True)
        for item in LEGACY_ITEMS:
            if (root / item).exists():
                os.rename(root / item, tmp / item)
        os.rename(tmp, dest)
        return dest


class Registry:
    """One instrument's lane: its versions, its champion pointer and its history."""

    def __init__(self, root: str | Path, instrument: str = ""):
        self.root = Path(root)
        self.instrument = instrument or self.root.name
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "champion.json"
        self.history_file = self.root / "history.jsonl"
        self.monitoring_file = self.root / "monitoring.json"

    @classmethod
    def for_instrument(cls, registry_root: str | Path, instrument: str) -> "Registry":
        registry_root = Path(registry_root)
        migrate_legacy(registry_root)
        return cls(registry_root / instrument, instrument)

    def champion(self) -> dict[str, Any] | None:
        """The champion's record, or None before the first promotion. Its ``checkpoint`` is
        where the version lies now (the lane may have been moved)."""
        if not self.pointer.exists():
            return None
        entry = json.loads(self.pointer.read_text())
        return {**entry, "checkpoint": str(self.versions_dir / entry["version"])}

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if checkpoints.is_complete(p))

    def history(self) -> list[dict[str, Any]]:
        return checkpoints.read_jsonl(self.history_file)

    def issued(self) -> list[str]:
        """Every version ever issued in this lane, by the history (the record), the folders
        and the pointer, whether or not its folder is still there."""
        names = {e["version"] for e in self.history() if e.get("event") == "promote"}
        if self.versions_dir.is_dir():
            names.update(p.name for p in self.versions_dir.iterdir() if VERSION.match(p.name))
        champion = self.champion()
        if champion:
            names.add(champion["version"])
        return sorted(names, key=lambda v: int(VERSION.match(v).group(1)))

    def _next_version(self) -> str:
        """One above the highest ever issued: a removed folder's number is never reused."""
        issued = self.issued()
        highest = int(VERSION.match(issued[-1]).group(1)) if issued else 0
        return f"v{highest + 1:04d}"

    def removed(self) -> list[str]:
        """Versions issued whose folder is gone (or incomplete): reported, never reissued."""
        present = set(self.versions())
        return [v for v in self.issued() if v not in present]

    def verified(self, entry: dict[str, Any]) -> Path:
        """The folder of the version ``entry`` names (a champion or a version's registry
        record), after checking that its policy is byte for byte the one promoted."""
        folder = self.versions_dir / entry["version"]
        fix = (
            f"roll back to an intact version (python -m rl_assets.registry --instrument "
            f"{self.instrument} list; ... rollback vNNNN) or promote a new candidate"
        )
        if not checkpoints.is_complete(folder):
            raise ChampionUnusable(
                f"{self.instrument}: version {entry['version']} is missing or incomplete at "
                f"{folder}; {fix}"
            )
        expected = entry.get("checkpoint_sha256")
        if expected:  # promotions before digests were recorded carry none
            actual = checkpoints.policy_digest(folder)
            if actual != expected:
                raise ChampionUnusable(
                    f"{self.instrument}: version {entry['version']} at {folder} is not the "
                    f"policy that passed the gate: its files hash to {actual[:12]}, the "
                    f"promotion recorded {expected[:12]}; they were changed after promotion. "
                    f"Nothing loads it; {fix}"
                )
        return folder

    def _append_history(self, event: dict[str, Any]) -> None:
        checkpoints.append_jsonl(self.history_file, event)

    def promote(
        self,
        checkpoint: str | Path,
        record: dict[str, Any],
        accept: Callable[[dict[str, Any] | None], Any] | None = None,
        judged_digest: str | None = None,
    ) -> dict[str, Any]:
        """Copy a complete checkpoint in as the next version and make it the champion.

        Compare-and-swap: under the lane's lock, ``accept`` is called with the champion in
        place at that moment and returns a verdict (``.passed``); a failed verdict raises
        ``PromotionRefused`` and nothing changes. Two promotions therefore never both judge
        against the same old champion.

        The policy's digest (``checkpoints.policy_digest``) is recorded with the version; it
        must equal ``judged_digest`` (the candidate the gate judged) when given, and the copy
        must hash the same, or nothing is promoted.
        """
        checkpoint = Path(checkpoint)
        checkpoints.read_manifest(checkpoint)  # refuses incomplete checkpoints
        digest = checkpoints.policy_digest(checkpoint)
        if judged_digest and digest != judged_digest:
            raise ChampionUnusable(
                f"{self.instrument}: candidate {checkpoint} hashes to {digest[:12]}, but the "
                f"gate judged {judged_digest[:12]}: its files changed after it was judged; "
                "nothing was promoted. Retrain the candidate"
            )
        with file_lock(self.root):
            champion = self.champion()
            verdict = accept(champion) if accept is not None else None
            if verdict is not None and not verdict.passed:
                raise PromotionRefused(verdict, champion)
            checkpoints.remove_stale_temp_dirs(self.versions_dir)
            checkpoints.remove_stale_temp_dirs(self.root)
            version = self._next_version()
            dest = self.versions_dir / version
            entry = {
                **record,
                "instrument": self.instrument,
                "version": version,
                "checkpoint": str(dest),
                "checkpoint_sha256": digest,
                "source_checkpoint": str(checkpoint),
                "replaced": champion["version"] if champion else None,
                "promoted_at": time.time(),
            }
            if verdict is not None:
                entry["champion_comparison"] = verdict.as_dict()

            def fill(tmp: Path) -> None:
                shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
                (tmp / checkpoints.MANIFEST).unlink()  # rewritten last by publish_directory
                if checkpoints.policy_digest(tmp) != digest:
                    raise ChampionUnusable(
                        f"{self.instrument}: the copy of {checkpoint} into the registry does "
                        "not hash as the candidate (it changed while being copied, or the disk "
                        "is failing); nothing was promoted"
                    )

            manifest = {**checkpoints.read_manifest(checkpoint), "registry": entry}
            checkpoints.publish_directory(dest, fill, manifest)
            checkpoints.write_json_atomically(self.pointer, entry)
            self._append_history({"event": "promote", **entry})
            return entry

    def record_monitoring(self, state: dict[str, Any]) -> None:
        """The latest verdict of the champion's monitoring (``champion_performance``), written
        atomically: the gate reads it to know whether the champion in place has decayed."""
        self.root.mkdir(parents=True, exist_ok=True)
        checkpoints.write_json_atomically(
            self.monitoring_file, {**state, "recorded_at": time.time()}
        )

    def monitoring(self) -> dict[str, Any] | None:
        """The latest monitoring verdict, or None before the champion was ever watched."""
        if not self.monitoring_file.exists():
            return None
        return json.loads(self.monitoring_file.read_text())

    def champion_decayed(self, champion: dict[str, Any] | None = None) -> bool:
        """Whether the latest monitoring of the champion in place (``champion``, or the one
        the pointer names) found that its edge has stopped."""
        champion = champion if champion is not None else self.champion()
        state = self.monitoring()
        return bool(
            champion is not None
            and state is not None
            and state.get("champion_version") == champion.get("version")
            and state.get("decayed")
        )

    def rollback(self, version: str) -> dict[str, Any]:
        """Point the champion at an earlier version; nothing is deleted."""
        with file_lock(self.root):
            if version not in self.versions():
                gone = " (its folder was removed)" if version in self.removed() else ""
                raise ValueError(
                    f"version {version!r} is not in the registry of {self.instrument} at "
                    f"{self.root}{gone}; available: {', '.join(self.versions()) or 'none'}"
                )
            manifest = checkpoints.read_manifest(self.versions_dir / version)
            try:
                self.verified(manifest["registry"])
            except ChampionUnusable as err:
                raise ValueError(f"not rolled back: {err}") from None
            entry = {**manifest["registry"], "rolled_back_at": time.time()}
            checkpoints.write_json_atomically(self.pointer, entry)
            self._append_history({"event": "rollback", **entry})
            return entry


def lanes(registry_root: str | Path) -> list[str]:
    """Instruments with a lane in the registry."""
    registry_root = Path(registry_root)
    migrate_legacy(registry_root)
    if not registry_root.is_dir():
        return []
    return sorted(
        p.name
        for p in registry_root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "versions").is_dir()
    )


def default_root() -> Path:
    artifacts = os.environ.get(constants.ARTIFACTS_ENV_VAR) or str(
        constants.REPO_ROOT / constants.DEFAULT_ARTIFACTS_DIR
    )
    return Path(artifacts) / "registry"


def _print_universe(root: Path) -> int:
    from rl_assets.promotion.ledger import universe_q_values

    table = universe_q_values(root, since=0.0)
    for name, row in table.items():
        print(
            f"{name:<16} latest attempt {'passed' if row['promoted'] else 'refused':<8} "
            f"p {row['p']:.4f}  q {row['q']:.4f}"
        )
    passed = [r for r in table.values() if r["promoted"]]
    if passed:
        worst = max(r["q"] for r in passed)
        found = sum(1 for r in table.values() if r["q"] <= worst)
        print(
            f"{len(passed)} of {len(table)} passed; by Benjamini-Hochberg at most "
            f"{worst * found:.2f} false champions expected among the {found} with q <= {worst:.4f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="registry directory")
    parser.add_argument("--instrument", default="", help="the instrument's lane")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("instruments", help="instruments with a lane, and their champions")
    sub.add_parser("list", help="versions and the current champion")
    sub.add_parser("history", help="every promotion and rollback, with the gate it passed")
    rb = sub.add_parser("rollback", help="make an earlier version the champion")
    rb.add_argument("version")
    sub.add_parser("ledger", help="every candidate judged since the ledger's last reset")
    rs = sub.add_parser(
        "reset-ledger",
        help="start counting attempts again (a new procedure or universe); recorded, nothing deleted",
    )
    rs.add_argument("--reason", required=True, help="why: it is recorded with the reset")
    sub.add_parser(
        "universe", help="each instrument's latest attempt: p-value, Benjamini-Hochberg q-value"
    )
    args = parser.parse_args(argv)
    root = args.root or default_root()
    known = lanes(root)
    if args.command == "universe":
        return _print_universe(root)
    if args.command == "instruments":
        for name in known:
            champion = Registry(root / name).champion()
            print(f"{name:<16} champion {champion['version'] if champion else 'none'}")
        return 0
    instrument = args.instrument or (known[0] if len(known) == 1 else "")
    if not instrument or instrument not in known:
        print(f"error: choose an instrument with --instrument; lanes in {root}: {known or 'none'}")
        return 2
    registry = Registry(root / instrument)
    if args.command == "list":
        champion = registry.champion()
        present = set(registry.versions())
        for v in registry.issued():
            mark = "*" if champion and champion["version"] == v else " "
            if v not in present:
                print(f"{mark} {v}  removed: its folder is gone (the number is not reused)")
                continue
            try:
                registry.verified(checkpoints.read_manifest(registry.versions_dir / v)["registry"])
                state = ""
            except ChampionUnusable:
                state = "  ALTERED: its files are not the policy promoted; do not roll back to it"
            except KeyError:
                state = ""
            print(f"{mark} {v}{state}")
        return 0
    if args.command == "ledger":
        from rl_assets.promotion.ledger import Ledger, trial_count

        entries = Ledger(registry.root).entries()
        for i, e in enumerate(entries, 1):
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e["recorded_at"]))
            print(
                f"{i:>3} {when} {'passed' if e.get('passed') else 'refused'}  seed "
                f"{e.get('seed')} procedure {e.get('procedure_digest', '')} skill Sharpe "
                f"{e.get('skill_sharpe') or 0.0:+.2f} DSR {e.get('dsr') or 0.0:.3f} "
                f"({e.get('origin', {}).get('started_by', '?')})"
            )
        count = trial_count(entries) if entries else {"trials": 0.0, "attempts": 0}
        print(f"{count['attempts']} attempt(s), worth {count['trials']:.2f} independent trial(s)")
        return 0
    if args.command == "reset-ledger":
        from rl_assets.promotion.ledger import Ledger

        line = Ledger(registry.root).reset(args.reason)
        with file_lock(registry.root):
            registry._append_history({**line, "event": "ledger-reset"})
        print(
            f"{instrument}: ledger reset after {line['attempts_before']} attempt(s) "
            f"({args.reason!r}); the next candidate counts as attempt 1"
        )
        return 0
    if args.command == "history":
        for event in registry.history():
            when = time.strftime(
                "%Y-%m-%d %H:%M",
                time.gmtime(
                    event.get("rolled_back_at")
                    or event.get("promoted_at")
                    or event.get("recorded_at", 0)
                ),
            )
            if event["event"] == "ledger-reset":
                print(
                    f"{when} ledger-reset after {event['attempts_before']} attempt(s): "
                    f"{event['reason']}"
                )
                continue
            print(
                f"{when} {event['event']:<8} {event['version']} "
                f"validation Sharpe {event.get('validation_sharpe', float('nan')):.3f} "
                f"run {event.get('run_id', '?')}"
            )
        return 0
    try:
        entry = registry.rollback(args.version)
    except ValueError as err:
        print(f"error: {err}")
        return 2
    print(f"{instrument}: champion is now {entry['version']} ({registry.champion()['checkpoint']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
