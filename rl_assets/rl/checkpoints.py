"""Checkpoints that are complete or absent: temp dir, manifest last, atomic rename, pointer files."""

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
TMP_MARK = ".tmp-"


def read_jsonl(path: Path) -> list[Any]:
    """Every JSON line of ``path`` (none if it does not exist); a torn line, as a writer
    killed mid-append leaves, is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def append_jsonl(path: Path, payload: Any) -> None:
    """Append one JSON line to ``path`` and fsync it (callers hold the file's lock)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(payload, default=str, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` so a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex}")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_directory(dest: Path, fill: Callable[[Path], None], manifest: dict[str, Any]) -> Path:
    """Create ``dest`` atomically: ``fill`` writes into a hidden temp dir, the manifest
    goes in last, then one rename makes it visible. ``dest`` must not exist yet."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; checkpoints are never overwritten")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{TMP_MARK}{dest.name}-{uuid.uuid4().hex}")
    try:
        tmp.mkdir()
        fill(tmp)
        write_json_atomically(tmp / MANIFEST, manifest)
        os.rename(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def is_complete(checkpoint: Path) -> bool:
    """A checkpoint is complete when it is not a temp dir and holds its manifest."""
    checkpoint = Path(checkpoint)
    return (
        checkpoint.is_dir()
        and not checkpoint.name.startswith(TMP_MARK)
        and (checkpoint / MANIFEST).is_file()
    )


def read_manifest(checkpoint: Path) -> dict[str, Any]:
    checkpoint = Path(checkpoint)
    if not is_complete(checkpoint):
        raise FileNotFoundError(
            f"{checkpoint} is not a complete checkpoint (no {MANIFEST}); "
            "it may be from a run that was killed; retrain to produce a new one"
        )
    return json.loads((checkpoint / MANIFEST).read_text())


def remove_stale_temp_dirs(root: Path) -> list[Path]:
    """Delete temp dirs left by a killed writer; return what was removed."""
    root = Path(root)
    removed = []
    if root.is_dir():
        for child in root.iterdir():
            if TMP_MARK in child.name:
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
                removed.append(child)
    return removed


def content_digest(directory: Path) -> str:
    """sha256 over every file's relative path and bytes, in a fixed order: the identity of a
    directory's contents wherever it is copied."""
    return _digest(Path(directory), skip=())


def policy_digest(checkpoint: Path) -> str:
    """``content_digest`` of a checkpoint without its manifest: the policy's own bytes, the
    same for a candidate and its copy in the registry (whose manifest adds the promotion)."""
    return _digest(Path(checkpoint), skip=(Path(MANIFEST),))


def _digest(directory: Path, skip: tuple[Path, ...]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory)
        if relative in skip:
            continue
        digest.update(str(relative).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
