"""Fate-sharing for a locally started Ray: when the driver dies, its Ray processes die too.

Ray's gcs_server and raylet follow a killed driver, but its agents (DashboardAgent,
RuntimeEnvAgent) outlive it by minutes. ``ray_session`` starts this watchdog in its own
session; it records every descendant of the driver twice a second and, once the driver
is gone, kills those that are still alive (matching start times, so a reused PID is
never hit). On a normal shutdown the driver terminates the watchdog.

    python -m rl_assets.rl.reaper <driver_pid>
"""

import os
import signal
import sys
import time
from pathlib import Path


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is already dead
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: pid -> start time."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info:
                children.setdefault(info[0], []).append(int(entry))
                starts[int(entry)] = info[1]
    found: dict[int, int] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = starts[child]
                stack.append(child)
    return found


def watch(driver: int, interval: float = 0.5) -> list[int]:
    """Block until ``driver`` dies, then kill what it left behind; return the killed pids."""
    me = os.getpid()
    first = _stat(driver)
    if first is None:
        return []
    driver_start = first[1]
    known: dict[int, int] = {}
    while True:
        info = _stat(driver)
        if info is None or info[1] != driver_start:
            break
        known.update({p: s for p, s in descendants(driver).items() if p != me})
        time.sleep(interval)
    killed = []
    for pid, start in known.items():
        info = _stat(pid)
        if info is not None and info[1] == start:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch(int(sys.argv[1]))
