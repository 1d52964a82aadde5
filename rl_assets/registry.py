"""The champion registry: versioned copies of promoted checkpoints and an atomic pointer.

Layout under ``root``::

    versions/v0001/   a complete copy of a promoted checkpoint (manifest.json last)
    champion.json     the pointer to the current champion, replaced atomically
    history.jsonl     one line per promotion or rollback

Roll back from the shell::

    python -m rl_assets.registry --root artifacts/registry list
    python -m rl_assets.registry --root artifacts/registry rollback v0001
"""

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rl_assets.rl import checkpoints


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "champion.json"
        self.history_file = self.root / "history.jsonl"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def champion(self) -> dict[str, Any] | None:
        """The current champion's record, or None before the first promotion."""
        if not self.pointer.exists():
            return None
        return json.loads(self.pointer.read_text())

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if checkpoints.is_complete(p))

    def history(self) -> list[dict[str, Any]]:
        if not self.history_file.exists():
            return []
        events = []
        for line in self.history_file.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line from a killed writer
                continue
        return events

    def _append_history(self, event: dict[str, Any]) -> None:
        with open(self.history_file, "a") as f:
            f.write(json.dumps(event, default=str, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def promote(self, checkpoint: str | Path, record: dict[str, Any]) -> dict[str, Any]:
        """Copy a complete checkpoint in as the next version and make it the champion."""
        checkpoint = Path(checkpoint)
        checkpoints.read_manifest(checkpoint)  # refuses incomplete checkpoints
        with self._locked():
            checkpoints.remove_stale_temp_dirs(self.versions_dir)
            checkpoints.remove_stale_temp_dirs(self.root)
            number = len(self.versions()) + 1
            version = f"v{number:04d}"
            dest = self.versions_dir / version
            entry = {
                **record,
                "version": version,
                "checkpoint": str(dest),
                "source_checkpoint": str(checkpoint),
                "promoted_at": time.time(),
            }

            def fill(tmp: Path) -> None:
                shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
                (tmp / checkpoints.MANIFEST).unlink()  # rewritten last by publish_directory

            manifest = {**checkpoints.read_manifest(checkpoint), "registry": entry}
            checkpoints.publish_directory(dest, fill, manifest)
            checkpoints.write_json_atomically(self.pointer, entry)
            self._append_history({"event": "promote", **entry})
            return entry

    def rollback(self, version: str) -> dict[str, Any]:
        """Point the champion at an earlier version; nothing is deleted."""
        with self._locked():
            if version not in self.versions():
                raise ValueError(
                    f"version {version!r} is not in the registry at {self.root}; "
                    f"available: {', '.join(self.versions()) or 'none'}"
                )
            manifest = checkpoints.read_manifest(self.versions_dir / version)
            entry = {**manifest["registry"], "rolled_back_at": time.time()}
            checkpoints.write_json_atomically(self.pointer, entry)
            self._append_history({"event": "rollback", **entry})
            return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="registry directory")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="versions and the current champion")
    rb = sub.add_parser("rollback", help="make an earlier version the champion")
    rb.add_argument("version")
    args = parser.parse_args(argv)
    registry = Registry(args.root)
    if args.command == "list":
        champion = registry.champion()
        for v in registry.versions():
            mark = "*" if champion and champion["version"] == v else " "
            print(f"{mark} {v}")
        return 0
    entry = registry.rollback(args.version)
    print(f"champion is now {entry['version']} ({entry['checkpoint']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
